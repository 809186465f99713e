// Package corpus loads every input the translators are tested with, for tests that check the
// backends' output against the backends' own validation: the golden-file cases of the Istio and
// xDS translators (translators/*/testdata/*.yaml), the offline translate command's cases
// (cmd/translate/testdata) and every fuzz corpus entry of the repository (testdata/fuzz/*).
//
// Objects are decoded as the offline translate command decodes them but not validated: the
// translators must emit valid objects also for input that never went through the webhook (stored
// before it existed, or translated offline).
package corpus

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/cmd/translate/manifest"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Case is one loaded input.
type Case struct {
	// Name says where the input comes from, relative to the repository's root.
	Name     string
	Snapshot mesh.Snapshot
	Settings mesh.Settings
	// EndpointSlices and the Pods their endpoints name are kept apart: the mesh model does not
	// take them, the xDS translator does.
	EndpointSlices []discoveryv1.EndpointSlice
	Pods           []corev1.Pod
}

// settingsDocument is the golden cases' test-only document that sets mesh.Settings.
type settingsDocument struct {
	Kind string `json:"kind"`
	mesh.Settings
}

// Load reads a golden case file strictly: any document that cannot be read, decoded or added is an
// error. Documents are added in reverse order when asked.
func Load(path string, reverse bool) (Case, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Case{}, err
	}
	c := Case{Name: path}
	return c, c.add(path, data, reverse, true)
}

// All loads every input of the repository whose root is root: the golden cases (strictly), then
// the offline command's cases and the fuzz corpus entries (leniently: documents that do not decode
// are skipped, objects without a namespace go to "default"). Fuzz entries and offline cases get a
// Service for every name a TrafficSplit refers to that they lack, so their splits produce routes.
// goldenDirs, relative to root, add the golden cases of other translators (a translator's own).
func All(root string, goldenDirs ...string) ([]Case, error) {
	var cases []Case
	for _, dir := range append([]string{"translators/istio/testdata", "translators/xds/testdata"}, goldenDirs...) {
		inputs, err := filepath.Glob(filepath.Join(root, dir, "*.yaml"))
		if err != nil {
			return nil, err
		}
		for _, in := range inputs {
			if strings.HasSuffix(in, ".golden.yaml") {
				continue
			}
			c, err := Load(in, false)
			if err != nil {
				return nil, err
			}
			c.Name = rel(root, in)
			cases = append(cases, c)
		}
	}

	offline := filepath.Join(root, "cmd/translate/testdata")
	entries, err := os.ReadDir(offline)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".golden") || e.Name() == "fuzz" {
			continue
		}
		c := Case{Name: rel(root, filepath.Join(offline, e.Name()))}
		err := filepath.WalkDir(filepath.Join(offline, e.Name()), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !slices.Contains([]string{".yaml", ".yml", ".json"}, filepath.Ext(path)) {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return c.add(path, data, false, false)
		})
		if err != nil {
			return nil, err
		}
		cases = append(cases, c.withSplitServices())
	}

	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (d.Name() == ".git" || path != root && fileExists(filepath.Join(path, "go.mod"))):
			return filepath.SkipDir // another module's corpus is its own
		case d.IsDir() || filepath.Base(filepath.Dir(filepath.Dir(path))) != "fuzz" ||
			filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(path)))) != "testdata":
			return nil
		}
		values, err := fuzzEntry(path)
		if err != nil {
			return err
		}
		for i, v := range values {
			c := Case{Name: fmt.Sprintf("%s#%d", rel(root, path), i)}
			if err := c.add(path, v, false, false); err != nil {
				return err
			}
			cases = append(cases, c.withSplitServices())
		}
		return nil
	})
	return cases, err
}

// add reads the documents of one file into c. Strictly, any problem is an error; otherwise
// documents that do not decode are skipped.
func (c *Case) add(path string, data []byte, reverse, strict bool) error {
	var docs [][]byte
	for _, doc := range manifest.Split(data) {
		switch {
		case strict && doc.Err != nil:
			return fmt.Errorf("%s: document %d: %w", path, doc.Index, doc.Err)
		case strict && doc.Warning != "":
			return fmt.Errorf("%s: document %d: %s", path, doc.Index, doc.Warning)
		case doc.JSON != nil:
			docs = append(docs, doc.JSON)
		}
	}
	if reverse {
		slices.Reverse(docs)
	}
	for _, doc := range docs {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			if strict {
				return fmt.Errorf("%s: %w", path, err)
			}
			continue
		}
		switch {
		case tm.Kind == "" && tm.APIVersion == "":
			continue // comments only
		case tm.Kind == "Settings":
			var s settingsDocument
			if err := yaml.UnmarshalStrict(doc, &s); err != nil {
				return fmt.Errorf("%s: Settings: %w", path, err)
			}
			if err := s.Settings.Validate(); err != nil {
				return fmt.Errorf("%s: Settings: %w", path, err)
			}
			c.Settings = s.Settings
			continue
		}
		obj, err := manifest.Decode(doc)
		if err != nil {
			if strict {
				return fmt.Errorf("%s: %w", path, err)
			}
			continue
		}
		if m, ok := obj.(metav1.Object); ok && m.GetNamespace() == "" && !strict {
			m.SetNamespace("default")
		}
		switch o := obj.(type) {
		case *discoveryv1.EndpointSlice:
			c.EndpointSlices = append(c.EndpointSlices, *o)
			continue
		case *corev1.Pod:
			c.Pods = append(c.Pods, *o)
			continue
		}
		if err := c.Snapshot.Add(obj); err != nil {
			if strict {
				return fmt.Errorf("%s: %w", path, err)
			}
			continue
		}
	}
	return nil
}

// withSplitServices adds, for every Service a TrafficSplit names (its apex and backends) that the
// case lacks, one with an HTTP port and a TCP port.
func (c Case) withSplitServices() Case {
	have := map[string]bool{}
	for _, s := range c.Snapshot.Services {
		have[s.Namespace+"/"+s.Name] = true
	}
	add := func(namespace, name string) {
		if name == "" || have[namespace+"/"+name] {
			return
		}
		have[namespace+"/"+name] = true
		c.Snapshot.Services = append(c.Snapshot.Services, corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": name},
				Ports: []corev1.ServicePort{
					{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)},
					{Name: "tcp-db", Port: 5432, Protocol: corev1.ProtocolTCP},
				},
			},
		})
	}
	for _, ts := range slices.Clone(c.Snapshot.TrafficSplits) {
		add(ts.Namespace, apexName(ts))
		for _, b := range ts.Spec.Backends {
			add(ts.Namespace, b.Service)
		}
	}
	return c
}

func apexName(ts splitv1alpha4.TrafficSplit) string {
	if s, ok := smi.ParseSplitService(ts.Spec.Service); ok {
		return s.Name
	}
	return ts.Spec.Service
}

// fuzzEntry returns the string and []byte values of a Go fuzz corpus file ("go test fuzz v1").
func fuzzEntry(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	var values [][]byte
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		for _, prefix := range []string{"[]byte(", "string("} {
			if inner, ok := strings.CutPrefix(line, prefix); ok && strings.HasSuffix(inner, ")") {
				v, err := strconv.Unquote(strings.TrimSuffix(inner, ")"))
				if err != nil {
					return nil, fmt.Errorf("%s: %w", path, err)
				}
				values = append(values, []byte(v))
			}
		}
	}
	return values, sc.Err()
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil {
		return filepath.ToSlash(r)
	}
	return path
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Package golden runs the translators' golden-file tests (Istio's gateway translator style): every
// testdata/<case>.yaml is loaded, rendered by the translator under test and compared with
// testdata/<case>.golden<ext>; UPDATE_GOLDEN=1 rewrites the golden files instead. A case file holds
// SMI objects of any served version, Services, workloads and EndpointSlices, and optionally one
// document of kind Settings with mesh.Settings' fields.
package golden

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/offline/manifest"
)

// Case is one loaded case file.
type Case struct {
	// Input is the case file's name, for headers of golden files.
	Input    string
	Snapshot mesh.Snapshot
	Settings mesh.Settings
	// EndpointSlices are kept apart: the mesh model does not take them, the xDS translator does.
	EndpointSlices []discoveryv1.EndpointSlice
}

// settingsDocument is the test-only document that sets mesh.Settings.
type settingsDocument struct {
	Kind string `json:"kind"`
	mesh.Settings
}

// Load reads a case file, adding its documents in reverse order when asked. Documents are read and
// decoded (strictly: a misspelt field in a case must fail the case, not silently test something
// else) by package translators/offline/manifest, as the offline translate command reads them.
func Load(t *testing.T, path string, reverse bool) Case {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs [][]byte
	for _, doc := range manifest.Split(data) {
		if doc.Err != nil {
			t.Fatalf("%s: document %d: %v", path, doc.Index, doc.Err)
		}
		if doc.Warning != "" {
			t.Fatalf("%s: document %d: %s", path, doc.Index, doc.Warning)
		}
		if doc.JSON != nil {
			docs = append(docs, doc.JSON)
		}
	}
	if reverse {
		slices.Reverse(docs)
	}

	c := Case{Input: filepath.Base(path)}
	for _, doc := range docs {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		switch {
		case tm.Kind == "" && tm.APIVersion == "":
			continue // comments only
		case tm.Kind == "Settings":
			var s settingsDocument
			if err := yaml.UnmarshalStrict(doc, &s); err != nil {
				t.Fatalf("%s: Settings: %v", path, err)
			}
			if err := s.Settings.Validate(); err != nil {
				t.Fatalf("%s: Settings: %v", path, err)
			}
			c.Settings = s.Settings
			continue
		}
		obj, err := manifest.Decode(doc)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
			c.EndpointSlices = append(c.EndpointSlices, *s)
			continue
		}
		if err := c.Snapshot.Add(obj); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return c
}

// Run renders every case of testdata with render and compares the result with its golden file
// (testdata/<case>.golden<ext>, ext such as ".yaml" or ".json"); it also checks that the output
// does not depend on the order of the input documents, and that no golden file lacks its input.
func Run(t *testing.T, ext string, render func(t *testing.T, c Case) string) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cases := slices.DeleteFunc(inputs, func(p string) bool { return strings.HasSuffix(p, ".golden.yaml") })
	if len(cases) == 0 {
		t.Fatal("no test cases in testdata")
	}
	for _, in := range cases {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			got := render(t, Load(t, in, false))
			// The cache lists objects in no particular order; the output must not care.
			if d := cmp.Diff(got, render(t, Load(t, in, true))); d != "" {
				t.Errorf("output depends on input order (-in order +reversed):\n%s", d)
			}
			Compare(t, filepath.Join("testdata", name+".golden"+ext), got)
		})
	}
	goldens, err := filepath.Glob(filepath.Join("testdata", "*.golden"+ext))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range goldens {
		if _, err := os.Stat(strings.TrimSuffix(g, ".golden"+ext) + ".yaml"); err != nil {
			t.Errorf("stale golden file %s: %v", g, err)
		}
	}
}

// Compare checks got against the golden file at path, or, with UPDATE_GOLDEN=1, writes it there.
func Compare(t *testing.T, path, got string) {
	t.Helper()
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with UPDATE_GOLDEN=1 to create it)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s differs (-golden +got); if the change is intended, refresh with UPDATE_GOLDEN=1:\n%s", path, d)
	}
}

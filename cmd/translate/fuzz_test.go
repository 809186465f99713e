package translate

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/smi-operator/smi-operator/cmd/translate/manifest"
	"github.com/smi-operator/smi-operator/translators/istio"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// FuzzParseManifest feeds arbitrary files to the document parser and the reader, and what they
// accept to the model and the Istio translation. Whatever the input: no panic; documents are
// numbered in order, each either JSON, an error or empty; every finding is one line naming the
// file; every accepted object has a name and a namespace and goes into the snapshot; reading is
// deterministic; and the accepted objects translate and render. Seeds are every manifest of
// testdata.
func FuzzParseManifest(f *testing.F) {
	err := filepath.WalkDir("testdata", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".golden") || strings.Contains(path, string(filepath.Separator)+"fuzz"+string(filepath.Separator)) {
			return err
		}
		data, err := os.ReadFile(path)
		if err == nil {
			f.Add(data)
		}
		return err
	})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		"", "---", "{", "[]", "null", "a: b\n--- x\n", "{\"a\":1}{\"b\":2}\n", "{a: 1}\nb: 2\n",
		"apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: List, items: [1, {}]}]\n",
		"apiVersion: split.smi-spec.io/v1alpha1\nkind: TrafficSplit\nmetadata: {name: x}\nspec: {service: a, backends: [{service: b, weight: 1e-999999999}]}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs := manifest.Split(data)
		for i, d := range docs {
			if d.Index != i+1 || d.Line < 1 || (i > 0 && d.Line < docs[i-1].Line) {
				t.Fatalf("document %d: index %d, line %d after line %d", i, d.Index, d.Line, docs[max(i-1, 0)].Line)
			}
			if d.Err != nil && d.JSON != nil || d.JSON != nil && !json.Valid(d.JSON) {
				t.Fatalf("document %d: error %v with JSON %q", d.Index, d.Err, d.JSON)
			}
		}

		read := func() *reader {
			r := newReader("default", false)
			r.file("fuzz.yaml", data)
			return r
		}
		r := read()
		for _, rep := range r.reports {
			line := rep.String()
			if strings.ContainsAny(line, "\r\n") || !strings.HasPrefix(line, rep.level+": fuzz.yaml:") || rep.text == "" {
				t.Fatalf("report %q: want one line naming the file", line)
			}
		}
		if again := read(); !reflect.DeepEqual(again.reports, r.reports) || len(again.objects) != len(r.objects) {
			t.Fatalf("reading twice differs:\n%v\n%v", r.reports, again.reports)
		}

		var snap mesh.Snapshot
		for _, o := range r.objects {
			if o.name == "" || o.namespace == "" {
				t.Fatalf("%s: accepted without name or namespace", o.pos)
			}
			if _, ok := o.obj.(*discoveryv1.EndpointSlice); ok {
				continue
			}
			if err := snap.Add(o.obj); err != nil {
				t.Fatalf("%s: accepted but not added: %v", o.pos, err)
			}
		}
		settings := mesh.Settings{MTLS: true}
		model, _ := mesh.Build(snap, settings)
		out, _ := istio.Translate(model, settings)
		if err := writeIstio(&bytes.Buffer{}, out); err != nil {
			t.Fatalf("rendering: %v", err)
		}
	})
}

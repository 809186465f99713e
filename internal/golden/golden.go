// Package golden runs the translators' golden-file tests (Istio's gateway translator style): every
// testdata/<case>.yaml is loaded, rendered by the translator under test and compared with
// testdata/<case>.golden<ext>; UPDATE_GOLDEN=1 rewrites the golden files instead. A case file holds
// SMI objects of any served version, Services, workloads, EndpointSlices and the Pods they name,
// and optionally one document of kind Settings with mesh.Settings' fields.
package golden

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/smi-operator/smi-operator/test/corpus"
)

// Case is one loaded case file.
type Case struct {
	corpus.Case
	// Input is the case file's name, for headers of golden files.
	Input string
}

// Load reads a case file, adding its documents in reverse order when asked. Documents are read and
// decoded (strictly: a misspelt field in a case must fail the case, not silently test something
// else) by package test/corpus, as the offline translate command reads them.
func Load(t *testing.T, path string, reverse bool) Case {
	t.Helper()
	c, err := corpus.Load(path, reverse)
	if err != nil {
		t.Fatal(err)
	}
	return Case{Case: c, Input: filepath.Base(path)}
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

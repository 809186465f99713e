package translate

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBackendsAgreeOnSMIDiagnostics: what SMI objects mean is judged once, by mesh.Build, so every
// backend reports it alike (issue 12): testdata/smi-diagnostics, which holds only objects whose
// findings are about SMI meaning, gets the same findings and exit code from each backend and proxy
// kind as from --backend=none, which runs mesh.Build alone.
func TestBackendsAgreeOnSMIDiagnostics(t *testing.T) {
	input := filepath.Join("testdata", "smi-diagnostics")
	run := func(backend ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := Main(append(backend, input), strings.NewReader(""), &stdout, &stderr)
		return code, stderr.String()
	}
	wantCode, want := run("--backend=none")
	if want == "" {
		t.Fatal("--backend=none reports nothing: the input no longer exercises any diagnostic")
	}
	for _, backend := range [][]string{
		{"--backend=istio"},
		{"--backend=xds", "--proxy=grpc"},
		{"--backend=xds", "--proxy=envoy"},
		{"--backend=gamma"},
	} {
		code, got := run(backend...)
		if backend[0] == "--backend=gamma" {
			// Not about SMI meaning: the gamma backend enforces no access at all, and says so of
			// every TrafficTarget.
			got = strings.Join(slices.DeleteFunc(strings.SplitAfter(got, "\n"), func(l string) bool {
				return strings.Contains(l, " AccessNotEnforced: ")
			}), "")
		}
		if code != wantCode {
			t.Errorf("%s: exit code %d, --backend=none's is %d", strings.Join(backend, " "), code, wantCode)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: findings differ from --backend=none's (-none +%s):\n%s", strings.Join(backend, " "), backend[0], d)
		}
	}
}

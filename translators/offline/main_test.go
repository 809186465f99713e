package offline

import (
	"bytes"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/smi-operator/smi-operator/translators/offline/manifest"
)

// TestUsageErrors checks that what makes the command unusable exits 2 with a message and no
// output, before anything is translated.
func TestUsageErrors(t *testing.T) {
	samples := filepath.Join("testdata", "samples")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no input: name files, directories, or - for standard input"},
		{[]string{"--backend=istio"}, "no input"},
		{[]string{"--proxy=sidecar", samples}, `unknown --proxy "sidecar": use grpc, envoy or all`},
		{[]string{"--access-mode=Strict", samples}, `invalid mesh settings: access mode "Strict" is neither "Enforcing" nor "Permissive"`},
		{[]string{"--trust-domain=Example.ORG", samples}, `invalid mesh settings: trust domain "Example.ORG"`},
		{[]string{"--cluster-domain=-bad-", samples}, `invalid mesh settings: cluster domain "-bad-"`},
		{[]string{"--grpc-server-ports=8080,0", samples}, `--grpc-server-ports: "0" is not a port from 1 to 65535`},
		{[]string{"--grpc-server-ports=http", samples}, `--grpc-server-ports: "http" is not a port from 1 to 65535`},
		{[]string{"--metrics-bind-address=:8443", samples}, "flag provided but not defined: -metrics-bind-address"},
		{[]string{"-", samples, "-"}, `"-" (standard input) is given more than once`},
		{[]string{samples, "--mtls=maybe"}, `invalid boolean value "maybe" for -mtls`},
		{[]string{filepath.Join("testdata", "no-such-dir")}, "no such file or directory"},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(tc.args, strings.NewReader(""), &stdout, &stderr)
		if code != ExitUsage || stdout.Len() > 0 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("Main(%q) = %d, stdout %q, stderr %q; want 2, nothing, and a message containing %q",
				tc.args, code, stdout.String(), stderr.String(), tc.want)
		}
	}
}

// TestFlagsAmongFiles checks that flags are read wherever they stand, and that after "--" every
// argument is a file, even one that looks like a flag.
func TestFlagsAmongFiles(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		files     []string
		backend   string
		namespace string
	}{
		{[]string{"a.yaml", "--backend=xds", "b.yaml", "-n", "shop"}, []string{"a.yaml", "b.yaml"}, "xds", "shop"},
		{[]string{"-", "--backend", "none"}, []string{"-"}, "none", "default"},
		{[]string{"--backend=xds", "--", "--backend=none", "-n"}, []string{"--backend=none", "-n"}, "xds", "default"},
		{[]string{"a.yaml", "--", "b.yaml"}, []string{"a.yaml", "b.yaml"}, "istio", "default"},
	} {
		opts, files, err := parseFlags(tc.args, &bytes.Buffer{})
		if err != nil || !slices.Equal(files, tc.files) || opts.backend != tc.backend || opts.namespace != tc.namespace {
			t.Errorf("parseFlags(%q) = backend %q, namespace %q, files %q, %v; want %q, %q, %q",
				tc.args, opts.backend, opts.namespace, files, err, tc.backend, tc.namespace, tc.files)
		}
	}
}

// position matches the position of a report, which moves when documents do.
var positionPart = regexp.MustCompile(`^(error|warning|note): \S+:\d+ \(document \d+(, item \d+)?\): `)

// TestOutputIgnoresInputOrder checks, for every golden case, that reading the files and their
// documents in reverse order prints the same output and the same findings (but for their
// positions): the cluster stores objects in no order, and a review must not depend on how the
// files are laid out. Cases where an object is given twice are left out: there, the order decides.
func TestOutputIgnoresInputOrder(t *testing.T) {
	entries, err := filepath.Glob(filepath.Join("testdata", "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, golden := range entries {
		name := strings.TrimSuffix(filepath.Base(golden), ".golden")
		args, stdin := caseInput(t, name)
		opts, paths, err := parseFlags(args, &bytes.Buffer{})
		if err != nil {
			continue // usage cases
		}
		files, _, err := readInputs(paths, bytes.NewReader(stdin))
		if err != nil {
			continue
		}
		out, reports := run(opts, files)
		if slices.ContainsFunc(reports, func(r report) bool { return strings.Contains(r.text, "replaces the same object") }) {
			continue
		}
		reversed := make([]file, 0, len(files))
		for _, f := range slices.Backward(files) {
			var docs [][]byte
			for _, d := range manifest.Split(f.data) {
				if d.Err == nil && d.JSON != nil {
					docs = append(docs, d.JSON)
				}
			}
			slices.Reverse(docs)
			reversed = append(reversed, file{name: f.name, data: bytes.Join(docs, []byte("\n---\n"))})
		}
		reversedOut, reversedReports := run(opts, reversed)
		if d := cmp.Diff(string(out), string(reversedOut)); d != "" {
			t.Errorf("%s: output depends on the input order (-in order +reversed):\n%s", name, d)
		}
		// Unreadable documents are left out of the reversed input, and their reports with them.
		if d := cmp.Diff(findings(reports), findings(reversedReports)); d != "" {
			t.Errorf("%s: findings depend on the input order (-in order +reversed):\n%s", name, d)
		}
		compared++
	}
	if compared < 5 {
		t.Errorf("only %d cases compared", compared)
	}
}

// findings are the report lines without positions, sorted, leaving out those about whole
// documents rather than objects (documents that could not be read, or not completely).
func findings(reports []report) []string {
	var out []string
	for _, r := range reports {
		if r.at != "" && !strings.Contains(r.at, "): ") {
			continue
		}
		out = append(out, positionPart.ReplaceAllString(r.String(), "$1: "))
	}
	slices.Sort(out)
	return out
}

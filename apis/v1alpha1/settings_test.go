package v1alpha1

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func TestWithDefaults(t *testing.T) {
	full := SMIOperatorSpec{
		Backend: BackendXDS, TrustDomain: "corp.example", ClusterDomain: "k8s.example", AccessMode: AccessPermissive, MTLS: true,
		XDS: XDSSpec{
			Port: 16000, TLS: &XDSTLS{SecretName: "xds-cert"}, TokenAudiences: []string{"a", "b"},
			CertificateTTL: dur(2 * time.Hour), SwapGracePeriod: dur(0),
		},
	}
	for _, tc := range []struct {
		name string
		in   SMIOperatorSpec
		want SMIOperatorSpec
	}{{
		name: "empty spec gets every default",
		in:   SMIOperatorSpec{},
		want: SMIOperatorSpec{
			Backend: BackendIstio, TrustDomain: "cluster.local", ClusterDomain: "cluster.local", AccessMode: AccessEnforcing,
			XDS: XDSSpec{Port: 15010, TokenAudiences: []string{"smi-operator-xds"}, CertificateTTL: dur(time.Hour), SwapGracePeriod: dur(5 * time.Minute)},
		},
	}, {
		name: "explicit values are kept, a zero grace period included",
		in:   full,
		want: full,
	}, {
		name: "only the empty fields are filled",
		in:   SMIOperatorSpec{Backend: BackendXDS, XDS: XDSSpec{Port: 16000}},
		want: SMIOperatorSpec{
			Backend: BackendXDS, TrustDomain: "cluster.local", ClusterDomain: "cluster.local", AccessMode: AccessEnforcing,
			XDS: XDSSpec{Port: 16000, TokenAudiences: []string{"smi-operator-xds"}, CertificateTTL: dur(time.Hour), SwapGracePeriod: dur(5 * time.Minute)},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.in.DeepCopy()
			got := tc.in.WithDefaults()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("WithDefaults() mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(*before, tc.in); diff != "" {
				t.Errorf("WithDefaults() changed its receiver (-before +after):\n%s", diff)
			}
		})
	}
}

func TestWithDefaultsDoesNotAlias(t *testing.T) {
	in := SMIOperatorSpec{XDS: XDSSpec{TokenAudiences: []string{"a"}, TLS: &XDSTLS{SecretName: "s"}}}
	out := in.WithDefaults()
	out.XDS.TokenAudiences[0] = "changed"
	out.XDS.TLS.SecretName = "changed"
	if in.XDS.TokenAudiences[0] != "a" || in.XDS.TLS.SecretName != "s" {
		t.Errorf("WithDefaults() result shares memory with its receiver: %+v", in.XDS)
	}
}

func TestSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   SMIOperatorSpec
		want mesh.Settings
	}{{
		name: "empty spec is the flags' defaults",
		in:   SMIOperatorSpec{},
		want: mesh.Settings{TrustDomain: "cluster.local", ClusterDomain: "cluster.local", Access: mesh.AccessEnforcing},
	}, {
		name: "every field carried over",
		in:   SMIOperatorSpec{TrustDomain: "corp.example", ClusterDomain: "k8s.example", AccessMode: AccessPermissive, MTLS: true},
		want: mesh.Settings{TrustDomain: "corp.example", ClusterDomain: "k8s.example", Access: mesh.AccessPermissive, MTLS: true},
	}, {
		name: "a namespace selector",
		in: SMIOperatorSpec{AccessNamespaceSelector: &metav1.LabelSelector{
			MatchLabels:      map[string]string{"smi": "on"},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"legacy"}}},
		}},
		want: mesh.Settings{TrustDomain: "cluster.local", ClusterDomain: "cluster.local", Access: mesh.AccessEnforcing, AccessNamespaces: "smi=on,tier notin (legacy)"},
	}, {
		// Not "": that is the default selector, which leaves namespaces out.
		name: "the empty namespace selector selects every namespace",
		in:   SMIOperatorSpec{AccessNamespaceSelector: &metav1.LabelSelector{}},
		want: mesh.Settings{TrustDomain: "cluster.local", ClusterDomain: "cluster.local", Access: mesh.AccessEnforcing, AccessNamespaces: mesh.EveryNamespace},
	}, {
		name: "the backend and xDS settings do not change the mesh settings",
		in:   SMIOperatorSpec{Backend: BackendXDS, XDS: XDSSpec{Port: 16000}},
		want: mesh.Settings{TrustDomain: "cluster.local", ClusterDomain: "cluster.local", Access: mesh.AccessEnforcing},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.Settings()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Settings() mismatch (-want +got):\n%s", diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Settings() = %+v, which mesh.Settings.Validate refuses: %v", got, err)
			}
		})
	}
}

func TestNamespaceSelectorThatDoesNotConvert(t *testing.T) {
	spec := SMIOperatorSpec{AccessNamespaceSelector: &metav1.LabelSelector{
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "smi", Operator: metav1.LabelSelectorOpIn}},
	}}
	if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), "spec.accessNamespaceSelector") {
		t.Errorf("Validate() = %v, want an error naming spec.accessNamespaceSelector", err)
	}
	// Should it be used anyway, deny-by-default must not shrink: every namespace.
	if got := spec.Settings().AccessNamespaces; got != mesh.EveryNamespace {
		t.Errorf("Settings().AccessNamespaces = %q, want %q (fail closed)", got, mesh.EveryNamespace)
	}
	if err := (SMIOperatorSpec{}).Validate(); err != nil {
		t.Errorf("the empty spec: Validate() = %v", err)
	}
}

func TestAccessModesAreMeshAccessModes(t *testing.T) {
	for _, m := range []AccessMode{AccessEnforcing, AccessPermissive} {
		if err := (mesh.Settings{Access: mesh.AccessMode(m)}).Validate(); err != nil {
			t.Errorf("access mode %q is not a mesh access mode: %v", m, err)
		}
	}
	if (SMIOperatorSpec{AccessMode: AccessPermissive}).Settings().Enforcing() {
		t.Error("Permissive maps to an enforcing mesh.Settings")
	}
}

func TestXDSSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   SMIOperatorSpec
		want XDSSettings
	}{{
		name: "defaults",
		in:   SMIOperatorSpec{},
		want: XDSSettings{Port: 15010, TokenAudiences: []string{"smi-operator-xds"}, CertificateTTL: time.Hour, SwapGracePeriod: 5 * time.Minute},
	}, {
		name: "everything set",
		in: SMIOperatorSpec{XDS: XDSSpec{
			Port: 16000, TLS: &XDSTLS{SecretName: "xds-cert"}, TokenAudiences: []string{"a", "b"},
			CertificateTTL: dur(90 * time.Minute), SwapGracePeriod: dur(0),
		}},
		want: XDSSettings{Port: 16000, TLSSecretName: "xds-cert", TokenAudiences: []string{"a", "b"}, CertificateTTL: 90 * time.Minute},
	}, {
		name: "plain text",
		in:   SMIOperatorSpec{XDS: XDSSpec{InsecurePlaintext: true}},
		want: XDSSettings{Port: 15010, Plaintext: true, TokenAudiences: []string{"smi-operator-xds"}, CertificateTTL: time.Hour, SwapGracePeriod: 5 * time.Minute},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.in.XDSSettings()); diff != "" {
				t.Errorf("XDSSettings() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDefaultsMatchFlags reads main.go's flag definitions and checks that the flags this API
// replaces (when --backend fixes the backend) default to what the API defaults to, so that moving
// from flags to the resource changes nothing. swapGracePeriod has no flag; --backend defaults to
// "resource" (this API chooses), whose own default is istio.
func TestDefaultsMatchFlags(t *testing.T) {
	want := map[string]string{
		"trust-domain":              DefaultTrustDomain,
		"cluster-domain":            DefaultClusterDomain,
		"access-mode":               string(DefaultAccessMode),
		"access-namespace-selector": mesh.DefaultAccessNamespaces,
		"mtls":                      strconv.FormatBool(DefaultMTLS),
		"xds-address":               fmt.Sprintf(":%d", DefaultXDSPort),
		"xds-token-audiences":       DefaultTokenAudience,
		"xds-cert-ttl":              DefaultCertificateTTL.String(),
		"xds-insecure-plaintext":    "false",
	}
	got := flagDefaults(t, filepath.Join("..", "..", "main.go"))
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("main.go defines no flag --%s", name)
			continue
		}
		if g != w {
			t.Errorf("--%s defaults to %q, the SMIOperator API to %q", name, g, w)
		}
	}
}

// flagDefaults evaluates the default argument of every flag.XxxVar(&v, name, default, usage) and
// flag.Xxx(name, default, usage) call in a Go file, as a string.
func flagDefaults(t *testing.T, path string) map[string]string {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]string{ // identifiers main.go may use as defaults
		"mesh.AccessEnforcing":         string(mesh.AccessEnforcing),
		"mesh.AccessPermissive":        string(mesh.AccessPermissive),
		"mesh.DefaultAccessNamespaces": mesh.DefaultAccessNamespaces,
		"time.Hour":                    time.Hour.String(),
		"time.Minute":                  time.Minute.String(),
		"true":                         "true",
		"false":                        "false",
	}
	var eval func(ast.Expr) (string, bool)
	eval = func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			if e.Kind == token.STRING {
				s, err := strconv.Unquote(e.Value)
				return s, err == nil
			}
			return e.Value, true
		case *ast.Ident:
			v, ok := known[e.Name]
			return v, ok
		case *ast.SelectorExpr:
			if x, ok := e.X.(*ast.Ident); ok {
				v, ok := known[x.Name+"."+e.Sel.Name]
				return v, ok
			}
		case *ast.CallExpr: // a conversion such as string(mesh.AccessEnforcing)
			if fn, ok := e.Fun.(*ast.Ident); ok && fn.Name == "string" && len(e.Args) == 1 {
				return eval(e.Args[0])
			}
		}
		return "", false
	}
	out := map[string]string{}
	ast.Inspect(file, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "flag" {
			return true
		}
		args := call.Args
		if len(args) == 4 { // flag.XxxVar(&target, name, default, usage)
			args = args[1:]
		}
		if len(args) != 3 {
			return true
		}
		name, ok := eval(args[0])
		if !ok {
			return true
		}
		value, ok := eval(args[1])
		if !ok {
			value = "<cannot evaluate: teach TestDefaultsMatchFlags this expression>"
		}
		out[name] = value
		return true
	})
	if len(out) == 0 {
		t.Fatalf("found no flag definitions in %s", path)
	}
	return out
}

// TestSampleIsTheDefaults keeps the sample honest: it says every field shows its default.
func TestSampleIsTheDefaults(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "smi-operator.io_v1alpha1_smioperator_default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var sample SMIOperator
	if err := yaml.UnmarshalStrict(data, &sample); err != nil {
		t.Fatal(err)
	}
	if sample.Name != SingletonName {
		t.Errorf("sample is named %q, want %q", sample.Name, SingletonName)
	}
	if diff := cmp.Diff(SMIOperatorSpec{}.WithDefaults(), sample.Spec); diff != "" {
		t.Errorf("sample spec is not the defaults (-defaults +sample):\n%s", diff)
	}
}

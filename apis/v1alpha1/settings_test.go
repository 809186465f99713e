package v1alpha1

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func qty(s string) *resource.Quantity { q := resource.MustParse(s); return &q }

var defaultInjection = InjectionSpec{
	EnvoyImage:     "docker.io/envoyproxy/envoy:v1.36.2",
	ProxyResources: ProxyResources{CPURequest: qty("100m"), MemoryRequest: qty("128Mi"), MemoryLimit: qty("1Gi")},
}

func TestWithDefaults(t *testing.T) {
	full := SMIOperatorSpec{
		Backend: BackendXDS, TrustDomain: "corp.example", ClusterDomain: "k8s.example", AccessMode: AccessPermissive, MTLS: true,
		XDS: XDSSpec{
			Port: 16000, TLS: &XDSTLS{SecretName: "xds-cert"}, TokenAudiences: []string{"a", "b"},
			CertificateTTL: dur(2 * time.Hour), SwapGracePeriod: dur(0),
			Injection: InjectionSpec{
				EnvoyImage: "registry.example/envoy:v1", AgentImage: "registry.example/smi-operator:v2",
				ProxyResources:      ProxyResources{CPURequest: qty("50m"), MemoryRequest: qty("64Mi"), CPULimit: qty("1"), MemoryLimit: qty("256Mi")},
				ExcludeInboundPorts: []int32{22}, ExcludeOutboundPorts: []int32{5432}, ExcludeOutboundCIDRs: []string{"169.254.169.254/32"},
			},
		},
		Gamma: GammaSpec{AccessPolicy: GammaAccessPolicyIstio},
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
			XDS:   XDSSpec{Port: 15010, TokenAudiences: []string{"smi-operator-xds"}, CertificateTTL: dur(time.Hour), SwapGracePeriod: dur(5 * time.Minute), Injection: defaultInjection},
			Gamma: GammaSpec{AccessPolicy: GammaAccessPolicyNone},
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
			XDS:   XDSSpec{Port: 16000, TokenAudiences: []string{"smi-operator-xds"}, CertificateTTL: dur(time.Hour), SwapGracePeriod: dur(5 * time.Minute), Injection: defaultInjection},
			Gamma: GammaSpec{AccessPolicy: GammaAccessPolicyNone},
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

package backends

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

func TestMeshSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   v1alpha1.SMIOperatorSpec
		want mesh.Settings
	}{{
		name: "empty spec is the flags' defaults",
		in:   v1alpha1.SMIOperatorSpec{},
		want: mesh.Settings{TrustDomain: "cluster.local", ClusterDomain: "cluster.local", Access: mesh.AccessEnforcing},
	}, {
		name: "every field carried over",
		in:   v1alpha1.SMIOperatorSpec{TrustDomain: "corp.example", ClusterDomain: "k8s.example", AccessMode: v1alpha1.AccessPermissive, MTLS: true},
		want: mesh.Settings{TrustDomain: "corp.example", ClusterDomain: "k8s.example", Access: mesh.AccessPermissive, MTLS: true},
	}, {
		name: "a namespace selector",
		in: v1alpha1.SMIOperatorSpec{AccessNamespaceSelector: &metav1.LabelSelector{
			MatchLabels:      map[string]string{"smi": "on"},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"legacy"}}},
		}},
		want: mesh.Settings{TrustDomain: "cluster.local", ClusterDomain: "cluster.local", Access: mesh.AccessEnforcing, AccessNamespaces: "smi=on,tier notin (legacy)"},
	}, {
		// Not "": that is the default selector, which leaves namespaces out.
		name: "the empty namespace selector selects every namespace",
		in:   v1alpha1.SMIOperatorSpec{AccessNamespaceSelector: &metav1.LabelSelector{}},
		want: mesh.Settings{TrustDomain: "cluster.local", ClusterDomain: "cluster.local", Access: mesh.AccessEnforcing, AccessNamespaces: mesh.EveryNamespace},
	}, {
		name: "the backend and xDS settings do not change the mesh settings",
		in:   v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendXDS, XDS: v1alpha1.XDSSpec{Port: 16000}},
		want: mesh.Settings{TrustDomain: "cluster.local", ClusterDomain: "cluster.local", Access: mesh.AccessEnforcing},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MeshSettings(tc.in)
			if err != nil {
				t.Fatalf("MeshSettings() = %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("MeshSettings() mismatch (-want +got):\n%s", diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("MeshSettings() = %+v, which mesh.Settings.Validate refuses: %v", got, err)
			}
		})
	}
}

func TestNamespaceSelectorThatDoesNotConvert(t *testing.T) {
	spec := v1alpha1.SMIOperatorSpec{AccessNamespaceSelector: &metav1.LabelSelector{
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "smi", Operator: metav1.LabelSelectorOpIn}},
	}}
	got, err := MeshSettings(spec)
	if err == nil || !strings.Contains(err.Error(), "spec.accessNamespaceSelector") {
		t.Errorf("MeshSettings() error = %v, want one naming spec.accessNamespaceSelector", err)
	}
	// Should it be used anyway, deny-by-default must not shrink: every namespace.
	if got.AccessNamespaces != mesh.EveryNamespace {
		t.Errorf("AccessNamespaces = %q, want %q (fail closed)", got.AccessNamespaces, mesh.EveryNamespace)
	}
}

func TestXDSConfigFrom(t *testing.T) {
	base := XDSConfig{ServiceName: "smi-operator-xds", CASecret: types.NamespacedName{Namespace: "ops", Name: "xds-ca"}}
	dur := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	for _, tc := range []struct {
		name string
		in   v1alpha1.SMIOperatorSpec
		want XDSConfig
	}{{
		name: "defaults",
		in:   v1alpha1.SMIOperatorSpec{},
		want: XDSConfig{Address: "10.0.0.1:15010", ServiceName: "smi-operator-xds", CASecret: base.CASecret,
			TokenAudiences: []string{"smi-operator-xds"}, CertTTL: time.Hour},
	}, {
		name: "everything set",
		in: v1alpha1.SMIOperatorSpec{XDS: v1alpha1.XDSSpec{
			Port: 16000, TLS: &v1alpha1.XDSTLS{SecretName: "xds-cert"}, TokenAudiences: []string{"a", "b"},
			CertificateTTL: dur(90 * time.Minute), SwapGracePeriod: dur(0),
		}},
		want: XDSConfig{Address: "10.0.0.1:16000", TLSSecretName: "xds-cert", ServiceName: "smi-operator-xds", CASecret: base.CASecret,
			TokenAudiences: []string{"a", "b"}, CertTTL: 90 * time.Minute},
	}, {
		name: "plain text",
		in:   v1alpha1.SMIOperatorSpec{XDS: v1alpha1.XDSSpec{InsecurePlaintext: true}},
		want: XDSConfig{Address: "10.0.0.1:15010", Plaintext: true, ServiceName: "smi-operator-xds", CASecret: base.CASecret,
			TokenAudiences: []string{"smi-operator-xds"}, CertTTL: time.Hour},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, XDSConfigFrom(tc.in, "10.0.0.1", base)); diff != "" {
				t.Errorf("XDSConfigFrom() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	// What the flags say and the spec does not (a certificate folder) is not carried over; an
	// empty host listens on every address; the audiences are the config's own.
	spec := v1alpha1.SMIOperatorSpec{XDS: v1alpha1.XDSSpec{TokenAudiences: []string{"a"}}}
	withDir := base
	withDir.TLSCertDir = "/etc/xds"
	got := XDSConfigFrom(spec, "", withDir)
	if got.TLSCertDir != "" || got.Address != ":15010" {
		t.Errorf("XDSConfigFrom(base with a certificate folder, no host) = %+v", got)
	}
	got.TokenAudiences[0] = "changed"
	if spec.XDS.TokenAudiences[0] != "a" {
		t.Error("XDSConfigFrom() shares the spec's audiences")
	}
}

package backends

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

func TestMeshSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   v1alpha1.SMIOperatorSpec
		want mesh.Settings
	}{{
		name: "empty spec is the API's defaults",
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

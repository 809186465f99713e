package mesh

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestAccessNamespaces(t *testing.T) {
	namespace := func(name string, labels map[string]string) corev1.Namespace {
		return corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	service := func(ns string) corev1.Service {
		return corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}
	}
	for _, tc := range []struct {
		name     string
		snap     Snapshot
		settings Settings
		want     []string
	}{{
		name:     "the default leaves the system namespaces out, whatever object names them",
		snap:     Snapshot{Services: []corev1.Service{service("shop"), service("kube-system"), service("istio-system")}},
		settings: Settings{},
		want:     []string{"shop"},
	}, {
		name: "a manifest's labels decide",
		snap: Snapshot{
			Namespaces: []corev1.Namespace{namespace("shop", map[string]string{"smi": "on"}), namespace("legacy", nil)},
			Services:   []corev1.Service{service("legacy")},
		},
		settings: Settings{AccessNamespaces: "smi=on"},
		want:     []string{"shop"},
	}, {
		// The API server labels every namespace with its name: a manifest without the label is
		// judged as the cluster would judge it.
		name:     "a manifest without the name label has it",
		snap:     Snapshot{Namespaces: []corev1.Namespace{namespace("shop", nil), namespace("legacy", nil)}},
		settings: Settings{AccessNamespaces: NamespaceNameLabel + " in (shop)"},
		want:     []string{"shop"},
	}, {
		name:     "permissive mode: none",
		snap:     Snapshot{Services: []corev1.Service{service("shop")}},
		settings: Settings{Access: AccessPermissive},
		want:     nil,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			model, _ := Build(tc.snap, tc.settings)
			if !slices.Equal(model.AccessNamespaces, tc.want) {
				t.Errorf("AccessNamespaces = %v, want %v", model.AccessNamespaces, tc.want)
			}
		})
	}
}

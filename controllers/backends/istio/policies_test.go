package istio

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestSameHost(t *testing.T) {
	const ours = "web.shop.svc.corp.example"
	for _, tc := range []struct {
		host, namespace string
		want            bool
	}{
		{"web", "shop", true},   // a short name, in the Service's namespace
		{"web", "other", false}, // a short name means its object's namespace
		{"web.shop.svc.corp.example", "other", true},
		{"web.shop", "shop", false},                // Istio does not expand a name with a dot
		{"*.shop.svc.corp.example", "shop", false}, // a wildcard yields to an exact host
	} {
		if got := sameHost(tc.host, tc.namespace, ours); got != tc.want {
			t.Errorf("sameHost(%q, %q, %q) = %v, want %v", tc.host, tc.namespace, ours, got, tc.want)
		}
	}
}

func TestServiceOfHost(t *testing.T) {
	for _, tc := range []struct {
		host, namespace string
		want            types.NamespacedName
		ok              bool
	}{
		{"web", "shop", types.NamespacedName{Namespace: "shop", Name: "web"}, true},
		{"web.shop.svc.cluster.local", "other", types.NamespacedName{Namespace: "shop", Name: "web"}, true},
		{"web.shop.svc", "other", types.NamespacedName{Namespace: "shop", Name: "web"}, true},
		{"example.com", "shop", types.NamespacedName{}, false},
	} {
		if got, ok := serviceOfHost(tc.host, tc.namespace); got != tc.want || ok != tc.ok {
			t.Errorf("serviceOfHost(%q, %q) = %v, %v; want %v, %v", tc.host, tc.namespace, got, ok, tc.want, tc.ok)
		}
	}
}

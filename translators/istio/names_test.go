package istio

import (
	"testing"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
)

func TestUniqueNames(t *testing.T) {
	item := func(namespace string, parts ...string) named[*networkingv1.DestinationRule] {
		dr := &networkingv1.DestinationRule{}
		dr.Namespace = namespace
		return named[*networkingv1.DestinationRule]{obj: dr, parts: parts}
	}
	items := []named[*networkingv1.DestinationRule]{
		item("shop", "a", "b-c"),
		item("shop", "a-b", "c"),
		item("other", "a", "b-c"), // another namespace: no collision
		item("shop", "x", "y"),
	}
	got := uniqueNames(items)
	want := []string{
		smi.HashedName("a-b-c", "a\x00b-c"),
		smi.HashedName("a-b-c", "a-b\x00c"),
		"a-b-c",
		"x-y",
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("name %d = %q, want %q", i, got[i], want[i])
		}
	}
	if got[0] == got[1] {
		t.Errorf("colliding names stay equal: %q", got[0])
	}
	// The names do not depend on the order of the items.
	reversed := []named[*networkingv1.DestinationRule]{items[3], items[2], items[1], items[0]}
	again := uniqueNames(reversed)
	for i := range again {
		if again[i] != got[len(got)-1-i] {
			t.Errorf("reversed order: name %d = %q, want %q", i, again[i], got[len(got)-1-i])
		}
	}
}

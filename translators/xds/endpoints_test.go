package xds

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
)

func TestNormalize(t *testing.T) {
	in := []Endpoint{
		{Address: "10.0.0.2", Port: 80, Ready: true, Zone: "b"},
		{Address: "10.0.0.1", Port: 80, Ready: true, Zone: "b"},
		// The same address in another zone, as during a move between slices: once, smallest zone.
		{Address: "10.0.0.1", Port: 80, Ready: true, Zone: "a"},
		// Another port of the same address is another endpoint.
		{Address: "10.0.0.1", Port: 81, Ready: true, Zone: "b"},
		{Address: "10.0.0.3", Port: 80, Ready: false, Zone: "a"},
	}
	want := []Endpoint{
		{Address: "10.0.0.1", Port: 80, Ready: true, Zone: "a"},
		{Address: "10.0.0.1", Port: 81, Ready: true, Zone: "b"},
		{Address: "10.0.0.2", Port: 80, Ready: true, Zone: "b"},
	}
	if d := cmp.Diff(want, normalize(in)); d != "" {
		t.Errorf("normalize (-want +got):\n%s", d)
	}
	if in[4].Address != "10.0.0.3" {
		t.Errorf("normalize modified its input: %v", in)
	}
}

// TestLoadAssignmentHandBuilt: Endpoints not made by BuildEndpoints still never route to a
// not-ready endpoint, and give the same resource whatever their order.
func TestLoadAssignmentHandBuilt(t *testing.T) {
	a := []Endpoint{
		{Address: "10.0.0.9", Port: 80, Ready: false, Zone: "a"},
		{Address: "10.0.0.2", Port: 80, Ready: true, Zone: "b"},
		{Address: "10.0.0.1", Port: 80, Ready: true, Zone: "a"},
	}
	b := []Endpoint{a[2], a[1], a[0]}
	got := loadAssignment("c", a)
	if d := cmp.Diff(got, loadAssignment("c", b), protocmp.Transform()); d != "" {
		t.Errorf("depends on order:\n%s", d)
	}
	if len(got.Endpoints) != 2 || len(got.Endpoints[0].LbEndpoints) != 1 || len(got.Endpoints[1].LbEndpoints) != 1 {
		t.Errorf("want two localities of one endpoint each, got %v", got)
	}
	if err := got.ValidateAll(); err != nil {
		t.Error(err)
	}
}

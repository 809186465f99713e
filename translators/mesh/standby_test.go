package mesh

import (
	"slices"
	"testing"
)

// TestStandbyServices: the Services a standby route names are the backends (then the apex, when
// asked for) that receive nothing, each once, in that order; the apex listed as a backend is one
// whatever withApex says.
func TestStandbyServices(t *testing.T) {
	svc := func(name string) Service { return Service{Namespace: "shop", Name: name} }
	split := &Split{Apex: svc("web"), Backends: []Backend{
		{Service: svc("web-v1"), Weight: 1}, {Service: svc("web-v2")}, {Service: svc("web-v2")}, {Service: svc("web")},
	}}
	receives := func(i int) bool { return split.Backends[i].Weight > 0 }
	names := func(services []Service) []string {
		var out []string
		for _, s := range services {
			out = append(out, s.Name)
		}
		return out
	}
	for _, tc := range []struct {
		name                   string
		withApex, apexReceives bool
		want                   []string
	}{
		{"the apex idle", true, false, []string{"web-v2", "web"}},
		{"the apex receiving", true, true, []string{"web-v2"}},
		{"without the apex, which is a backend at 0", false, false, []string{"web-v2", "web"}},
	} {
		if got := names(split.StandbyServices(receives, tc.withApex, tc.apexReceives)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: StandbyServices = %v, want %v", tc.name, got, tc.want)
		}
	}
	split.Backends = split.Backends[:3] // the apex no backend
	if got := names(split.StandbyServices(receives, false, false)); !slices.Equal(got, []string{"web-v2"}) {
		t.Errorf("without the apex: StandbyServices = %v, want [web-v2]", got)
	}
}

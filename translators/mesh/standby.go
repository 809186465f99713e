package mesh

// A standby route names the Services a split may route to that no other route of the split names
// with a weight (zero-weight backends, the apex while requests do not go there), for a call no
// client makes: the gRPC method StandbyService/StandbyMethod, whose HTTP path is StandbyPath.
// grpc-go (v1.84) applies new routes before its balancer holds a cluster it did not hold, and
// fails the calls picked in between ("unknown cluster selected for RPC"); it keeps every cluster
// a route names with a positive weight. A mesh handing its proxyless clients a standby route keeps
// those clusters held, so a weight change, or the split's removal, moves calls onto clusters the
// clients already have. The gamma and Istio translators write such a route for StandbyPath; the
// xDS translator, whose server hands out its routes as they are, names those Services on a route
// after the catch-all instead.
const (
	StandbyService = "smioperator.standby.v1.Standby"
	StandbyMethod  = "Never"
	StandbyPath    = "/" + StandbyService + "/" + StandbyMethod
)

// StandbyServices are the Services a split's standby route names: those it may route to (its
// backends, then, withApex, its apex) that its other routes send nothing, each once. receives
// says whether backend i gets requests there, apexReceives whether the apex does. Each translator
// renders them, within its own limits.
func (s *Split) StandbyServices(receives func(backend int) bool, withApex, apexReceives bool) []Service {
	type name struct{ namespace, name string }
	held := map[name]bool{}
	for i, b := range s.Backends {
		held[name{b.Namespace, b.Name}] = held[name{b.Namespace, b.Name}] || receives(i)
	}
	apex := name{s.Apex.Namespace, s.Apex.Name}
	held[apex] = held[apex] || apexReceives
	var out []Service
	add := func(svc Service) {
		if n := (name{svc.Namespace, svc.Name}); !held[n] {
			held[n] = true
			out = append(out, svc)
		}
	}
	for _, b := range s.Backends {
		add(b.Service)
	}
	if withApex {
		add(s.Apex)
	}
	return out
}

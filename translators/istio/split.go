package istio

import (
	"slices"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// portHandling is how Istio treats the traffic of a Service port.
type portHandling struct {
	// http: Istio may see HTTP on it, so http routes apply.
	http bool
	// tcp: Istio may proxy it as opaque TCP, so tcp routes apply.
	tcp bool
}

var (
	httpPort    = portHandling{http: true}
	tcpPort     = portHandling{tcp: true}
	sniffedPort = portHandling{http: true, tcp: true}
)

// handlingOf follows Istio's protocol selection: appProtocol when it names a protocol Istio
// knows, else the port name's prefix before the first "-", else protocol sniffing, under which
// either kind of route may apply.
func handlingOf(p mesh.ServicePort) portHandling {
	if h, ok := knownProtocol(p.AppProtocol); ok {
		return h
	}
	prefix, _, _ := strings.Cut(p.Name, "-")
	if h, ok := knownProtocol(prefix); ok {
		return h
	}
	return sniffedPort
}

func knownProtocol(name string) (portHandling, bool) {
	switch strings.ToLower(name) {
	case "http", "http2", "http_proxy", "grpc", "grpc-web", "h2c", "kubernetes.io/h2c", "kubernetes.io/ws":
		return httpPort, true
	case "tcp", "tls", "https", "mongo", "mysql", "redis", "kubernetes.io/wss":
		return tcpPort, true
	}
	return portHandling{}, false
}

// routedPort is an apex port Istio can route, with how.
type routedPort struct {
	number uint32
	portHandling
}

// split writes the VirtualService of a split and, with mTLS, its DestinationRules. An unweighted
// split (mesh.Model.UnweightedSplits) gets them too, its http routes sending every request to the
// apex, so that its backends stay on standby for the weights coming back.
func (t *translator) split(s *mesh.Split) {
	ports := t.routedPorts(s)
	weights := make([]int, len(s.Backends))
	for i, be := range s.Backends {
		weights[i] = be.Weight
	}
	percent := testOnlyWeights(percentages(weights)) // the identity but in a test build (weights_hook.go)
	unweighted := !slices.ContainsFunc(percent, func(p int32) bool { return p > 0 })
	src := sourceOf(s.Source)

	vs := newVirtualService(s.Source.Namespace, src)
	vs.Spec.Hosts = []string{s.Apex.FQDN}
	for _, p := range ports {
		if p.http {
			routes := httpRoutes(s, percent, unweighted, p.number)
			if standby := standbyRoute(s, percent, unweighted, p.number); standby != nil {
				routes = append([]*networkingapi.HTTPRoute{standby}, routes...)
			}
			vs.Spec.Http = append(vs.Spec.Http, routes...)
		}
		if p.tcp && len(s.Matches) == 0 && !unweighted {
			vs.Spec.Tcp = append(vs.Spec.Tcp, &networkingapi.TCPRoute{
				Match: []*networkingapi.L4MatchAttributes{{Port: p.number}},
				Route: tcpDestinations(fqdns(s.Backends), percent, p.number),
			})
		}
	}
	switch {
	case len(vs.Spec.Http) > 0 || len(vs.Spec.Tcp) > 0:
		t.virtualServices.add(vs, s.Source.Name)
		t.reportRoundedToZero(s, weights, percent)
	case unweighted:
		// No HTTP port to keep its backends on standby on: nothing to write (package mesh reported
		// that nothing is split).
		return
	case len(s.Matches) > 0:
		// Istio rejects a VirtualService without routes; nothing is split, say why.
		t.diags.Fail(s.Source, smi.ConditionProgrammed, mesh.ReasonNoRoutablePorts,
			"the apex %q has no port on which Istio may see HTTP, so no request can match; nothing is split", s.Apex.Name)
		return
	default:
		t.diags.Fail(s.Source, smi.ConditionProgrammed, mesh.ReasonNoRoutablePorts,
			"the apex %q has no TCP port that Istio can route; nothing is split", s.Apex.Name)
		return
	}

	if t.settings.MTLS {
		for _, be := range s.Backends {
			dr := newDestinationRule(s.Source.Namespace, src)
			dr.Spec.Host = be.FQDN
			dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{
				Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_ISTIO_MUTUAL},
			}
			t.destinationRules.add(dr, s.Source.Name, be.Name)
		}
	}
}

// routedPorts lists the apex ports Istio routes, reporting the others.
func (t *translator) routedPorts(s *mesh.Split) []routedPort {
	var out []routedPort
	for _, p := range s.Apex.Ports {
		if p.Protocol != corev1.ProtocolTCP {
			t.diags.Warn(s.Source, smi.ConditionProgrammed, mesh.ReasonUnsupportedProtocol,
				"apex port %d/%s: Istio does not route %s, so its traffic is not split", p.Port, p.Protocol, p.Protocol)
			continue
		}
		out = append(out, routedPort{number: uint32(p.Port), portHandling: handlingOf(p)})
	}
	return out
}

// reportRoundedToZero reports backends whose positive weight got no percent.
func (t *translator) reportRoundedToZero(s *mesh.Split, weights []int, percent []int32) {
	for i, be := range s.Backends {
		if weights[i] > 0 && percent[i] == 0 {
			t.diags.Warn(s.Source, smi.ConditionProgrammed, mesh.ReasonWeightRoundedToZero,
				"backend %q: weight %d is too small a share to reach 1%% in Istio's whole-percent weights, so it gets no traffic",
				be.Name, weights[i])
		}
	}
}

// httpRoutes are the http routes of one apex port: the split requests, then (with matches) the
// rest to the apex; an unweighted split's send every request to the apex. Istio takes the first
// route that matches, so the catch-all comes last. These routes have no name (the standby route
// alone has one): SMI match names need not
// be unique, and one match yields a route per port.
func httpRoutes(s *mesh.Split, percent []int32, unweighted bool, port uint32) []*networkingapi.HTTPRoute {
	toApex := &networkingapi.HTTPRoute{
		Match: []*networkingapi.HTTPMatchRequest{{Port: port}},
		Route: []*networkingapi.HTTPRouteDestination{{Destination: destination(s.Apex.FQDN, port)}},
	}
	if unweighted {
		return []*networkingapi.HTTPRoute{toApex}
	}
	if len(s.Matches) == 0 {
		return []*networkingapi.HTTPRoute{{
			Match: []*networkingapi.HTTPMatchRequest{{Port: port}},
			Route: httpDestinations(fqdns(s.Backends), percent, port),
		}}
	}
	var out []*networkingapi.HTTPRoute
	for _, m := range s.Matches {
		out = append(out, &networkingapi.HTTPRoute{
			Match: matchRequests(m, port),
			Route: httpDestinations(fqdns(s.Backends), percent, port),
		})
	}
	if s.CatchAllToApex() {
		out = append(out, toApex)
	}
	return out
}

// StandbyRouteName names a split's standby route, and only that route: the translator gives the
// routes of a split's matches no name.
const StandbyRouteName = "smi-operator-standby"

// IsStandby says whether r is a split's standby route, which no request takes.
func IsStandby(r *networkingapi.HTTPRoute) bool { return r.GetName() == StandbyRouteName }

// standbyRoute is the split's standby route on an apex port (see mesh.StandbyPath): the Services
// it may route to that its other routes send nothing (backends at 0%, the apex unless requests go
// there), with weights summing to 100, which every Istio version takes (a hundred at most: a
// Service whose share would round to 0% is left off). It comes first: istiod hands its proxyless
// clients no route after a catch-all. nil when there is nothing to keep on standby.
func standbyRoute(s *mesh.Split, percent []int32, unweighted bool, port uint32) *networkingapi.HTTPRoute {
	standby := s.StandbyServices(func(i int) bool { return percent[i] > 0 }, true, unweighted || s.CatchAllToApex())
	if len(standby) == 0 {
		return nil
	}
	hosts := make([]string, len(standby))
	for i, svc := range standby {
		hosts[i] = svc.FQDN
	}
	share := percentages(slices.Repeat([]int{1}, len(hosts)))
	return &networkingapi.HTTPRoute{
		Name: StandbyRouteName,
		Match: []*networkingapi.HTTPMatchRequest{{Port: port, Uri: &networkingapi.StringMatch{
			MatchType: &networkingapi.StringMatch_Exact{Exact: mesh.StandbyPath}}}},
		Route: httpDestinations(hosts, share, port),
	}
}

// matchRequests expresses one HTTPRouteGroup match on one port. Istio ORs the requests of a
// route and has one method per request, so each method gets its own request.
func matchRequests(m mesh.HTTPMatch, port uint32) []*networkingapi.HTTPMatchRequest {
	request := func() *networkingapi.HTTPMatchRequest {
		r := &networkingapi.HTTPMatchRequest{Port: port, Uri: uriMatch(m.Path)}
		for _, h := range m.Headers {
			if r.Headers == nil {
				r.Headers = map[string]*networkingapi.StringMatch{}
			}
			r.Headers[h.Name] = &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Regex{Regex: h.Regex}}
		}
		return r
	}
	if len(m.Methods) == 0 {
		return []*networkingapi.HTTPMatchRequest{request()}
	}
	out := make([]*networkingapi.HTTPMatchRequest, len(m.Methods))
	for i, method := range m.Methods {
		out[i] = request()
		out[i].Method = &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Exact{Exact: method}}
	}
	return out
}

// uriMatch prefers exact and prefix matches, which read better and are cheaper than a regex;
// nil matches any path.
func uriMatch(p mesh.PathMatch) *networkingapi.StringMatch {
	switch {
	case p.Kind == mesh.PathAny:
		return nil
	case p.Kind == mesh.PathPrefix:
		return &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Prefix{Prefix: p.Literal}}
	case p.Kind == mesh.PathExact && p.Literal != "":
		// An empty exact match is not valid in Istio; the regex says the same.
		return &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Exact{Exact: p.Literal}}
	}
	return &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Regex{Regex: p.FullRegex}}
}

func destination(host string, port uint32) *networkingapi.Destination {
	return &networkingapi.Destination{Host: host, Port: &networkingapi.PortSelector{Number: port}}
}

// httpDestinations and tcpDestinations list the hosts that get traffic, on the apex's port
// number; hosts at 0% are left out.
func httpDestinations(hosts []string, percent []int32, port uint32) []*networkingapi.HTTPRouteDestination {
	return weighted(hosts, percent, port, func(d *networkingapi.Destination, w int32) *networkingapi.HTTPRouteDestination {
		return &networkingapi.HTTPRouteDestination{Destination: d, Weight: w}
	})
}

func tcpDestinations(hosts []string, percent []int32, port uint32) []*networkingapi.RouteDestination {
	return weighted(hosts, percent, port, func(d *networkingapi.Destination, w int32) *networkingapi.RouteDestination {
		return &networkingapi.RouteDestination{Destination: d, Weight: w}
	})
}

// weighted builds one route destination per host with a positive percentage.
func weighted[T any](hosts []string, percent []int32, port uint32, to func(*networkingapi.Destination, int32) T) []T {
	var out []T
	for i, host := range hosts {
		if percent[i] > 0 {
			out = append(out, to(destination(host, port), percent[i]))
		}
	}
	return out
}

// fqdns are the backends' FQDNs, in order.
func fqdns(backends []mesh.Backend) []string {
	out := make([]string, len(backends))
	for i, be := range backends {
		out[i] = be.FQDN
	}
	return out
}

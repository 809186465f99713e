package xds

import (
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

// splitRoutes are the routes of one apex port: a weighted route per match, then what the
// requests matching none of them get. For proxyless gRPC clients, methods are adapted (see
// forProxyless).
func splitRoutes(split *mesh.Split, port int32, proxyless bool) []*routev3.Route {
	weighted := weightedAction(split, port)
	if len(split.Matches) == 0 {
		return withStandby([]*routev3.Route{catchAll("split", weighted)}, split, port, proxyless)
	}
	routes := make([]*routev3.Route, 0, len(split.Matches)+2)
	for _, m := range split.Matches {
		if proxyless {
			var ok bool
			if m, ok = forProxyless(m); !ok {
				continue
			}
		}
		routes = append(routes, &routev3.Route{
			Name:   matchName(m),
			Match:  routeMatch(m),
			Action: &routev3.Route_Route{Route: weighted},
		})
	}
	// With matches there is a catch-all; without it the requests matching none
	// would get no route at all, which gRPC clients fail with UNAVAILABLE.
	if split.CatchAllToApex() {
		routes = append(routes, catchAll("apex", clusterAction(ClusterName(split.Apex, port))))
	}
	return withStandby(routes, split, port, proxyless)
}

// forProxyless adapts a match to grpc-go, which matches route headers against a call's metadata,
// where ":method" never appears although every gRPC call is a POST: a method condition admitting
// POST holds for every call and is dropped; one excluding POST can never hold, and ok is false
// (SplitRoutes reports it). Envoy sidecars see the method and keep the condition.
func forProxyless(m mesh.HTTPMatch) (_ mesh.HTTPMatch, ok bool) {
	return m.ForGRPC()
}

// standbyRouteName names the standby route withStandby appends.
const standbyRouteName = "standby"

// withStandby appends, after the catch-all (so that no request ever takes it), a route naming
// every cluster the split may route to that no route before names: the backends at weight 0 and,
// for proxyless clients, the apex. grpc-go (v1.84) holds the clusters every route of the virtual
// host names, but drops zero-weight ones from weighted_clusters; it tears down the connections of
// a cluster no route names, and fails the RPCs it picks for a cluster it does not hold yet: new
// routes take effect before its balancer has the new cluster ("unknown cluster selected for RPC",
// internal/xds/resolver/xds_resolver.go: sendNewServiceConfig installs the config selector, then
// clientconn.go hands the balancer its config). Named here, the standby clusters stay resolved and
// connected, so a weight moving onto a backend, or all of them back to the apex (all-zero weights,
// a deleted split), is a picker change that loses no RPC. Envoy holds every cluster anyway: to it
// the route is dead configuration, and it gets no apex.
func withStandby(routes []*routev3.Route, split *mesh.Split, port int32, proxyless bool) []*routev3.Route {
	named := map[string]bool{}
	for _, r := range routes {
		for _, c := range clustersOf(r.GetRoute()) {
			named[c] = true
		}
	}
	held := func(svc mesh.Service) bool { return named[ClusterName(svc, port)] }
	var standby []*routev3.WeightedCluster_ClusterWeight
	for _, svc := range split.StandbyServices(func(i int) bool { return held(split.Backends[i].Service) }, proxyless, held(split.Apex)) {
		standby = append(standby, &routev3.WeightedCluster_ClusterWeight{Name: ClusterName(svc, port), Weight: wrapperspb.UInt32(1)})
	}
	if len(standby) == 0 {
		return routes
	}
	return append(routes, catchAll(standbyRouteName, withoutTimeout(weightedClusters(standby))))
}

// clustersOf names the clusters a route action sends requests to.
func clustersOf(action *routev3.RouteAction) []string {
	if c := action.GetCluster(); c != "" {
		return []string{c}
	}
	var names []string
	for _, c := range action.GetWeightedClusters().GetClusters() {
		names = append(names, c.GetName())
	}
	return names
}

// weightedAction shares a port's traffic between the split's backends, on the same port number
// (mesh checked that every backend exposes it).
func weightedAction(split *mesh.Split, port int32) *routev3.RouteAction {
	raw := make([]int, len(split.Backends))
	for i, b := range split.Backends {
		raw[i] = b.Weight
	}
	var clusters []*routev3.WeightedCluster_ClusterWeight
	for i, w := range clusterWeights(raw) {
		if w == 0 {
			continue
		}
		clusters = append(clusters, &routev3.WeightedCluster_ClusterWeight{
			Name:   ClusterName(split.Backends[i].Service, port),
			Weight: wrapperspb.UInt32(w),
		})
	}
	if len(clusters) == 0 {
		// An unweighted split (mesh.Model.UnweightedSplits): the traffic stays on the apex
		// rather than hitting an empty weighted_clusters, which Envoy and grpc-go reject along
		// with the whole RouteConfiguration.
		return clusterAction(ClusterName(split.Apex, port))
	}
	return withoutTimeout(weightedClusters(clusters))
}

// weightedClusters is a route action sharing traffic between clusters by their weights, with
// total_weight set to their sum (clusterWeights keeps it within maxTotalWeight). Current Envoy and
// grpc-go (v1.84) ignore the deprecated field, but older clients need it: gRPC C-core 1.51
// (Debian bookworm's python3-grpcio) and older Envoy take a missing total as 100 and refuse any
// other sum ("RouteAction weighted_cluster has incorrect total weight"), and older grpc-go
// refused a total other than the sum, a missing one included. A total equal to the sum is what
// every one of them accepts.
func weightedClusters(clusters []*routev3.WeightedCluster_ClusterWeight) *routev3.RouteAction {
	var total uint32
	for _, c := range clusters {
		total += c.GetWeight().GetValue()
	}
	return &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
		WeightedClusters: &routev3.WeightedCluster{Clusters: clusters, TotalWeight: wrapperspb.UInt32(total)},
	}}
}

// catchAll matches every request.
func catchAll(name string, action *routev3.RouteAction) *routev3.Route {
	return &routev3.Route{
		Name:   name,
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: action},
	}
}

// matchName names a route after its HTTPRouteGroup match, for logs and config dumps.
func matchName(m mesh.HTTPMatch) string {
	if m.Name == "" {
		return m.Group
	}
	return m.Group + "/" + m.Name
}

// caseSensitive is set on path and prefix matches, though it is what Envoy, grpc-go and C-core
// take an unset case_sensitive for: grpc-java reads the unset BoolValue as false, and would match
// paths in any case. (A safe_regex match ignores it.)
func caseSensitive() *wrapperspb.BoolValue { return wrapperspb.Bool(true) }

func routeMatch(m mesh.HTTPMatch) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{}
	switch m.Path.Kind {
	case mesh.PathExact:
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: m.Path.Literal}
		rm.CaseSensitive = caseSensitive()
	case mesh.PathPrefix:
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: m.Path.Literal}
		rm.CaseSensitive = caseSensitive()
	case mesh.PathRegex:
		// FullRegex, not Regex: xDS regexes must match the whole path, SMI's only its start.
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.Path.FullRegex}}
	default: // mesh.PathAny
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
	}
	if len(m.Methods) > 0 {
		rm.Headers = append(rm.Headers, methodMatcher(m.Methods))
	}
	for _, h := range m.Headers {
		// SMI header values are RE2 regexes over the whole value, exactly safe_regex's meaning,
		// so the regex is passed on rather than rewritten from mesh's Kind and Literal.
		rm.Headers = append(rm.Headers, regexHeader(h.Name, h.Regex))
	}
	return rm
}

// methodMatcher matches the :method pseudo-header against the methods: exactly for one, with an
// alternation of the quoted names for several (method tokens may contain regex metacharacters).
func methodMatcher(methods []string) *routev3.HeaderMatcher {
	if len(methods) == 1 {
		return &routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: methods[0]}}
	}
	quoted := make([]string, len(methods))
	for i, m := range methods {
		quoted[i] = regexp.QuoteMeta(m)
	}
	return regexHeader(":method", strings.Join(quoted, "|"))
}

// regexHeader matches a header whose whole value matches the RE2 regex re. It uses
// safe_regex_match, not string_match: Envoy deprecated the former for the latter, but clients
// older than gRFC A63 (gRPC C-core 1.51, Debian bookworm's, in routes and in RBAC alike) know
// only the former and refuse the whole resource ("Invalid route header matcher specified").
// Envoy and grpc-go still accept it; Envoy counts the deprecated use.
func regexHeader(name, re string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{
		SafeRegexMatch: &matcherv3.RegexMatcher{Regex: re},
	}}
}

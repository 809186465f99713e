package gamma

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Limits of the Gateway API's route CRDs (v1.6), which the API server enforces.
const (
	maxBackendRefs    = 16
	maxMatchesPerRule = 64
	// maxMatchesPerRoute: "the total number of matches across all rules in a route must be less
	// than 128"; a rule without matches counts one once defaulted.
	maxMatchesPerRoute = 127
	maxHeaderMatches   = 16
	// maxTotalWeight is a backendRef weight's maximum: a total within it keeps every weight within it.
	maxTotalWeight = 1_000_000
)

const serviceKind = "Service"

// portRoutes are the kinds of route an apex port gets.
type portRoutes struct{ http, grpc, tcp bool }

// routesFor reads the port's declared protocol (mesh.ServicePort.DeclaredProtocol, as the xDS
// backend does): gRPC gets a GRPCRoute, HTTP an HTTPRoute, opaque TCP a TCPRoute. Any other or no
// declaration leaves the protocol to the mesh's detection, so the port gets both an HTTPRoute and
// a TCPRoute, which split alike: whichever the mesh applies, the split holds.
func routesFor(p mesh.ServicePort) portRoutes {
	switch p.DeclaredProtocol() {
	case "grpc":
		return portRoutes{grpc: true}
	case "http", "http2", "h2c", "kubernetes.io/h2c", "kubernetes.io/ws":
		return portRoutes{http: true}
	case "tcp", "tls", "https", "kubernetes.io/wss":
		return portRoutes{tcp: true}
	}
	return portRoutes{http: true, tcp: true}
}

// splitRoutes builds the routes of one split.
type splitRoutes struct {
	s *mesh.Split
	// weights are the backends' weights within the Gateway API's bounds, in s.Backends order.
	weights []int64
	// regex holds the matches (indexes into s.Matches) written with RegularExpression.
	regex map[int]bool
	// limit is the first route limit the split exceeds, "" while none.
	limit string
	out   Output
}

func (t *translator) split(s *mesh.Split) {
	weights := make([]int, len(s.Backends))
	for i, be := range s.Backends {
		weights[i] = be.Weight
	}
	b := &splitRoutes{s: s, weights: mesh.ScaleWeights(weights, maxTotalWeight), regex: map[int]bool{}}
	if n := len(slices.DeleteFunc(slices.Clone(b.weights), func(w int64) bool { return w == 0 })); n > maxBackendRefs {
		b.limit = fmt.Sprintf("%d backends with a positive weight; a route holds at most %d", n, maxBackendRefs)
	}
	for _, p := range s.Apex.Ports {
		if p.Protocol != corev1.ProtocolTCP {
			t.diags.Warn(s.Source, smi.ConditionProgrammed, mesh.ReasonUnsupportedProtocol,
				"apex port %d/%s: the gamma backend routes TCP only (it writes no UDPRoute), so its traffic is not split", p.Port, p.Protocol)
			continue
		}
		kinds := routesFor(p)
		if kinds.grpc && !b.grpcRoute(p.Port) {
			// A match no GRPCRoute can express: an HTTPRoute, which gRPC calls (HTTP/2 POSTs to
			// /<service>/<method>) take as well, expresses it.
			kinds.http = true
		}
		if kinds.http {
			b.httpRoute(p.Port)
		}
		if kinds.tcp && len(s.Matches) == 0 {
			b.tcpRoute(p.Port)
		}
	}
	switch {
	case b.limit != "":
		t.diags.Fail(s.Source, smi.ConditionProgrammed, ReasonRouteLimitExceeded,
			"the split needs %s; nothing is split", b.limit)
		return
	case len(b.out.Objects()) == 0:
		t.diags.Fail(s.Source, smi.ConditionProgrammed, mesh.ReasonNoRoutablePorts,
			"no port of the apex %q carries traffic that the split's routes can take; nothing is split", s.Apex.Name)
		return
	}
	t.out.HTTPRoutes = append(t.out.HTTPRoutes, b.out.HTTPRoutes...)
	t.out.GRPCRoutes = append(t.out.GRPCRoutes, b.out.GRPCRoutes...)
	t.out.TCPRoutes = append(t.out.TCPRoutes, b.out.TCPRoutes...)
	for i, m := range s.Matches {
		if b.regex[i] {
			t.diags.Warn(s.Source, smi.ConditionProgrammed, ReasonImplementationSpecificMatch, "%s", regexMessage(m))
		}
	}
}

// regexMessage explains why a match relies on what the Gateway API leaves to each mesh.
func regexMessage(m mesh.HTTPMatch) string {
	var what []string
	_, pathRegex := httpPath(m.Path)
	if pathRegex {
		why := ""
		if m.Path.Kind == mesh.PathPrefix {
			why = ", since the Gateway API's PathPrefix matches whole path segments, not the string prefix SMI means"
		}
		what = append(what, fmt.Sprintf("path regex %q%s", m.Path.FullRegex, why))
	}
	for _, h := range m.Headers {
		if _, regex := headerValue(h); regex {
			what = append(what, fmt.Sprintf("header %q regex", h.Name))
		}
	}
	msg := fmt.Sprintf("%s is written with RegularExpression matching (%s), whose support and dialect the Gateway API leaves to each mesh: "+
		"a mesh without it refuses the route", m.Describe(), strings.Join(what, ", "))
	if pathRegex {
		msg += ", and how a path regex ranks against the catch-all rule to the apex is the mesh's choice"
	}
	return msg
}

// backendRefs are the split's backends that get traffic, on the apex's port number (package mesh
// checked that every backend exposes it). Backends of weight 0 are left out: "no traffic" either
// way, and a route then never has to hold more than the backends that matter.
func (b *splitRoutes) backendRefs(port int32) []gatewayv1.BackendRef {
	var out []gatewayv1.BackendRef
	for i, be := range b.s.Backends {
		if b.weights[i] > 0 {
			out = append(out, serviceRef(be.Name, port, int32(b.weights[i]))) // <= maxTotalWeight
		}
	}
	return out
}

// serviceRef names a Service port as a backend: its endpoints, never the routes attached to it
// (GEP-1294: a Service is a frontend as a parentRef, a backend as a backendRef), so the apex may
// be a backend of its own route and a backend that is another split's apex is not split again.
// Every field is written, the weight too (1 is the CRD's default): see anyPath.
func serviceRef(name string, port, weight int32) gatewayv1.BackendRef {
	return gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
		Group: ptr.To(gatewayv1.Group("")), Kind: ptr.To(gatewayv1.Kind(serviceKind)),
		Name: gatewayv1.ObjectName(name), Port: ptr.To(gatewayv1.PortNumber(port)),
	}, Weight: ptr.To(weight)}
}

// standbyRefs are the Services the split may route to on port but its other rules do not name
// with a weight: its backends of weight 0 and, unless requests already go there, the apex, at
// weight 1 each, for the standby rule (see mesh.StandbyPath). None when they do not fit the rule's
// backend limit, or the rule does not fit in a route whose other rules hold used matches (a rule
// without matches counts one, as HTTPRoute's limit does; GRPCRoute's counts none, so there the
// count is one stricter than its CRD's, never looser): the standby rule only keeps the split's
// backends warm, and must not cost it its matches.
func (b *splitRoutes) standbyRefs(port int32, used int) []gatewayv1.BackendRef {
	if used+1 > maxMatchesPerRoute {
		return nil
	}
	var out []gatewayv1.BackendRef
	for _, svc := range b.s.StandbyServices(func(i int) bool { return b.weights[i] > 0 }, true, b.s.CatchAllToApex()) {
		out = append(out, serviceRef(svc.Name, port, 1))
	}
	if len(out) > maxBackendRefs {
		return nil
	}
	return out
}

// parentRefs is what every route of the split on port has: the apex Service port as its only parent.
func (b *splitRoutes) parentRefs(port int32) gatewayv1.CommonRouteSpec {
	return gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{
		Group: ptr.To(gatewayv1.Group("")), Kind: ptr.To(gatewayv1.Kind(serviceKind)),
		Name: gatewayv1.ObjectName(b.s.Apex.Name), Port: ptr.To(gatewayv1.PortNumber(port)),
	}}}
}

// checkLimits records a route whose matches exceed the Gateway API's limits.
func (b *splitRoutes) checkLimits(matches int, headers []int) {
	if b.limit != "" {
		return
	}
	// With matches, a route ends with the catch-all rule, which counts one.
	if room := maxMatchesPerRoute - 1; matches > room {
		b.limit = fmt.Sprintf("%d route matches (one per method of each HTTPRouteGroup match); a route holds at most %d besides its catch-all rule",
			matches, room)
	}
	for _, n := range headers {
		if n > maxHeaderMatches {
			b.limit = fmt.Sprintf("a match of %d headers; a route match holds at most %d", n, maxHeaderMatches)
		}
	}
}

// rules chunks the matches into rules of at most maxMatchesPerRule, each with its own copy of
// the weighted backends.
func rules[M, B, R any](matches []M, backends []B, rule func([]M, []B) R) []R {
	var out []R
	for c := range slices.Chunk(matches, maxMatchesPerRule) {
		out = append(out, rule(c, slices.Clone(backends)))
	}
	return out
}

// matchRules are the rules of a route whose split has matches: the matches, in rules of their own
// with the weighted backends, then the catch-all rule sending the rest to the apex, which
// refs makes backend references of. The limits are checked on the way.
func matchRules[M, B, R any](b *splitRoutes, port int32, matches []M, headers []int, weighted []B,
	refs func([]gatewayv1.BackendRef) []B, rule func([]M, []B) R) []R {
	b.checkLimits(len(matches), headers)
	return append(rules(matches, weighted, rule), rule(nil, refs([]gatewayv1.BackendRef{serviceRef(b.s.Apex.Name, port, 1)})))
}

// httpRoute writes the HTTPRoute of one apex port: the split requests, then (with matches) the
// rest to the apex, then the standby rule.
func (b *splitRoutes) httpRoute(port int32) {
	weighted := httpBackendRefs(b.backendRefs(port))
	r := &gatewayv1.HTTPRoute{TypeMeta: typeMeta("HTTPRoute"), ObjectMeta: objectMeta(b.s.Source, port)}
	r.Spec.CommonRouteSpec = b.parentRefs(port)
	var matches []gatewayv1.HTTPRouteMatch
	if len(b.s.Matches) == 0 {
		r.Spec.Rules = []gatewayv1.HTTPRouteRule{{Matches: matchAnyRequest(), BackendRefs: weighted}}
	} else {
		var headers []int
		for i, m := range b.s.Matches {
			ms, regex := HTTPRouteMatches(m)
			b.regex[i] = b.regex[i] || regex
			headers = append(headers, len(m.Headers))
			matches = append(matches, ms...)
		}
		r.Spec.Rules = matchRules(b, port, matches, headers, weighted, httpBackendRefs,
			func(m []gatewayv1.HTTPRouteMatch, be []gatewayv1.HTTPBackendRef) gatewayv1.HTTPRouteRule {
				if m == nil { // the catch-all
					m = matchAnyRequest()
				}
				return gatewayv1.HTTPRouteRule{Matches: m, BackendRefs: be}
			})
	}
	// The rule without matches, or the catch-all after the matches, counts one.
	if standby := b.standbyRefs(port, len(matches)+1); len(standby) > 0 {
		r.Spec.Rules = append(r.Spec.Rules, gatewayv1.HTTPRouteRule{
			Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{
				Type: ptr.To(gatewayv1.PathMatchExact), Value: ptr.To(mesh.StandbyPath)}}},
			BackendRefs: httpBackendRefs(standby),
		})
	}
	b.out.HTTPRoutes = append(b.out.HTTPRoutes, r)
}

// HTTPRouteMatches writes an HTTPRouteGroup match as HTTPRoute matches: one per method, or one
// for any method. regex says whether the path or a header needs RegularExpression matching
// (httpPath, headerValue). Linkerd's policy.linkerd.io HTTPRoute takes the same matches.
func HTTPRouteMatches(m mesh.HTTPMatch) (_ []gatewayv1.HTTPRouteMatch, regex bool) {
	path, pathRegex := httpPath(m.Path)
	hs, headerRegex := headerMatches(m.Headers, gatewayv1.HeaderMatchExact, gatewayv1.HeaderMatchRegularExpression,
		func(typ gatewayv1.HeaderMatchType, name, value string) gatewayv1.HTTPHeaderMatch {
			return gatewayv1.HTTPHeaderMatch{Type: ptr.To(typ), Name: gatewayv1.HTTPHeaderName(name), Value: value}
		})
	if len(m.Methods) == 0 {
		return []gatewayv1.HTTPRouteMatch{{Path: path, Headers: hs}}, pathRegex || headerRegex
	}
	out := make([]gatewayv1.HTTPRouteMatch, len(m.Methods))
	for i, method := range m.Methods {
		out[i] = gatewayv1.HTTPRouteMatch{Path: path, Headers: slices.Clone(hs), Method: ptr.To(gatewayv1.HTTPMethod(method))}
	}
	return out, pathRegex || headerRegex
}

// grpcRoute writes the GRPCRoute of one apex port, unless a match cannot be expressed as a
// gRPC service and method (ok false: nothing written). A match whose methods exclude POST can
// match no gRPC call and is left out; when that leaves none, no call is split on the port and
// nothing is written.
func (b *splitRoutes) grpcRoute(port int32) (ok bool) {
	weighted := grpcBackendRefs(b.backendRefs(port))
	r := &gatewayv1.GRPCRoute{TypeMeta: typeMeta("GRPCRoute"), ObjectMeta: objectMeta(b.s.Source, port)}
	r.Spec.CommonRouteSpec = b.parentRefs(port)
	var matches []gatewayv1.GRPCRouteMatch
	if len(b.s.Matches) == 0 {
		r.Spec.Rules = []gatewayv1.GRPCRouteRule{{BackendRefs: weighted}}
	} else {
		var headers []int
		regex := map[int]bool{}
		for i, m := range b.s.Matches {
			m, callable := m.ForGRPC()
			if !callable {
				continue
			}
			method, ok := grpcMethod(m.Path)
			if !ok {
				return false
			}
			hs, headerRegex := headerMatches(m.Headers, gatewayv1.GRPCHeaderMatchExact, gatewayv1.GRPCHeaderMatchRegularExpression,
				func(typ gatewayv1.GRPCHeaderMatchType, name, value string) gatewayv1.GRPCHeaderMatch {
					return gatewayv1.GRPCHeaderMatch{Type: ptr.To(typ), Name: gatewayv1.GRPCHeaderName(name), Value: value}
				})
			if headerRegex {
				regex[i] = true
			}
			headers = append(headers, len(hs))
			matches = append(matches, gatewayv1.GRPCRouteMatch{Method: method, Headers: hs})
		}
		if len(matches) == 0 {
			return true
		}
		for i := range regex {
			b.regex[i] = true
		}
		r.Spec.Rules = matchRules(b, port, matches, headers, weighted, grpcBackendRefs,
			func(m []gatewayv1.GRPCRouteMatch, be []gatewayv1.GRPCBackendRef) gatewayv1.GRPCRouteRule {
				return gatewayv1.GRPCRouteRule{Matches: m, BackendRefs: be}
			})
	}
	// The rule without matches, or the catch-all after the matches, counts one.
	if standby := b.standbyRefs(port, len(matches)+1); len(standby) > 0 {
		r.Spec.Rules = append(r.Spec.Rules, gatewayv1.GRPCRouteRule{
			Matches: []gatewayv1.GRPCRouteMatch{{Method: &gatewayv1.GRPCMethodMatch{
				Type: ptr.To(gatewayv1.GRPCMethodMatchExact), Service: ptr.To(mesh.StandbyService), Method: ptr.To(mesh.StandbyMethod)}}},
			BackendRefs: grpcBackendRefs(standby),
		})
	}
	b.out.GRPCRoutes = append(b.out.GRPCRoutes, r)
	return true
}

// tcpRoute writes the TCPRoute of one apex port: every connection split.
func (b *splitRoutes) tcpRoute(port int32) {
	r := &gatewayv1.TCPRoute{TypeMeta: typeMeta("TCPRoute"), ObjectMeta: objectMeta(b.s.Source, port)}
	r.Spec.CommonRouteSpec = b.parentRefs(port)
	r.Spec.Rules = []gatewayv1.TCPRouteRule{{BackendRefs: b.backendRefs(port)}}
	b.out.TCPRoutes = append(b.out.TCPRoutes, r)
}

func httpBackendRefs(refs []gatewayv1.BackendRef) []gatewayv1.HTTPBackendRef {
	out := make([]gatewayv1.HTTPBackendRef, len(refs))
	for i, r := range refs {
		out[i] = gatewayv1.HTTPBackendRef{BackendRef: r}
	}
	return out
}

func grpcBackendRefs(refs []gatewayv1.BackendRef) []gatewayv1.GRPCBackendRef {
	out := make([]gatewayv1.GRPCBackendRef, len(refs))
	for i, r := range refs {
		out[i] = gatewayv1.GRPCBackendRef{BackendRef: r}
	}
	return out
}

// httpPath writes a path match: PathPrefix "/" for any path, Exact for an exact literal the Gateway API
// takes as one, and otherwise RegularExpression (regex true) with the whole-path regex, which
// means the same to an engine that matches the whole path and to one that searches. A literal
// prefix other than "/" is a regex too: the Gateway API's PathPrefix matches path segments
// ("/api" matches "/api/x" but not "/apix"), SMI's a string prefix.
func httpPath(p mesh.PathMatch) (_ *gatewayv1.HTTPPathMatch, regex bool) {
	switch {
	case p.Kind == mesh.PathAny || p.Kind == mesh.PathPrefix && p.Literal == "/":
		return anyPath(), false
	case p.Kind == mesh.PathExact && exactPathValid(p.Literal):
		return &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchExact), Value: ptr.To(p.Literal)}, false
	}
	return &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchRegularExpression), Value: ptr.To(p.FullRegex)}, true
}

// anyPath and matchAnyRequest are what the HTTPRoute CRD defaults a match's path and a rule's
// matches to, written out, as are the other defaults of the routes' CRDs (a backendRef's group,
// kind and weight): the route the operator applies is then the one the API server stores, which
// it compares to see whether the route is as wanted (controllers/owned; checked against the CRDs
// of the module's Gateway API version by testenv.DryRunCreate). Linkerd's policy HTTPRoute, which
// takes HTTPRouteMatches, defaults a match's path alike.
func anyPath() *gatewayv1.HTTPPathMatch {
	return &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/")}
}

func matchAnyRequest() []gatewayv1.HTTPRouteMatch {
	return []gatewayv1.HTTPRouteMatch{{Path: anyPath()}}
}

// pathChars is what the HTTPRoute CRD allows in an Exact or PathPrefix value.
var pathChars = regexp.MustCompile(`^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$`)

// exactPathValid applies the HTTPRoute CRD's rules for an Exact path value.
func exactPathValid(v string) bool {
	if !strings.HasPrefix(v, "/") || !pathChars.MatchString(v) || strings.HasSuffix(v, "/..") || strings.HasSuffix(v, "/.") {
		return false
	}
	for _, bad := range []string{"//", "/./", "/../", "%2f", "%2F", "#"} {
		if strings.Contains(v, bad) {
			return false
		}
	}
	return true
}

// headerMatches writes a match's headers as HTTPRoute or GRPCRoute header matches (headerValue),
// of type exact or regex; anyRegex says whether one needs a regex.
func headerMatches[H any, T ~string](headers []mesh.HeaderMatch, exact, regex T, match func(typ T, name, value string) H) (out []H, anyRegex bool) {
	for _, h := range headers {
		value, isRegex := headerValue(h)
		typ := exact
		if isRegex {
			typ = regex
		}
		out = append(out, match(typ, h.Name, value))
		anyRegex = anyRegex || isRegex
	}
	return out, anyRegex
}

// headerValue is how a header match is written: its exact value, or else (regex true) a regex
// anchored at both ends, which means the same to an engine that matches the whole value (as SMI
// does) and to one that searches.
func headerValue(h mesh.HeaderMatch) (value string, regex bool) {
	if h.Kind == mesh.HeaderExact && h.Literal != "" {
		return h.Literal, false
	}
	return "^(?:" + h.Regex + ")$", true
}

// The GRPCRoute CRD's rules for Exact service and method names.
var (
	grpcServiceName = regexp.MustCompile(`^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`)
	grpcMethodName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9]*$`)
)

// grpcMethod expresses a path match as a gRPC method match (a call's path is
// /<service>/<method>): none for any path, an exact path as service and method, a prefix
// "/<service>/" as the service's every method. ok is false for any other path, which a
// GRPCRoute cannot express.
func grpcMethod(p mesh.PathMatch) (_ *gatewayv1.GRPCMethodMatch, ok bool) {
	if p.Kind == mesh.PathAny || p.Kind == mesh.PathPrefix && p.Literal == "/" {
		return nil, true
	}
	rest, rooted := strings.CutPrefix(p.Literal, "/")
	service, method, _ := strings.Cut(rest, "/")
	switch {
	case !rooted || !grpcServiceName.MatchString(service):
		return nil, false
	case p.Kind == mesh.PathExact && grpcMethodName.MatchString(method):
		return &gatewayv1.GRPCMethodMatch{Type: ptr.To(gatewayv1.GRPCMethodMatchExact), Service: ptr.To(service), Method: ptr.To(method)}, true
	case p.Kind == mesh.PathPrefix && p.Literal == "/"+service+"/":
		return &gatewayv1.GRPCMethodMatch{Type: ptr.To(gatewayv1.GRPCMethodMatchExact), Service: ptr.To(service)}, true
	}
	return nil, false
}

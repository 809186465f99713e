package xds

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	accessv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha1"
	accessv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha2"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Identities and matches of the tests.
var (
	apiID  = identity("shop", "api")
	webID  = identity("shop", "web")
	promID = identity("monitoring", "prometheus")

	matchGetUsers = mesh.HTTPMatch{Group: "g", Name: "users", Methods: []string{"GET"},
		Path: mesh.PathMatch{Regex: "/users/[0-9]+", FullRegex: "^(?:/users/[0-9]+).*", Kind: mesh.PathRegex}}
	matchHealth = mesh.HTTPMatch{Group: "g", Name: "health",
		Path: mesh.PathMatch{Regex: "/healthz$", Kind: mesh.PathExact, Literal: "/healthz"}}
	matchAPIPrefixCanary = mesh.HTTPMatch{Group: "g", Name: "canary", Methods: []string{"DELETE", "POST"},
		Path:    mesh.PathMatch{Regex: "/api/", Kind: mesh.PathPrefix, Literal: "/api/"},
		Headers: []mesh.HeaderMatch{{Name: "x-canary", Regex: "1|yes", Kind: mesh.HeaderRegex}}}
	matchGRPCHeader = mesh.HTTPMatch{Group: "g", Name: "grpc",
		Path:    mesh.PathMatch{Kind: mesh.PathAny},
		Headers: []mesh.HeaderMatch{{Name: "grpc-previous-rpc-attempts", Regex: "0", Kind: mesh.HeaderExact, Literal: "0"}}}
	matchAny = mesh.HTTPMatch{Group: "g", Name: "any", Path: mesh.PathMatch{Kind: mesh.PathAny}}
)

func identity(ns, sa string) mesh.Identity {
	return mesh.Identity{Namespace: ns, ServiceAccount: sa, SPIFFEID: "spiffe://cluster.local/ns/" + ns + "/sa/" + sa}
}

func rule(name string, sources []mesh.Identity, edit func(*mesh.AccessRule)) mesh.AccessRule {
	r := mesh.AccessRule{Source: mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: name}, Destination: apiID, Sources: sources}
	edit(&r)
	return r
}

func ports(p ...int32) mesh.PortSet { return mesh.PortSet{Ports: p} }

var allPorts = mesh.PortSet{All: true}

// request is what an RBAC filter sees of a request or connection.
type request struct {
	principal string // empty: no client certificate
	port      int32
	http      bool // false: a raw TCP connection
	method    string
	path      string
	headers   map[string]string
}

// allowedBySMI is the reference: SMI's meaning of the rules, written from the spec without the
// translator's helpers (pathRegex anchored at the start only, header regexes over the whole value).
func allowedBySMI(t *testing.T, rules []mesh.AccessRule, req request) bool {
	t.Helper()
	for _, r := range rules {
		if !slices.ContainsFunc(r.Sources, func(s mesh.Identity) bool { return s.SPIFFEID == req.principal }) {
			continue
		}
		if inPorts(r.TCP, req.port) {
			return true
		}
		if req.http && inPorts(r.HTTPPorts, req.port) && slices.ContainsFunc(r.HTTP, func(m mesh.HTTPMatch) bool { return smiMatches(t, m, req) }) {
			return true
		}
	}
	return false
}

func inPorts(p mesh.PortSet, port int32) bool {
	return p.All || slices.Contains(p.Ports, port)
}

func smiMatches(t *testing.T, m mesh.HTTPMatch, req request) bool {
	if m.Path.Kind != mesh.PathAny && !regexp.MustCompile("^(?:"+m.Path.Regex+")").MatchString(req.path) {
		return false
	}
	if len(m.Methods) > 0 && !slices.Contains(m.Methods, req.method) {
		return false
	}
	for _, h := range m.Headers {
		v, ok := req.headers[h.Name]
		if !ok || !regexp.MustCompile("^(?:"+h.Regex+")$").MatchString(v) {
			return false
		}
	}
	return true
}

// allowedByRBAC evaluates an ALLOW RBAC as Envoy and grpc-go do, for the subset of the API this
// package writes; anything else fails the test.
func allowedByRBAC(t *testing.T, r *rbacv3.RBAC, req request) bool {
	t.Helper()
	if r.GetAction() != rbacv3.RBAC_ALLOW {
		t.Fatalf("action %v", r.GetAction())
	}
	for _, p := range r.GetPolicies() {
		if slices.ContainsFunc(p.Permissions, func(perm *rbacv3.Permission) bool { return permits(t, perm, req) }) &&
			slices.ContainsFunc(p.Principals, func(pr *rbacv3.Principal) bool { return authenticates(t, pr, req) }) {
			return true
		}
	}
	return false
}

func permits(t *testing.T, p *rbacv3.Permission, req request) bool {
	t.Helper()
	switch rule := p.Rule.(type) {
	case *rbacv3.Permission_Any:
		return rule.Any
	case *rbacv3.Permission_AndRules:
		for _, r := range rule.AndRules.Rules {
			if !permits(t, r, req) {
				return false
			}
		}
		return true
	case *rbacv3.Permission_OrRules:
		return slices.ContainsFunc(rule.OrRules.Rules, func(r *rbacv3.Permission) bool { return permits(t, r, req) })
	case *rbacv3.Permission_DestinationPort:
		return rule.DestinationPort == uint32(req.port)
	case *rbacv3.Permission_UrlPath:
		return req.http && stringMatches(t, rule.UrlPath.GetPath(), req.path)
	case *rbacv3.Permission_Header:
		return req.http && headerMatches(t, rule.Header, req)
	}
	t.Fatalf("unexpected permission %v", p)
	return false
}

func headerMatches(t *testing.T, h *routev3.HeaderMatcher, req request) bool {
	t.Helper()
	v, ok := req.headers[h.Name]
	if h.Name == ":method" {
		v, ok = req.method, true
	}
	// The package writes exact_match and safe_regex_match (see regexHeader), which mean what
	// the string_match of the same pattern means.
	var m *matcherv3.StringMatcher
	switch p := h.HeaderMatchSpecifier.(type) {
	case *routev3.HeaderMatcher_StringMatch:
		m = p.StringMatch
	case *routev3.HeaderMatcher_ExactMatch:
		m = exact(p.ExactMatch)
	case *routev3.HeaderMatcher_SafeRegexMatch:
		m = safeRegex(p.SafeRegexMatch.GetRegex())
	default:
		t.Fatalf("unexpected header matcher %v", h)
	}
	return ok && stringMatches(t, m, v)
}

func stringMatches(t *testing.T, m *matcherv3.StringMatcher, s string) bool {
	t.Helper()
	switch p := m.MatchPattern.(type) {
	case *matcherv3.StringMatcher_Exact:
		return s == p.Exact
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(s, p.Prefix)
	case *matcherv3.StringMatcher_SafeRegex:
		return regexp.MustCompile("^(?:" + p.SafeRegex.Regex + ")$").MatchString(s)
	}
	t.Fatalf("unexpected string matcher %v", m)
	return false
}

func authenticates(t *testing.T, p *rbacv3.Principal, req request) bool {
	t.Helper()
	a, ok := p.Identifier.(*rbacv3.Principal_Authenticated_)
	if !ok {
		t.Fatalf("unexpected principal %v", p)
	}
	return req.principal != "" && stringMatches(t, a.Authenticated.PrincipalName, req.principal)
}

// TestAccessPoliciesMeanWhatSMIMeans checks, request by request, that the RBAC policies allow
// exactly what the rules allow: never more (the quality bar) and never less.
func TestAccessPoliciesMeanWhatSMIMeans(t *testing.T) {
	rules := []mesh.AccessRule{
		rule("http", []mesh.Identity{webID, promID}, func(r *mesh.AccessRule) {
			r.HTTP = []mesh.HTTPMatch{matchGetUsers, matchHealth, matchAPIPrefixCanary}
			r.HTTPPorts = ports(8080, 9090)
		}),
		rule("tcp", []mesh.Identity{webID}, func(r *mesh.AccessRule) { r.TCP = ports(5432) }),
		rule("everywhere", []mesh.Identity{promID}, func(r *mesh.AccessRule) {
			r.HTTP = []mesh.HTTPMatch{{Group: "g", Name: "metrics", Methods: []string{"GET"},
				Path: mesh.PathMatch{Regex: "/metrics", Kind: mesh.PathPrefix, Literal: "/metrics"}}}
			r.HTTPPorts = allPorts
		}),
		rule("no-sources", nil, func(r *mesh.AccessRule) { r.TCP = allPorts }),
	}
	web, prom, other := webID.SPIFFEID, promID.SPIFFEID, identity("shop", "other").SPIFFEID
	var requests []request
	for _, principal := range []string{web, prom, other, "", web + "-admin", "spiffe://cluster.local/ns/shop/sa/web/x"} {
		for _, port := range []int32{8080, 9090, 5432, 15000} {
			requests = append(requests, request{principal: principal, port: port})
			for _, method := range []string{"GET", "POST", "DELETE", "PUT"} {
				for _, path := range []string{"/users/7", "/users/7/orders", "/users/x", "/x/users/7", "/healthz", "/healthz/x", "/api/", "/api/v1", "/ap", "/metrics", "/metricsz"} {
					for _, headers := range []map[string]string{nil, {"x-canary": "1"}, {"x-canary": "yes"}, {"x-canary": "1yes"}, {"x-canary": ""}} {
						requests = append(requests, request{principal: principal, port: port, http: true, method: method, path: path, headers: headers})
					}
				}
			}
		}
	}
	envoy := httpRBAC(rules, accessView{}, mesh.Settings{}).GetRules()
	network := networkRBAC(rules, "test", mesh.Settings{}).GetRules()
	allowed := 0
	for _, req := range requests {
		want := allowedBySMI(t, rules, req)
		if want {
			allowed++
		}
		if req.http {
			if got := allowedByRBAC(t, envoy, req); got != want {
				t.Errorf("Envoy HTTP RBAC: %+v allowed = %v, want %v", req, got, want)
			}
			// A gRPC server sees only its own port.
			server := httpRBAC(rules, accessView{port: req.port, proxyless: true}, mesh.Settings{}).GetRules()
			if got := allowedByRBAC(t, server, req); got != want {
				t.Errorf("gRPC server RBAC on port %d: %+v allowed = %v, want %v", req.port, req, got, want)
			}
		} else if got := allowedByRBAC(t, network, req); got != want {
			t.Errorf("network RBAC: %+v allowed = %v, want %v", req, got, want)
		}
	}
	if allowed == 0 || allowed == len(requests) {
		t.Fatalf("%d of %d requests allowed: the test does not discriminate", allowed, len(requests))
	}
}

func TestAccessPolicies(t *testing.T) {
	principal := func(id mesh.Identity) *rbacv3.Principal {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: exact(id.SPIFFEID)}}}
	}
	port := func(p uint32) *rbacv3.Permission {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: p}}
	}
	tests := []struct {
		name  string
		rules []mesh.AccessRule
		view  accessView
		want  map[string]*rbacv3.Policy
	}{
		{name: "no rules: no policy", want: map[string]*rbacv3.Policy{}},
		{
			name:  "a rule without sources allows nothing",
			rules: []mesh.AccessRule{rule("tt", nil, func(r *mesh.AccessRule) { r.TCP = allPorts })},
			view:  accessView{http: true},
			want:  map[string]*rbacv3.Policy{},
		},
		{
			name:  "a rule without traffic allows nothing",
			rules: []mesh.AccessRule{rule("tt", []mesh.Identity{webID}, func(*mesh.AccessRule) {})},
			view:  accessView{http: true},
			want:  map[string]*rbacv3.Policy{},
		},
		{
			name: "HTTP matches without HTTP ports allow nothing",
			rules: []mesh.AccessRule{rule("tt", []mesh.Identity{webID}, func(r *mesh.AccessRule) {
				r.HTTP = []mesh.HTTPMatch{matchAny}
			})},
			view: accessView{http: true},
			want: map[string]*rbacv3.Policy{},
		},
		{
			name: "HTTP grants are not TCP grants",
			rules: []mesh.AccessRule{rule("tt", []mesh.Identity{webID}, func(r *mesh.AccessRule) {
				r.HTTP, r.HTTPPorts = []mesh.HTTPMatch{matchAny}, allPorts
			})},
			view: accessView{},
			want: map[string]*rbacv3.Policy{},
		},
		{
			name: "a match allowing any request makes the others redundant",
			rules: []mesh.AccessRule{rule("tt", []mesh.Identity{webID}, func(r *mesh.AccessRule) {
				r.HTTP, r.HTTPPorts = []mesh.HTTPMatch{matchGetUsers, matchAny}, allPorts
			})},
			view: accessView{http: true},
			want: map[string]*rbacv3.Policy{"shop/tt": {Permissions: []*rbacv3.Permission{anyPermission()}, Principals: []*rbacv3.Principal{principal(webID)}}},
		},
		{
			name: "one TCP port, then several",
			rules: []mesh.AccessRule{
				rule("one", []mesh.Identity{webID}, func(r *mesh.AccessRule) { r.TCP = ports(5432) }),
				rule("two", []mesh.Identity{promID, webID}, func(r *mesh.AccessRule) { r.TCP = ports(5432, 6432) }),
			},
			view: accessView{},
			want: map[string]*rbacv3.Policy{
				"shop/one": {Permissions: []*rbacv3.Permission{port(5432)}, Principals: []*rbacv3.Principal{principal(webID)}},
				"shop/two": {
					Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: []*rbacv3.Permission{port(5432), port(6432)}}}}},
					Principals:  []*rbacv3.Principal{principal(promID), principal(webID)},
				},
			},
		},
		{
			name: "a server port: grants for it need no port condition, grants for others are left out",
			rules: []mesh.AccessRule{
				rule("here", []mesh.Identity{webID}, func(r *mesh.AccessRule) { r.TCP = ports(8080, 9090) }),
				rule("elsewhere", []mesh.Identity{webID}, func(r *mesh.AccessRule) {
					r.HTTP, r.HTTPPorts = []mesh.HTTPMatch{matchHealth}, ports(9090)
				}),
			},
			view: accessView{http: true, port: 8080, proxyless: true},
			want: map[string]*rbacv3.Policy{"shop/here": {Permissions: []*rbacv3.Permission{anyPermission()}, Principals: []*rbacv3.Principal{principal(webID)}}},
		},
		{
			name: "grpc- headers: left out on proxyless servers only",
			rules: []mesh.AccessRule{rule("tt", []mesh.Identity{webID}, func(r *mesh.AccessRule) {
				r.HTTP, r.HTTPPorts = []mesh.HTTPMatch{matchGRPCHeader}, allPorts
			})},
			view: accessView{http: true, port: 8080, proxyless: true},
			want: map[string]*rbacv3.Policy{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := accessPolicies(tc.rules, tc.view)
			if d := cmp.Diff(tc.want, got, protocmp.Transform()); d != "" {
				t.Errorf("policies (-want +got):\n%s", d)
			}
			for name, p := range got {
				validateDeep(t, p)
				_ = name
			}
		})
	}

	// On Envoy, the grpc- header match is kept.
	r := []mesh.AccessRule{rule("tt", []mesh.Identity{webID}, func(r *mesh.AccessRule) {
		r.HTTP, r.HTTPPorts = []mesh.HTTPMatch{matchGRPCHeader}, allPorts
	})}
	if got := accessPolicies(r, accessView{http: true}); len(got) != 1 {
		t.Errorf("Envoy policies for a grpc- header match = %v, want one", got)
	}
}

// TestAccessModes checks where the policies go: enforced when enforcing (an ALLOW without
// policies denies everything), only as shadow rules when permissive (no rules: grpc-go and Envoy
// apply nothing).
func TestAccessModes(t *testing.T) {
	rules := []mesh.AccessRule{rule("tt", []mesh.Identity{webID}, func(r *mesh.AccessRule) { r.TCP = allPorts })}
	for _, tc := range []struct {
		name       string
		settings   mesh.Settings
		rules      []mesh.AccessRule
		wantRules  int // -1: unset
		wantShadow int
	}{
		{name: "default is enforcing", rules: rules, wantRules: 1, wantShadow: -1},
		{name: "enforcing without rules denies everything", settings: mesh.Settings{Access: mesh.AccessEnforcing}, wantRules: 0, wantShadow: -1},
		{name: "a misspelt mode enforces", settings: mesh.Settings{Access: "permisive"}, rules: rules, wantRules: 1, wantShadow: -1},
		{name: "permissive shadows", settings: mesh.Settings{Access: mesh.AccessPermissive}, rules: rules, wantRules: -1, wantShadow: 1},
		{name: "permissive without rules shadows a deny", settings: mesh.Settings{Access: mesh.AccessPermissive}, wantRules: -1, wantShadow: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			count := func(r *rbacv3.RBAC) int {
				if r == nil {
					return -1
				}
				if r.Action != rbacv3.RBAC_ALLOW {
					t.Errorf("action %v, want ALLOW", r.Action)
				}
				return len(r.Policies)
			}
			h := httpRBAC(tc.rules, accessView{}, tc.settings)
			n := networkRBAC(tc.rules, "test", tc.settings)
			for _, got := range [][2]int{{count(h.Rules), count(h.ShadowRules)}, {count(n.Rules), count(n.ShadowRules)}} {
				if got != [2]int{tc.wantRules, tc.wantShadow} {
					t.Errorf("rules, shadow rules policies = %v, want %d, %d", got, tc.wantRules, tc.wantShadow)
				}
			}
			validateDeep(t, h)
			validateDeep(t, n)
		})
	}
}

func TestRulesFor(t *testing.T) {
	other := rule("other", nil, func(r *mesh.AccessRule) { r.Destination = webID })
	a, b := rule("a", nil, func(*mesh.AccessRule) {}), rule("b", nil, func(*mesh.AccessRule) {})
	got := RulesFor([]mesh.AccessRule{a, other, b}, "shop", "api")
	if d := cmp.Diff([]mesh.AccessRule{a, b}, got); d != "" {
		t.Errorf("RulesFor (-want +got):\n%s", d)
	}
	if got := RulesFor([]mesh.AccessRule{a}, "shop", "nobody"); got != nil {
		t.Errorf("RulesFor of an identity without rules = %v", got)
	}
}

// accessRulesOf builds the access rules of api from SMI objects of any served version, as the
// operator does: converted to the hub by mesh.Snapshot.Add, then mesh.Build. A fixture that does
// not convert is a broken test.
func accessRulesOf(objects ...runtime.Object) []mesh.AccessRule {
	var snap mesh.Snapshot
	for _, o := range objects {
		if err := snap.Add(o); err != nil {
			panic(err)
		}
	}
	model, _ := mesh.Build(snap, mesh.Settings{})
	return RulesFor(model.AccessRules, apiID.Namespace, apiID.ServiceAccount)
}

// v1alpha2Target is the v1alpha2 TrafficTarget "tt" from web to api on destination port, with one
// rule.
func v1alpha2Target(port *int, kind, route string) *accessv1alpha2.TrafficTarget {
	return &accessv1alpha2.TrafficTarget{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "tt"},
		Spec: accessv1alpha2.TrafficTargetSpec{
			Destination: accessv1alpha2.IdentityBindingSubject{Kind: "ServiceAccount", Name: "api", Port: port},
			Sources:     []accessv1alpha2.IdentityBindingSubject{{Kind: "ServiceAccount", Name: "web"}},
			Rules:       []accessv1alpha2.TrafficTargetRule{{Kind: kind, Name: route}}}}
}

// TestDestinationPortDeniesOtherPorts builds, from SMI objects, the RBAC of a TrafficTarget
// written in each access version with destination port 8080 where the version has one:
// v1alpha1's and v1alpha2's allow port 8080 only, on Envoy's HTTP RBAC (an HTTPRouteGroup rule),
// its network RBAC (a TCPRoute of every port) and on proxyless gRPC servers; v1alpha3's (no port)
// allow every port.
func TestDestinationPortDeniesOtherPorts(t *testing.T) {
	port := 8080
	routes := []runtime.Object{
		&specsv1alpha4.HTTPRouteGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "routes"},
			Spec: specsv1alpha4.HTTPRouteGroupSpec{Matches: []specsv1alpha4.HTTPMatch{{Name: "users", PathRegex: "/users"}}}},
		&specsv1alpha4.TCPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "every-port"}},
	}
	for _, tc := range []struct {
		version string
		// target writes the TrafficTarget from web to api with one rule.
		target    func(kind, route string) runtime.Object
		everyPort bool
	}{{
		version: "v1alpha1",
		target: func(kind, route string) runtime.Object {
			return &accessv1alpha1.TrafficTarget{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "tt"},
				Destination: accessv1alpha1.IdentityBindingSubject{Kind: "ServiceAccount", Name: "api", Port: port},
				Sources:     []accessv1alpha1.IdentityBindingSubject{{Kind: "ServiceAccount", Name: "web"}},
				Specs:       []accessv1alpha1.TrafficTargetSpec{{Kind: kind, Name: route}}}
		},
	}, {
		version: "v1alpha2",
		target:  func(kind, route string) runtime.Object { return v1alpha2Target(&port, kind, route) },
	}, {
		version: "v1alpha3",
		target: func(kind, route string) runtime.Object {
			return &accessv1alpha3.TrafficTarget{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "tt"},
				Spec: accessv1alpha3.TrafficTargetSpec{
					Destination: accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: "api"},
					Sources:     []accessv1alpha3.IdentityBindingSubject{{Kind: "ServiceAccount", Name: "web"}},
					Rules:       []accessv1alpha3.TrafficTargetRule{{Kind: kind, Name: route}}}}
		},
		everyPort: true,
	}} {
		t.Run(tc.version, func(t *testing.T) {
			httpRules := accessRulesOf(append(routes, tc.target("HTTPRouteGroup", "routes"))...)
			tcpRules := accessRulesOf(append(routes, tc.target("TCPRoute", "every-port"))...)
			envoyHTTP := httpRBAC(httpRules, accessView{}, mesh.Settings{}).GetRules()
			envoyTCP := networkRBAC(tcpRules, "test", mesh.Settings{}).GetRules()
			for _, p := range []int32{8080, 9090} {
				want := tc.everyPort || p == 8080
				req := request{principal: webID.SPIFFEID, port: p, http: true, method: "GET", path: "/users/7"}
				if got := allowedByRBAC(t, envoyHTTP, req); got != want {
					t.Errorf("Envoy HTTP RBAC: GET /users/7 on port %d allowed = %v, want %v", p, got, want)
				}
				server := httpRBAC(httpRules, accessView{port: p, proxyless: true}, mesh.Settings{}).GetRules()
				if got := allowedByRBAC(t, server, req); got != want {
					t.Errorf("gRPC server RBAC listening on %d: GET /users/7 allowed = %v, want %v", p, got, want)
				}
				conn := request{principal: webID.SPIFFEID, port: p}
				if got := allowedByRBAC(t, envoyTCP, conn); got != want {
					t.Errorf("Envoy network RBAC: a connection to port %d allowed = %v, want %v", p, got, want)
				}
			}
		})
	}
}

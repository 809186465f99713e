package accesscheck

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

// fatalRecorder is a testing.TB whose Fatalf stops the function under test and records why, so
// that the evaluators' refusals can be tested.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

func (f *fatalRecorder) Helper() {}

// fatalOf runs fn and returns the message it failed the test with, or "" when it did not.
func fatalOf(t *testing.T, fn func(testing.TB)) (msg string) {
	t.Helper()
	rec := &fatalRecorder{TB: t}
	defer func() {
		if r := recover(); r != nil {
			if r != rec {
				panic(r)
			}
			msg = rec.msg
		}
	}()
	fn(rec)
	return ""
}

func TestIstioStringSemantics(t *testing.T) {
	for _, tc := range []struct {
		value, s     string
		path, header bool // istioString, istioHeaderValue
	}{
		{"/a", "/a", true, true},
		{"/a", "/a/b", false, false},
		{"/a*", "/a/b", true, true},
		{"/a*", "/b", false, false},
		{"*.txt", "/x.txt", true, true},
		{"*", "/", true, true},
		{"*", "", false, true},     // paths "*" is the regex ".+"; headers "*" is presence
		{"*a*", "xa*", true, true}, // a leading "*" wins: suffix "a*"
		{"*a*", "xab", false, false},
	} {
		if got := istioString(tc.value, tc.s); got != tc.path {
			t.Errorf("path %q on %q = %v, want %v", tc.value, tc.s, got, tc.path)
		}
		if got := istioHeaderValue(tc.value, tc.s); got != tc.header {
			t.Errorf("header value %q on %q = %v, want %v", tc.value, tc.s, got, tc.header)
		}
	}
	const web = "spiffe://cluster.local/ns/shop/sa/web"
	for _, tc := range []struct {
		value, id string
		want      bool
	}{
		{"cluster.local/ns/shop/sa/web", web, true},
		{"cluster.local/ns/shop/sa/web", web + "-admin", false},
		{"cluster.local/ns/shop/*", web, true},
		{"*/sa/web", web, true},
		{"*/sa/web", "other://x/sa/web", false},
		{"*", web, true},
		{"*", "", false},
	} {
		if got := istioPrincipal(tc.value, tc.id); got != tc.want {
			t.Errorf("principal %q on %q = %v, want %v", tc.value, tc.id, got, tc.want)
		}
	}
}

func policy(ns string, selector map[string]string, rules ...*securityapi.Rule) *securityv1.AuthorizationPolicy {
	ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"}}
	if selector != nil {
		ap.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: selector}
	}
	ap.Spec.Rules = rules
	return ap
}

func TestIstioAllows(t *testing.T) {
	web := "spiffe://cluster.local/ns/shop/sa/web"
	pod := Pod{Namespace: "shop", Workload: "api", ServiceAccount: "api", Labels: map[string]string{"app": "api"}}
	get := Request{Principal: web, Pod: pod, Port: 8080, HTTP: true, Method: "GET", Path: "/users/1", Headers: map[string]string{"x-canary": "1"}}
	tcp := Request{Principal: web, Pod: pod, Port: 8080}
	fromWeb := []*securityapi.Rule_From{{Source: &securityapi.Source{Principals: []string{"cluster.local/ns/shop/sa/web"}}}}
	httpRule := &securityapi.Rule{From: fromWeb,
		To:   []*securityapi.Rule_To{{Operation: &securityapi.Operation{Ports: []string{"8080"}, Paths: []string{"/users/*"}, Methods: []string{"GET"}}}},
		When: []*securityapi.Condition{{Key: "request.headers[X-Canary]", Values: []string{"1"}}}}
	tcpRule := &securityapi.Rule{From: fromWeb, To: []*securityapi.Rule_To{{Operation: &securityapi.Operation{Ports: []string{"8080"}}}}}
	for _, tc := range []struct {
		name     string
		policies []*securityv1.AuthorizationPolicy
		req      Request
		want     bool
	}{
		{"no policy allows everything", nil, get, true},
		{"allow-nothing denies", []*securityv1.AuthorizationPolicy{policy("shop", nil)}, get, false},
		{"a policy of another namespace does not apply", []*securityv1.AuthorizationPolicy{policy("pay", nil)}, get, true},
		{"a selector not matching does not apply", []*securityv1.AuthorizationPolicy{policy("shop", map[string]string{"app": "db"})}, get, true},
		{"an HTTP rule allows its request", []*securityv1.AuthorizationPolicy{policy("shop", nil, httpRule)}, get, true},
		{"an HTTP rule needs its header", []*securityv1.AuthorizationPolicy{policy("shop", nil, httpRule)},
			Request{Principal: web, Pod: pod, Port: 8080, HTTP: true, Method: "GET", Path: "/users/1"}, false},
		{"an HTTP rule never allows opaque TCP", []*securityv1.AuthorizationPolicy{policy("shop", nil, httpRule)}, tcp, false},
		{"a port rule allows TCP", []*securityv1.AuthorizationPolicy{policy("shop", nil, tcpRule)}, tcp, true},
		{"a port rule allows HTTP", []*securityv1.AuthorizationPolicy{policy("shop", nil, tcpRule)}, get, true},
		{"no identity, no principal", []*securityv1.AuthorizationPolicy{policy("shop", nil, tcpRule)}, Request{Pod: pod, Port: 8080}, false},
		{"another port", []*securityv1.AuthorizationPolicy{policy("shop", nil, tcpRule)}, Request{Principal: web, Pod: pod, Port: 9090}, false},
	} {
		if got := NewIstio(t, tc.policies).Allows(tc.req); got != tc.want {
			t.Errorf("%s: allowed = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestIstioRefusesWhatItDoesNotUnderstand(t *testing.T) {
	for name, p := range map[string]*securityv1.AuthorizationPolicy{
		"DENY action": func() *securityv1.AuthorizationPolicy {
			p := policy("shop", nil)
			p.Spec.Action = securityapi.AuthorizationPolicy_DENY
			return p
		}(),
		"notPaths":        policy("shop", nil, &securityapi.Rule{To: []*securityapi.Rule_To{{Operation: &securityapi.Operation{NotPaths: []string{"/a"}}}}}),
		"namespaces":      policy("shop", nil, &securityapi.Rule{From: []*securityapi.Rule_From{{Source: &securityapi.Source{Namespaces: []string{"a"}}}}}),
		"source.ip":       policy("shop", nil, &securityapi.Rule{When: []*securityapi.Condition{{Key: "source.ip", Values: []string{"10.0.0.1"}}}}),
		"notValues":       policy("shop", nil, &securityapi.Rule{When: []*securityapi.Condition{{Key: "request.headers[a]", NotValues: []string{"b"}}}}),
		"a named port":    policy("shop", nil, &securityapi.Rule{To: []*securityapi.Rule_To{{Operation: &securityapi.Operation{Ports: []string{"http"}}}}}),
		"a path template": policy("shop", nil, &securityapi.Rule{To: []*securityapi.Rule_To{{Operation: &securityapi.Operation{Paths: []string{"/a/{*}"}}}}}),
		"root namespace":  policy("istio-system", nil),
	} {
		if msg := fatalOf(t, func(tb testing.TB) { NewIstio(tb, []*securityv1.AuthorizationPolicy{p}) }); msg == "" {
			t.Errorf("%s: accepted", name)
		}
	}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// tcpListener is an inbound listener with one plain-text TCP chain whose network RBAC has rules.
func tcpListener(t *testing.T, rules *rbacv3.RBAC) *listenerv3.Listener {
	return &listenerv3.Listener{Name: "inbound", FilterChains: []*listenerv3.FilterChain{{
		Name: "tcp",
		Filters: []*listenerv3.Filter{
			{Name: "rbac", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &rbacnetworkv3.RBAC{Rules: rules, StatPrefix: "x"})}},
			{Name: "tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &tcpproxyv3.TcpProxy{StatPrefix: "x",
				ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "c"}})}},
		},
	}}}
}

func allow(perm *rbacv3.Permission, principal *rbacv3.Principal) *rbacv3.RBAC {
	return &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"p": {Permissions: []*rbacv3.Permission{perm}, Principals: []*rbacv3.Principal{principal}}}}
}

func TestListenerRBAC(t *testing.T) {
	anyone := &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
	port := func(p uint32) *rbacv3.Permission {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: p}}
	}
	not := func(p *rbacv3.Permission) *rbacv3.Permission {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
	}
	path := &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
		Rule: &matcherv3.PathMatcher_Path{Path: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
			SafeRegex: &matcherv3.RegexMatcher{Regex: "/a"}}}}}}}
	req := Request{Port: 80}
	for _, tc := range []struct {
		name  string
		rules *rbacv3.RBAC
		want  bool
	}{
		{"no rules enforce nothing", nil, true},
		{"ALLOW without policies denies", &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW}, false},
		{"its port", allow(port(80), anyone), true},
		{"another port", allow(port(81), anyone), false},
		{"not another port", allow(not(port(81)), anyone), true},
		// The network filter sees no path: a url_path never matches there, its negation always.
		{"a path on TCP", allow(path, anyone), false},
		{"not a path on TCP", allow(not(path), anyone), true},
		{"authenticated without an identity", allow(port(80), &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{
			Authenticated: &rbacv3.Principal_Authenticated{}}}), false},
	} {
		if got := NewListener(t, tcpListener(t, tc.rules), EnvoyInbound).Allows(t, req); got != tc.want {
			t.Errorf("%s: allowed = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStringMatches(t *testing.T) {
	for _, tc := range []struct {
		m    *matcherv3.StringMatcher
		s    string
		want bool
	}{
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "GET|POST"}}}, "POST", true},
		// RE2 over the whole string, as Envoy matches.
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "GET|POST"}}}, "GETX", false},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/A"}, IgnoreCase: true}, "/abc", true},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: "c"}}, "/abc", true},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "b"}}, "/abc", true},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "/ab"}}, "/abc", false},
	} {
		if got := stringMatches(t, tc.m, tc.s); got != tc.want {
			t.Errorf("%v on %q = %v, want %v", tc.m, tc.s, got, tc.want)
		}
	}
}

func TestListenerRefusesWhatItDoesNotUnderstand(t *testing.T) {
	anyone := &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
	for name, l := range map[string]*listenerv3.Listener{
		"a source_ip principal": tcpListener(t, allow(&rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}},
			&rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: &corev3.CidrRange{AddressPrefix: "10.0.0.0"}}})),
		"a metadata permission": tcpListener(t, allow(&rbacv3.Permission{Rule: &rbacv3.Permission_Metadata{}}, anyone)),
		"a LOG action":          tcpListener(t, &rbacv3.RBAC{Action: rbacv3.RBAC_LOG}),
		"a destination_ip match": func() *listenerv3.Listener {
			l := tcpListener(t, nil)
			l.FilterChains[0].FilterChainMatch = &listenerv3.FilterChainMatch{PrefixRanges: []*corev3.CidrRange{{AddressPrefix: "10.0.0.1"}}}
			return l
		}(),
		"a listener field": func() *listenerv3.Listener {
			l := tcpListener(t, nil)
			l.StatPrefix = "x"
			return l
		}(),
	} {
		if msg := fatalOf(t, func(tb testing.TB) { NewListener(tb, l, EnvoyInbound) }); msg == "" {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestIRVerdictChecksClassification: a model whose path kind disagrees with its regex fails the
// test rather than lending its mistake to every backend.
func TestIRVerdictChecksClassification(t *testing.T) {
	id := mesh.Identity{Namespace: "shop", ServiceAccount: "api", SPIFFEID: "spiffe://cluster.local/ns/shop/sa/api"}
	web := "spiffe://cluster.local/ns/shop/sa/web"
	model := mesh.Model{AccessRules: []mesh.AccessRule{{
		Destination: id,
		Sources:     []mesh.Identity{{Namespace: "shop", ServiceAccount: "web", SPIFFEID: web}},
		// "/a$" is exact, not a prefix.
		HTTP:      []mesh.HTTPMatch{{Path: mesh.PathMatch{Regex: "/a$", Kind: mesh.PathPrefix, Literal: "/a"}}},
		HTTPPorts: mesh.PortSet{All: true},
	}}}
	req := Request{Principal: web, Pod: Pod{Namespace: "shop", ServiceAccount: "api"}, Port: 80, HTTP: true, Method: "GET", Path: "/a/b"}
	msg := fatalOf(t, func(tb testing.TB) { IRVerdict(tb, model, req) })
	if !strings.Contains(msg, "classified") {
		t.Errorf("IRVerdict on a misclassified path: %q, want a failure naming the classification", msg)
	}
	req.Path = "/a"
	if v := IRVerdict(t, model, req); !v.Governed || !v.Allowed {
		t.Errorf("IRVerdict(%s) = %+v, want governed and allowed", req, v)
	}
}

// TestGenerateReplays: a seed gives the same case and the same requests every time, so that a
// failure's seed replays it.
func TestGenerateReplays(t *testing.T) {
	gen := func() (*Case, []Request) {
		r := rand.New(rand.NewPCG(1, 2))
		c := Generate(r)
		return c, c.Requests(r, 200)
	}
	c1, r1 := gen()
	c2, r2 := gen()
	if !reflect.DeepEqual(c1, c2) || !reflect.DeepEqual(r1, r2) {
		t.Fatal("the same seed generated different cases or requests")
	}
}

package validation

import (
	"os"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha1"
)

// doc turns one YAML document into the JSON an admission request carries and the kind/version
// it declares.
func doc(t testing.TB, y string) (schema.GroupVersionKind, []byte) {
	t.Helper()
	raw, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatalf("bad test YAML: %v\n%s", err, y)
	}
	var tm metav1.TypeMeta
	if err := utiljson.Unmarshal(raw, &tm); err != nil {
		t.Fatalf("bad test YAML: %v\n%s", err, y)
	}
	return tm.GroupVersionKind(), raw
}

// validDocs reads testdata/valid.yaml.
func validDocs(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(data), "\n---\n")
}

func TestValidObjects(t *testing.T) {
	covered := map[schema.GroupVersionKind]bool{}
	for _, y := range validDocs(t) {
		gvk, raw := doc(t, y)
		covered[gvk] = true
		t.Run(gvkString(gvk), func(t *testing.T) {
			errs, err := ValidateJSON(gvk, raw)
			if err != nil {
				t.Fatal(err)
			}
			if len(errs) > 0 {
				t.Errorf("valid object rejected: %v", errs)
			}
			obj := decodeTyped(t, gvk, raw)
			if errs := Validate(obj); len(errs) > 0 {
				t.Errorf("valid typed object rejected: %v", errs)
			}
		})
	}
	kinds := GroupVersionKinds()
	if len(kinds) != 16 {
		t.Errorf("GroupVersionKinds() has %d entries, want 16 (4 TrafficSplit, 3 TrafficTarget, 4 HTTPRouteGroup, 4 TCPRoute, 1 UDPRoute): %v", len(kinds), kinds)
	}
	for _, gvk := range kinds {
		if !covered[gvk] {
			t.Errorf("testdata/valid.yaml has no %s", gvkString(gvk))
		}
	}
}

func decodeTyped(t testing.TB, gvk schema.GroupVersionKind, raw []byte) runtime.Object {
	t.Helper()
	obj, err := scheme.New(gvk)
	if err != nil {
		t.Fatal(err)
	}
	if err := utiljson.Unmarshal(raw, obj); err != nil {
		t.Fatalf("decoding %s: %v", gvkString(gvk), err)
	}
	return obj
}

type invalidCase struct {
	name     string
	yaml     string
	path     string // the exact field path of the one error expected
	fragment string // part of its message
	// listedHeaders marks inputs with headers, which only raw JSON has as written (typed objects
	// report them at headers[name], not headers[i]), and unparseable marks weights smi-sdk-go's
	// decoding must never see: for both the typed path cannot agree.
	listedHeaders, unparseable bool
}

var invalidCases = []invalidCase{
	// TrafficSplit
	{name: "v1alpha1 negative weight", path: "spec.backends[0].weight", fragment: `Invalid value: "-1": must be non-negative`, yaml: `
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  backends: [{service: web-v1, weight: -1}, {service: web-v2, weight: 1}]`},
	{name: "v1alpha1 weight finer than a thousandth", path: "spec.backends[1].weight", fragment: "whole number of thousandths", yaml: `
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  backends: [{service: web-v1, weight: 1}, {service: web-v2, weight: "0.0001"}]`},
	{name: "v1alpha1 weight whose milli-value overflows", path: "spec.backends[0].weight", fragment: "must fit in a signed 64-bit integer", yaml: `
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  backends: [{service: web-v1, weight: "10P"}]`},
	{name: "v1alpha1 weight with a runaway exponent", path: "spec.backends[0].weight", fragment: "exponent beyond ±30", unparseable: true, yaml: `
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  backends: [{service: web-v1, weight: "1e-999999999"}]`},
	{name: "v1alpha1 weight too long", path: "spec.backends[1].weight", fragment: "longer than any weight needs", unparseable: true, yaml: `
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  backends: [{service: a, weight: 1}, {service: b, weight: "0.000000000000000000000000000000000000000001"}]`},
	{name: "v1alpha1 missing weight", path: "spec.backends[0].weight", fragment: "Required value", yaml: `
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  backends: [{service: web-v1}]`},
	{name: "v1alpha1 empty backend service", path: "spec.backends[0].service", fragment: "Required value: the Service that receives", yaml: `
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  backends: [{service: "", weight: 1}]`},
	{name: "v1alpha2 negative weight", path: "spec.backends[1].weight", fragment: "Invalid value: -5: must be non-negative", yaml: `
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  backends: [{service: web-v1, weight: 10}, {service: web-v2, weight: -5}]`},
	{name: "v1alpha2 backend listed twice", path: "spec.backends[2].service", fragment: `Duplicate value: "web-v1": already listed at spec.backends[0].service`, yaml: `
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  backends: [{service: web-v1, weight: 10}, {service: web, weight: 5}, {service: web-v1, weight: 5}]`},
	{name: "v1alpha2 apex not a Service name", path: "spec.service", fragment: "must be the name of a Service", yaml: `
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web.shop.pod
  backends: [{service: web-v1, weight: 10}]`},
	{name: "v1alpha4 apex of another namespace", path: "spec.service", fragment: `names a Service of namespace "bank"`, yaml: `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web.bank.svc.cluster.local
  backends: [{service: web-v1, weight: 10}]`},
	{name: "v1alpha3 apex FQDN ending in a dot", path: "spec.service", fragment: "must be the name of a Service", yaml: `
apiVersion: split.smi-spec.io/v1alpha3
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web.shop.svc.cluster.local.
  backends: [{service: web-v1, weight: 10}]`},
	{name: "v1alpha3 no backends", path: "spec.backends", fragment: "at least one backend", yaml: `
apiVersion: split.smi-spec.io/v1alpha3
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  backends: []`},
	{name: "v1alpha3 match of the wrong kind", path: "spec.matches[0].kind", fragment: `Unsupported value: "TCPRoute"`, yaml: `
apiVersion: split.smi-spec.io/v1alpha3
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  matches: [{kind: TCPRoute, name: db}]
  backends: [{service: web-v1, weight: 10}]`},
	{name: "v1alpha4 empty apex", path: "spec.service", fragment: "Required value: the apex Service", yaml: `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: ""
  backends: [{service: web-v1, weight: 10}]`},
	{name: "v1alpha4 match from another API group", path: "spec.matches[0].apiGroup", fragment: `Unsupported value: "gateway.networking.k8s.io"`, yaml: `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  matches: [{apiGroup: gateway.networking.k8s.io, kind: HTTPRouteGroup, name: android}]
  backends: [{service: web-v1, weight: 10}]`},
	{name: "v1alpha4 match referenced twice", path: "spec.matches[1].name", fragment: "already referenced at spec.matches[0]", yaml: `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  matches: [{kind: HTTPRouteGroup, name: android}, {apiGroup: specs.smi-spec.io, kind: HTTPRouteGroup, name: android}]
  backends: [{service: web-v1, weight: 10}]`},
	{name: "v1alpha4 weights overflow their sum", path: "spec.backends", fragment: "add up to more than 2^63-1", yaml: `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  backends: [{service: a, weight: 9223372036854775807}, {service: b, weight: 1}]`},

	// TrafficTarget
	{name: "access v1alpha1 rule of an unknown kind", path: "specs[0].kind", fragment: `Unsupported value: "HTTPRoute"`, yaml: `
apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata: {name: api, namespace: shop}
destination: {kind: ServiceAccount, name: api}
sources: [{kind: ServiceAccount, name: web}]
specs: [{kind: HTTPRoute, name: api-routes}]`},
	{name: "access v1alpha1 destination not a ServiceAccount", path: "destination.kind", fragment: "SMI identities are Kubernetes ServiceAccounts", yaml: `
apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata: {name: api, namespace: shop}
destination: {kind: Group, name: api}
sources: [{kind: ServiceAccount, name: web}]
specs: [{kind: TCPRoute, name: api-tcp}]`},
	{name: "access v1alpha1 destination port out of range", path: "destination.port", fragment: "Invalid value: 70000: must be a port number, from 1 to 65535", yaml: `
apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata: {name: api, namespace: shop}
destination: {kind: ServiceAccount, name: api, port: 70000}
sources: [{kind: ServiceAccount, name: web}]
specs: [{kind: TCPRoute, name: api-tcp}]`},
	{name: "access v1alpha2 destination in another namespace", path: "spec.destination.namespace", fragment: "a TrafficTarget must live in its destination's namespace", yaml: `
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: api, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: bank}
  sources: [{kind: ServiceAccount, name: web}]
  rules: [{kind: TCPRoute, name: api-tcp}]`},
	{name: "access v1alpha2 UDPRoute rule", path: "spec.rules[0].kind", fragment: "UDPRoute exists only in specs.smi-spec.io/v1alpha4", yaml: `
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: api, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api}
  sources: [{kind: ServiceAccount, name: web}]
  rules: [{kind: UDPRoute, name: dns}]`},
	{name: "access v1alpha2 source namespace not a namespace name", path: "spec.sources[0].namespace", fragment: "must be a namespace name", yaml: `
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: api, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api}
  sources: [{kind: ServiceAccount, name: prometheus, namespace: Monitoring}]
  rules: [{kind: TCPRoute, name: api-tcp}]`},
	{name: "access v1alpha3 source of another kind", path: "spec.sources[1].kind", fragment: `Unsupported value: "User"`, yaml: `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: api, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api}
  sources: [{kind: ServiceAccount, name: web}, {kind: User, name: alice}]
  rules: [{kind: TCPRoute, name: api-tcp}]`},
	{name: "access v1alpha3 source without a name", path: "spec.sources[0].name", fragment: "Required value: the ServiceAccount's name", yaml: `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: api, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api}
  sources: [{kind: ServiceAccount, name: ""}]
  rules: [{kind: TCPRoute, name: api-tcp}]`},
	{name: "access v1alpha3 same source twice", path: "spec.sources[1]", fragment: "the same identity as spec.sources[0]", yaml: `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: api, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api}
  sources: [{kind: ServiceAccount, name: web}, {kind: ServiceAccount, name: web, namespace: shop}]
  rules: [{kind: TCPRoute, name: api-tcp}]`},
	{name: "access v1alpha3 same rule twice", path: "spec.rules[1].name", fragment: "merge the matches", yaml: `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: api, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api}
  sources: [{kind: ServiceAccount, name: web}]
  rules: [{kind: HTTPRouteGroup, name: api-routes, matches: [metrics]}, {kind: HTTPRouteGroup, name: api-routes, matches: [health]}]`},
	{name: "access v1alpha3 empty match name in a rule", path: "spec.rules[0].matches[1]", fragment: "Required value: the name of a match", yaml: `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: api, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api}
  sources: [{kind: ServiceAccount, name: web}]
  rules: [{kind: HTTPRouteGroup, name: api-routes, matches: [metrics, ""]}]`},

	// HTTPRouteGroup
	{name: "specs v1alpha1 pathRegex not RE2", path: "matches[0].pathRegex", fragment: "error parsing regexp: missing closing ): `/api/(`", yaml: `
apiVersion: specs.smi-spec.io/v1alpha1
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
matches: [{name: api, pathRegex: /api/(}]`},
	{name: "specs v1alpha1 method listed twice", path: "matches[0].methods[2]", fragment: "already listed at matches[0].methods[0]", yaml: `
apiVersion: specs.smi-spec.io/v1alpha1
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
matches: [{name: api, methods: [GET, POST, GET]}]`},
	{name: "specs v1alpha2 lookahead is not RE2", path: "matches[1].pathRegex", fragment: "invalid or unsupported Perl syntax", yaml: `
apiVersion: specs.smi-spec.io/v1alpha2
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
matches: [{name: ok, pathRegex: /ok}, {name: api, pathRegex: "/api/(?!internal)"}]`},
	{name: "specs v1alpha2 header listed twice", path: "matches[0].headers[1]", fragment: "the same header as matches[0].headers[0] (header names are case-insensitive)", listedHeaders: true, yaml: `
apiVersion: specs.smi-spec.io/v1alpha2
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
matches:
- name: android
  headers: [{user-agent: .*Android.*}, {User-Agent: .*Mobile.*}]`},
	{name: "specs v1alpha2 headers written as a map", path: "matches[0].headers", fragment: "must be a list of single-entry maps", listedHeaders: true, yaml: `
apiVersion: specs.smi-spec.io/v1alpha2
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
matches:
- name: android
  headers: {user-agent: .*Android.*}`},
	{name: "specs v1alpha3 header value not RE2", path: "spec.matches[0].headers[1][x-canary]", fragment: `the value of header "x-canary" must be an RE2 regular expression: error parsing regexp`, yaml: `
apiVersion: specs.smi-spec.io/v1alpha3
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
spec:
  matches:
  - name: android
    headers: [{user-agent: .*Android.*}, {x-canary: "[yes"}]`, listedHeaders: true},
	{name: "specs v1alpha3 match without a name", path: "spec.matches[0].name", fragment: "TrafficTargets refer to a match by its name", yaml: `
apiVersion: specs.smi-spec.io/v1alpha3
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
spec:
  matches: [{pathRegex: /api}]`},
	{name: "specs v1alpha4 header entry with two names", path: "spec.matches[0].headers[0]", fragment: "must map exactly one header name", listedHeaders: true, yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
spec:
  matches:
  - name: android
    headers: [{user-agent: .*Android.*, x-canary: "true"}]`},
	{name: "specs v1alpha4 header value not a string", path: "spec.matches[0].headers[0][x-count]", fragment: "must be a string", listedHeaders: true, yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
spec:
  matches:
  - name: counted
    headers: [{x-count: 5}]`},
	{name: "specs v1alpha4 header name not a token", path: "spec.matches[0].headers[0]", fragment: "must be an HTTP header name", yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
spec:
  matches:
  - name: android
    headers: [{"user agent": .*Android.*}]`, listedHeaders: true},
	{name: "specs v1alpha4 lower-case method", path: "spec.matches[0].methods[0]", fragment: `Unsupported value: "get"`, yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
spec:
  matches: [{name: reads, methods: [get]}]`},
	{name: "specs v1alpha4 match name twice", path: "spec.matches[1].name", fragment: "already the name of spec.matches[0]", yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
spec:
  matches: [{name: api, pathRegex: /api}, {name: api, pathRegex: /v2/api}]`},

	// TCPRoute and UDPRoute
	{name: "TCPRoute v1alpha4 port 0", path: "spec.matches.ports[0]", fragment: "must be a port number", yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: api-tcp, namespace: shop}
spec:
  matches: {ports: [0, 8080]}`},
	{name: "TCPRoute v1alpha4 port twice", path: "spec.matches.ports[2]", fragment: "Duplicate value: 8080", yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: api-tcp, namespace: shop}
spec:
  matches: {ports: [8080, 9090, 8080]}`},
	{name: "UDPRoute v1alpha4 port above 65535", path: "spec.matches.ports[0]", fragment: "Invalid value: 65536", yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: UDPRoute
metadata: {name: dns, namespace: shop}
spec:
  matches: {ports: [65536]}`},
}

func TestInvalidObjects(t *testing.T) {
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			gvk, raw := doc(t, tc.yaml)
			errs, err := ValidateJSON(gvk, raw)
			if err != nil {
				t.Fatal(err)
			}
			if len(errs) != 1 || errs[0].Field != tc.path || !strings.Contains(errs[0].Error(), tc.fragment) {
				t.Fatalf("got %d errors:\n%s\nwant one at %s containing %q", len(errs), errorLines(errs), tc.path, tc.fragment)
			}
			if tc.listedHeaders || tc.unparseable {
				return
			}
			// A typed object of the same input gives the same errors: the raw path only adds what
			// the SDK's types cannot hold.
			if typed := Validate(decodeTyped(t, gvk, raw)); errorLines(typed) != errorLines(errs) {
				t.Errorf("typed validation differs:\n%s\nraw:\n%s", errorLines(typed), errorLines(errs))
			}
		})
	}
	if len(invalidCases) < 30 {
		t.Errorf("only %d malformed cases", len(invalidCases))
	}
}

func errorLines(errs field.ErrorList) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.Error() + "\n")
	}
	return b.String()
}

// Several problems in one object are all reported, each at its own path.
func TestErrorsAggregate(t *testing.T) {
	gvk, raw := doc(t, `
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: api, namespace: shop}
spec:
  destination: {kind: Group, name: api, namespace: bank, port: 0}
  sources: [{kind: ServiceAccount, name: web}]
  rules: [{kind: TCPRoute, name: ""}]`)
	errs, err := ValidateJSON(gvk, raw)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range errs {
		paths = append(paths, e.Field)
	}
	want := []string{"spec.destination.kind", "spec.destination.port", "spec.destination.namespace", "spec.rules[0].name"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("paths %v, want %v:\n%s", paths, want, errorLines(errs))
	}
}

// A typed HTTPRouteGroup holds headers in a map: its errors are keyed by header name.
func TestTypedHeaders(t *testing.T) {
	g := &specsv1alpha4.HTTPRouteGroup{ObjectMeta: metav1.ObjectMeta{Name: "g", Namespace: "shop"}}
	var m specsv1alpha4.HTTPMatch
	if err := utiljson.Unmarshal([]byte(`{"name":"a","headers":[{"User-Agent":"("},{"user-agent":"x"}]}`), &m); err != nil {
		t.Fatal(err)
	}
	g.Spec.Matches = []specsv1alpha4.HTTPMatch{m}
	got := errorLines(Validate(g))
	want := "spec.matches[0].headers[User-Agent]: Invalid value: \"(\": the value of header \"User-Agent\" must be an RE2 regular expression: error parsing regexp: missing closing ): `(`\n" +
		"spec.matches[0].headers[user-agent]: Duplicate value: \"user-agent\": the same header as spec.matches[0].headers[User-Agent] (header names are case-insensitive): a match holds one regex per header, so write both conditions as one regex\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// Validate must not write to the object it is given: it may come from a shared informer cache.
func TestValidateDoesNotModify(t *testing.T) {
	q := resource.MustParse("1500m")
	ts := &splitv1alpha1.TrafficSplit{Spec: splitv1alpha1.TrafficSplitSpec{Service: "web",
		Backends: []splitv1alpha1.TrafficSplitBackend{{Service: "a", Weight: &q}}}}
	before := ts.DeepCopy()
	if errs := Validate(ts); len(errs) > 0 {
		t.Fatal(errs)
	}
	if !reflect.DeepEqual(before, ts) {
		t.Errorf("Validate changed the object: %#v", ts.Spec.Backends[0].Weight)
	}
}

func TestNotSMI(t *testing.T) {
	for _, obj := range []runtime.Object{nil, &corev1.Pod{}, (*splitv1alpha1.TrafficSplit)(nil), &splitv1alpha1.TrafficSplitList{}} {
		errs := Validate(obj)
		if len(errs) != 1 || errs[0].Type != field.ErrorTypeInternal {
			t.Errorf("Validate(%T) = %v, want one internal error", obj, errs)
		}
	}
	for _, gvk := range []schema.GroupVersionKind{
		{Group: "split.smi-spec.io", Version: "v1alpha5", Kind: "TrafficSplit"},
		{Group: "split.smi-spec.io", Version: "v1alpha4", Kind: "TrafficSplitList"},
		{Group: "specs.smi-spec.io", Version: "v1alpha3", Kind: "UDPRoute"},
		{Group: "", Version: "v1", Kind: "Pod"},
	} {
		if _, err := ValidateJSON(gvk, []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "not an SMI kind") {
			t.Errorf("ValidateJSON(%v) error = %v", gvk, err)
		}
	}
	gvk := schema.GroupVersionKind{Group: "split.smi-spec.io", Version: "v1alpha2", Kind: "TrafficSplit"}
	if _, err := ValidateJSON(gvk, []byte(`{"spec":{"backends":[{"service":"a","weight":"ten"}]}}`)); err == nil || !strings.Contains(err.Error(), "cannot decode") {
		t.Errorf("undecodable object: error = %v", err)
	}
}

// JSON numbers reach resource.ParseQuantity as written too (YAML tools turn 1e-999999999 into 0
// first, JSON clients do not).
func TestRunawayExponentAsJSONNumber(t *testing.T) {
	gvk := schema.GroupVersionKind{Group: "split.smi-spec.io", Version: "v1alpha1", Kind: "TrafficSplit"}
	errs, err := ValidateJSON(gvk, []byte(`{"spec":{"service":"web","backends":[{"service":"a","weight":1E+99999999999999999999}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 1 || errs[0].Field != "spec.backends[0].weight" || !strings.Contains(errs[0].Detail, "exponent") {
		t.Errorf("got %v", errs)
	}
}

func TestMilliValue(t *testing.T) {
	for _, tc := range []struct {
		in          string
		milli       int64
		exact, fits bool
	}{
		{"0", 0, true, true},
		{"1", 1000, true, true},
		{"500m", 500, true, true},
		{"1.5", 1500, true, true},
		{"1Ki", 1024000, true, true},
		{"1u", 0, false, true},
		{"1001u", 1, false, true},
		{"9223372036854775807m", 9223372036854775807, true, true},
		{"9223372036854775808m", 0, true, false},
		{"1e1000000", 0, true, false},
	} {
		q := resource.MustParse(tc.in)
		milli, exact, fits := milliValue(&q)
		if milli != tc.milli || exact != tc.exact || fits != tc.fits {
			t.Errorf("milliValue(%s) = %d, %v, %v; want %d, %v, %v", tc.in, milli, exact, fits, tc.milli, tc.exact, tc.fits)
		}
	}
}

package mesh

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"

	"github.com/smi-operator/smi-operator/apis/smi"
)

func TestPathRegexSemantics(t *testing.T) {
	tests := []struct {
		name        string
		regex       string
		wantKind    PathKind
		wantLiteral string
		match       []string
		noMatch     []string
	}{
		{name: "no pathRegex matches any path", regex: "", wantKind: PathAny, match: []string{"/", "/x/y"}},
		{name: "dot star matches any path", regex: ".*", wantKind: PathAny, match: []string{"/", "/x"}},
		{name: "pathRegex is anchored at the start of the path only", regex: "/api", wantKind: PathPrefix, wantLiteral: "/api",
			match: []string{"/api", "/api/v1", "/apiary"}, noMatch: []string{"/v1/api", "/"}},
		{name: "leading caret repeats the anchoring", regex: "^/api/.*", wantKind: PathPrefix, wantLiteral: "/api/",
			match: []string{"/api/", "/api/x"}, noMatch: []string{"/api", "/x/api/"}},
		{name: "dollar makes a literal exact", regex: "/api$", wantKind: PathExact, wantLiteral: "/api",
			match: []string{"/api"}, noMatch: []string{"/api/", "/apiary"}},
		{name: "dot star then dollar is still a prefix", regex: "/api.*$", wantKind: PathPrefix, wantLiteral: "/api",
			match: []string{"/api", "/api/x"}},
		{name: "character classes need a regex", regex: "/api/v[0-9]+/users", wantKind: PathRegex,
			match: []string{"/api/v2/users", "/api/v10/users/7"}, noMatch: []string{"/api/vx/users", "/x/api/v2/users"}},
		{name: "alternation is anchored as a whole", regex: "/a|/b", wantKind: PathRegex,
			match: []string{"/a/x", "/b/x"}, noMatch: []string{"/x/b", "/x/a"}},
		{name: "case-insensitive literal needs a regex", regex: "(?i)/api", wantKind: PathRegex,
			match: []string{"/API/x", "/api"}, noMatch: []string{"/x/api"}},
		{name: "text after dot star needs a regex", regex: "/a/.*/b", wantKind: PathRegex,
			match: []string{"/a/x/b"}, noMatch: []string{"/a/x/c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := compileHTTPMatch("g", specsv1alpha4.HTTPMatch{PathRegex: tc.regex})
			if err != nil {
				t.Fatal(err)
			}
			if m.Path.Regex != tc.regex || m.Path.Kind != tc.wantKind || m.Path.Literal != tc.wantLiteral {
				t.Errorf("path = %+v, want regex %q kind %s literal %q", m.Path, tc.regex, tc.wantKind, tc.wantLiteral)
			}
			for _, p := range tc.match {
				if !matchesRequest(t, []HTTPMatch{m}, request{method: "GET", path: p}) {
					t.Errorf("%q does not match path %q", tc.regex, p)
				}
			}
			for _, p := range tc.noMatch {
				if matchesRequest(t, []HTTPMatch{m}, request{method: "GET", path: p}) {
					t.Errorf("%q matches path %q", tc.regex, p)
				}
			}
		})
	}
}

func TestHeaderRegexClassification(t *testing.T) {
	tests := []struct {
		name        string
		regex       string
		wantKind    HeaderKind
		wantLiteral string
		match       []string
		noMatch     []string
	}{
		{name: "a literal is an exact value", regex: "1", wantKind: HeaderExact, wantLiteral: "1",
			match: []string{"1"}, noMatch: []string{"10", "01", ""}},
		{name: "anchors around a literal change nothing", regex: "^on$", wantKind: HeaderExact, wantLiteral: "on",
			match: []string{"on"}, noMatch: []string{"one"}},
		{name: "escaped metacharacters are literal", regex: `v1\.2`, wantKind: HeaderExact, wantLiteral: "v1.2",
			match: []string{"v1.2"}, noMatch: []string{"v1x2"}},
		{name: "literal then dot star is a prefix", regex: "Bearer .*", wantKind: HeaderPrefix, wantLiteral: "Bearer ",
			match: []string{"Bearer ", "Bearer abc"}, noMatch: []string{"bearer abc", "Basic x"}},
		{name: "dot star then literal is a suffix", regex: ".*Android", wantKind: HeaderSuffix, wantLiteral: "Android",
			match: []string{"Android", "Mozilla Android"}, noMatch: []string{"Android 14"}},
		{name: "dot star alone only asks for presence", regex: ".*", wantKind: HeaderPresent,
			match: []string{"", "anything"}},
		{name: "contains needs a regex", regex: ".*Android.*", wantKind: HeaderRegex,
			match: []string{"a Android b"}, noMatch: []string{"iOS"}},
		{name: "one or more needs a regex, presence would also allow empty", regex: ".+", wantKind: HeaderRegex,
			match: []string{"x"}, noMatch: []string{""}},
		{name: "case-insensitive literal needs a regex", regex: "(?i)yes", wantKind: HeaderRegex,
			match: []string{"YES"}, noMatch: []string{"no"}},
		{name: "character classes need a regex", regex: "v[0-9]", wantKind: HeaderRegex,
			match: []string{"v1"}, noMatch: []string{"vx"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := compileHTTPMatch("g", specsv1alpha4.HTTPMatch{Headers: map[string]string{"x-h": tc.regex}})
			if err != nil {
				t.Fatal(err)
			}
			h := m.Headers[0]
			if h.Regex != tc.regex || h.Kind != tc.wantKind || h.Literal != tc.wantLiteral {
				t.Errorf("header = %+v, want regex %q kind %s literal %q", h, tc.regex, tc.wantKind, tc.wantLiteral)
			}
			// The classification must agree with the regex, which stays the reference.
			for _, v := range tc.match {
				if !matchesRequest(t, []HTTPMatch{m}, request{headers: map[string]string{"x-h": v}}) {
					t.Errorf("%q does not match value %q", tc.regex, v)
				}
				if h.Kind != HeaderRegex && !matchesHeaderKind(h, v) {
					t.Errorf("kind %s literal %q does not match value %q", h.Kind, h.Literal, v)
				}
			}
			for _, v := range tc.noMatch {
				if matchesRequest(t, []HTTPMatch{m}, request{headers: map[string]string{"x-h": v}}) {
					t.Errorf("%q matches value %q", tc.regex, v)
				}
				if h.Kind != HeaderRegex && matchesHeaderKind(h, v) {
					t.Errorf("kind %s literal %q matches value %q", h.Kind, h.Literal, v)
				}
			}
		})
	}
}

// matchesHeaderKind reads a classified header match the way regex-less APIs do.
func matchesHeaderKind(h HeaderMatch, v string) bool {
	switch h.Kind {
	case HeaderPresent:
		return true
	case HeaderExact:
		return v == h.Literal
	case HeaderPrefix:
		return strings.HasPrefix(v, h.Literal)
	case HeaderSuffix:
		return strings.HasSuffix(v, h.Literal)
	}
	return false
}

func TestMethodSemantics(t *testing.T) {
	tests := []struct {
		name    string
		methods []string
		want    []string
	}{
		{name: "star means any method and normalises to empty", methods: []string{"*"}, want: nil},
		{name: "star among others still means any", methods: []string{"GET", "*"}, want: nil},
		{name: "omitted methods mean any", methods: nil, want: nil},
		{name: "methods are upper-cased, sorted and unique", methods: []string{"post", "GET", "get"}, want: []string{"GET", "POST"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := compileHTTPMatch("g", specsv1alpha4.HTTPMatch{Methods: tc.methods})
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, m.Methods); d != "" {
				t.Errorf("methods (-want +got):\n%s", d)
			}
		})
	}
}

func TestHeaderAndMatchSemantics(t *testing.T) {
	insiders := specsv1alpha4.HTTPMatch{Name: "android-insiders", Headers: map[string]string{
		"User-Agent": ".*Android.*",
		"cookie":     "^(.*?;)?(type=insider)(;.*)?$",
	}}
	firefox := specsv1alpha4.HTTPMatch{Name: "firefox-users", PathRegex: "/app", Methods: []string{"GET"},
		Headers: map[string]string{"user-agent": ".*Firefox.*"}}
	var matches []HTTPMatch
	for _, in := range []specsv1alpha4.HTTPMatch{insiders, firefox} {
		m, err := compileHTTPMatch("ab", in)
		if err != nil {
			t.Fatal(err)
		}
		matches = append(matches, m)
	}
	wantInsiders := []HeaderMatch{
		{Name: "cookie", Regex: "^(.*?;)?(type=insider)(;.*)?$", Kind: HeaderRegex},
		{Name: "user-agent", Regex: ".*Android.*", Kind: HeaderRegex},
	}
	if d := cmp.Diff(wantInsiders, matches[0].Headers); d != "" {
		t.Errorf("headers are lower-cased and sorted (-want +got):\n%s", d)
	}

	tests := []struct {
		name string
		req  request
		want bool
	}{
		{"headers are ANDed: all present and matching", request{"POST", "/x", map[string]string{"user-agent": "Mozilla Android 14", "cookie": "a=b;type=insider"}}, true},
		{"headers are ANDed: one failing header fails the match", request{"POST", "/x", map[string]string{"user-agent": "Mozilla Android 14", "cookie": "type=outsider"}}, false},
		{"headers are ANDed: a missing header fails the match", request{"POST", "/x", map[string]string{"user-agent": "Mozilla Android 14"}}, false},
		{"matches are ORed: the second match alone suffices", request{"GET", "/app/home", map[string]string{"user-agent": "Firefox/120"}}, true},
		{"path, method and headers are ANDed within a match", request{"POST", "/app/home", map[string]string{"user-agent": "Firefox/120"}}, false},
		{"header regex matches the whole value", request{"GET", "/app", map[string]string{"user-agent": "Firefox"}}, true},
		{"no match at all", request{"GET", "/app", map[string]string{"user-agent": "curl"}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := matchesRequest(t, matches, tc.req); got != tc.want {
				t.Errorf("request %+v matched = %v, want %v", tc.req, got, tc.want)
			}
		})
	}
}

func TestInvalidHTTPMatchMatchesNothing(t *testing.T) {
	tests := []struct {
		name  string
		match specsv1alpha4.HTTPMatch
	}{
		{"invalid path regex", specsv1alpha4.HTTPMatch{Name: "m", PathRegex: "/api/(v1"}},
		{"Perl lookahead is not RE2", specsv1alpha4.HTTPMatch{Name: "m", PathRegex: "/(?=api)"}},
		{"invalid header regex", specsv1alpha4.HTTPMatch{Name: "m", Headers: map[string]string{"x-user": "*"}}},
		{"empty method", specsv1alpha4.HTTPMatch{Name: "m", Methods: []string{"GET", " "}}},
		{"empty header name", specsv1alpha4.HTTPMatch{Name: "m", Headers: map[string]string{"": ".*"}}},
		{"header name that is not an HTTP token", specsv1alpha4.HTTPMatch{Name: "m", Headers: map[string]string{"x user[0]": ".*"}}},
		// What a backend refuses (smi.CheckHeaderRegex, smi.CheckPathRegex), for objects that
		// never went through the webhook: istiod refuses `regex: ""` and regexes over 1,024 bytes,
		// Envoy an empty safe_regex and RE2 programs over its default size of 100.
		{"empty header regex", specsv1alpha4.HTTPMatch{Name: "m", Headers: map[string]string{"x-canary": ""}}},
		{"header regex over istiod's length", specsv1alpha4.HTTPMatch{Name: "m", Headers: map[string]string{"x-canary": "^" + strings.Repeat("a", 1024)}}},
		{"path regex over istiod's length once anchored", specsv1alpha4.HTTPMatch{Name: "m", PathRegex: "/" + strings.Repeat("a", 1017)}},
		{"header regex over Envoy's program size", specsv1alpha4.HTTPMatch{Name: "m", Headers: map[string]string{"accept-language": `\p{L}+`}}},
		{"path regex over Envoy's program size", specsv1alpha4.HTTPMatch{Name: "m", PathRegex: "/items/[0-9a-f]{100}"}},
		{"method SMI does not define", specsv1alpha4.HTTPMatch{Name: "m", Methods: []string{"GET", "PURGE"}}},
		{"1 MiB header regex", specsv1alpha4.HTTPMatch{Name: "m", Headers: map[string]string{"x-huge": strings.Repeat("(a|b)*", 1<<20/6)}}},
	}
	group := ref(smi.HTTPRouteGroupKind, "g")
	split := ref(smi.TrafficSplitKind, "canary")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok := specsv1alpha4.HTTPMatch{Name: "ok", PathRegex: "/ok"}
			snap := Snapshot{
				Services:        []corev1.Service{service("web", 80), service("web-v2", 80)},
				HTTPRouteGroups: []specsv1alpha4.HTTPRouteGroup{httpRouteGroup("g", tc.match, ok)},
				TrafficSplits:   []splitv1alpha4.TrafficSplit{withMatches(trafficSplit("canary", "web", 0, backend("web-v2", 1)), groupRef("g"))},
			}
			m, diags := build(t, snap, Settings{})
			want := []Diagnostic{
				diag(group, smi.ConditionAccepted, ReasonInvalidMatch, SeverityWarning),
				diag(split, smi.ConditionResolvedRefs, ReasonInvalidMatch, SeverityWarning),
			}
			if d := cmp.Diff(want, diags, ignoreMessage); d != "" {
				t.Errorf("diagnostics (-want +got):\n%s", d)
			}
			for _, d := range diags {
				if len(d.Message) > 1000 { // a status condition and an Event carry it
					t.Errorf("a message of %d bytes: %.200s…", len(d.Message), d.Message)
				}
			}
			if len(m.Splits) != 1 || len(m.Splits[0].Matches) != 1 || m.Splits[0].Matches[0].Name != "ok" {
				t.Errorf("want the split to keep only the valid match, got %+v", m.Splits)
			}
		})
	}
}

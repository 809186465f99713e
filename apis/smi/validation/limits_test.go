package validation

import (
	"strings"
	"testing"
	"time"
)

// Regexes a backend cannot program are refused at admission, at the field that holds them, for
// every HTTPRouteGroup version that has the field, through both the JSON (webhook) path and the
// typed one: empty header regexes (istiod refuses `regex: ""`; an empty safe_regex fails Envoy's
// validation), regexes longer than istiod's 1,024 bytes as emitted, and regexes whose RE2 program
// is over Envoy's default limit of 100. The limits themselves are tested in package smi.
func TestRegexLimits(t *testing.T) {
	long := strings.Repeat("a", 1025)
	for _, tc := range []struct {
		name, yaml, path, fragment string
		// listedHeaders: only the JSON path sees the headers as listed; typedOnly: only the typed
		// path reads headers written as a map.
		listedHeaders, typedOnly bool
	}{
		{name: "empty header regex, listed", path: "spec.matches[0].headers[1][x-canary]", listedHeaders: true,
			fragment: `Required value: the value of header "x-canary" must not be empty: Istio refuses an empty regex and Envoy an empty safe_regex`, yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
spec:
  matches:
  - name: canary
    headers: [{user-agent: .*Android.*}, {x-canary: ""}]`},
		{name: "empty header regex, typed v1alpha3", path: "spec.matches[0].headers[x-canary]", typedOnly: true,
			fragment: `the value of header "x-canary" must not be empty`, yaml: `
apiVersion: specs.smi-spec.io/v1alpha3
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
spec:
  matches: [{name: canary, headers: [{x-canary: ""}]}]`},
		{name: "header regex over istiod's length", path: "matches[0].headers[0][x-canary]", listedHeaders: true,
			fragment: `Too long: the value of header "x-canary" is 1025 bytes long, more than the 1024 allowed: istiod refuses`, yaml: `
apiVersion: specs.smi-spec.io/v1alpha2
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
matches: [{name: canary, headers: [{x-canary: "` + long + `"}]}]`},
		{name: "pathRegex over istiod's length once emitted", path: "matches[0].pathRegex",
			fragment: `pathRegex (matched from the start of the path) is 1018 bytes long, more than the 1017 allowed`, yaml: `
apiVersion: specs.smi-spec.io/v1alpha1
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
matches: [{name: api, pathRegex: "/` + long[:1017] + `"}]`},
		{name: "header regex over Envoy's program size", path: `spec.matches[0].headers[0][accept-language]`, listedHeaders: true,
			fragment: `the value of header "accept-language" compiles to an RE2 program of about`, yaml: `
apiVersion: specs.smi-spec.io/v1alpha3
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
spec:
  matches: [{name: letters, headers: [{accept-language: '\p{L}+'}]}]`},
		{name: "pathRegex over Envoy's program size", path: "spec.matches[0].pathRegex",
			fragment: `more than Envoy's default limit of 100 (re2.max_program_size.error_level)`, yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
spec:
  matches: [{name: ids, pathRegex: '/items/[0-9a-f]{100}'}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gvk, raw := doc(t, tc.yaml)
			errs, err := ValidateJSON(gvk, raw)
			if tc.typedOnly {
				errs, err = Validate(decodeTyped(t, gvk, raw)), nil
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(errs) != 1 || errs[0].Field != tc.path || !strings.Contains(errs[0].Error(), tc.fragment) {
				t.Fatalf("got %d errors:\n%s\nwant one at %s containing %q", len(errs), errorLines(errs), tc.path, tc.fragment)
			}
			if len(errs[0].Error()) > 1500 {
				t.Errorf("a message of %d bytes", len(errs[0].Error()))
			}
			if tc.listedHeaders || tc.typedOnly {
				return
			}
			if typed := Validate(decodeTyped(t, gvk, raw)); errorLines(typed) != errorLines(errs) {
				t.Errorf("typed validation differs:\n%s\nraw:\n%s", errorLines(typed), errorLines(errs))
			}
		})
	}
}

// The regexes users write, and those at the limits, stay admitted. A start-anchored literal costs
// RE2 nothing (it is compared, not compiled), so only istiod's length limits it.
func TestRegexLimitsAdmit(t *testing.T) {
	gvk, raw := doc(t, `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
spec:
  matches:
  - name: api
    pathRegex: '/api/v[0-9]+/(users|orders|products)/[0-9]+'
    headers: [{user-agent: '.*(Android|iPhone|iPad).*'}, {x-empty: '^$'}, {cookie: '.*user=[a-z0-9]+.*'}]
  - name: long-literal
    pathRegex: '/`+strings.Repeat("a", 1016)+`'
    headers: [{x-token: '^`+strings.Repeat("b", 1023)+`'}]
  - name: any
    pathRegex: ""`)
	errs, err := ValidateJSON(gvk, raw)
	if err != nil || len(errs) > 0 {
		t.Fatalf("refused: %v %v", err, errorLines(errs))
	}
}

// A 1 MiB header value is refused quickly, and the message does not repeat it (the issue: 5–8 s
// and 220 MB in translate).
func TestHugeHeaderValue(t *testing.T) {
	gvk, raw := doc(t, `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
spec:
  matches: [{name: huge, headers: [{x-huge: "`+strings.Repeat("(a|b)*", 1<<20/6)+`"}]}]`)
	start := time.Now()
	errs, err := ValidateJSON(gvk, raw)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("validating took %v", d)
	}
	if len(errs) != 1 || errs[0].Field != "spec.matches[0].headers[0][x-huge]" || !strings.Contains(errs[0].Error(), "Too long") || len(errs[0].Error()) > 500 {
		t.Fatalf("got:\n%s", errorLines(errs))
	}
}

package accesscheck

import (
	"strconv"
	"strings"
	"testing"

	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
)

// Istio judges requests against AuthorizationPolicies as an Istio sidecar does, for the parts of
// the API the translator writes: ALLOW policies selecting workloads by matchLabels, with rules of
// source principals, operation ports, paths and methods, and request.headers conditions. The
// semantics are Istio's documented ones (istio.io/latest/docs/reference/config/security/
// authorization-policy), checked against istiod's RBAC generator (pilot/pkg/security/authz):
//
//   - a workload that no ALLOW policy selects is allowed everything; one that some select is
//     allowed what any rule of theirs matches (a policy without rules matches nothing);
//   - a rule matches when all of its parts do: any of its "from", any of its "to", every "when";
//     inside one source or operation every field set must match, one of its values sufficing;
//   - values are exact, "prefix*", "*suffix", or "*" (presence): paths "*" is any non-empty path,
//     methods and headers "*" any value, even empty; a value that is "*" and has a prefix and a
//     suffix "*" is read as a suffix (istiod tests the leading "*" first);
//   - principals are compared with the peer certificate's SPIFFE ID, "spiffe://" + value, and
//     only exist over mutual TLS: a request without a verified identity matches no principals;
//   - a connection Istio does not parse as HTTP (opaque TCP, or HTTP on a port Istio treats as
//     TCP) matches no rule holding an HTTP-only field (paths, methods, request.headers): istiod
//     drops such rules from its TCP filter for ALLOW policies.
//
// PeerAuthentications are not read: what mutual TLS proves is already in Request.Principal.
// Policies of other kinds (DENY, AUDIT, CUSTOM), of the root namespace, or with fields outside
// that list fail the test.
type Istio struct {
	policies []*securityv1.AuthorizationPolicy
}

// NewIstio checks that every policy uses only what the evaluator understands.
func NewIstio(t testing.TB, policies []*securityv1.AuthorizationPolicy) *Istio {
	t.Helper()
	for _, p := range policies {
		if p.Namespace == "" || p.Namespace == "istio-system" {
			t.Fatalf("accesscheck: AuthorizationPolicy %q is in namespace %q: root-namespace policies apply mesh-wide, which this evaluator does not model", p.Name, p.Namespace)
		}
		spec := &p.Spec
		onlyFields(t, spec, "selector", "action", "rules")
		if spec.Action != securityapi.AuthorizationPolicy_ALLOW {
			t.Fatalf("accesscheck: AuthorizationPolicy %s/%s has action %v; only ALLOW is understood", p.Namespace, p.Name, spec.Action)
		}
		if spec.Selector != nil {
			onlyFields(t, spec.Selector, "match_labels")
		}
		for _, r := range spec.Rules {
			onlyFields(t, r, "from", "to", "when")
			for _, f := range r.From {
				onlyFields(t, f, "source")
				if f.Source != nil {
					onlyFields(t, f.Source, "principals")
				}
			}
			for _, to := range r.To {
				onlyFields(t, to, "operation")
				if to.Operation != nil {
					onlyFields(t, to.Operation, "ports", "paths", "methods")
					for _, port := range to.Operation.Ports {
						if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
							// istiod drops the whole rule for an ALLOW policy: say so rather than guess.
							t.Fatalf("accesscheck: AuthorizationPolicy %s/%s has port %q, not a port number", p.Namespace, p.Name, port)
						}
					}
					for _, path := range to.Operation.Paths {
						if strings.Contains(path, "{*}") || strings.Contains(path, "{**}") {
							t.Fatalf("accesscheck: AuthorizationPolicy %s/%s has path template %q, which this evaluator does not understand", p.Namespace, p.Name, path)
						}
					}
				}
			}
			for _, c := range r.When {
				onlyFields(t, c, "key", "values")
				if _, ok := headerKey(c.Key); !ok {
					t.Fatalf("accesscheck: AuthorizationPolicy %s/%s has condition key %q; only request.headers[<name>] is understood", p.Namespace, p.Name, c.Key)
				}
			}
		}
	}
	return &Istio{policies: policies}
}

// Allows reports whether the request gets through. An HTTP request is allowed when either way
// Istio may see it (as HTTP, or as opaque TCP when it does not detect HTTP) allows it.
func (is *Istio) Allows(req Request) bool {
	selected := false
	for _, p := range is.policies {
		if p.Namespace != req.Pod.Namespace || !selects(p.Spec.Selector, req.Pod.Labels) {
			continue
		}
		selected = true
		for _, r := range p.Spec.Rules {
			if istioRuleMatches(r, req, false) || (req.HTTP && istioRuleMatches(r, req, true)) {
				return true
			}
		}
	}
	return !selected
}

func selects(s *typeapi.WorkloadSelector, labels map[string]string) bool {
	for k, v := range s.GetMatchLabels() {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// istioRuleMatches evaluates one rule, as the TCP filter does when asTCP is set or the request is
// opaque TCP, else as the HTTP filter does.
func istioRuleMatches(r *securityapi.Rule, req Request, asTCP bool) bool {
	asTCP = asTCP || !req.HTTP
	if asTCP && hasHTTPOnlyField(r) {
		return false
	}
	if len(r.From) > 0 && !anyOf(r.From, func(f *securityapi.Rule_From) bool { return sourceMatches(f.Source, req) }) {
		return false
	}
	if len(r.To) > 0 && !anyOf(r.To, func(to *securityapi.Rule_To) bool { return operationMatches(to.Operation, req) }) {
		return false
	}
	for _, c := range r.When {
		name, _ := headerKey(c.Key)
		value, present := req.Headers[strings.ToLower(name)]
		if !present || !anyOf(c.Values, func(v string) bool { return istioHeaderValue(v, value) }) {
			return false
		}
	}
	return true
}

func hasHTTPOnlyField(r *securityapi.Rule) bool {
	for _, to := range r.To {
		if op := to.Operation; op != nil && (len(op.Paths) > 0 || len(op.Methods) > 0) {
			return true
		}
	}
	return len(r.When) > 0 // request.headers, the only key NewIstio lets through
}

func sourceMatches(s *securityapi.Source, req Request) bool {
	if s == nil || len(s.Principals) == 0 {
		return true
	}
	if req.Principal == "" {
		return false
	}
	return anyOf(s.Principals, func(v string) bool { return istioPrincipal(v, req.Principal) })
}

func operationMatches(op *securityapi.Operation, req Request) bool {
	if op == nil {
		return true
	}
	port := strconv.Itoa(int(req.Port))
	if len(op.Ports) > 0 && !anyOf(op.Ports, func(p string) bool { return p == port }) {
		return false
	}
	if len(op.Paths) > 0 && !anyOf(op.Paths, func(p string) bool { return istioString(p, req.Path) }) {
		return false
	}
	// Methods are matched as the ":method" header, so "*" is presence.
	if len(op.Methods) > 0 && !anyOf(op.Methods, func(m string) bool { return istioHeaderValue(m, req.Method) }) {
		return false
	}
	return true
}

// istioString is istiod's matcher.StringMatcher: "*" is the regex ".+", then a leading "*" a
// suffix, a trailing "*" a prefix, else exact.
func istioString(v, s string) bool {
	switch {
	case v == "*":
		return s != ""
	case strings.HasPrefix(v, "*"):
		return strings.HasSuffix(s, v[1:])
	case strings.HasSuffix(v, "*"):
		return strings.HasPrefix(s, v[:len(v)-1])
	}
	return s == v
}

// istioHeaderValue is istiod's matcher.HeaderMatcher on a present header: "*" is present_match.
func istioHeaderValue(v, s string) bool {
	return v == "*" || istioString(v, s)
}

// istioPrincipal is istiod's StringMatcherWithPrefix(v, "spiffe://") on the peer's SPIFFE ID:
// "*" any non-empty identity, "*suffix" the regex "spiffe://.*suffix", "prefix*" and exact values
// behind "spiffe://".
func istioPrincipal(v, spiffeID string) bool {
	const scheme = "spiffe://"
	switch {
	case v == "*":
		return spiffeID != ""
	case strings.HasPrefix(v, "*"):
		return strings.HasPrefix(spiffeID, scheme) && strings.HasSuffix(spiffeID[len(scheme):], v[1:])
	case strings.HasSuffix(v, "*"):
		return strings.HasPrefix(spiffeID, scheme+v[:len(v)-1])
	}
	return spiffeID == scheme+v
}

// headerKey returns the header name of a "request.headers[<name>]" condition key.
func headerKey(key string) (string, bool) {
	name, ok := strings.CutPrefix(key, "request.headers[")
	if !ok || !strings.HasSuffix(name, "]") || len(name) < 2 {
		return "", false
	}
	return strings.TrimSuffix(name, "]"), true
}

func anyOf[T any](list []T, f func(T) bool) bool {
	for _, v := range list {
		if f(v) {
			return true
		}
	}
	return false
}

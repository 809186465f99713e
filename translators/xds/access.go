package xds

import (
	"fmt"
	"slices"
	"strings"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// ReasonUnsupportedHeader: an HTTP match names a header that proxyless gRPC servers refuse to
// match on (grpc-go NACKs RBAC header matchers for "grpc-" headers); on those servers the match
// allows nothing, Envoy sidecars enforce it as written.
const ReasonUnsupportedHeader = "UnsupportedHeader"

// accessView says which part of an identity's access rules one RBAC filter enforces.
type accessView struct {
	// http is set for an HTTP filter: HTTP matches count, besides TCP grants (an HTTP request
	// is a TCP connection's traffic). A network filter sees connections only: TCP grants only.
	http bool
	// port, when non-zero, is the only destination port the filter ever sees (a proxyless gRPC
	// server listener): grants for other ports are left out and grants for it need no port
	// condition. Zero means any port, each grant then carrying its destination_port conditions.
	port int32
	// proxyless leaves out the HTTP matches grpc-go refuses (headers named "grpc-...").
	proxyless bool
}

// accessPolicies expresses the rules of one destination as RBAC ALLOW policies, one per rule
// (TrafficTarget) that allows anything in this view, named "<namespace>/<name>" after it. A rule
// without sources, or whose grants all fall outside the view, yields no policy: under an ALLOW
// action, what no policy matches is denied.
func accessPolicies(rules []mesh.AccessRule, v accessView) map[string]*rbacv3.Policy {
	policies := map[string]*rbacv3.Policy{}
	for i := range rules {
		r := &rules[i]
		if len(r.Sources) == 0 {
			continue
		}
		perms := permissions(r, v)
		if len(perms) == 0 {
			continue
		}
		principals := make([]*rbacv3.Principal, len(r.Sources))
		for i, s := range r.Sources {
			// The SPIFFE ID is the client certificate's URI SAN, which Envoy and grpc-go
			// both compare principal_name with. Exact: a prefix would let "sa/web" admit
			// "sa/web-admin".
			principals[i] = &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{
				Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: exact(s.SPIFFEID)},
			}}
		}
		policies[r.Source.Namespace+"/"+r.Source.Name] = &rbacv3.Policy{Permissions: perms, Principals: principals}
	}
	return policies
}

// permissions lists what one rule allows in the view (ORed, as Policy.permissions are).
func permissions(r *mesh.AccessRule, v accessView) []*rbacv3.Permission {
	var out []*rbacv3.Permission
	if _, ok := portCondition(r.HTTPPorts, v.port); ok && v.http {
		for _, m := range r.HTTP {
			if v.proxyless && hasGRPCHeader(m) {
				continue
			}
			// Built afresh for each match: no message is shared between two places of the tree.
			ports, _ := portCondition(r.HTTPPorts, v.port)
			out = append(out, allOf(append(ports, httpConditions(m)...)))
		}
	}
	if ports, ok := portCondition(r.TCP, v.port); ok {
		out = append(out, allOf(ports))
	}
	// One unconditional permission makes the others redundant.
	if slices.ContainsFunc(out, func(p *rbacv3.Permission) bool { return p.GetAny() }) {
		return []*rbacv3.Permission{anyPermission()}
	}
	return out
}

// portCondition returns the conditions that restrict a grant to its ports, and whether the grant
// applies in the view at all.
func portCondition(ports mesh.PortSet, viewPort int32) ([]*rbacv3.Permission, bool) {
	switch {
	case ports.Empty():
		return nil, false
	case viewPort != 0:
		return nil, ports.All || slices.Contains(ports.Ports, viewPort)
	case ports.All:
		return nil, true
	}
	alternatives := make([]*rbacv3.Permission, len(ports.Ports))
	for i, p := range ports.Ports {
		alternatives[i] = &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(p)}}
	}
	if len(alternatives) == 1 {
		return alternatives, true
	}
	return []*rbacv3.Permission{{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: alternatives}}}}, true
}

// httpConditions are the conditions of one HTTP match, all required. They mean what the match's
// routes mean (see routeMatch): the path as exact, prefix or the anchored FullRegex (matched
// against the whole path, without the query string, as url_path does), methods on ":method",
// and each header's regex over its whole value.
func httpConditions(m mesh.HTTPMatch) []*rbacv3.Permission {
	var out []*rbacv3.Permission
	var path *matcherv3.StringMatcher
	switch m.Path.Kind {
	case mesh.PathExact:
		path = exact(m.Path.Literal)
	case mesh.PathPrefix:
		path = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: m.Path.Literal}}
	case mesh.PathRegex:
		path = safeRegex(m.Path.FullRegex)
	}
	if path != nil {
		out = append(out, &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{
			UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: path}},
		}})
	}
	if len(m.Methods) > 0 {
		out = append(out, &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: methodMatcher(m.Methods)}})
	}
	for _, h := range m.Headers {
		out = append(out, &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: regexHeader(h.Name, h.Regex)}})
	}
	return out
}

// allOf requires every condition; no condition at all is "any".
func allOf(conds []*rbacv3.Permission) *rbacv3.Permission {
	switch len(conds) {
	case 0:
		return anyPermission()
	case 1:
		return conds[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: conds}}}
}

func anyPermission() *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
}

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func safeRegex(re string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}}
}

// hasGRPCHeader reports whether a match needs a header grpc-go refuses in RBAC (gRFC A41).
func hasGRPCHeader(m mesh.HTTPMatch) bool {
	return slices.ContainsFunc(m.Headers, func(h mesh.HeaderMatch) bool { return strings.HasPrefix(h.Name, "grpc-") })
}

// rbacRules places the policies: enforced (an ALLOW list; no policy denies everything) when
// enforcing, else only as shadow rules, evaluated and reported but never applied, so that
// everything is allowed. See the package comment for why permissive mode allows everything.
func rbacRules(policies map[string]*rbacv3.Policy, s mesh.Settings) (rules, shadow *rbacv3.RBAC) {
	r := &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: policies}
	if s.Enforcing() {
		return r, nil
	}
	return nil, r
}

// httpRBAC is the HTTP RBAC filter's configuration for one destination's rules.
func httpRBAC(rules []mesh.AccessRule, v accessView, s mesh.Settings) *rbachttpv3.RBAC {
	v.http = true
	r, shadow := rbacRules(accessPolicies(rules, v), s)
	return &rbachttpv3.RBAC{Rules: r, ShadowRules: shadow}
}

// networkRBAC is the network RBAC filter's configuration for one destination's rules: TCP grants.
func networkRBAC(rules []mesh.AccessRule, statPrefix string, s mesh.Settings) *rbacnetworkv3.RBAC {
	r, shadow := rbacRules(accessPolicies(rules, accessView{}), s)
	return &rbacnetworkv3.RBAC{Rules: r, ShadowRules: shadow, StatPrefix: statPrefix}
}

// checkOneDestination refuses rules of several destinations: their policies would let one
// destination's sources into another.
func checkOneDestination(rules []mesh.AccessRule) error {
	for _, r := range rules[min(1, len(rules)):] {
		if d := rules[0].Destination; r.Destination.Namespace != d.Namespace || r.Destination.ServiceAccount != d.ServiceAccount {
			return fmt.Errorf("access rules of two destinations, %s/%s (%s) and %s/%s (%s): pass the rules of one identity",
				d.Namespace, d.ServiceAccount, rules[0].Source, r.Destination.Namespace, r.Destination.ServiceAccount, r.Source)
		}
	}
	return nil
}

// RulesFor returns the access rules whose destination is the ServiceAccount namespace/name, in
// their order: what [ServerListener] and [InboundListener] take for a workload running as it.
func RulesFor(rules []mesh.AccessRule, namespace, serviceAccount string) []mesh.AccessRule {
	var out []mesh.AccessRule
	for _, r := range rules {
		if r.Destination.Namespace == namespace && r.Destination.ServiceAccount == serviceAccount {
			out = append(out, r)
		}
	}
	return out
}

// AccessDiagnostics reports, on the TrafficTargets, what the xDS backend does not enforce as
// written: UDP grants (its listeners carry TCP only, so UDP is neither allowed nor denied) and
// HTTP matches on "grpc-" headers (they allow nothing on proxyless gRPC servers).
func AccessDiagnostics(rules []mesh.AccessRule) []mesh.Diagnostic {
	var diags mesh.Diagnostics
	for _, r := range rules {
		if !r.UDP.Empty() {
			diags.Warn(r.Source, smi.ConditionProgrammed, mesh.ReasonUDPNotEnforced,
				"the UDP rules (%s) are not enforced: the xDS backend's sidecars and gRPC servers only see TCP, "+
					"so UDP traffic to ServiceAccount %q is neither allowed nor denied by this TrafficTarget", r.UDP.String(), r.Destination.ServiceAccount)
		}
		if r.HTTPPorts.Empty() {
			continue
		}
		for _, m := range r.HTTP {
			if hasGRPCHeader(m) {
				diags.Warn(r.Source, smi.ConditionProgrammed, ReasonUnsupportedHeader,
					"%s: proxyless gRPC servers cannot match \"grpc-\" headers (gRPC reserves them); "+
						"the match allows nothing on them, Envoy sidecars enforce it", m.Describe())
			}
		}
	}
	return diags.Sorted()
}

package istio

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// accessRule writes an ALLOW AuthorizationPolicy per destination workload and, when enforcing,
// a STRICT PeerAuthentication for it.
func (t *translator) accessRule(r *mesh.AccessRule) {
	rules := t.authorizationRules(r)
	src := sourceOf(r.Source)
	for _, w := range r.Workloads {
		nameParts := []string{r.Source.Name, strings.ToLower(w.Kind), w.Name}

		ap := newAuthorizationPolicy(r.Source.Namespace, src)
		ap.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: maps.Clone(w.Selector)}
		ap.Spec.Action = securityapi.AuthorizationPolicy_ALLOW
		for _, rule := range rules {
			ap.Spec.Rules = append(ap.Spec.Rules, rule.DeepCopy())
		}
		t.authorizationPolicies.add(ap, nameParts...)

		if t.settings.Enforcing() {
			pa := newPeerAuthentication(r.Source.Namespace, src)
			pa.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: maps.Clone(w.Selector)}
			pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}
			t.peerAuthentications.add(pa, nameParts...)
		}
	}
}

// authorizationRules expresses what r allows, reporting what Istio cannot express. No rule at
// all means "allow nothing" for an ALLOW policy, which is what a rule granting nothing must give.
func (t *translator) authorizationRules(r *mesh.AccessRule) []*securityapi.Rule {
	var ops []operation
	if !r.HTTPPorts.Empty() {
		for _, m := range r.HTTP {
			if op, ok := t.httpOperation(r.Source, m); ok {
				op.Ports = portStrings(r.HTTPPorts)
				ops = append(ops, op)
			}
		}
	}
	if !r.TCP.Empty() {
		ops = append(ops, operation{Operation: &securityapi.Operation{Ports: portStrings(r.TCP)}})
	}
	if !r.UDP.Empty() {
		t.diags.Warn(r.Source, smi.ConditionProgrammed, mesh.ReasonUDPNotEnforced,
			"the UDP rules (%s) are not enforced: Istio authorization policies do not apply to UDP, "+
				"so UDP traffic to ServiceAccount %q is neither allowed nor denied by this TrafficTarget", r.UDP.String(), r.Destination.ServiceAccount)
	}
	// Checked last so that what cannot be expressed is reported whoever the sources are. Without
	// sources a rule would have no "from", which Istio reads as "from anyone".
	if len(r.Sources) == 0 {
		return nil
	}
	principals := make([]string, len(r.Sources))
	for i, s := range r.Sources {
		principals[i] = s.Principal()
	}
	out := make([]*securityapi.Rule, len(ops))
	for i, op := range ops {
		out[i] = &securityapi.Rule{
			From: []*securityapi.Rule_From{{Source: &securityapi.Source{Principals: slices.Clone(principals)}}},
			When: op.when,
		}
		if !isEmptyOperation(op.Operation) {
			out[i].To = []*securityapi.Rule_To{{Operation: op.Operation}}
		}
	}
	return out
}

// operation is what one rule allows: the operation, and the conditions on request headers.
type operation struct {
	*securityapi.Operation
	when []*securityapi.Condition
}

func isEmptyOperation(op *securityapi.Operation) bool {
	return len(op.Paths) == 0 && len(op.Methods) == 0 && len(op.Ports) == 0
}

// httpOperation expresses one HTTP match; ok is false when Istio cannot express it exactly, in
// which case it is reported and must allow nothing.
func (t *translator) httpOperation(referrer mesh.ObjectRef, m mesh.HTTPMatch) (operation, bool) {
	op := operation{Operation: &securityapi.Operation{Methods: slices.Clone(m.Methods)}}
	if m.Path.Kind != mesh.PathAny {
		path, ok := pathValue(m.Path)
		if !ok {
			t.diags.Warn(referrer, smi.ConditionProgrammed, mesh.ReasonUnsupportedPathRegex,
				"%s: pathRegex %q has no equivalent in Istio authorization paths (exact, prefix or suffix only); "+
					"the match allows nothing rather than more", m.Describe(), m.Path.Regex)
			return operation{}, false
		}
		op.Paths = []string{path}
	}
	for _, h := range m.Headers {
		value, ok := headerValue(h)
		if !ok {
			t.diags.Warn(referrer, smi.ConditionProgrammed, mesh.ReasonUnsupportedHeaderRegex,
				"%s: header %q regex %q has no equivalent in Istio authorization conditions (exact, prefix, suffix or presence only); "+
					"the match allows nothing rather than more", m.Describe(), h.Name, h.Regex)
			return operation{}, false
		}
		op.when = append(op.when, &securityapi.Condition{Key: "request.headers[" + h.Name + "]", Values: []string{value}})
	}
	if len(op.Paths) == 0 && len(op.Methods) == 0 && len(op.when) == 0 {
		// Istio applies a rule without HTTP-only fields to opaque TCP as well: "*" (any path)
		// keeps this an HTTP grant.
		op.Paths = []string{"*"}
	}
	return op, true
}

// pathValue writes a path match as Istio authorization paths do: exact, or prefix with a
// trailing "*". A literal holding "*" would be read as a wildcard (or a path template).
func pathValue(p mesh.PathMatch) (string, bool) {
	if p.Literal == "" || strings.Contains(p.Literal, "*") {
		return "", false
	}
	switch p.Kind {
	case mesh.PathExact:
		return p.Literal, true
	case mesh.PathPrefix:
		return p.Literal + "*", true
	}
	return "", false
}

// headerValue writes a header match as Istio condition values do: exact, "prefix*", "*suffix",
// or "*" for presence. A literal holding "*" would be read as a wildcard; an empty exact value is
// left out too rather than trusting how Istio reads it.
func headerValue(h mesh.HeaderMatch) (string, bool) {
	if h.Kind == mesh.HeaderPresent {
		return "*", true
	}
	if h.Literal == "" || strings.Contains(h.Literal, "*") {
		return "", false
	}
	switch h.Kind {
	case mesh.HeaderExact:
		return h.Literal, true
	case mesh.HeaderPrefix:
		return h.Literal + "*", true
	case mesh.HeaderSuffix:
		return "*" + h.Literal, true
	}
	return "", false
}

// portStrings lists ports as Istio operations take them; nil means every port.
func portStrings(p mesh.PortSet) []string {
	if p.All {
		return nil
	}
	out := make([]string, len(p.Ports))
	for i, port := range p.Ports {
		out[i] = strconv.Itoa(int(port))
	}
	return out
}

// defaultDeny writes enforcing mode's allow-nothing policy in every namespace where access applies
// (the model's AccessNamespaces), whether or not a TrafficTarget names it, but Istio's root
// namespace (see DefaultDenyIn). It selects every workload of the namespace and allows only a
// principal nobody has (DefaultDeny): traffic that no other ALLOW policy allows is denied.
func (t *translator) defaultDeny(namespaces []string) {
	for _, ns := range namespaces {
		if DefaultDenyIn(ns) {
			t.authorizationPolicies.add(DefaultDeny(ns), DefaultDenyName)
		}
	}
}

// RootNamespace is Istio's default root namespace (meshConfig.rootNamespace): a policy there
// applies to every namespace of the mesh.
const RootNamespace = "istio-system"

// DefaultDenyIn says whether a namespace where access applies may hold the allow-nothing policy:
// every one but Istio's root namespace, where it would deny traffic in every namespace, those
// left out of the access namespaces too. A mesh whose root namespace is another must leave that
// one out of the selector.
func DefaultDenyIn(namespace string) bool {
	return namespace != RootNamespace
}

// NobodyPrincipal is the only source the allow-nothing policy allows: a principal no workload
// has (mesh.Nobody); a request without mutual TLS has no principal at all.
var NobodyPrincipal = mesh.Nobody.Principal()

// DefaultDeny is enforcing mode's allow-nothing AuthorizationPolicy for a namespace: it selects
// every workload, and its one rule allows NobodyPrincipal, so only what TrafficTargets allow gets
// through. Not Istio's allow-nothing idiom (an empty spec): for proxyless gRPC servers istiod
// builds RBAC only from policies with rules, and a policy without any would leave them open.
func DefaultDeny(namespace string) *securityv1.AuthorizationPolicy {
	ap := newAuthorizationPolicy(namespace, source{kind: smi.NamespaceSourceKind, name: namespace})
	ap.Name = DefaultDenyName
	ap.Spec.Action = securityapi.AuthorizationPolicy_ALLOW
	ap.Spec.Rules = []*securityapi.Rule{{
		From: []*securityapi.Rule_From{{Source: &securityapi.Source{Principals: []string{NobodyPrincipal}}}},
	}}
	return ap
}

package mesh

import (
	"cmp"
	"slices"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// serviceAccountKind is the only identity kind SMI defines.
const serviceAccountKind = "ServiceAccount"

// accessRules resolves every TrafficTarget. The result is sorted by destination, then by source
// TrafficTarget, so a destination's rules are adjacent.
func (b *builder) accessRules(in []accessv1alpha3.TrafficTarget) []AccessRule {
	var out []AccessRule
	for i := range in {
		if r, ok := b.accessRule(&in[i]); ok {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(x, y AccessRule) int {
		return cmp.Or(x.Destination.compare(y.Destination), x.Source.compare(y.Source))
	})
	return out
}

// accessRule resolves one TrafficTarget. ok is false when it is not accepted. Whatever cannot be
// resolved inside an accepted target grants nothing; nothing is ever widened to make up for it.
func (b *builder) accessRule(tt *accessv1alpha3.TrafficTarget) (AccessRule, bool) {
	ref := ObjectRef{Kind: smi.TrafficTargetKind, Namespace: tt.Namespace, Name: tt.Name}
	dest := tt.Spec.Destination
	destNamespace := cmp.Or(dest.Namespace, tt.Namespace)
	switch {
	case !isServiceAccount(dest):
		b.diags.Fail(ref, smi.ConditionAccepted, ReasonUnsupportedIdentityKind,
			"destination must name a %s, got kind %q name %q", serviceAccountKind, dest.Kind, dest.Name)
		return AccessRule{}, false
	case destNamespace != tt.Namespace:
		// Only the destination's own namespace may open it up; a target elsewhere is ignored, not
		// honoured and not allowed to lock the destination down either.
		b.diags.Fail(ref, smi.ConditionAccepted, ReasonDestinationNamespaceMismatch,
			"destination %s %q is in namespace %q; a TrafficTarget must live in its destination's namespace",
			serviceAccountKind, dest.Name, destNamespace)
		return AccessRule{}, false
	}

	rule := AccessRule{Source: ref, Destination: b.identity(destNamespace, dest.Name)}
	for i, src := range tt.Spec.Sources {
		if !isServiceAccount(src) {
			b.diags.Warn(ref, smi.ConditionResolvedRefs, ReasonUnsupportedIdentityKind,
				"sources[%d] must name a %s, got kind %q name %q; it is not allowed", i, serviceAccountKind, src.Kind, src.Name)
			continue
		}
		rule.Sources = append(rule.Sources, b.identity(cmp.Or(src.Namespace, tt.Namespace), src.Name))
	}
	slices.SortFunc(rule.Sources, Identity.compare)
	rule.Sources = slices.Compact(rule.Sources)

	var tcp PortSet
	hasHTTPRule, hasTCPRule := false, false
	for i, r := range tt.Spec.Rules {
		switch r.Kind {
		case smi.HTTPRouteGroupKind:
			hasHTTPRule = true
			rule.HTTP = append(rule.HTTP, b.httpMatches(ref, tt.Namespace, r.Name, r.Matches)...)
		case smi.TCPRouteKind:
			hasTCPRule = true
			tcp = tcp.union(b.portMatches(ref, b.tcpRoutes, r.Kind, tt.Namespace, r.Name, r.Matches))
		case smi.UDPRouteKind:
			rule.UDP = rule.UDP.union(b.portMatches(ref, b.udpRoutes, r.Kind, tt.Namespace, r.Name, r.Matches))
		default:
			b.diags.Warn(ref, smi.ConditionResolvedRefs, ReasonUnsupportedRouteKind,
				"rules[%d] has kind %q; only %s, %s and %s are supported; it allows nothing",
				i, r.Kind, smi.HTTPRouteGroupKind, smi.TCPRouteKind, smi.UDPRouteKind)
		}
	}
	// Decided on the rules as written: an HTTP rule that failed to resolve must not turn the
	// TCPRoutes that were meant to scope it into a raw TCP grant.
	switch {
	case !hasHTTPRule:
		rule.TCP = tcp
	case len(rule.HTTP) == 0:
		// HTTPPorts stays empty: there is no HTTP request to allow.
	case hasTCPRule:
		rule.HTTPPorts = tcp
	default:
		rule.HTTPPorts = PortSet{All: true}
	}
	rule.Workloads = b.destinationWorkloads(ref, rule.Destination)
	return rule, true
}

func isServiceAccount(s accessv1alpha3.IdentityBindingSubject) bool {
	return s.Kind == serviceAccountKind && s.Name != ""
}

package mesh

import (
	"cmp"
	"slices"

	"k8s.io/apimachinery/pkg/types"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/conversion"
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

	destPorts := b.destinationPorts(ref, tt)
	// portRule returns the ports a TCPRoute or UDPRoute rule allows on the destination's ports.
	portRule := func(i int, r accessv1alpha3.TrafficTargetRule, routes map[types.NamespacedName]portRoute) PortSet {
		routePorts := b.portMatches(ref, routes, r.Kind, tt.Namespace, r.Name, r.Matches)
		allowed := routePorts.intersect(destPorts)
		if allowed.Empty() && !routePorts.Empty() && !destPorts.Empty() {
			b.diags.Warn(ref, smi.ConditionResolvedRefs, ReasonDestinationPortOutsideRoute,
				"rules[%d]: %s %q allows %s, not the destination's %s (destination.port); it allows nothing",
				i, r.Kind, r.Name, routePorts.String(), destPorts.String())
		}
		return allowed
	}

	if len(tt.Spec.Rules) == 0 {
		// v1alpha1 and v1alpha2 let rules be left out, which grants nothing: worth saying, since
		// an author may read it as "any traffic". (v1alpha3 requires a rule; the webhook refuses
		// one without, but this also sees targets admitted before it or by others' CRDs.)
		b.diags.Warn(ref, smi.ConditionResolvedRefs, ReasonNoRules,
			"the TrafficTarget has no rules, so it allows no traffic to %s %q: a rule names the routes whose traffic to allow",
			serviceAccountKind, dest.Name)
	}
	var tcp PortSet
	hasHTTPRule, hasTCPRule := false, false
	for i, r := range tt.Spec.Rules {
		switch r.Kind {
		case smi.HTTPRouteGroupKind:
			hasHTTPRule = true
			rule.HTTP = append(rule.HTTP, b.httpMatches(ref, tt.Namespace, r.Name, r.Matches)...)
		case smi.TCPRouteKind:
			hasTCPRule = true
			tcp = tcp.union(portRule(i, r, b.tcpRoutes))
		case smi.UDPRouteKind:
			rule.UDP = rule.UDP.union(portRule(i, r, b.udpRoutes))
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
		rule.HTTPPorts = destPorts
	}
	rule.Workloads = b.destinationWorkloads(ref, rule.Destination)
	return rule, true
}

// destinationPorts returns the ports of the destination that tt may allow traffic on: the port a
// v1alpha1 or v1alpha2 author gave the destination (kept in the hub's conversion annotation), else
// every port. When that port cannot be used or known, no port: access narrows, never widens.
func (b *builder) destinationPorts(ref ObjectRef, tt *accessv1alpha3.TrafficTarget) PortSet {
	port, err := conversion.TrafficTargetDestinationPort(tt)
	switch {
	case err != nil:
		b.diags.Warn(ref, smi.ConditionAccepted, ReasonInvalidConversionData,
			"%v, so a destination.port that a v1alpha1 or v1alpha2 version of it sets cannot be known; it allows nothing", err)
		return PortSet{}
	case port == nil:
		return PortSet{All: true}
	case *port < 1 || *port > 65535:
		b.diags.Warn(ref, smi.ConditionAccepted, ReasonInvalidPort,
			"destination.port %d is outside 1-65535; it allows nothing", *port)
		return PortSet{}
	}
	return PortSet{Ports: []int32{int32(*port)}}
}

func isServiceAccount(s accessv1alpha3.IdentityBindingSubject) bool {
	return s.Kind == serviceAccountKind && s.Name != ""
}

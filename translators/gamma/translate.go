package gamma

import (
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/translators/internal/objectlist"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Reasons this backend reports, beyond package mesh's: what the Gateway API cannot express, or
// leaves to each mesh.
const (
	// ReasonImplementationSpecificMatch (a warning): a match needs RegularExpression path or
	// header matching, whose support, dialect and precedence the Gateway API leaves to each mesh.
	ReasonImplementationSpecificMatch = "ImplementationSpecificMatch"
	// ReasonRouteLimitExceeded: a split needs more backends, matches or header matches than a
	// route may hold; nothing of it is written.
	ReasonRouteLimitExceeded = "RouteLimitExceeded"
	// ReasonAccessNotEnforced: the Gateway API has no authorization standard, and no access
	// policy is configured for this backend (spec.gamma.accessPolicy none): a TrafficTarget
	// neither allows nor denies anything.
	ReasonAccessNotEnforced = "AccessNotEnforced"
	// ReasonPolicyNotSupported: this backend does not program TrafficPolicies yet.
	ReasonPolicyNotSupported = "PolicyNotSupported"
)

// Reasons of what a mesh says of the routes written (RouteStatus): the route's own status,
// status.parents[] entry for the apex Service, as the mesh controller that reads it writes it.
const (
	// ReasonRouteNotAccepted (Programmed=False): a mesh does not accept a route of the split
	// (Accepted=False): its port is not split as the route says on that mesh.
	ReasonRouteNotAccepted = "RouteNotAccepted"
	// ReasonRouteRefsNotResolved (ResolvedRefs=False, a warning): a mesh accepts a route of the
	// split but does not resolve some of its references (ResolvedRefs=False); by the Gateway
	// API's rules the rest of the route is in effect.
	ReasonRouteRefsNotResolved = "RouteRefsNotResolved"
)

// ReasonTCPRouteNotServed (Programmed=False): the cluster does not serve TCPRoute v1 (a Gateway
// API release before v1.6, where TCPRoute is experimental and v1alpha2), so the backend writes the
// split's HTTPRoutes and GRPCRoutes but not its TCPRoutes: a warning when other routes of the
// split are written, an error when none is. The backend reports it (controllers/backends/gamma);
// Translate does not know what the cluster serves.
const ReasonTCPRouteNotServed = "TCPRouteNotServed"

// Output is the desired set of Gateway API routes. Each list is sorted by namespace, then name.
type Output struct {
	HTTPRoutes []*gatewayv1.HTTPRoute
	GRPCRoutes []*gatewayv1.GRPCRoute
	TCPRoutes  []*gatewayv1.TCPRoute
}

// Objects returns every object of o, kind by kind in the order of o's fields.
func (o Output) Objects() []client.Object {
	out := make([]client.Object, 0, len(o.HTTPRoutes)+len(o.GRPCRoutes)+len(o.TCPRoutes))
	out = objectlist.Append(out, o.HTTPRoutes)
	out = objectlist.Append(out, o.GRPCRoutes)
	return objectlist.Append(out, o.TCPRoutes)
}

// Translate turns the mesh model into Gateway API routes and reports what they cannot express.
// The model must come from mesh.Build with the same settings.
func Translate(model mesh.Model, settings mesh.Settings) (Output, []mesh.Diagnostic) {
	t := &translator{}
	for i := range model.Splits {
		t.split(&model.Splits[i])
	}
	for i := range model.AccessRules {
		t.accessNotEnforced(&model.AccessRules[i], settings)
	}
	for i := range model.Policies {
		p := &model.Policies[i]
		t.diags.Fail(p.Source, smi.ConditionProgrammed, ReasonPolicyNotSupported,
			"the gamma backend does not program TrafficPolicies yet: none of this policy's settings apply to Service %q", p.Service.Name)
	}
	objectlist.Sort(t.out.HTTPRoutes)
	objectlist.Sort(t.out.GRPCRoutes)
	objectlist.Sort(t.out.TCPRoutes)
	return t.out, t.diags.Sorted()
}

// translator accumulates the objects of one Translate call.
type translator struct {
	out   Output
	diags mesh.Diagnostics
}

// accessNotEnforced reports a TrafficTarget that this backend leaves without effect: never
// silently accepted. It is what the gamma backend reports under accessPolicy none; under istio,
// the backend programs targets with translators/istio instead, and Translate's diagnostics of
// targets are not used.
func (t *translator) accessNotEnforced(r *mesh.AccessRule, settings mesh.Settings) {
	also := ""
	if settings.Enforcing() {
		also = ", nor does SMI's deny-by-default hold in its namespace"
	}
	t.diags.Fail(r.Source, smi.ConditionProgrammed, ReasonAccessNotEnforced,
		"the Gateway API has no authorization standard and the gamma backend enforces no access policy "+
			"(spec.gamma.accessPolicy none; istio writes Istio's): "+
			"this TrafficTarget neither allows nor denies traffic to ServiceAccount %s/%s%s",
		r.Destination.Namespace, r.Destination.ServiceAccount, also)
}

// objectMeta is the metadata of a route generated from src for one of its apex's ports: named
// <source>-<port> (unique, since the port holds no "-"), shortened to smi.MaxNameLength.
func objectMeta(src mesh.ObjectRef, port int32) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace: src.Namespace,
		Name:      smi.ShortName(src.Name + "-" + strconv.Itoa(int(port))),
		Labels:    smi.SourceLabels(src.Kind, src.Name),
	}
}

// typeMeta sets apiVersion and kind, which a generic client and server-side apply need.
func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: gatewayv1.GroupVersion.String(), Kind: kind}
}

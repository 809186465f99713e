package gamma

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// RouteStatus reports on source, the split a route was generated from, what the meshes say of the
// route in its own status: each status.parents[] entry for a Service parent of the route's spec
// (the apex Service port: one entry per mesh controller that reads the route) whose Accepted is
// False (RouteNotAccepted, an error: the route is not in effect on that mesh) or whose ResolvedRefs
// is False (RouteRefsNotResolved, a warning: the rest of the route is). A route without entries,
// which is what many meshes write, reports nothing: nothing is known of it. route is an
// HTTPRoute, GRPCRoute or TCPRoute as the cluster has it; other kinds report nothing.
func RouteStatus(source mesh.ObjectRef, route client.Object) []mesh.Diagnostic {
	kind, parents, status := routeParts(route)
	var diags mesh.Diagnostics
	for _, entry := range status.Parents {
		parent, ok := specParent(parents, entry.ParentRef, route.GetNamespace())
		if !ok {
			continue
		}
		about := fmt.Sprintf("%s %q (parent Service %q port %d)", kind, route.GetName(), parent.Name, ptr.Deref(parent.Port, 0))
		for _, c := range entry.Conditions {
			// A verdict on an older generation is about a spec the route no longer has (we rewrote
			// it since, and the mesh has not looked again): reporting it would keep a refusal
			// that the new spec may have fixed, or hide nothing that the mesh will not say again.
			// It is left out, as if the mesh had written nothing yet; the mesh's verdict on the
			// current spec is a status change, which reconciles the split. An observedGeneration
			// of 0 is one the mesh did not set: the verdict is all there is, and counts.
			if c.Status != metav1.ConditionFalse || (c.ObservedGeneration != 0 && c.ObservedGeneration < route.GetGeneration()) {
				continue
			}
			switch gatewayv1.RouteConditionType(c.Type) {
			case gatewayv1.RouteConditionAccepted:
				diags.Fail(source, smi.ConditionProgrammed, ReasonRouteNotAccepted, "mesh controller %q does not accept %s: %s",
					entry.ControllerName, about, verdict(c))
			case gatewayv1.RouteConditionResolvedRefs:
				diags.Warn(source, smi.ConditionResolvedRefs, ReasonRouteRefsNotResolved, "mesh controller %q does not resolve every reference of %s: %s",
					entry.ControllerName, about, verdict(c))
			}
		}
	}
	return diags.Sorted()
}

// routeParts returns the kind, the spec's parents and the status of a route of the kinds the
// translator writes.
func routeParts(route client.Object) (kind string, parents []gatewayv1.ParentReference, status gatewayv1.RouteStatus) {
	switch r := route.(type) {
	case *gatewayv1.HTTPRoute:
		return "HTTPRoute", r.Spec.ParentRefs, r.Status.RouteStatus
	case *gatewayv1.GRPCRoute:
		return "GRPCRoute", r.Spec.ParentRefs, r.Status.RouteStatus
	case *gatewayv1.TCPRoute:
		return "TCPRoute", r.Spec.ParentRefs, r.Status.RouteStatus
	}
	return "", nil, gatewayv1.RouteStatus{}
}

// specParent finds the Service parent of the spec that a status entry's parentRef stands for:
// the same Service (group "" and kind Service, which the Gateway API does not default to), in
// the same namespace (the route's when unset), and the same port when the entry names one.
func specParent(parents []gatewayv1.ParentReference, ref gatewayv1.ParentReference, namespace string) (gatewayv1.ParentReference, bool) {
	for _, p := range parents {
		if isService(p) && isService(ref) && p.Name == ref.Name &&
			namespaceOf(p, namespace) == namespaceOf(ref, namespace) &&
			(ref.Port == nil || p.Port != nil && *p.Port == *ref.Port) {
			return p, true
		}
	}
	return gatewayv1.ParentReference{}, false
}

// isService says whether ref names a Service: group and kind unset mean a Gateway.
func isService(ref gatewayv1.ParentReference) bool {
	return ref.Group != nil && *ref.Group == "" && ref.Kind != nil && *ref.Kind == serviceKind
}

func namespaceOf(ref gatewayv1.ParentReference, routeNamespace string) string {
	if ref.Namespace == nil {
		return routeNamespace
	}
	return string(*ref.Namespace)
}

// verdict is a mesh's reason and message, as it wrote them.
func verdict(c metav1.Condition) string {
	if c.Message == "" {
		return c.Reason
	}
	return c.Reason + ": " + c.Message
}

package gamma

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

func TestRouteStatus(t *testing.T) {
	split := mesh.ObjectRef{Kind: smi.TrafficSplitKind, Namespace: "shop", Name: "web"}
	apex := gatewayv1.ParentReference{Group: ptr.To(gatewayv1.Group("")), Kind: ptr.To(gatewayv1.Kind("Service")), Name: "web", Port: ptr.To(gatewayv1.PortNumber(80))}
	const generation = 3
	condition := func(typ string, status metav1.ConditionStatus, reason, message string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: message, ObservedGeneration: generation}
	}
	notAccepted := condition("Accepted", metav1.ConditionFalse, "NotAllowedByListeners", "no route to this Service")
	accepted := condition("Accepted", metav1.ConditionTrue, "Accepted", "")
	unresolved := condition("ResolvedRefs", metav1.ConditionFalse, "BackendNotFound", "web-v2 is unknown")
	entry := func(ref gatewayv1.ParentReference, controller string, conds ...metav1.Condition) gatewayv1.RouteParentStatus {
		return gatewayv1.RouteParentStatus{ParentRef: ref, ControllerName: gatewayv1.GatewayController(controller), Conditions: conds}
	}
	httpRoute := func(parents ...gatewayv1.RouteParentStatus) client.Object {
		r := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-80", Generation: generation}}
		r.Spec.ParentRefs = []gatewayv1.ParentReference{apex}
		r.Status.Parents = parents
		return r
	}
	refused := mesh.Diagnostic{Object: split, Condition: smi.ConditionProgrammed, Reason: ReasonRouteNotAccepted, Severity: mesh.SeverityError,
		Message: `mesh controller "example.com/mesh" does not accept HTTPRoute "web-80" (parent Service "web" port 80): NotAllowedByListeners: no route to this Service`}
	withPort := func(ref gatewayv1.ParentReference, port *gatewayv1.PortNumber) gatewayv1.ParentReference {
		ref.Port = port
		return ref
	}

	tests := []struct {
		name  string
		route client.Object
		want  []mesh.Diagnostic
	}{
		{"no status: the mesh writes none", httpRoute(), nil},
		{"accepted", httpRoute(entry(apex, "example.com/mesh", accepted, condition("ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs", ""))), nil},
		{"not accepted", httpRoute(entry(apex, "example.com/mesh", notAccepted)), []mesh.Diagnostic{refused}},
		{"references not resolved", httpRoute(entry(apex, "example.com/mesh", accepted, unresolved)), []mesh.Diagnostic{{
			Object: split, Condition: smi.ConditionResolvedRefs, Reason: ReasonRouteRefsNotResolved, Severity: mesh.SeverityWarning,
			Message: `mesh controller "example.com/mesh" does not resolve every reference of HTTPRoute "web-80" (parent Service "web" port 80): BackendNotFound: web-v2 is unknown`,
		}}},
		{"a verdict pending (Unknown) says nothing yet", httpRoute(entry(apex, "example.com/mesh", condition("Accepted", metav1.ConditionUnknown, "Pending", ""))), nil},
		{"a verdict on an older generation is not the current one's", httpRoute(entry(apex, "example.com/mesh", func() metav1.Condition {
			c := notAccepted
			c.ObservedGeneration = generation - 1
			return c
		}())), nil},
		{"a verdict without observedGeneration counts", httpRoute(entry(apex, "example.com/mesh", func() metav1.Condition {
			c := notAccepted
			c.ObservedGeneration = 0
			return c
		}())), []mesh.Diagnostic{refused}},
		{"an entry without a port stands for every port of the Service", httpRoute(entry(withPort(apex, nil), "example.com/mesh", notAccepted)),
			[]mesh.Diagnostic{refused}},
		{"an entry for another port is not this route's", httpRoute(entry(withPort(apex, ptr.To(gatewayv1.PortNumber(8080))), "example.com/mesh", notAccepted)), nil},
		{"an entry for a Gateway (the default group and kind) is not the apex's", httpRoute(entry(gatewayv1.ParentReference{Name: "web"}, "example.com/gateway", notAccepted)), nil},
		{"an entry for a Service of another namespace is not the apex's", httpRoute(entry(func() gatewayv1.ParentReference {
			ref := apex
			ref.Namespace = ptr.To(gatewayv1.Namespace("other"))
			return ref
		}(), "example.com/mesh", notAccepted)), nil},
		{"an entry naming the route's namespace is the apex's", httpRoute(entry(func() gatewayv1.ParentReference {
			ref := apex
			ref.Namespace = ptr.To(gatewayv1.Namespace("shop"))
			return ref
		}(), "example.com/mesh", notAccepted)), []mesh.Diagnostic{refused}},
		{"each mesh that refuses is named", httpRoute(entry(apex, "example.com/mesh", notAccepted), entry(apex, "example.com/other", accepted, unresolved)),
			[]mesh.Diagnostic{refused, {
				Object: split, Condition: smi.ConditionResolvedRefs, Reason: ReasonRouteRefsNotResolved, Severity: mesh.SeverityWarning,
				Message: `mesh controller "example.com/other" does not resolve every reference of HTTPRoute "web-80" (parent Service "web" port 80): BackendNotFound: web-v2 is unknown`,
			}}},
		{"a GRPCRoute", func() client.Object {
			r := &gatewayv1.GRPCRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-80", Generation: generation}}
			r.Spec.ParentRefs = []gatewayv1.ParentReference{apex}
			r.Status.Parents = []gatewayv1.RouteParentStatus{entry(apex, "example.com/mesh", condition("Accepted", metav1.ConditionFalse, "UnsupportedValue", ""))}
			return r
		}(), []mesh.Diagnostic{{Object: split, Condition: smi.ConditionProgrammed, Reason: ReasonRouteNotAccepted, Severity: mesh.SeverityError,
			Message: `mesh controller "example.com/mesh" does not accept GRPCRoute "web-80" (parent Service "web" port 80): UnsupportedValue`}}},
		{"a TCPRoute", func() client.Object {
			r := &gatewayv1.TCPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-80", Generation: generation}}
			r.Spec.ParentRefs = []gatewayv1.ParentReference{apex}
			r.Status.Parents = []gatewayv1.RouteParentStatus{entry(apex, "example.com/mesh", notAccepted)}
			return r
		}(), []mesh.Diagnostic{{Object: split, Condition: smi.ConditionProgrammed, Reason: ReasonRouteNotAccepted, Severity: mesh.SeverityError,
			Message: `mesh controller "example.com/mesh" does not accept TCPRoute "web-80" (parent Service "web" port 80): NotAllowedByListeners: no route to this Service`}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, RouteStatus(split, tc.route)); diff != "" {
				t.Errorf("RouteStatus (-want +got):\n%s", diff)
			}
		})
	}
}

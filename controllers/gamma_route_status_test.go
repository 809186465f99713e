package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	gammabackend "github.com/smi-operator/smi-operator/controllers/backends/gamma"
	"github.com/smi-operator/smi-operator/test/testenv"
	gammatranslator "github.com/smi-operator/smi-operator/translators/gamma"
)

// meshController is the controllerName the tests' simulated mesh writes route status as.
const meshController = "example.com/mesh"

// TestGammaBackendRouteStatus: a mesh that refuses the split's HTTPRoute (its status entry for the
// apex Service says Accepted=False, as a mesh controller writes it) makes the split
// Programmed=False RouteNotAccepted, naming the route, the controller and the mesh's reason and
// message; a reference the mesh does not resolve makes it ResolvedRefs=False RouteRefsNotResolved;
// the mesh accepting the route again makes the split Programmed and ResolvedRefs again.
func TestGammaBackendRouteStatus(t *testing.T) {
	g := NewWithT(t)
	run := runOperator(t, g, nil)
	c, ctx, split, env := run.c, run.ctx, run.split, run.env
	g.Expect(testenv.InstallGatewayAPICRDs(env.Config, testenv.GatewayAPIStandard)).To(Succeed())
	op := &v1alpha1.SMIOperator{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SingletonName}, Spec: v1alpha1.SMIOperatorSpec{Backend: gammabackend.Name}}
	g.Expect(c.Create(ctx, op)).To(Succeed())
	g.Eventually(activeBackend(ctx, g, c), 30*time.Second).Should(Equal(gammabackend.Name))
	route := client.ObjectKey{Namespace: runShopNS, Name: "web-80"}
	g.Eventually(func() error { return c.Get(ctx, route, &gatewayv1.HTTPRoute{}) }, 30*time.Second).Should(Succeed())
	programmed := splitCondition(ctx, g, c, split, smi.ConditionProgrammed)
	resolved := splitCondition(ctx, g, c, split, smi.ConditionResolvedRefs)
	g.Eventually(programmed, 30*time.Second).Should(HaveField("Status", metav1.ConditionTrue))

	writeRouteStatus(ctx, g, c, route, metav1.Condition{Type: string(gatewayv1.RouteConditionAccepted), Status: metav1.ConditionFalse,
		Reason: string(gatewayv1.RouteReasonNotAllowedByListeners), Message: "the mesh takes no route to this Service"})
	g.Eventually(programmed, 30*time.Second).Should(And(HaveField("Status", metav1.ConditionFalse),
		HaveField("Reason", gammatranslator.ReasonRouteNotAccepted),
		HaveField("Message", And(ContainSubstring(`HTTPRoute "web-80"`), ContainSubstring(meshController),
			ContainSubstring("NotAllowedByListeners"), ContainSubstring("the mesh takes no route to this Service")))))

	writeRouteStatus(ctx, g, c, route,
		metav1.Condition{Type: string(gatewayv1.RouteConditionAccepted), Status: metav1.ConditionTrue, Reason: string(gatewayv1.RouteReasonAccepted)},
		metav1.Condition{Type: string(gatewayv1.RouteConditionResolvedRefs), Status: metav1.ConditionFalse,
			Reason: string(gatewayv1.RouteReasonBackendNotFound), Message: "web-v2 has no endpoints the mesh knows"})
	g.Eventually(resolved, 30*time.Second).Should(And(HaveField("Status", metav1.ConditionFalse),
		HaveField("Reason", gammatranslator.ReasonRouteRefsNotResolved),
		HaveField("Message", And(ContainSubstring(`HTTPRoute "web-80"`), ContainSubstring(meshController), ContainSubstring("BackendNotFound")))))
	g.Expect(programmed()).To(HaveField("Status", metav1.ConditionTrue), "a reference the mesh does not resolve leaves the rest of the route in effect")

	writeRouteStatus(ctx, g, c, route,
		metav1.Condition{Type: string(gatewayv1.RouteConditionAccepted), Status: metav1.ConditionTrue, Reason: string(gatewayv1.RouteReasonAccepted)},
		metav1.Condition{Type: string(gatewayv1.RouteConditionResolvedRefs), Status: metav1.ConditionTrue, Reason: string(gatewayv1.RouteReasonResolvedRefs)})
	g.Eventually(resolved, 30*time.Second).Should(HaveField("Status", metav1.ConditionTrue))
	g.Expect(programmed()).To(HaveField("Status", metav1.ConditionTrue))
}

// splitCondition returns a func reading the split's condition of type typ (nil until it has one).
func splitCondition(ctx context.Context, g Gomega, c client.Client, split *hub.TrafficSplit, typ string) func() *metav1.Condition {
	return func() *metav1.Condition {
		got := &hub.TrafficSplit{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(split), got)).To(Succeed())
		return meta.FindStatusCondition(got.Status.Conditions, typ)
	}
}

// writeRouteStatus writes the HTTPRoute's status as a mesh controller (meshController) does: one
// parent entry, for the apex Service port the route names, with conds observed at the route's
// current generation.
func writeRouteStatus(ctx context.Context, g Gomega, c client.Client, key client.ObjectKey, conds ...metav1.Condition) {
	g.Eventually(func() error {
		route := &gatewayv1.HTTPRoute{}
		if err := c.Get(ctx, key, route); err != nil {
			return err
		}
		for i := range conds {
			conds[i].ObservedGeneration, conds[i].LastTransitionTime = route.Generation, metav1.Now()
		}
		route.Status.Parents = []gatewayv1.RouteParentStatus{{
			ParentRef: gatewayv1.ParentReference{Group: ptr.To(gatewayv1.Group("")), Kind: ptr.To(gatewayv1.Kind("Service")),
				Name: route.Spec.ParentRefs[0].Name, Port: route.Spec.ParentRefs[0].Port},
			ControllerName: meshController,
			Conditions:     conds,
		}}
		return c.Status().Update(ctx, route)
	}).Should(Succeed())
}

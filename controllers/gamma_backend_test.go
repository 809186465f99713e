package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	gammabackend "github.com/smi-operator/smi-operator/controllers/backends/gamma"
	"github.com/smi-operator/smi-operator/controllers/smioperator"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// TestGammaBackend: asked for while the cluster serves no Gateway API, the gamma backend says why
// (Ready=False BackendUnavailable) and the operator keeps running; once the Gateway API CRDs
// (standard channel) are installed it is picked up (within smioperator.UnavailableRetry), writes
// the split's HTTPRoute (the apex as parent, the split's weights, controlled by the split) and
// reports the split Programmed, and a TrafficTarget Programmed=False, saying access is not
// enforced (gamma.ReasonAccessNotEnforced's message; the reason is the first diagnostic's, here
// mesh's NoWorkloads warning).
func TestGammaBackend(t *testing.T) {
	g := NewWithT(t)
	run := runOperator(t, g, nil) // the gamma backend is built in
	c, ctx, split, env := run.c, run.ctx, run.split, run.env
	const ns = runShopNS
	target := &hub.TrafficTarget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: accessv1alpha3.TrafficTargetSpec{
			Destination: accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: "web", Namespace: ns},
			Sources:     []accessv1alpha3.IdentityBindingSubject{{Kind: "ServiceAccount", Name: "client", Namespace: ns}},
			Rules:       []accessv1alpha3.TrafficTargetRule{{Kind: smi.TCPRouteKind, Name: "web"}},
		},
	}
	g.Expect(c.Create(ctx, target)).To(Succeed())
	op := &v1alpha1.SMIOperator{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SingletonName}, Spec: v1alpha1.SMIOperatorSpec{Backend: gammabackend.Name}}
	g.Expect(c.Create(ctx, op)).To(Succeed())

	ready := func() *metav1.Condition {
		got := &v1alpha1.SMIOperator{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(op), got)).To(Succeed())
		return meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
	}
	g.Eventually(ready, 30*time.Second).Should(And(Not(BeNil()), HaveField("Reason", v1alpha1.ReasonBackendUnavailable),
		HaveField("Message", ContainSubstring("does not serve gateway.networking.k8s.io"))))

	g.Expect(testenv.InstallGatewayAPICRDs(env.Config, testenv.GatewayAPIStandard)).To(Succeed())
	g.Eventually(func() v1alpha1.Backend {
		got := &v1alpha1.SMIOperator{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(op), got)).To(Succeed())
		if !meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionReady) {
			return ""
		}
		return got.Status.ActiveBackend
	}, smioperator.UnavailableRetry+30*time.Second).Should(Equal(gammabackend.Name))

	route := &gatewayv1.HTTPRoute{}
	g.Eventually(func() error { return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-80"}, route) }).Should(Succeed())
	g.Expect(metav1.IsControlledBy(route, splitOf(ctx, g, c, split))).To(BeTrue(), "the route is not controlled by the split")
	g.Expect(route.Spec.ParentRefs).To(HaveLen(1))
	g.Expect(string(route.Spec.ParentRefs[0].Name)).To(Equal("web"))
	weights := map[string]int32{}
	for _, ref := range route.Spec.Rules[0].BackendRefs {
		weights[string(ref.Name)] = *ref.Weight
	}
	g.Expect(weights).To(Equal(map[string]int32{"web-v1": 90, "web-v2": 10}))

	condition := func(obj client.Object, conditions func() []metav1.Condition) func() *metav1.Condition {
		return func() *metav1.Condition {
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
			return meta.FindStatusCondition(conditions(), smi.ConditionProgrammed)
		}
	}
	g.Eventually(condition(split, func() []metav1.Condition { return split.Status.Conditions })).
		Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionTrue)))
	g.Eventually(condition(target, func() []metav1.Condition { return target.Status.Conditions })).
		Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionFalse), HaveField("Message", ContainSubstring("enforces no access policy"))))
}

// splitOf returns the split as stored, with its UID.
func splitOf(ctx context.Context, g Gomega, c client.Client, split *hub.TrafficSplit) *hub.TrafficSplit {
	got := &hub.TrafficSplit{}
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(split), got)).To(Succeed())
	return got
}

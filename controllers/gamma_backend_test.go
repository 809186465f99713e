package controllers_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
	target := webTarget(ns)
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
	g.Eventually(activeBackend(ctx, g, c), smioperator.UnavailableRetry+30*time.Second).Should(Equal(gammabackend.Name))

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
	// The default access policy, none, writes no Istio access object, though Istio's CRDs are served.
	g.Consistently(accessObjectsIn(ctx, g, c, ns), 2*time.Second).Should(BeEmpty())
}

// TestGammaBackendIstioAccess: with spec.gamma.accessPolicy istio, the gamma backend writes the
// TrafficTarget's AuthorizationPolicies (and the namespace's allow-nothing baseline) exactly as the
// Istio backend, and so Istio's translator, does: swapping to the Istio backend and back rewrites
// and deletes none of them (same UIDs, same specs), though the Istio backend's Clean deletes its
// VirtualServices. Setting
// the policy to none deletes them and the target reports access not enforced; swapping from
// gamma with istio to another backend deletes them too (the gamma backend's Clean).
func TestGammaBackendIstioAccess(t *testing.T) {
	g := NewWithT(t)
	run := runOperator(t, g, nil)
	c, ctx, env := run.c, run.ctx, run.env
	const ns = runShopNS
	g.Expect(testenv.InstallGatewayAPICRDs(env.Config, testenv.GatewayAPIStandard)).To(Succeed())
	// Istio's policies select workloads: a target's is written once one runs as its destination.
	labels := map[string]string{"app": "web"}
	web := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			ServiceAccountName: "web", Containers: []corev1.Container{{Name: "web", Image: "example.com/web"}},
		}},
	}}
	g.Expect(c.Create(ctx, web)).To(Succeed())
	g.Expect(c.Create(ctx, &hub.TCPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}})).To(Succeed())
	target := webTarget(ns)
	g.Expect(c.Create(ctx, target)).To(Succeed())
	op := &v1alpha1.SMIOperator{
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SingletonName},
		Spec:       v1alpha1.SMIOperatorSpec{Backend: gammabackend.Name, Gamma: v1alpha1.GammaSpec{AccessPolicy: v1alpha1.GammaAccessPolicyIstio}},
	}
	g.Expect(c.Create(ctx, op)).To(Succeed())
	active := activeBackend(ctx, g, c)
	objects := accessObjectsIn(ctx, g, c, ns)
	targetStatus := func() *metav1.Condition {
		got := &hub.TrafficTarget{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(target), got)).To(Succeed())
		return meta.FindStatusCondition(got.Status.Conditions, smi.ConditionProgrammed)
	}

	// gamma with istio: the target's AuthorizationPolicy and the baseline, the target programmed.
	g.Eventually(active, 30*time.Second).Should(Equal(gammabackend.Name))
	g.Eventually(objects, 30*time.Second).Should(HaveKey("AuthorizationPolicy/smi-default-deny"))
	g.Eventually(objects, 30*time.Second).Should(ContainElement(HaveField("Controller", "TrafficTarget/web")))
	g.Eventually(targetStatus, 30*time.Second).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionTrue)))
	written := objects()

	// → istio: the Istio backend finds every object as it would write it. Nothing is rewritten or
	// deleted, not even while the gamma backend is retired.
	setBackend(ctx, g, c, op, v1alpha1.BackendIstio)
	g.Eventually(active, 30*time.Second).Should(Equal(v1alpha1.BackendIstio))
	g.Eventually(gammaRoutesIn(ctx, g, c, ns), 30*time.Second).Should(BeEmpty(), "the gamma backend's Clean left its routes")
	g.Expect(objects()).To(Equal(written))

	// → gamma with istio again: the Istio backend's Clean deletes its VirtualService, not the
	// access objects the gamma backend writes.
	setBackend(ctx, g, c, op, gammabackend.Name)
	g.Eventually(active, 30*time.Second).Should(Equal(gammabackend.Name))
	g.Eventually(func() int {
		list := &networkingv1.VirtualServiceList{}
		g.Expect(c.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		return len(list.Items)
	}, 30*time.Second).Should(BeZero(), "the Istio backend's Clean left its VirtualService")
	g.Expect(objects()).To(Equal(written))

	// accessPolicy none: every access object goes, and stays gone; the target says why.
	setGammaAccessPolicy(ctx, g, c, op, v1alpha1.GammaAccessPolicyNone)
	g.Eventually(active, 30*time.Second).Should(Equal(gammabackend.Name))
	g.Eventually(objects, 30*time.Second).Should(BeEmpty())
	g.Eventually(targetStatus, 30*time.Second).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionFalse),
		HaveField("Message", ContainSubstring("enforces no access policy"))))
	g.Consistently(objects, 2*time.Second).Should(BeEmpty())

	// istio again, then away from gamma: the gamma backend's Clean deletes what it wrote.
	setGammaAccessPolicy(ctx, g, c, op, v1alpha1.GammaAccessPolicyIstio)
	g.Eventually(objects, 30*time.Second).Should(HaveLen(len(written)))
	g.Eventually(targetStatus, 30*time.Second).Should(HaveField("Status", metav1.ConditionTrue))
	setXDSBackend(ctx, g, c, op, freePort(g))
	g.Eventually(active, 30*time.Second).Should(Equal(v1alpha1.BackendXDS))
	g.Eventually(objects, 30*time.Second).Should(BeEmpty())
	g.Eventually(gammaRoutesIn(ctx, g, c, ns), 30*time.Second).Should(BeEmpty())
}

// TestGammaBackendIstioAccessNotServed: accessPolicy istio where Istio's security CRDs are not
// served is BackendUnavailable, saying what to install or change; accessPolicy none then runs.
func TestGammaBackendIstioAccessNotServed(t *testing.T) {
	g := NewWithT(t)
	run := runOperatorOn(t, g, testenv.Options{WithoutIstioCRDs: true}, nil)
	c, ctx, env := run.c, run.ctx, run.env
	g.Expect(testenv.InstallGatewayAPICRDs(env.Config, testenv.GatewayAPIStandard)).To(Succeed())
	expectAccessUnavailableUntilNone(ctx, g, c, v1alpha1.GammaAccessPolicyIstio, "security.istio.io")
}

// expectAccessUnavailableUntilNone creates the SMIOperator with backend gamma and accessPolicy
// policy, whose kinds (of group) the cluster does not serve, and checks that it is
// BackendUnavailable, saying what to install or change, and that accessPolicy none then runs.
func expectAccessUnavailableUntilNone(ctx context.Context, g Gomega, c client.Client, policy v1alpha1.GammaAccessPolicy, group string) {
	op := &v1alpha1.SMIOperator{
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SingletonName},
		Spec:       v1alpha1.SMIOperatorSpec{Backend: gammabackend.Name, Gamma: v1alpha1.GammaSpec{AccessPolicy: policy}},
	}
	g.Expect(c.Create(ctx, op)).To(Succeed())
	g.Eventually(func() *metav1.Condition {
		got := &v1alpha1.SMIOperator{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(op), got)).To(Succeed())
		return meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
	}, 30*time.Second).Should(And(Not(BeNil()), HaveField("Reason", v1alpha1.ReasonBackendUnavailable),
		HaveField("Message", And(ContainSubstring("does not serve "+group), ContainSubstring("spec.gamma.accessPolicy to none")))))

	setGammaAccessPolicy(ctx, g, c, op, v1alpha1.GammaAccessPolicyNone)
	g.Eventually(activeBackend(ctx, g, c), 30*time.Second).Should(Equal(gammabackend.Name))
}

// webTarget is the TrafficTarget ns/web: ServiceAccount client may reach ServiceAccount web over
// the TCPRoute web.
func webTarget(ns string) *hub.TrafficTarget {
	return &hub.TrafficTarget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: accessv1alpha3.TrafficTargetSpec{
			Destination: accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: "web", Namespace: ns},
			Sources:     []accessv1alpha3.IdentityBindingSubject{{Kind: "ServiceAccount", Name: "client", Namespace: ns}},
			Rules:       []accessv1alpha3.TrafficTargetRule{{Kind: smi.TCPRouteKind, Name: "web"}},
		},
	}
}

// activeBackend returns a func that reads the SMIOperator's active backend once it is Ready for
// its current generation ("" until then).
func activeBackend(ctx context.Context, g Gomega, c client.Client) func() v1alpha1.Backend {
	return func() v1alpha1.Backend {
		got := &v1alpha1.SMIOperator{}
		g.Expect(c.Get(ctx, client.ObjectKey{Name: v1alpha1.SingletonName}, got)).To(Succeed())
		ready := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != got.Generation {
			return ""
		}
		return got.Status.ActiveBackend
	}
}

// editSpec changes the SMIOperator's spec with edit, retrying on conflicts.
func editSpec(ctx context.Context, g Gomega, c client.Client, op *v1alpha1.SMIOperator, edit func(*v1alpha1.SMIOperatorSpec)) {
	g.Eventually(func() error {
		got := &v1alpha1.SMIOperator{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(op), got); err != nil {
			return err
		}
		edit(&got.Spec)
		return c.Update(ctx, got)
	}).Should(Succeed())
}

func setGammaAccessPolicy(ctx context.Context, g Gomega, c client.Client, op *v1alpha1.SMIOperator, policy v1alpha1.GammaAccessPolicy) {
	editSpec(ctx, g, c, op, func(spec *v1alpha1.SMIOperatorSpec) { spec.Gamma.AccessPolicy = policy })
}

// setXDSBackend selects the xDS backend, in plain text on port, without a grace period.
func setXDSBackend(ctx context.Context, g Gomega, c client.Client, op *v1alpha1.SMIOperator, port int32) {
	editSpec(ctx, g, c, op, func(spec *v1alpha1.SMIOperatorSpec) {
		spec.Backend = v1alpha1.BackendXDS
		spec.XDS = v1alpha1.XDSSpec{Port: port, InsecurePlaintext: true, SwapGracePeriod: &metav1.Duration{}}
	})
}

// accessObject is what a swap must keep of an Istio access object: the same object (UID), with
// the same spec, controlled by the same source.
type accessObject struct {
	UID        types.UID
	Spec       string
	Controller string
}

// accessObjectsIn returns a func listing the Istio access objects the operator generated in ns
// (AuthorizationPolicies and PeerAuthentications) by "<kind>/<name>".
func accessObjectsIn(ctx context.Context, g Gomega, c client.Client, ns string) func() map[string]accessObject {
	generated := []client.ListOption{client.InNamespace(ns), client.MatchingLabels{smi.LabelManagedBy: smi.ManagedByValue}}
	return func() map[string]accessObject {
		out := map[string]accessObject{}
		add := func(kind string, obj client.Object, spec any) {
			data, err := json.Marshal(spec)
			g.Expect(err).NotTo(HaveOccurred())
			controller := ""
			if ref := metav1.GetControllerOf(obj); ref != nil {
				controller = ref.Kind + "/" + ref.Name
			}
			out[kind+"/"+obj.GetName()] = accessObject{UID: obj.GetUID(), Spec: string(data), Controller: controller}
		}
		policies := &securityv1.AuthorizationPolicyList{}
		g.Expect(c.List(ctx, policies, generated...)).To(Succeed())
		for _, p := range policies.Items {
			add("AuthorizationPolicy", p, &p.Spec)
		}
		peers := &securityv1.PeerAuthenticationList{}
		g.Expect(c.List(ctx, peers, generated...)).To(Succeed())
		for _, p := range peers.Items {
			add("PeerAuthentication", p, &p.Spec)
		}
		return out
	}
}

// gammaRoutesIn returns a func listing the names of the HTTPRoutes in ns.
func gammaRoutesIn(ctx context.Context, g Gomega, c client.Client, ns string) func() []string {
	return func() []string {
		list := &gatewayv1.HTTPRouteList{}
		g.Expect(c.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		var names []string
		for _, r := range list.Items {
			names = append(names, r.Name)
		}
		return names
	}
}

// splitOf returns the split as stored, with its UID.
func splitOf(ctx context.Context, g Gomega, c client.Client, split *hub.TrafficSplit) *hub.TrafficSplit {
	got := &hub.TrafficSplit{}
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(split), got)).To(Succeed())
	return got
}

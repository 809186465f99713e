package controllers_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/apis/linkerd"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	gammabackend "github.com/smi-operator/smi-operator/controllers/backends/gamma"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// TestGammaBackendLinkerdAccess: with spec.gamma.accessPolicy linkerd, a TrafficTarget gets its
// Server, MeshTLSAuthentication and AuthorizationPolicy, controlled by it, and is programmed;
// a second target of the destination shares its Server, and writes it again once the first target
// is deleted; setting the policy to none deletes them, and so does swapping away from gamma. Where Linkerd's CRDs cannot be had
// (testenv.LinkerdPolicyCRDDir), it runs with stand-ins that accept any object of the kinds: what
// the operator writes and deletes is checked all the same, not that Linkerd's schemas accept it.
func TestGammaBackendLinkerdAccess(t *testing.T) {
	g := NewWithT(t)
	run := runOperator(t, g, nil)
	c, ctx, env := run.c, run.ctx, run.env
	const ns = runShopNS
	g.Expect(testenv.InstallGatewayAPICRDs(env.Config, testenv.GatewayAPIStandard)).To(Succeed())
	real, err := testenv.InstallLinkerdPolicyCRDsOrStandIns(env.Config)
	g.Expect(err).NotTo(HaveOccurred())
	if !real {
		t.Log("Linkerd's CRDs cannot be had here: stand-ins accepting any object of the kinds are installed")
	}
	// The target's TCPRoute names no port: every port, which a Server can only be of as declared.
	labels := map[string]string{"app": "web"}
	web := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			ServiceAccountName: "web", Containers: []corev1.Container{{Name: "web", Image: "example.com/web", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}},
		}},
	}}
	g.Expect(c.Create(ctx, web)).To(Succeed())
	g.Expect(c.Create(ctx, &hub.TCPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}})).To(Succeed())
	target := webTarget(ns)
	g.Expect(c.Create(ctx, target)).To(Succeed())
	op := &v1alpha1.SMIOperator{
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SingletonName},
		Spec:       v1alpha1.SMIOperatorSpec{Backend: gammabackend.Name, Gamma: v1alpha1.GammaSpec{AccessPolicy: v1alpha1.GammaAccessPolicyLinkerd}},
	}
	g.Expect(c.Create(ctx, op)).To(Succeed())
	objects := func() map[string]string {
		out := map[string]string{}
		generated := []client.ListOption{client.InNamespace(ns), client.MatchingLabels{smi.LabelManagedBy: smi.ManagedByValue}}
		for _, list := range gammabackend.LinkerdLists() {
			g.Expect(c.List(ctx, list, generated...)).To(Succeed())
			items, err := meta.ExtractList(list)
			g.Expect(err).NotTo(HaveOccurred())
			for _, item := range items {
				obj := item.(client.Object)
				controller := ""
				if ref := metav1.GetControllerOf(obj); ref != nil {
					controller = ref.Kind + "/" + ref.Name
				}
				kind, err := c.GroupVersionKindFor(obj)
				g.Expect(err).NotTo(HaveOccurred())
				out[kind.Kind+"/"+obj.GetName()] = controller
			}
		}
		return out
	}

	g.Eventually(activeBackend(ctx, g, c), 30*time.Second).Should(Equal(gammabackend.Name))
	g.Eventually(objects, 30*time.Second).Should(Equal(map[string]string{
		linkerd.ServerKind + "/deployment-web-8080":                  "TrafficTarget/web",
		linkerd.MeshTLSAuthenticationKind + "/web":                   "TrafficTarget/web",
		linkerd.AuthorizationPolicyKind + "/web-deployment-web-8080": "TrafficTarget/web",
	}))

	// A second target of the same destination shares its Server, which the first controls; when
	// the first goes, the second writes the Server again, controlled by it.
	second := webTarget(ns)
	second.Name = "web-2"
	second.Spec.Sources[0].Name = "other"
	g.Expect(c.Create(ctx, second)).To(Succeed())
	g.Eventually(objects, 30*time.Second).Should(Equal(map[string]string{
		linkerd.ServerKind + "/deployment-web-8080":                    "TrafficTarget/web",
		linkerd.MeshTLSAuthenticationKind + "/web":                     "TrafficTarget/web",
		linkerd.AuthorizationPolicyKind + "/web-deployment-web-8080":   "TrafficTarget/web",
		linkerd.MeshTLSAuthenticationKind + "/web-2":                   "TrafficTarget/web-2",
		linkerd.AuthorizationPolicyKind + "/web-2-deployment-web-8080": "TrafficTarget/web-2",
	}))
	g.Expect(c.Delete(ctx, target)).To(Succeed())
	g.Eventually(objects, 30*time.Second).Should(Equal(map[string]string{
		linkerd.ServerKind + "/deployment-web-8080":                    "TrafficTarget/web-2",
		linkerd.MeshTLSAuthenticationKind + "/web-2":                   "TrafficTarget/web-2",
		linkerd.AuthorizationPolicyKind + "/web-2-deployment-web-8080": "TrafficTarget/web-2",
	}))

	// none: every Linkerd object goes; the target says access is not enforced.
	setGammaAccessPolicy(ctx, g, c, op, v1alpha1.GammaAccessPolicyNone)
	g.Eventually(objects, 30*time.Second).Should(BeEmpty())
	g.Eventually(func() *metav1.Condition {
		got := &hub.TrafficTarget{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(second), got)).To(Succeed())
		return meta.FindStatusCondition(got.Status.Conditions, smi.ConditionProgrammed)
	}, 30*time.Second).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionFalse)))

	// Back to linkerd, then away from gamma: every Linkerd object goes with the gamma backend.
	setGammaAccessPolicy(ctx, g, c, op, v1alpha1.GammaAccessPolicyLinkerd)
	g.Eventually(objects, 30*time.Second).Should(HaveLen(3))
	setBackend(ctx, g, c, op, v1alpha1.BackendIstio)
	g.Eventually(activeBackend(ctx, g, c), 30*time.Second).Should(Equal(v1alpha1.BackendIstio))
	g.Eventually(objects, 30*time.Second).Should(BeEmpty(), "swapping away from gamma left Linkerd objects")
}

// TestGammaBackendLinkerdAccessNotServed: accessPolicy linkerd where Linkerd's CRDs are not served
// is BackendUnavailable, saying what to install or change; accessPolicy none then runs.
func TestGammaBackendLinkerdAccessNotServed(t *testing.T) {
	g := NewWithT(t)
	run := runOperator(t, g, nil)
	c, ctx, env := run.c, run.ctx, run.env
	g.Expect(testenv.InstallGatewayAPICRDs(env.Config, testenv.GatewayAPIStandard)).To(Succeed())
	expectAccessUnavailableUntilNone(ctx, g, c, v1alpha1.GammaAccessPolicyLinkerd, "policy.linkerd.io")
}

package e2e

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityapi "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SMI: "all traffic is denied by default". The SMI conformance suite checks that traffic is
// blocked before any TrafficTarget exists and after the last one is deleted (istio_test.go checks
// the latter); here, before any, and the scope the namespace selector gives it.
var _ = Describe("Deny-by-default in the namespaces SMI access applies to (Istio backend, enforcing)", func() {
	baseline := func(ctx context.Context, namespace string) func() error {
		return func() error {
			return k8sClient.Get(ctx, types.NamespacedName{Namespace: namespace, Name: "smi-default-deny"}, &securityv1.AuthorizationPolicy{})
		}
	}
	notFound := Satisfy(apierrors.IsNotFound)

	It("denies everything in a selected namespace that holds no TrafficTarget, and keeps it so", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		Eventually(baseline(ctx, ns)).Should(Succeed())
		ap := &securityv1.AuthorizationPolicy{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "smi-default-deny"}, ap)).To(Succeed())
		// Allow-nothing in a form istiod also applies to proxyless gRPC servers (it ignores rule-less
		// policies there): ALLOW, one rule, for a principal nobody has.
		Expect(ap.Spec.GetAction()).To(Equal(securityapi.AuthorizationPolicy_ALLOW))
		Expect(ap.Spec.GetRules()).To(HaveLen(1))
		rule := ap.Spec.GetRules()[0]
		Expect(rule.GetTo()).To(BeEmpty())
		Expect(rule.GetWhen()).To(BeEmpty())
		Expect(rule.GetFrom()).To(HaveLen(1))
		Expect(rule.GetFrom()[0].GetSource().GetPrincipals()).To(Equal([]string{"smi-operator.invalid/nobody"}))
		Expect(ap.Spec.GetSelector()).To(BeNil(), "the policy must select every workload of the namespace")
		Expect(metav1.GetControllerOf(ap)).To(HaveField("Kind", "Namespace"))

		By("writing it again when someone deletes it")
		Expect(k8sClient.Delete(ctx, ap)).To(Succeed())
		Eventually(func() (types.UID, error) {
			again := &securityv1.AuthorizationPolicy{}
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(ap), again)
			return again.UID, err
		}).ShouldNot(Or(BeEmpty(), Equal(ap.UID)))
	})

	It("leaves out the system namespaces and the namespaces the selector does not select, following their labels", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		Eventually(baseline(ctx, ns)).Should(Succeed())
		Consistently(baseline(ctx, "kube-system"), "1s").Should(notFound)

		By("taking the namespace out of the selection")
		setLabel(ctx, ns, accessOffLabel, "off")
		Eventually(baseline(ctx, ns)).Should(notFound)

		By("putting it back")
		setLabel(ctx, ns, accessOffLabel, "")
		Eventually(baseline(ctx, ns)).Should(Succeed())
	})
})

// setLabel sets a namespace's label, or removes it when value is empty.
func setLabel(ctx context.Context, namespace, key, value string) {
	ns := &corev1.Namespace{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Name: namespace}, ns)).To(Succeed())
	patch := client.MergeFrom(ns.DeepCopy())
	if value == "" {
		delete(ns.Labels, key)
	} else {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[key] = value
	}
	Expect(k8sClient.Patch(ctx, ns, patch)).To(Succeed())
}

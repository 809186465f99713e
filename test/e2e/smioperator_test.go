package e2e

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/smioperator"
)

var _ = Describe("SMIOperator status", func() {
	It("reports the backend that runs, counts the SMI objects, and says when another backend is asked for", func(ctx SpecContext) {
		op := &v1alpha1.SMIOperator{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SingletonName},
			Spec: v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendIstio}}
		Expect(k8sClient.Create(ctx, op)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, op))).To(Succeed()) })

		statusOf := func(g Gomega) v1alpha1.SMIOperatorStatus {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(op), op)).To(Succeed())
			g.Expect(op.Status.ObservedGeneration).To(Equal(op.Generation))
			g.Expect(op.Status.SMIObjects).NotTo(BeNil())
			return op.Status
		}
		// The counts are those of the SMI objects in the cluster (other specs' included).
		countsNow := func(g Gomega) v1alpha1.ObjectCounts {
			splits, targets := &hub.TrafficSplitList{}, &hub.TrafficTargetList{}
			g.Expect(k8sClient.List(ctx, splits)).To(Succeed())
			g.Expect(k8sClient.List(ctx, targets)).To(Succeed())
			return smioperator.CountObjects(splits.Items, targets.Items)
		}
		Eventually(func(g Gomega) {
			status := statusOf(g)
			g.Expect(status.ActiveBackend).To(Equal(v1alpha1.BackendIstio))
			g.Expect(meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady)).To(haveStatus(metav1.ConditionTrue, v1alpha1.ReasonBackendReady))
			g.Expect(*status.SMIObjects).To(Equal(countsNow(g)))
		}).Should(Succeed())

		By("a programmed split and a split whose backend is missing")
		ns := newNamespace(ctx)
		create(ctx, ns, service("good", 80)+"---\n"+service("good-v1", 80)+"---\n"+service("bad", 80)+"---\n"+`
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: good}
spec:
  service: good
  backends: [{service: good-v1, weight: 1}]
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: bad}
spec:
  service: bad
  backends: [{service: nowhere, weight: 1}]
`)
		bad := &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"}}
		good := &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "good"}}
		Eventually(condition(ctx, bad, smi.ConditionResolvedRefs)).Should(haveStatus(metav1.ConditionFalse, "BackendNotFound"))
		Eventually(condition(ctx, good, smi.ConditionProgrammed)).Should(haveStatus(metav1.ConditionTrue, "Programmed"))
		// countsNow uses the operator's own CountObjects: literal bounds keep a counting bug from
		// agreeing with itself.
		Eventually(func(g Gomega) {
			status := statusOf(g)
			counts := countsNow(g)
			g.Expect(counts.WithProblems).To(BeNumerically(">=", 1))
			g.Expect(counts.Programmed).To(BeNumerically(">=", 1))
			g.Expect(*status.SMIObjects).To(Equal(counts))
			g.Expect(meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionDegraded)).To(haveStatus(metav1.ConditionTrue, v1alpha1.ReasonObjectsWithProblems))
		}).Should(Succeed())

		By("asking for the xDS backend, which this operator does not run")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(op), op)).To(Succeed())
		op.Spec.Backend = v1alpha1.BackendXDS
		Expect(k8sClient.Update(ctx, op)).To(Succeed())
		Eventually(func(g Gomega) {
			status := statusOf(g)
			g.Expect(status.ActiveBackend).To(Equal(v1alpha1.BackendIstio))
			g.Expect(meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady)).To(haveStatus(metav1.ConditionFalse, v1alpha1.ReasonBackendUnavailable))
		}).Should(Succeed())
	})
})

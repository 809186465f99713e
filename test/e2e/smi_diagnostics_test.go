package e2e

import (
	"context"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// What SMI objects mean is judged once, by the model, whatever the backend; what a backend cannot
// enforce, by it (issue 12, defects 5 and 7). The inputs are translate's own test cases, so the
// cluster is shown to say what translate's golden files say.
var _ = Describe("Diagnostics on the Istio backend", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("reports translate's smi-diagnostics findings, refusing a v1alpha3 TrafficTarget without rules", func(ctx SpecContext) {
		refused, err := testenv.CreateManifests(ctx, k8sClient, "cmd/translate/testdata/smi-diagnostics", ns)
		Expect(err).NotTo(HaveOccurred())
		Expect(refused).To(HaveLen(1))
		Expect(refused["strict"]).To(MatchError(And(ContainSubstring("spec.rules: Required value"),
			ContainSubstring("A valid TrafficTarget must specify a destination, at least one rule, and at least one source"))))

		headless := &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "headless"}}
		Eventually(condition(ctx, headless, smi.ConditionProgrammed)).Should(haveStatus(metav1.ConditionFalse, "NoRoutablePorts"))

		sticky := &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sticky"}}
		Eventually(condition(ctx, sticky, smi.ConditionResolvedRefs)).Should(haveStatus(metav1.ConditionFalse, "SelfReferentialSplit"))
		Eventually(condition(ctx, sticky, smi.ConditionProgrammed)).Should(haveStatus(metav1.ConditionTrue, "Programmed"))
		Expect(condition(ctx, sticky, smi.ConditionAccepted)()).To(haveStatus(metav1.ConditionTrue, "Accepted"))
		Eventually(virtualService(ctx, ns, "sticky")).Should(WithTransform(weights,
			Equal(map[string]int32{fqdn("web", ns): 90, fqdn("web-v2", ns): 10})), "the apex keeps its share")
		Eventually(eventTypes(ctx, ns, "sticky", "SelfReferentialSplit")).Should(Equal([]string{corev1.EventTypeWarning}))

		legacy := &hub.TrafficTarget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "legacy"}}
		Eventually(condition(ctx, legacy, smi.ConditionResolvedRefs)).Should(haveStatus(metav1.ConditionFalse, "NoRules"))
		Eventually(eventTypes(ctx, ns, "legacy", "NoRules")).Should(Equal([]string{corev1.EventTypeWarning}))
	})

	It("admits a v1alpha2 TrafficTarget without rules with a warning naming spec.rules", func(ctx SpecContext) {
		warnings := &warningRecorder{}
		cfg := rest.CopyConfig(env.Config)
		cfg.WarningHandlerWithContext = warnings
		c, err := client.New(cfg, client.Options{Scheme: controllers.NewScheme()})
		Expect(err).NotTo(HaveOccurred())
		target := &unstructured.Unstructured{}
		Expect(yaml.Unmarshal([]byte(`
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: legacy}
spec:
  destination: {kind: ServiceAccount, name: api}
  sources: [{kind: ServiceAccount, name: web}]
`), &target.Object)).To(Succeed())
		target.SetNamespace(ns)
		Expect(c.Create(ctx, target)).To(Succeed())
		Expect(warnings.all()).To(ConsistOf(HavePrefix("spec.rules: no rules, so this TrafficTarget allows no traffic")))
	})

	It("reports UDP rules as not enforced", func(ctx SpecContext) {
		refused, err := testenv.CreateManifests(ctx, k8sClient, "cmd/translate/testdata/udp-not-enforced", ns)
		Expect(err).NotTo(HaveOccurred())
		Expect(refused).To(BeEmpty())
		dns := &hub.TrafficTarget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dns"}}
		Eventually(condition(ctx, dns, smi.ConditionProgrammed)).Should(And(haveStatus(metav1.ConditionFalse, "UDPNotEnforced"),
			WithTransform(func(c *metav1.Condition) string { return c.Message }, ContainSubstring("neither allowed nor denied"))))
	})
})

// eventTypes lists the types of the Events with reason about the object named name in namespace.
func eventTypes(ctx context.Context, namespace, name, reason string) func() []string {
	return func() []string {
		list := &eventsv1.EventList{}
		Expect(k8sClient.List(ctx, list, client.InNamespace(namespace))).To(Succeed())
		var types []string
		for _, e := range list.Items {
			if e.Regarding.Name == name && e.Reason == reason {
				types = append(types, e.Type)
			}
		}
		return types
	}
}

// warningRecorder keeps the warnings the API server sends (admission warnings among them).
type warningRecorder struct {
	mu       sync.Mutex
	messages []string
}

func (w *warningRecorder) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, message string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.messages = append(w.messages, message)
}

func (w *warningRecorder) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.messages...)
}

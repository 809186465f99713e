package e2e

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	istiobackend "github.com/smi-operator/smi-operator/controllers/backends/istio"
	istiotranslator "github.com/smi-operator/smi-operator/translators/istio"
)

// hostObjects returns a function listing the VirtualServices of namespace routing host, and the
// DestinationRules of host, each as "<controller kind>/<name>" ("-/<name>" without controller).
func hostObjects(ctx context.Context, namespace, host string) func() []string {
	return func() []string {
		var out []string
		controller := func(o client.Object) string {
			if ref := metav1.GetControllerOf(o); ref != nil {
				return ref.Kind + "/" + ref.Name
			}
			return "-/" + o.GetName()
		}
		vss := &networkingv1.VirtualServiceList{}
		Expect(k8sClient.List(ctx, vss, client.InNamespace(namespace))).To(Succeed())
		for _, vs := range vss.Items {
			for _, h := range vs.Spec.Hosts {
				if h == host || fqdn(h, namespace) == host {
					out = append(out, "VirtualService "+controller(vs))
				}
			}
		}
		drs := &networkingv1.DestinationRuleList{}
		Expect(k8sClient.List(ctx, drs, client.InNamespace(namespace))).To(Succeed())
		for _, dr := range drs.Items {
			if dr.Spec.Host == host || fqdn(dr.Spec.Host, namespace) == host {
				out = append(out, "DestinationRule "+controller(dr))
			}
		}
		return out
	}
}

// userVirtualService is the YAML of a VirtualService of the user's, name with labels (a YAML
// map, "" for none), routing host to itself, with specFields (YAML lines) besides hosts and http.
func userVirtualService(name, labels, host string, specFields ...string) string {
	meta := "{name: " + name + "}"
	if labels != "" {
		meta = "{name: " + name + ", labels: " + labels + "}"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: %s\nspec:\n  hosts: [%s]\n", meta, host)
	for _, f := range specFields {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	fmt.Fprintf(&b, "  http: [{route: [{destination: {host: %s}}]}]\n", host)
	return b.String()
}

// trafficPolicy is the YAML of a TrafficPolicy named name with targetRef (a YAML map) and
// specFields (YAML lines).
func trafficPolicy(name, targetRef string, specFields ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: policy.smi-operator.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: %s}\nspec:\n  targetRef: %s\n", name, targetRef)
	for _, f := range specFields {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	return b.String()
}

// routeSettings returns, for every http route of the VirtualService but a split's standby route
// (which no request takes and no policy changes), its timeout and retry attempts ("5s/3"; "-/-"
// when unset).
func routeSettings(vs *networkingv1.VirtualService) []string {
	var out []string
	for _, r := range vs.Spec.Http {
		if istiotranslator.IsStandby(r) {
			continue
		}
		timeout, attempts := "-", "-"
		if r.Timeout != nil {
			timeout = r.Timeout.AsDuration().String()
		}
		if r.Retries != nil {
			attempts = fmt.Sprint(r.Retries.Attempts)
		}
		out = append(out, timeout+"/"+attempts)
	}
	return out
}

func policyCondition(ctx context.Context, namespace, name, typ string) func() *metav1.Condition {
	return condition(ctx, &policyv1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}, typ)
}

var _ = Describe("TrafficPolicy on the Istio backend", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("merges a policy on a split's apex into the split's VirtualService, follows its changes and goes with it", func(ctx SpecContext) {
		create(ctx, ns, service("web", 80)+"---\n"+service("web-v1", 80)+"---\n"+service("web-v2", 80)+"---\n"+`
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web}
spec:
  service: web
  backends: [{service: web-v1, weight: 1}, {service: web-v2, weight: 1}]
---
`+trafficPolicy("web-resilience", "{kind: Service, name: web}", "timeout: 2s", "retries: {attempts: 3, retryOn: [unavailable]}", "circuitBreaker: {maxRequests: 10}"))
		host := fqdn("web", ns)
		Eventually(virtualService(ctx, ns, "web")).Should(WithTransform(routeSettings, Equal([]string{"2s/3"})))
		// One VirtualService for the host, the split's; the cluster settings in a DestinationRule
		// of the policy's own (no mtls here, so the split writes none for the apex).
		Eventually(hostObjects(ctx, ns, host)).Should(ConsistOf("VirtualService TrafficSplit/web", "DestinationRule TrafficPolicy/web-resilience"))
		dr := &networkingv1.DestinationRule{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-resilience-trafficpolicy"}, dr)).To(Succeed())
		Expect(dr.Spec.TrafficPolicy.ConnectionPool.Http.Http2MaxRequests).To(Equal(int32(10)))
		Eventually(policyCondition(ctx, ns, "web-resilience", smi.ConditionProgrammed)).Should(haveStatus(metav1.ConditionTrue, "Programmed"))
		Eventually(policyCondition(ctx, ns, "web-resilience", smi.ConditionAccepted)).Should(haveStatus(metav1.ConditionTrue, "Accepted"))

		By("updating the policy")
		policy := &policyv1alpha1.TrafficPolicy{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-resilience"}, policy)).To(Succeed())
		policy.Spec.Timeout = ptr.To[policyv1alpha1.Duration]("5s")
		policy.Spec.CircuitBreaker = nil
		Expect(k8sClient.Update(ctx, policy)).To(Succeed())
		Eventually(virtualService(ctx, ns, "web")).Should(WithTransform(routeSettings, Equal([]string{"5s/3"})))
		Eventually(hostObjects(ctx, ns, host)).Should(ConsistOf("VirtualService TrafficSplit/web"))

		By("deleting the policy")
		Expect(k8sClient.Delete(ctx, policy)).To(Succeed())
		Eventually(virtualService(ctx, ns, "web")).Should(WithTransform(routeSettings, Equal([]string{"-/-"})))
		Expect(hostObjects(ctx, ns, host)()).To(ConsistOf("VirtualService TrafficSplit/web"))
	})

	It("writes a VirtualService of its own for a Service no split routes, and hands over to a split that comes", func(ctx SpecContext) {
		create(ctx, ns, service("api", 80)+"---\n"+service("api-v2", 80)+"---\n"+trafficPolicy("api", "{kind: Service, name: api}", "timeout: 1500ms"))
		host := fqdn("api", ns)
		Eventually(hostObjects(ctx, ns, host)).Should(ConsistOf("VirtualService TrafficPolicy/api"))
		Eventually(virtualService(ctx, ns, "api-trafficpolicy")).Should(WithTransform(routeSettings, Equal([]string{"1.5s/-"})))

		By("creating a split on the Service")
		create(ctx, ns, `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: api-canary}
spec:
  service: api
  backends: [{service: api, weight: 9}, {service: api-v2, weight: 1}]
`)
		Eventually(hostObjects(ctx, ns, host)).Should(ConsistOf("VirtualService TrafficSplit/api-canary"))
		Eventually(virtualService(ctx, ns, "api-canary")).Should(WithTransform(routeSettings, Equal([]string{"1.5s/-"})))
		Eventually(policyCondition(ctx, ns, "api", smi.ConditionProgrammed)).Should(haveStatus(metav1.ConditionTrue, "Programmed"))

		By("deleting the split")
		Expect(k8sClient.Delete(ctx, &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api-canary"}})).To(Succeed())
		Eventually(hostObjects(ctx, ns, host)).Should(ConsistOf("VirtualService TrafficPolicy/api"))
	})

	It("says its Service is not found, and is programmed once the Service appears", func(ctx SpecContext) {
		create(ctx, ns, trafficPolicy("later", "{kind: Service, name: later}", "timeout: 2s"))
		Eventually(policyCondition(ctx, ns, "later", smi.ConditionResolvedRefs)).Should(haveStatus(metav1.ConditionFalse, "ServiceNotFound"))
		Consistently(hostObjects(ctx, ns, fqdn("later", ns)), "1s").Should(BeEmpty())

		By("creating the Service")
		create(ctx, ns, service("later", 80))
		Eventually(policyCondition(ctx, ns, "later", smi.ConditionProgrammed)).Should(haveStatus(metav1.ConditionTrue, "Programmed"))
		Eventually(policyCondition(ctx, ns, "later", smi.ConditionResolvedRefs)).Should(haveStatus(metav1.ConditionTrue, "ResolvedRefs"))
		Eventually(virtualService(ctx, ns, "later-trafficpolicy")).Should(WithTransform(routeSettings, Equal([]string{"2s/-"})))
	})

	It("writes nothing and reports Conflicted while the user's own VirtualService routes the host", func(ctx SpecContext) {
		create(ctx, ns, service("pay", 80)+"---\n"+userVirtualService("mine", "", "pay")+"---\n"+
			trafficPolicy("pay", "{kind: Service, name: pay}", "timeout: 1s", "circuitBreaker: {maxConnections: 5}"))
		host := fqdn("pay", ns)
		Eventually(policyCondition(ctx, ns, "pay", smi.ConditionAccepted)).Should(And(haveStatus(metav1.ConditionFalse, "Conflicted"),
			HaveField("Message", ContainSubstring("VirtualService "+ns+"/mine"))))
		Consistently(hostObjects(ctx, ns, host), "2s").Should(ConsistOf("VirtualService -/mine"))
		Eventually(func() []string { return eventReasons(ctx, ns, "pay") }).Should(ContainElement("Conflicted"))

		By("programming once the user's object is gone")
		Expect(k8sClient.Delete(ctx, &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mine"}})).To(Succeed())
		Eventually(hostObjects(ctx, ns, host)).Should(ConsistOf("VirtualService TrafficPolicy/pay", "DestinationRule TrafficPolicy/pay"))
		Eventually(policyCondition(ctx, ns, "pay", smi.ConditionAccepted)).Should(haveStatus(metav1.ConditionTrue, "Accepted"))
	})

	It("reports Conflicted for a user's VirtualService of the host that copied the operator's labels", func(ctx SpecContext) {
		create(ctx, ns, service("pay", 80)+"---\n"+
			userVirtualService("copied", "{app.kubernetes.io/managed-by: smi-operator, smi.smi-operator.io/source-kind: TrafficPolicy, smi.smi-operator.io/source-name: pay}", "pay")+
			"---\n"+trafficPolicy("pay", "{kind: Service, name: pay}", "timeout: 1s"))
		Eventually(policyCondition(ctx, ns, "pay", smi.ConditionAccepted)).Should(And(haveStatus(metav1.ConditionFalse, "Conflicted"),
			HaveField("Message", ContainSubstring("VirtualService "+ns+"/copied"))), "labels anyone can copy do not make an object the operator's")
		Consistently(hostObjects(ctx, ns, fqdn("pay", ns)), "2s").Should(ConsistOf("VirtualService -/copied"))
	})

	It("programs beside a user's VirtualService of the host bound to gateways only, which sidecars never read", func(ctx SpecContext) {
		create(ctx, ns, service("pay", 80)+"---\n"+userVirtualService("edge", "", "pay", "gateways: [ingress]")+"---\n"+
			trafficPolicy("pay", "{kind: Service, name: pay}", "timeout: 1s"))
		Eventually(policyCondition(ctx, ns, "pay", smi.ConditionProgrammed)).Should(haveStatus(metav1.ConditionTrue, "Programmed"))
		Expect(policyCondition(ctx, ns, "pay", smi.ConditionAccepted)()).To(haveStatus(metav1.ConditionTrue, "Accepted"))
		Expect(hostObjects(ctx, ns, fqdn("pay", ns))()).To(ConsistOf("VirtualService -/edge", "VirtualService TrafficPolicy/pay"))

		By("reporting Conflicted once the user's VirtualService applies to sidecars too")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			vs := &networkingv1.VirtualService{}
			Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "edge"}, vs)).To(Succeed())
			vs.Spec.Gateways = append(vs.Spec.Gateways, "mesh")
			return k8sClient.Update(ctx, vs)
		})).To(Succeed())
		Eventually(policyCondition(ctx, ns, "pay", smi.ConditionAccepted)).Should(haveStatus(metav1.ConditionFalse, "Conflicted"))
		Eventually(hostObjects(ctx, ns, fqdn("pay", ns))).Should(ConsistOf("VirtualService -/edge"))
	})

	It("lets the oldest of two policies on one Service win", func(ctx SpecContext) {
		create(ctx, ns, service("db", 80)+"---\n"+trafficPolicy("first", "{kind: Service, name: db}", "timeout: 1s"))
		Eventually(policyCondition(ctx, ns, "first", smi.ConditionProgrammed)).Should(haveStatus(metav1.ConditionTrue, "Programmed"))
		time.Sleep(1100 * time.Millisecond) // creation timestamps have whole seconds
		create(ctx, ns, trafficPolicy("second", "{kind: Service, name: db, port: 80}", "timeout: 9s"))
		Eventually(policyCondition(ctx, ns, "second", smi.ConditionAccepted)).Should(And(haveStatus(metav1.ConditionFalse, "Conflicted"),
			HaveField("Message", ContainSubstring(`older TrafficPolicy "first"`))))
		Consistently(virtualService(ctx, ns, "first-trafficpolicy"), "1s").Should(WithTransform(routeSettings, Equal([]string{"1s/-"})))
		Expect(hostObjects(ctx, ns, fqdn("db", ns))()).To(ConsistOf("VirtualService TrafficPolicy/first"), "the loser writes nothing")

		By("programming the other policy once the winner goes")
		Expect(k8sClient.Delete(ctx, &policyv1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "first"}})).To(Succeed())
		Eventually(policyCondition(ctx, ns, "second", smi.ConditionAccepted)).Should(haveStatus(metav1.ConditionTrue, "Accepted"))
		Eventually(virtualService(ctx, ns, "second-trafficpolicy")).Should(WithTransform(routeSettings, Equal([]string{"9s/-"})))
		Eventually(hostObjects(ctx, ns, fqdn("db", ns))).Should(ConsistOf("VirtualService TrafficPolicy/second"))
	})

	It("names its objects apart from a split's of the same name", func(ctx SpecContext) {
		create(ctx, ns, service("web", 80)+"---\n"+service("web-v1", 80)+"---\n"+service("api", 80)+"---\n"+`
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web}
spec:
  service: web
  backends: [{service: web-v1, weight: 1}]
---
`+trafficPolicy("web", "{kind: Service, name: api}", "timeout: 1s"))
		Eventually(hostObjects(ctx, ns, fqdn("api", ns))).Should(ConsistOf("VirtualService TrafficPolicy/web"))
		Eventually(hostObjects(ctx, ns, fqdn("web", ns))).Should(ConsistOf("VirtualService TrafficSplit/web"))
		Eventually(policyCondition(ctx, ns, "web", smi.ConditionAccepted)).Should(haveStatus(metav1.ConditionTrue, "Accepted"))
		Eventually(condition(ctx, &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}, smi.ConditionAccepted)).
			Should(haveStatus(metav1.ConditionTrue, "Accepted"))
	})

	It("says it is not programmed while the split's VirtualService carrying its settings is blocked", func(ctx SpecContext) {
		// The user's object holds the split's name, for another host: the split writes nothing.
		create(ctx, ns, service("web", 80)+"---\n"+service("web-v1", 80)+"---\n"+`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [elsewhere.example.com]
  http: [{route: [{destination: {host: elsewhere.example.com}}]}]
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web}
spec:
  service: web
  backends: [{service: web-v1, weight: 1}]
---
`+trafficPolicy("web-timeout", "{kind: Service, name: web}", "timeout: 1s"))
		Eventually(policyCondition(ctx, ns, "web-timeout", smi.ConditionProgrammed)).Should(And(haveStatus(metav1.ConditionFalse, istiobackend.ReasonCarrierNotWritten),
			HaveField("Message", ContainSubstring("VirtualService "+ns+"/web of TrafficSplit"))))

		By("programming once the split can write its VirtualService")
		Expect(k8sClient.Delete(ctx, &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}})).To(Succeed())
		Eventually(virtualService(ctx, ns, "web")).Should(WithTransform(routeSettings, Equal([]string{"1s/-"})))
		Eventually(policyCondition(ctx, ns, "web-timeout", smi.ConditionProgrammed)).Should(haveStatus(metav1.ConditionTrue, "Programmed"))
	})

	It("reports every policy of a Service Conflicted while the user's VirtualService routes its host", func(ctx SpecContext) {
		create(ctx, ns, service("pay", 80, 8080)+"---\n"+userVirtualService("mine", "", "pay")+"---\n"+
			trafficPolicy("pay-80", "{kind: Service, name: pay, port: 80}", "timeout: 1s")+"---\n"+
			trafficPolicy("pay-8080", "{kind: Service, name: pay, port: 8080}", "timeout: 2s"))
		for _, name := range []string{"pay-80", "pay-8080"} {
			Eventually(policyCondition(ctx, ns, name, smi.ConditionAccepted)).Should(haveStatus(metav1.ConditionFalse, "Conflicted"), name)
		}
		Consistently(hostObjects(ctx, ns, fqdn("pay", ns)), "2s").Should(ConsistOf("VirtualService -/mine"))

		By("sharing one VirtualService once the user's object is gone")
		Expect(k8sClient.Delete(ctx, &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mine"}})).To(Succeed())
		Eventually(hostObjects(ctx, ns, fqdn("pay", ns))).Should(ConsistOf("VirtualService TrafficPolicy/pay-80"), "named after the lowest port's policy")
		Eventually(virtualService(ctx, ns, "pay-80-trafficpolicy")).Should(WithTransform(routeSettings, ConsistOf("1s/-", "2s/-")))
		for _, name := range []string{"pay-80", "pay-8080"} {
			Eventually(policyCondition(ctx, ns, name, smi.ConditionProgrammed)).Should(haveStatus(metav1.ConditionTrue, "Programmed"), name)
		}
	})
})

package e2e

import (
	"context"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/test/testenv"
	istiotranslator "github.com/smi-operator/smi-operator/translators/istio"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// create creates every object of a multi-document YAML in namespace.
func create(ctx context.Context, namespace, docs string) {
	for _, doc := range strings.Split(docs, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		u := &unstructured.Unstructured{}
		Expect(yaml.Unmarshal([]byte(doc), &u.Object)).To(Succeed())
		u.SetNamespace(namespace)
		Expect(k8sClient.Create(ctx, u)).To(Succeed(), doc)
	}
}

func service(name string, ports ...int) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Service\nmetadata: {name: " + name + "}\nspec:\n  ports:\n")
	for _, p := range ports {
		b.WriteString("  - {name: http-" + strconv.Itoa(p) + ", port: " + strconv.Itoa(p) + "}\n")
	}
	return b.String()
}

func deployment(name, serviceAccount string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata: {name: ` + name + `}
spec:
  selector: {matchLabels: {app: ` + name + `}}
  template:
    metadata: {labels: {app: ` + name + `}}
    spec:
      serviceAccountName: ` + serviceAccount + `
      containers: [{name: app, image: example.com/app}]
`
}

func virtualService(ctx context.Context, namespace, name string) func() (*networkingv1.VirtualService, error) {
	return func() (*networkingv1.VirtualService, error) {
		vs := &networkingv1.VirtualService{}
		return vs, k8sClient.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, vs)
	}
}

// weights returns the destination host -> weight of the VirtualService's last (catch-all or only) http route.
func weights(vs *networkingv1.VirtualService) map[string]int32 {
	out := map[string]int32{}
	if len(vs.Spec.Http) == 0 {
		return out
	}
	for _, d := range vs.Spec.Http[len(vs.Spec.Http)-1].Route {
		out[d.Destination.Host] = d.Weight
	}
	return out
}

func condition(ctx context.Context, obj hub.Object, typ string) func() *metav1.Condition {
	return func() *metav1.Condition {
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		c := meta.FindStatusCondition(obj.GetStatus().Conditions, typ)
		if c != nil && c.ObservedGeneration != obj.GetGeneration() {
			return nil // not yet about this generation
		}
		return c
	}
}

func haveStatus(status metav1.ConditionStatus, reason string) OmegaMatcher {
	return And(Not(BeNil()), WithTransform(func(c *metav1.Condition) metav1.ConditionStatus { return c.Status }, Equal(status)),
		WithTransform(func(c *metav1.Condition) string { return c.Reason }, Equal(reason)))
}

func fqdn(name, namespace string) string { return name + "." + namespace + ".svc.cluster.local" }

var _ = Describe("Istio backend", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("turns a TrafficSplit into a VirtualService, follows its changes and removes it with the split", func(ctx SpecContext) {
		create(ctx, ns, service("web", 80)+"---\n"+service("web-v1", 80)+"---\n"+service("web-v2", 80)+"---\n"+`
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: web}
spec:
  service: web
  backends: [{service: web-v1, weight: 2}, {service: web-v2, weight: 1}]
`)
		Eventually(virtualService(ctx, ns, "web")).Should(WithTransform(weights, Equal(map[string]int32{
			fqdn("web-v1", ns): 67, fqdn("web-v2", ns): 33,
		})))
		vs, _ := virtualService(ctx, ns, "web")()
		Expect(vs.Spec.Hosts).To(ConsistOf(fqdn("web", ns)))
		Expect(vs.Labels).To(HaveKeyWithValue(smi.LabelManagedBy, smi.ManagedByValue))
		Expect(metav1.GetControllerOf(vs).Kind).To(Equal(smi.TrafficSplitKind))

		split := &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}
		Eventually(condition(ctx, split, smi.ConditionProgrammed)).Should(haveStatus(metav1.ConditionTrue, "Programmed"))
		Eventually(condition(ctx, split, smi.ConditionAccepted)).Should(haveStatus(metav1.ConditionTrue, "Accepted"))

		By("updating the weights")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(split), split)).To(Succeed())
		split.Spec.Backends[0].Weight, split.Spec.Backends[1].Weight = 1, 3
		Expect(k8sClient.Update(ctx, split)).To(Succeed())
		Eventually(virtualService(ctx, ns, "web")).Should(WithTransform(weights, Equal(map[string]int32{
			fqdn("web-v1", ns): 25, fqdn("web-v2", ns): 75,
		})))

		By("correcting a hand edit")
		vs, _ = virtualService(ctx, ns, "web")()
		splitRoute := vs.Spec.Http[len(vs.Spec.Http)-1] // the split's route, after its standby route
		splitRoute.Route[0].Weight, splitRoute.Route[1].Weight = 50, 50
		Expect(k8sClient.Update(ctx, vs)).To(Succeed())
		Eventually(virtualService(ctx, ns, "web")).Should(WithTransform(weights, Equal(map[string]int32{
			fqdn("web-v1", ns): 25, fqdn("web-v2", ns): 75,
		})))

		By("recreating it after a hand delete")
		Expect(k8sClient.Delete(ctx, vs)).To(Succeed())
		Eventually(func() types.UID { v, _ := virtualService(ctx, ns, "web")(); return v.UID }).ShouldNot(Or(BeEmpty(), Equal(vs.UID)))

		By("deleting the split")
		Expect(k8sClient.Delete(ctx, split)).To(Succeed())
		Eventually(func() error { _, err := virtualService(ctx, ns, "web")(); return err }).Should(Satisfy(apierrors.IsNotFound))
	})

	It("splits only HTTPRouteGroup matches and sends the rest to the apex", func(ctx SpecContext) {
		create(ctx, ns, service("shop", 80)+"---\n"+service("shop-canary", 80)+"---\n"+`
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: canary-users}
spec:
  matches:
  - {name: api, pathRegex: /api, methods: [GET]}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: shop}
spec:
  service: shop
  matches: [{kind: HTTPRouteGroup, apiGroup: specs.smi-spec.io, name: canary-users}]
  backends: [{service: shop, weight: 90}, {service: shop-canary, weight: 10}]
`)
		Eventually(virtualService(ctx, ns, "shop")).Should(WithTransform(func(vs *networkingv1.VirtualService) int { return len(vs.Spec.Http) }, Equal(2)))
		vs, _ := virtualService(ctx, ns, "shop")()
		Expect(vs.Spec.Http[0].Match).NotTo(BeEmpty(), "the first route matches the group")
		Expect(vs.Spec.Http[0].Match[0].Uri.GetPrefix()).To(Equal("/api"))
		for _, m := range vs.Spec.Http[1].Match {
			Expect(m.Uri == nil && m.Method == nil && len(m.Headers) == 0).To(BeTrue(), "the catch-all matches every request on its port")
		}
		Expect(vs.Spec.Http[1].Route).To(HaveLen(1))
		Expect(vs.Spec.Http[1].Route[0].Destination.Host).To(Equal(fqdn("shop", ns)))

		By("deleting the HTTPRouteGroup: nothing is split any more, and the split says why")
		Expect(k8sClient.Delete(ctx, &hub.HTTPRouteGroup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "canary-users"}})).To(Succeed())
		split := &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"}}
		Eventually(condition(ctx, split, smi.ConditionResolvedRefs)).Should(haveStatus(metav1.ConditionFalse, "RouteNotFound"))
		Eventually(func() error { _, err := virtualService(ctx, ns, "shop")(); return err }).Should(Satisfy(apierrors.IsNotFound))
	})

	It("follows edits of the HTTPRouteGroup and TrafficTarget a policy comes from", func(ctx SpecContext) {
		create(ctx, ns, deployment("ledger", "ledger")+"---\n"+`
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: ledger-routes}
spec:
  matches:
  - {name: entries, pathRegex: /entries, methods: [GET]}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: ledger}
spec:
  destination: {kind: ServiceAccount, name: ledger}
  sources: [{kind: ServiceAccount, name: teller}]
  rules: [{kind: HTTPRouteGroup, name: ledger-routes}]
`)
		policy := func() *securityv1.AuthorizationPolicy {
			list := &securityv1.AuthorizationPolicyList{}
			Expect(k8sClient.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{smi.LabelSourceName: "ledger"})).To(Succeed())
			if len(list.Items) != 1 || len(list.Items[0].Spec.Rules) == 0 {
				return nil
			}
			return list.Items[0]
		}
		paths := func(p *securityv1.AuthorizationPolicy) []string {
			if p == nil {
				return nil
			}
			return p.Spec.Rules[0].To[0].Operation.Paths
		}
		principals := func(p *securityv1.AuthorizationPolicy) []string {
			if p == nil {
				return nil
			}
			return p.Spec.Rules[0].From[0].Source.Principals
		}
		Eventually(policy).Should(WithTransform(paths, ConsistOf("/entries*")))

		By("editing the route's path")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			group := &hub.HTTPRouteGroup{}
			Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "ledger-routes"}, group)).To(Succeed())
			group.Spec.Matches[0].PathRegex = "/accounts"
			return k8sClient.Update(ctx, group)
		})).To(Succeed())
		Eventually(policy).Should(WithTransform(paths, ConsistOf("/accounts*")))

		By("adding a source")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			target := &hub.TrafficTarget{}
			Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "ledger"}, target)).To(Succeed())
			target.Spec.Sources = append(target.Spec.Sources, accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: "auditor", Namespace: "audit"})
			return k8sClient.Update(ctx, target)
		})).To(Succeed())
		Eventually(policy).Should(WithTransform(principals, ConsistOf(
			"cluster.local/ns/"+ns+"/sa/teller", "cluster.local/ns/audit/sa/auditor")))
	})

	It("leaves a VirtualService it does not own untouched and says so", func(ctx SpecContext) {
		create(ctx, ns, service("api", 80)+"---\n"+service("api-v2", 80)+"---\n"+`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: [api]
  http: [{route: [{destination: {host: api}}]}]
`)
		theirs, _ := virtualService(ctx, ns, "api")()
		create(ctx, ns, `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: api}
spec:
  service: api
  backends: [{service: api-v2, weight: 1}]
`)
		split := &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"}}
		Eventually(condition(ctx, split, smi.ConditionAccepted)).Should(haveStatus(metav1.ConditionFalse, "Conflicted"))
		Consistently(virtualService(ctx, ns, "api"), "2s").Should(WithTransform(func(vs *networkingv1.VirtualService) string {
			return vs.ResourceVersion
		}, Equal(theirs.ResourceVersion)))
		Eventually(func() []string { return eventReasons(ctx, ns, "api") }).Should(ContainElement("Conflicted"))

		By("taking over once the user's object is gone")
		Expect(k8sClient.Delete(ctx, theirs)).To(Succeed())
		Eventually(condition(ctx, split, smi.ConditionAccepted)).Should(haveStatus(metav1.ConditionTrue, "Accepted"))
		Eventually(virtualService(ctx, ns, "api")).Should(WithTransform(weights, Equal(map[string]int32{fqdn("api-v2", ns): 100})))
	})

	It("lets the oldest of two splits on one apex win", func(ctx SpecContext) {
		create(ctx, ns, service("db", 80)+"---\n"+service("db-a", 80)+"---\n"+service("db-b", 80)+"---\n"+`
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: first}
spec: {service: db, backends: [{service: db-a, weight: 1}]}
`)
		first := &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "first"}}
		Eventually(condition(ctx, first, smi.ConditionProgrammed)).Should(haveStatus(metav1.ConditionTrue, "Programmed"))
		create(ctx, ns, `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: second}
spec: {service: db, backends: [{service: db-b, weight: 1}]}
`)
		second := &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "second"}}
		Eventually(condition(ctx, second, smi.ConditionAccepted)).Should(haveStatus(metav1.ConditionFalse, "Conflicted"))
		_, err := virtualService(ctx, ns, "second")()
		Expect(err).To(Satisfy(apierrors.IsNotFound))

		By("handing the apex to the other split when the winner goes")
		Expect(k8sClient.Delete(ctx, first)).To(Succeed())
		Eventually(condition(ctx, second, smi.ConditionAccepted)).Should(haveStatus(metav1.ConditionTrue, "Accepted"))
		Eventually(virtualService(ctx, ns, "second")).Should(WithTransform(weights, Equal(map[string]int32{fqdn("db-b", ns): 100})))
	})

	It("keeps a split whose backends all weigh zero or lack the apex port on the apex, its backends on standby, and says why", func(ctx SpecContext) {
		create(ctx, ns, service("pay", 80)+"---\n"+service("pay-v1", 80)+"---\n"+service("pay-v2", 8080)+"---\n"+`
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: pay}
spec: {service: pay, backends: [{service: pay-v1, weight: 0}, {service: pay-v2, weight: 5}]}
`)
		split := &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pay"}}
		Eventually(condition(ctx, split, smi.ConditionProgrammed)).Should(haveStatus(metav1.ConditionFalse, "NoWeightedBackends"))
		Expect(condition(ctx, split, smi.ConditionResolvedRefs)()).To(haveStatus(metav1.ConditionFalse, "BackendPortMismatch"))
		Eventually(virtualService(ctx, ns, "pay")).Should(WithTransform(weights, Equal(map[string]int32{fqdn("pay", ns): 0})),
			"traffic stays on the apex (a lone destination, no weight)")
		vs, _ := virtualService(ctx, ns, "pay")()
		Expect(vs.Spec.Http).To(HaveLen(2))
		Expect(istiotranslator.IsStandby(vs.Spec.Http[0])).To(BeTrue(), "the standby route comes first")
		Expect(vs.Spec.Http[0].Match[0].Uri.GetExact()).To(Equal(mesh.StandbyPath))
		Expect(vs.Spec.Http[0].Route).To(HaveLen(1), "pay-v2 lacks the apex port")
		Expect(vs.Spec.Http[0].Route[0].Destination.Host).To(Equal(fqdn("pay-v1", ns)))

		By("programming it once a backend with the apex port gets weight")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(split), split)).To(Succeed())
			split.Spec.Backends[0].Weight = 1
			return k8sClient.Update(ctx, split)
		})).To(Succeed())
		Eventually(virtualService(ctx, ns, "pay")).Should(WithTransform(weights, Equal(map[string]int32{fqdn("pay-v1", ns): 100})))
	})

	It("reports a missing backend and programs the rest", func(ctx SpecContext) {
		create(ctx, ns, service("cart", 80)+"---\n"+service("cart-v1", 80)+"---\n"+`
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: cart}
spec: {service: cart, backends: [{service: cart-v1, weight: 1}, {service: cart-v9, weight: 1}]}
`)
		split := &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cart"}}
		Eventually(condition(ctx, split, smi.ConditionResolvedRefs)).Should(haveStatus(metav1.ConditionFalse, "BackendNotFound"))
		Eventually(virtualService(ctx, ns, "cart")).Should(WithTransform(weights, Equal(map[string]int32{fqdn("cart-v1", ns): 100})))

		By("picking the backend up when its Service appears")
		create(ctx, ns, service("cart-v9", 80))
		Eventually(virtualService(ctx, ns, "cart")).Should(WithTransform(weights, Equal(map[string]int32{
			fqdn("cart-v1", ns): 50, fqdn("cart-v9", ns): 50,
		})))
		Eventually(condition(ctx, split, smi.ConditionResolvedRefs)).Should(haveStatus(metav1.ConditionTrue, "ResolvedRefs"))
	})

	It("turns a TrafficTarget into ALLOW policies for the destination's workloads, once they exist", func(ctx SpecContext) {
		create(ctx, ns, `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: api-routes}
spec:
  matches:
  - {name: read, pathRegex: /books, methods: [GET]}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: shop-reads-books}
spec:
  destination: {kind: ServiceAccount, name: books}
  sources: [{kind: ServiceAccount, name: shop}]
  rules: [{kind: HTTPRouteGroup, name: api-routes, matches: [read]}]
`)
		target := &hub.TrafficTarget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop-reads-books"}}
		Eventually(func() []string { return eventReasons(ctx, ns, "shop-reads-books") }).Should(ContainElement("NoWorkloads"))

		By("writing the policy when a workload runs as the destination")
		create(ctx, ns, deployment("books", "books"))
		var policy *securityv1.AuthorizationPolicy
		Eventually(func() int {
			policy = nil
			list := &securityv1.AuthorizationPolicyList{}
			Expect(k8sClient.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{smi.LabelSourceName: "shop-reads-books"})).To(Succeed())
			if len(list.Items) == 1 {
				policy = list.Items[0]
			}
			return len(list.Items)
		}).Should(Equal(1))
		Expect(policy.Spec.Selector.MatchLabels).To(Equal(map[string]string{"app": "books"}))
		Expect(policy.Spec.Rules).To(HaveLen(1))
		Expect(policy.Spec.Rules[0].From[0].Source.Principals).To(ConsistOf("cluster.local/ns/" + ns + "/sa/shop"))
		Expect(policy.Spec.Rules[0].To[0].Operation.Methods).To(ConsistOf("GET"))
		Eventually(condition(ctx, target, smi.ConditionProgrammed)).Should(haveStatus(metav1.ConditionTrue, "Programmed"))

		By("enforcing SMI's deny-by-default with a namespace baseline and STRICT mTLS")
		Eventually(func() error {
			return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "smi-default-deny"}, &securityv1.AuthorizationPolicy{})
		}).Should(Succeed())
		Eventually(func() int {
			list := &securityv1.PeerAuthenticationList{}
			Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			return len(list.Items)
		}).Should(Equal(1))

		By("updating every policy when the route it uses is deleted, without widening access")
		Expect(k8sClient.Delete(ctx, &hub.HTTPRouteGroup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api-routes"}})).To(Succeed())
		Eventually(condition(ctx, target, smi.ConditionResolvedRefs)).Should(haveStatus(metav1.ConditionFalse, "RouteNotFound"))
		Eventually(func() int {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(policy), policy)).To(Succeed())
			return len(policy.Spec.Rules)
		}).Should(BeZero(), "an ALLOW policy without rules allows nothing")

		By("removing the target's policies with it, and keeping deny-by-default after the last TrafficTarget")
		Expect(k8sClient.Delete(ctx, target)).To(Succeed())
		Eventually(func() []string {
			list := &securityv1.AuthorizationPolicyList{}
			Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			var names []string
			for _, ap := range list.Items {
				names = append(names, ap.Name)
			}
			return names
		}).Should(ConsistOf("smi-default-deny"))
		Consistently(func() error {
			return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "smi-default-deny"}, &securityv1.AuthorizationPolicy{})
		}, "1s").Should(Succeed())
	})

	// A full resync (a new operator reconciling every object) is the benchmark's: it counts the
	// writes of one over 2,000 SMI objects.
	It("writes nothing when a split is reconciled again and nothing it programs changed", func(ctx SpecContext) {
		create(ctx, ns, service("idle", 80)+"---\n"+service("idle-v1", 80)+"---\n"+`
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: idle}
spec: {service: idle, backends: [{service: idle-v1, weight: 1}]}
`)
		split := &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idle"}}
		Eventually(condition(ctx, split, smi.ConditionProgrammed)).Should(haveStatus(metav1.ConditionTrue, "Programmed"))
		vs, _ := virtualService(ctx, ns, "idle")()
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(split), split)).To(Succeed())
		// Let the Events and the reconciles its own writes caused finish: no new write for a second.
		before := -1
		Eventually(func() bool {
			n := operatorWrites.In(ns)
			settled := n == before
			before = n
			return settled
		}, "10s", "1s").Should(BeTrue())
		reconciles := testenv.Reconciles("trafficsplit")

		By("touching the Services the split names, which re-reconciles it")
		for _, name := range []string{"idle", "idle-v1"} {
			svc := &corev1.Service{}
			Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, svc)).To(Succeed())
			svc.Annotations = map[string]string{"touched": time.Now().String()}
			Expect(k8sClient.Update(ctx, svc)).To(Succeed())
		}
		Eventually(func() float64 { return testenv.Reconciles("trafficsplit") }).Should(BeNumerically(">=", reconciles+2))
		// Identical writes would leave resourceVersions alone, so count the requests themselves.
		Consistently(func() int { return operatorWrites.In(ns) }, "2s").Should(Equal(before), "the operator sent writes")
		Consistently(func() []string {
			v, _ := virtualService(ctx, ns, "idle")()
			s := &hub.TrafficSplit{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(split), s)).To(Succeed())
			return []string{v.ResourceVersion, s.ResourceVersion}
		}, "1s").Should(Equal([]string{vs.ResourceVersion, split.ResourceVersion}))
	})
})

// eventReasons lists the reasons of the Events about the object named name in namespace.
func eventReasons(ctx context.Context, namespace, name string) []string {
	list := &eventsv1.EventList{}
	Expect(k8sClient.List(ctx, list, client.InNamespace(namespace))).To(Succeed())
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}

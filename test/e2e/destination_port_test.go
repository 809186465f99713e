package e2e

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/conversion"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
)

// The port of a v1alpha1 or v1alpha2 TrafficTarget's destination has no field in the stored
// version (v1alpha3): the conversion webhook keeps it in an annotation, and the operator must read
// it from there and allow that port only (issue 12).
var _ = Describe("A TrafficTarget's destination port", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		create(ctx, ns, deployment("api", "api")+"---\n"+`
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: api-routes}
spec:
  matches:
  - {name: read, pathRegex: /api/, methods: [GET]}
`)
	})

	// policyPorts returns the ports of the rules of the TrafficTarget's AuthorizationPolicy, once
	// it has rules.
	policyPorts := func(ctx context.Context, target string) func() [][]string {
		return func() [][]string {
			list := &securityv1.AuthorizationPolicyList{}
			Expect(k8sClient.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{smi.LabelSourceName: target})).To(Succeed())
			if len(list.Items) != 1 || len(list.Items[0].Spec.Rules) == 0 {
				return nil
			}
			var ports [][]string
			for _, r := range list.Items[0].Spec.Rules {
				ports = append(ports, r.To[0].Operation.Ports)
			}
			return ports
		}
	}
	// storedPort reads the target as the stored version and returns the destination port it
	// keeps for older versions.
	storedPort := func(ctx context.Context, target string) *int {
		stored := &hub.TrafficTarget{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: target}, stored)).To(Succeed())
		port, err := conversion.TrafficTargetDestinationPort(stored.SDK())
		Expect(err).NotTo(HaveOccurred())
		return port
	}

	It("is the only port a v1alpha1 TrafficTarget allows", func(ctx SpecContext) {
		create(ctx, ns, `
apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata: {name: reads}
destination: {kind: ServiceAccount, name: api, port: 8080}
sources: [{kind: ServiceAccount, name: web}]
specs: [{kind: HTTPRouteGroup, name: api-routes, matches: [read]}]
`)
		Expect(storedPort(ctx, "reads")).To(HaveValue(Equal(8080)), "kept in the stored v1alpha3 object's annotation")
		Eventually(policyPorts(ctx, "reads")).Should(Equal([][]string{{"8080"}}))
	})

	It("is the only port a v1alpha2 TrafficTarget allows", func(ctx SpecContext) {
		create(ctx, ns, `
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: reads}
spec:
  destination: {kind: ServiceAccount, name: api, port: 8080}
  sources: [{kind: ServiceAccount, name: web}]
  rules: [{kind: HTTPRouteGroup, name: api-routes, matches: [read]}]
`)
		Expect(storedPort(ctx, "reads")).To(HaveValue(Equal(8080)), "kept in the stored v1alpha3 object's annotation")
		Eventually(policyPorts(ctx, "reads")).Should(Equal([][]string{{"8080"}}))

		By("changing the port through v1alpha2")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			target := &unstructured.Unstructured{}
			target.SetAPIVersion("access.smi-spec.io/v1alpha2")
			target.SetKind(smi.TrafficTargetKind)
			Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "reads"}, target)).To(Succeed())
			Expect(unstructured.SetNestedField(target.Object, int64(9090), "spec", "destination", "port")).To(Succeed())
			return k8sClient.Update(ctx, target)
		})).To(Succeed())
		Eventually(policyPorts(ctx, "reads")).Should(Equal([][]string{{"9090"}}))

		By("dropping the annotation that keeps the port, through the stored version")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			stored := &hub.TrafficTarget{}
			Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "reads"}, stored)).To(Succeed())
			delete(stored.Annotations, smi.ConversionDataAnnotation)
			return k8sClient.Update(ctx, stored)
		})).To(Succeed())
		// A metadata edit leaves the generation alone, but the port lived there.
		Eventually(policyPorts(ctx, "reads")).Should(Equal([][]string{nil}))
	})

	It("does not exist in v1alpha3: such a TrafficTarget allows every port", func(ctx SpecContext) {
		create(ctx, ns, `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: reads}
spec:
  destination: {kind: ServiceAccount, name: api}
  sources: [{kind: ServiceAccount, name: web}]
  rules: [{kind: HTTPRouteGroup, name: api-routes, matches: [read]}]
`)
		Expect(storedPort(ctx, "reads")).To(BeNil())
		Eventually(policyPorts(ctx, "reads")).Should(Equal([][]string{nil}))
	})
})

package e2e

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
)

// Every SMI version says a TrafficSplit's spec.service "is the FQDN that applications will use"
// (issue 12): each of its forms names the apex Service of the split's own namespace.
var _ = Describe("A TrafficSplit's service as an FQDN", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		create(ctx, ns, service("web", 80)+"---\n"+service("web-v1", 80))
	})

	It("names the apex in the split's namespace, in every form", func(ctx SpecContext) {
		for i, form := range []string{"web.%s.svc.cluster.local", "web.%s.svc", "web.%s"} {
			name := fmt.Sprintf("fqdn-%d", i)
			create(ctx, ns, `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: `+name+`}
spec:
  service: `+fmt.Sprintf(form, ns)+`
  backends: [{service: web-v1, weight: 1}]
`)
			split := &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
			Eventually(condition(ctx, split, smi.ConditionProgrammed)).Should(haveStatus(metav1.ConditionTrue, "Programmed"))
			Eventually(virtualService(ctx, ns, name)).Should(WithTransform(func(vs *networkingv1.VirtualService) []string {
				return vs.Spec.Hosts
			}, Equal([]string{fqdn("web", ns)})))
			Expect(k8sClient.Delete(ctx, split)).To(Succeed())
		}
	})

	It("is refused when it names a Service of another namespace", func(ctx SpecContext) {
		u := &unstructured.Unstructured{}
		Expect(yaml.Unmarshal([]byte(`
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: elsewhere}
spec:
  service: web.kube-system.svc.cluster.local
  backends: [{service: web-v1, weight: 1}]
`), &u.Object)).To(Succeed())
		u.SetNamespace(ns)
		err := k8sClient.Create(ctx, u)
		Expect(err).To(MatchError(And(ContainSubstring("spec.service"), ContainSubstring(`names a Service of namespace "kube-system"`))))
	})
})

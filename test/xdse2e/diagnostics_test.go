package xdse2e

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// diagnosticsSpecs are the specs of what the xDS backend reports about SMI objects.
func diagnosticsSpecs() {
	It("reports what SMI objects mean as the Istio backend does, and what it cannot enforce", diagnosticsOnXDS)
}

// diagnosticsOnXDS: the xDS backend reports what SMI objects mean as the Istio backend does,
// from the one model (issue 12, defects 5 and 7), and what it cannot enforce (UDP) as not
// enforced. The inputs are translate's own test cases, as in the Istio e2e suite.
func diagnosticsOnXDS() {
	ctx := context.Background()
	ns := o.namespace("diagnostics-on-xds")
	for _, dir := range []string{"cmd/translate/testdata/smi-diagnostics", "cmd/translate/testdata/udp-not-enforced"} {
		refused, err := testenv.CreateManifests(ctx, o.client, dir, ns)
		Expect(err).NotTo(HaveOccurred())
		for name, err := range refused {
			Expect(name).To(Equal("strict"), "%s: %s refused: %v", dir, name, err)
			Expect(err.Error()).To(ContainSubstring("spec.rules: Required value"), "%s: %s refused", dir, name)
		}
	}

	split := func(name string) *hub.TrafficSplit {
		return &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	target := func(name string) *hub.TrafficTarget {
		return &hub.TrafficTarget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	o.waitCondition(split("headless"), smi.ConditionProgrammed, metav1.ConditionFalse, "NoRoutablePorts")
	o.waitCondition(split("sticky"), smi.ConditionResolvedRefs, metav1.ConditionFalse, "SelfReferentialSplit")
	o.waitCondition(split("sticky"), smi.ConditionProgrammed, metav1.ConditionTrue, "Programmed")
	o.waitCondition(target("legacy"), smi.ConditionResolvedRefs, metav1.ConditionFalse, "NoRules")
	o.waitCondition(target("dns"), smi.ConditionProgrammed, metav1.ConditionFalse, "UDPNotEnforced")
}

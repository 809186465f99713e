package xdse2e

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// TestDiagnosticsOnXDS: the xDS backend reports what SMI objects mean as the Istio backend does,
// from the one model (issue 12, defects 5 and 7), and what it cannot enforce (UDP) as not
// enforced. The inputs are translate's own test cases, as in the Istio e2e suite.
func TestDiagnosticsOnXDS(t *testing.T) {
	o := start(t)
	ctx := context.Background()
	ns := o.namespace(t)
	for _, dir := range []string{"cmd/translate/testdata/smi-diagnostics", "cmd/translate/testdata/udp-not-enforced"} {
		refused, err := testenv.CreateManifests(ctx, o.client, dir, ns)
		if err != nil {
			t.Fatal(err)
		}
		for name, err := range refused {
			if name != "strict" || !strings.Contains(err.Error(), "spec.rules: Required value") {
				t.Errorf("%s: %s refused: %v", dir, name, err)
			}
		}
	}

	split := func(name string) *hub.TrafficSplit {
		return &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	target := func(name string) *hub.TrafficTarget {
		return &hub.TrafficTarget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	o.waitCondition(t, split("headless"), smi.ConditionProgrammed, metav1.ConditionFalse, "NoRoutablePorts")
	o.waitCondition(t, split("sticky"), smi.ConditionResolvedRefs, metav1.ConditionFalse, "SelfReferentialSplit")
	o.waitCondition(t, split("sticky"), smi.ConditionProgrammed, metav1.ConditionTrue, "Programmed")
	o.waitCondition(t, target("legacy"), smi.ConditionResolvedRefs, metav1.ConditionFalse, "NoRules")
	o.waitCondition(t, target("dns"), smi.ConditionProgrammed, metav1.ConditionFalse, "UDPNotEnforced")
}

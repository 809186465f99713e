package istioe2e

import (
	"context"
	"testing"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// invertWeightsTag builds translators/istio's deliberate bug (weights_inverted.go) into the
// operator: each split's backends get their weights in reverse order.
const invertWeightsTag = "smi_e2e_invert_weights"

// TestWrongTranslationFails: the suite measures traffic, not objects. An operator built with a
// deliberately wrong translator (tag smi_e2e_invert_weights) takes the real one's place; for a
// TrafficSplit of 80/20 the calls spread as 20/80, and the distribution check of
// TestSplitWeightsOnIstiod fails on them (while the check of 20/80 passes: what fails is the
// translation, not chance). The real operator, back in its place, rewrites the same split's
// VirtualService from the same TrafficSplit, and the same check passes on the same client.
func TestWrongTranslationFails(t *testing.T) {
	m := start(t)
	ctx := context.Background()
	wrong, err := testenv.BuildOperatorTagged(m.dir, "smi-operator-inverted", invertWeightsTag)
	if err != nil {
		t.Fatal(err)
	}
	ns := m.namespace(t, "wrong-translation")
	c := m.apexAndBackends(t, ns)

	m.swapOperator(t, wrong, "operator-inverted.log")
	restored := false
	restore := func() {
		if !restored {
			restored = true
			m.swapOperator(t, m.operatorBinary, "operator-restored.log")
		}
	}
	t.Cleanup(restore) // the tests after this one need the real operator

	m.split(t, "v1alpha4", ns, "apex", 80, 20)
	wait(t, ctx, func(ctx context.Context) error { return grpcxds.WaitFor(ctx, c, notFrom("apex")) })
	counts, err := grpcxds.Distribution(ctx, c, calls)
	if err != nil {
		t.Fatal(err)
	}
	if err := grpcxds.CheckShares(counts, map[string]float64{"v1": 80, "v2": 20}); err == nil {
		t.Fatalf("with weights inverted by the translator, %d calls spread as %v and passed the check of the split's 80/20", calls, counts)
	} else {
		t.Logf("the operator built with %s fails the check of the split's 80/20, as it must: %v", invertWeightsTag, err)
	}
	if err := grpcxds.CheckShares(counts, map[string]float64{"v1": 20, "v2": 80}); err != nil {
		t.Fatalf("the operator built with %s should have programmed 20/80: %v", invertWeightsTag, err)
	}

	restore()
	wait(t, ctx, func(ctx context.Context) error { return mostlyOn(ctx, c, "v1") })
	shares(t, ctx, c, map[string]float64{"v1": 80, "v2": 20})
}

// swapOperator stops the running operator and runs binary, another build of it, in its place with
// the same flags (its output in logName); the SMIOperator already selects the Istio backend.
func (m *meshEnv) swapOperator(t testing.TB, binary, logName string) {
	t.Helper()
	m.operator.Stop()
	if err := m.runOperator(binary, logName); err != nil {
		t.Fatal(err)
	}
}

//go:build smi_e2e_invert_weights

package istio

import "slices"

// testOnlyWeights, in the test-only build tagged smi_e2e_invert_weights, is a deliberate bug: it
// gives each split's backends their weights in reverse order (80/20 becomes 20/80). The Istio
// end-to-end suite (test/istio/istioe2e, TestWrongTranslationFails) builds an operator with it and
// requires its distribution check to fail: the suite measures traffic, not objects. Never built
// into the operator otherwise.
func testOnlyWeights(percent []int32) []int32 {
	out := slices.Clone(percent)
	slices.Reverse(out)
	return out
}

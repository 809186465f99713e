//go:build !smi_e2e_invert_weights

package istio

// testOnlyWeights is the identity in every real build. It exists only so that a test build (tag
// smi_e2e_invert_weights, weights_inverted.go) can make the translator deliberately wrong, and
// show that the Istio end-to-end suite, which judges where RPCs land, then fails. It is a function
// chosen at compile time, not a variable: nothing at run time can switch it, and in this build
// the call is inlined away.
func testOnlyWeights(percent []int32) []int32 { return percent }

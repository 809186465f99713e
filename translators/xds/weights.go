package xds

import (
	"math"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

// maxTotalWeight bounds the sum of a weighted_clusters' weights: its weights and total_weight are
// uint32 (grpc-go rejects a total above that), and grpc-java reads each weight as a signed 32-bit
// int, so that one of 2^31 or more turns negative there. A sum within MaxInt32 keeps every
// weight, and the total, valid for both.
const maxTotalWeight = math.MaxInt32

// clusterWeights turns non-negative split weights into xDS weights (mesh.ScaleWeights with
// maxTotalWeight): a zero weight stays zero, for the caller to drop.
func clusterWeights(weights []int) []uint32 {
	out := make([]uint32, len(weights))
	for i, w := range mesh.ScaleWeights(weights, maxTotalWeight) {
		out[i] = uint32(w) // 0 <= w <= maxTotalWeight
	}
	return out
}

package xds

import (
	"math"
	"math/big"
)

// maxTotalWeight bounds the sum of a weighted_clusters' weights: its weights and total_weight are
// uint32 (grpc-go rejects a total above that), and grpc-java reads each weight as a signed 32-bit
// int, so that one of 2^31 or more turns negative there. A sum within MaxInt32 keeps every
// weight, and the total, valid for both.
const maxTotalWeight = math.MaxInt32

// clusterWeights turns non-negative split weights into xDS weights: unchanged when their sum is
// at most maxTotalWeight, else scaled down in proportion. A negative weight counts as zero. A zero
// weight stays zero, for the caller to drop; a positive weight stays positive even when scaling
// would round it to zero, so the total is > 0 whenever any weight is positive.
//
// SMI weights are arbitrary integers whose sum can overflow int64, hence the big integers.
func clusterWeights(weights []int) []uint32 {
	out := make([]uint32, len(weights))
	total := new(big.Int)
	for _, w := range weights {
		total.Add(total, big.NewInt(int64(max(w, 0))))
	}
	if total.IsUint64() && total.Uint64() <= maxTotalWeight {
		for i, w := range weights {
			out[i] = uint32(max(w, 0))
		}
		return out
	}
	// Scale to a budget that leaves room for every positive weight to be raised to 1: the sum is
	// then at most budget + len(weights) <= maxTotalWeight.
	budget := big.NewInt(maxTotalWeight - int64(len(weights)))
	for i, w := range weights {
		if w <= 0 {
			continue
		}
		share := new(big.Int).Quo(new(big.Int).Mul(big.NewInt(int64(w)), budget), total)
		out[i] = uint32(max(share.Uint64(), 1)) // share <= budget
	}
	return out
}

package istio

import (
	"math/big"
	"slices"
)

// percentages turns non-negative weights into integer percentages summing to exactly 100, by
// largest remainder: each weight gets the floor of its share, and the points still missing go,
// one each, to the largest remainders (ties to the lower index). A zero weight never gets a point.
// All weights zero (or none) give all zeros: there is nothing to share.
//
// SMI weights are arbitrary integers; their sum can overflow int64, so shares are exact big-integer
// arithmetic rather than floating point, which would also make ties depend on rounding.
func percentages(weights []int) []int32 {
	out := make([]int32, len(weights))
	total := new(big.Int)
	for _, w := range weights {
		total.Add(total, big.NewInt(int64(max(w, 0))))
	}
	if total.Sign() == 0 {
		return out
	}
	remainders := make([]*big.Int, len(weights))
	missing := int32(100)
	hundred := big.NewInt(100)
	for i, w := range weights {
		share, rem := new(big.Int).QuoRem(new(big.Int).Mul(big.NewInt(int64(max(w, 0))), hundred), total, new(big.Int))
		out[i] = int32(share.Int64()) // at most 100
		remainders[i] = rem
		missing -= out[i]
	}
	// missing < len(weights), and only weights with a positive remainder are candidates: their
	// remainders add up to missing*total, each below total, so there are more than missing of them.
	order := make([]int, 0, len(weights))
	for i, rem := range remainders {
		if rem.Sign() > 0 {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return remainders[b].Cmp(remainders[a]) })
	for _, i := range order[:missing] {
		out[i]++
	}
	return out
}

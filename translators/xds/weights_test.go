package xds

import (
	"math"
	"slices"
	"testing"
)

func TestClusterWeights(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		want    []uint32
	}{
		{name: "as given", weights: []int{75, 25}, want: []uint32{75, 25}},
		{name: "zero stays zero", weights: []int{0, 3, 0}, want: []uint32{0, 3, 0}},
		{name: "negative counts as zero", weights: []int{-5, 1}, want: []uint32{0, 1}},
		{name: "all zero", weights: []int{0, 0}, want: []uint32{0, 0}},
		{name: "none", weights: nil, want: []uint32{}},
		{name: "sum exactly max", weights: []int{math.MaxInt32 - 1, 1}, want: []uint32{math.MaxInt32 - 1, 1}},
		{name: "sum above max is scaled", weights: []int{math.MaxInt32, math.MaxInt32}, want: []uint32{(math.MaxInt32 - 2) / 2, (math.MaxInt32 - 2) / 2}},
		// grpc-java reads a weight as a signed 32-bit int: 2^31 would turn negative there.
		{name: "a weight above MaxInt32 is scaled though the sum fits a uint32", weights: []int{1 << 31, 1}, want: []uint32{math.MaxInt32 - 3, 1}},
		{name: "tiny weight next to a huge one stays positive", weights: []int{math.MaxInt64, 1}, want: []uint32{math.MaxInt32 - 3, 1}},
		{name: "sum overflows int64", weights: []int{math.MaxInt64, math.MaxInt64, 0}, want: []uint32{(math.MaxInt32 - 3) / 2, (math.MaxInt32 - 3) / 2, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clusterWeights(tt.weights); !slices.Equal(got, tt.want) {
				t.Errorf("clusterWeights(%v) = %v, want %v", tt.weights, got, tt.want)
			}
		})
	}
}

// TestClusterWeightsNeverSumToZero: whenever a weight is positive, the xDS weights are positive
// exactly where the split's are, and sum to more than 0 and at most MaxInt32 (grpc-go rejects
// both a zero total and one overflowing uint32; grpc-java reads each weight as a signed int32).
func TestClusterWeightsNeverSumToZero(t *testing.T) {
	cases := [][]int{
		{1}, {0, 1}, {1, 0, 0, 0}, {100, 0}, {math.MaxInt64}, {math.MaxInt64, 1, 0},
		{math.MaxUint32, 1}, {math.MaxUint32 / 2, math.MaxUint32 / 2, 2}, {math.MaxInt64, math.MaxInt64, math.MaxInt64, 1},
		{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {0, 0, 0, 7},
	}
	for _, weights := range cases {
		got := clusterWeights(weights)
		sum := uint64(0)
		for i, w := range got {
			if (w > 0) != (weights[i] > 0) {
				t.Errorf("clusterWeights(%v) = %v: weight %d changed sign", weights, got, i)
			}
			sum += uint64(w)
		}
		if sum == 0 || sum > math.MaxInt32 {
			t.Errorf("clusterWeights(%v) = %v sums to %d", weights, got, sum)
		}
	}
}

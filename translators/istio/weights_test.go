package istio

import (
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPercentages(t *testing.T) {
	many := func(n, w int) []int { return slices.Repeat([]int{w}, n) }
	tests := []struct {
		name    string
		weights []int
		want    []int32
	}{
		{"already percentages", []int{90, 10}, []int32{90, 10}},
		{"scaled down", []int{900, 100}, []int32{90, 10}},
		{"thirds: the leftover point goes to the first", []int{1, 1, 1}, []int32{34, 33, 33}},
		{"largest remainder wins, not the first", []int{1, 1, 2}, []int32{25, 25, 50}},
		{"largest remainder with different remainders", []int{10, 20, 40}, []int32{14, 29, 57}},
		{"zero weight never gets the leftover", []int{0, 1, 1, 1}, []int32{0, 34, 33, 33}},
		{"zero weights around positive ones", []int{0, 1, 0, 2, 0}, []int32{0, 33, 0, 67, 0}},
		{"a lone positive weight gets everything", []int{0, 7, 0}, []int32{0, 100, 0}},
		{"a tiny weight rounds to zero", []int{1000, 1}, []int32{100, 0}},
		{"all zero: nothing to share", []int{0, 0}, []int32{0, 0}},
		{"no backends", nil, []int32{}},
		{"seven equal backends", many(7, 3), []int32{15, 15, 14, 14, 14, 14, 14}},
		{"more backends than points: the first hundred get one", many(150, 1), append(slices.Repeat([]int32{1}, 100), slices.Repeat([]int32{0}, 50)...)},
		{"huge weights whose sum overflows int64", []int{math.MaxInt64, math.MaxInt64, 1}, []int32{50, 50, 0}},
		{"huge and small", []int{math.MaxInt64, math.MaxInt64 / 3}, []int32{75, 25}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := percentages(tc.weights)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("percentages(%v) (-want +got):\n%s", tc.weights, d)
			}
			checkPercentages(t, tc.weights, got)
		})
	}
}

// TestPercentagesProperties checks the guarantees on many generated inputs (fixed seed: the test
// is reproducible).
func TestPercentagesProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		weights := make([]int, 1+rng.IntN(12))
		for i := range weights {
			switch rng.IntN(4) {
			case 0: // zero weights are common
			case 1:
				weights[i] = rng.IntN(10)
			case 2:
				weights[i] = rng.IntN(1000)
			default:
				weights[i] = int(rng.Int64N(math.MaxInt64))
			}
		}
		checkPercentages(t, weights, percentages(weights))
	}
}

// checkPercentages: the points sum to 100 (when any weight is positive), zero weights get none,
// each share is its exact value rounded down or up, and a larger weight never gets fewer points.
func checkPercentages(t *testing.T, weights []int, got []int32) {
	t.Helper()
	if len(got) != len(weights) {
		t.Fatalf("percentages(%v) = %v: wrong length", weights, got)
	}
	total := new(big.Int)
	for _, w := range weights {
		total.Add(total, big.NewInt(int64(w)))
	}
	sum := int32(0)
	for i, p := range got {
		sum += p
		if weights[i] == 0 && p != 0 {
			t.Errorf("percentages(%v) = %v: zero weight #%d got %d", weights, got, i, p)
		}
		if total.Sign() > 0 {
			exact := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(int64(weights[i])), big.NewInt(100)), total)
			diff := new(big.Rat).Sub(exact, new(big.Rat).SetInt64(int64(p)))
			if diff.Cmp(big.NewRat(-1, 1)) <= 0 || diff.Cmp(big.NewRat(1, 1)) >= 0 {
				t.Errorf("percentages(%v) = %v: #%d is %d, exact share %s", weights, got, i, p, exact.FloatString(3))
			}
		}
		for j := range weights {
			if weights[i] > weights[j] && got[i] < got[j] {
				t.Errorf("percentages(%v) = %v: weight %d got fewer points than weight %d", weights, got, weights[i], weights[j])
			}
		}
	}
	want := int32(100)
	if total.Sign() == 0 {
		want = 0
	}
	if sum != want {
		t.Errorf("percentages(%v) = %v: sum %d, want %d", weights, got, sum, want)
	}
}

package grpcxds

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
)

// Distribution makes n calls one after the other and counts the answers per backend name. It stops
// at the first failing call. grpc-go picks a weighted cluster for every RPC at random, so with
// weights w the counts are multinomial: check them with CheckShares.
func Distribution(ctx context.Context, conn grpc.ClientConnInterface, n int, opts ...grpc.CallOption) (map[string]int, error) {
	counts := map[string]int{}
	for i := range n {
		reply, err := Call(ctx, conn, opts...)
		if err != nil {
			return counts, fmt.Errorf("call %d of %d: %w", i+1, n, err)
		}
		counts[reply.Backend]++
	}
	return counts, nil
}

// Tolerance is the largest accepted |observed − n·p| for a count that is binomial(n, p): four
// standard deviations plus one (for discreteness when the variance is small).
//
// A correct distribution fails this check with probability FalseFailureProbability(n, p):
// computed exactly, 5.0e-5 for n = 1000 and p = 0.2, 4.4e-5 for p = 0.5; below 2e-4 whenever
// n·p·(1−p) ≥ 10 and below 5e-4 whenever n·p·(1−p) ≥ 1 (checked for n ≤ 5000; very skewed shares
// are the worst case). A check of k
// shares fails falsely with probability at most k times that (for two backends the two events
// coincide). It detects a share off by more than
// about 4·sqrt(p(1−p)/n): 5 percentage points for n = 1000 and p = 0.2.
func Tolerance(n int, p float64) float64 {
	return 4*math.Sqrt(float64(n)*p*(1-p)) + 1
}

// FalseFailureProbability is the exact probability that a binomial(n, p) count lies further than
// Tolerance(n, p) from n·p: the chance that a correct distribution fails CheckShares on this share.
func FalseFailureProbability(n int, p float64) float64 {
	if p <= 0 || p >= 1 {
		return 0
	}
	mean, tol := float64(n)*p, Tolerance(n, p)
	total := 0.0
	for k := 0; k <= n; k++ {
		if math.Abs(float64(k)-mean) <= tol {
			continue
		}
		lc, _ := math.Lgamma(float64(n + 1))
		lk, _ := math.Lgamma(float64(k + 1))
		lnk, _ := math.Lgamma(float64(n - k + 1))
		total += math.Exp(lc - lk - lnk + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p))
	}
	return total
}

// CheckShares compares counts (from Distribution) with the weights each backend should get (any
// scale: 80 and 20, or 0.8 and 0.2). n is the sum of the counts. For a backend with share p,
// 0 < p < 1, it accepts |count − n·p| ≤ Tolerance(n, p); a backend with weight 0, or missing from
// weights, must get no call at all, and a backend with all the weight every call. The error lists
// every share that is off.
func CheckShares(counts map[string]int, weights map[string]float64) error {
	n, sum := 0, 0.0
	for _, c := range counts {
		n += c
	}
	for name, w := range weights {
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return fmt.Errorf("weight %v for %s", w, name)
		}
		sum += w
	}
	if n == 0 || sum == 0 {
		return fmt.Errorf("nothing to compare: %d calls, weights %v", n, weights)
	}
	names := map[string]bool{}
	for name := range counts {
		names[name] = true
	}
	for name := range weights {
		names[name] = true
	}
	var off []string
	for _, name := range slices.Sorted(maps.Keys(names)) {
		p := weights[name] / sum
		got, want := float64(counts[name]), float64(n)*p
		tol := 0.0
		if p > 0 && p < 1 {
			tol = Tolerance(n, p)
		}
		if math.Abs(got-want) > tol {
			off = append(off, fmt.Sprintf("%s got %d of %d calls, want %.1f ± %.1f (share %.3f)", name, counts[name], n, want, tol, p))
		}
	}
	if len(off) > 0 {
		return fmt.Errorf("distribution %v is off: %s", counts, strings.Join(off, "; "))
	}
	return nil
}

// WaitOnly makes runs of n calls until every call of a run is answered by the backend name (after
// a weight change, calls already picked by the old weights may still land elsewhere), pausing
// between runs, and returns nil then; when ctx ends first, it says how the last run spread.
func WaitOnly(ctx context.Context, conn grpc.ClientConnInterface, name string, n int) error {
	for {
		counts, err := Distribution(ctx, conn, n)
		if err == nil && counts[name] == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: calls still spread as %v (error %v), want all %d on %s", ctx.Err(), counts, err, n, name)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

package server

import (
	"math"
	"testing"
	"time"
)

// TestCSRLimitsDropFullBuckets: a ServiceAccount whose bucket has had time to fill again is
// forgotten, so the buckets follow the identities asking now.
func TestCSRLimitsDropFullBuckets(t *testing.T) {
	l := newCSRLimits(1, 1) // full again after a second
	clock := time.Unix(0, 0)
	l.now = func() time.Time { return clock }
	a, b := Identity{Namespace: "shop", ServiceAccount: "a"}, Identity{Namespace: "shop", ServiceAccount: "b"}
	if !l.allow(a) || l.allow(a) {
		t.Fatal("a bucket of one did not allow exactly one CSR at once")
	}
	clock = clock.Add(2 * time.Second)
	if !l.allow(b) {
		t.Fatal("another identity was refused")
	}
	if _, kept := l.buckets[a]; kept || len(l.buckets) != 1 {
		t.Errorf("buckets after a's refilled: %v, want only b's", l.buckets)
	}
}

// TestCSRLimitsOfExtremeRates: a rate too low for its refill time to fit a Duration still limits,
// and a rate that is no number is the default.
func TestCSRLimitsOfExtremeRates(t *testing.T) {
	l := newCSRLimits(1e-300, 1)
	a := Identity{Namespace: "shop", ServiceAccount: "a"}
	if l.refill <= 0 || !l.allow(a) || l.allow(a) {
		t.Errorf("rate 1e-300: refill %v, and not exactly one CSR allowed", l.refill)
	}
	for _, r := range []float64{math.NaN(), math.Inf(1), -1} {
		if got := newCSRLimits(r, 0); got.rate != DefaultCSRRate || got.burst != DefaultCSRBurst {
			t.Errorf("rate %v: %v a second, burst %d; want the defaults", r, got.rate, got.burst)
		}
	}
}

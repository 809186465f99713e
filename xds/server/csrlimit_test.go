package server

import (
	"testing"
	"time"
)

// TestCSRLimitsDropFullBuckets: a ServiceAccount whose bucket has had time to fill again is
// forgotten, so the buckets follow the identities asking now.
func TestCSRLimitsDropFullBuckets(t *testing.T) {
	l := newCSRLimits(1000, 1) // full again after a millisecond
	a, b := Identity{Namespace: "shop", ServiceAccount: "a"}, Identity{Namespace: "shop", ServiceAccount: "b"}
	if !l.allow(a) || l.allow(a) {
		t.Fatal("a bucket of one did not allow exactly one CSR at once")
	}
	time.Sleep(5 * time.Millisecond)
	if !l.allow(b) {
		t.Fatal("another identity was refused")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, kept := l.buckets[a]; kept || len(l.buckets) != 1 {
		t.Errorf("buckets after a's refilled: %v, want only b's", l.buckets)
	}
}

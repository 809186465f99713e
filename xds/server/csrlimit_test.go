package server

import (
	"math"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/smi-operator/smi-operator/xds/auth"
)

func caller(ns, sa, pod string) auth.Caller {
	return auth.Caller{Identity: Identity{Namespace: ns, ServiceAccount: sa}, Pod: types.UID(pod)}
}

// TestCSRLimitsArePerPodWithinANamespaceCap: a pod that used up its bucket leaves its siblings
// of the same ServiceAccount theirs (tokens bound to no pod share their ServiceAccount's), and a
// namespace, however many pods and ServiceAccounts ask, gets its own cap; a caller refused by the
// namespace's cap keeps its own bucket, and a caller refused by its own bucket takes nothing from
// the namespace's.
func TestCSRLimitsArePerPodWithinANamespaceCap(t *testing.T) {
	// Callers' buckets do not refill within the test; namespaces' take one a second.
	l := newCSRLimits(csrLimit{rate: 1e-6, burst: 2}, csrLimit{rate: 1, burst: 6})
	clock := time.Unix(0, 0)
	l.now = func() time.Time { return clock }
	allow := func(c auth.Caller, want string) {
		t.Helper()
		err := l.allow(c)
		switch {
		case want == "" && err != nil:
			t.Fatalf("%v refused: %v", c, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Fatalf("%v: %v, want refused naming %q", c, err, want)
		}
	}
	web1, web2, unbound := caller("shop", "web", "uid-1"), caller("shop", "web", "uid-2"), caller("shop", "web", "")
	db := caller("shop", "db", "uid-3")
	allow(web1, "")
	allow(web1, "")
	allow(web1, "ServiceAccount shop/web (pod uid-1)")
	allow(web1, "ServiceAccount shop/web (pod uid-1)") // refusals take nothing from the namespace: 2 of 6 given
	allow(web2, "")
	allow(unbound, "") // tokens bound to no pod share their ServiceAccount's bucket
	allow(unbound, "")
	allow(unbound, "ServiceAccount shop/web asked")
	allow(db, "")
	allow(db, "namespace shop") // 6 of 6 given
	allow(caller("bank", "web", "uid-4"), "")
	// Two seconds on, the namespace has two CSRs again: db, refused by the namespace, kept its own
	// second one.
	clock = clock.Add(2 * time.Second)
	allow(db, "")
	allow(db, "ServiceAccount shop/db (pod uid-3)")
}

// TestCSRLimitsDropFullBuckets: a caller or namespace whose bucket has had time to fill again is
// forgotten, so the buckets follow those asking now.
func TestCSRLimitsDropFullBuckets(t *testing.T) {
	l := newCSRLimits(csrLimit{rate: 1, burst: 1}, csrLimit{rate: 1, burst: 2}) // full again after 1 s and 2 s
	clock := time.Unix(0, 0)
	l.now = func() time.Time { return clock }
	a, b := caller("shop", "a", ""), caller("bank", "b", "")
	if l.allow(a) != nil || l.allow(a) == nil {
		t.Fatal("a bucket of one did not allow exactly one CSR at once")
	}
	clock = clock.Add(2 * time.Second)
	if err := l.allow(b); err != nil {
		t.Fatalf("another caller was refused: %v", err)
	}
	if _, kept := l.callers.limiters[a]; kept || len(l.callers.limiters) != 1 {
		t.Errorf("callers' buckets after a's refilled: %v, want only b's", l.callers.limiters)
	}
	if _, kept := l.namespaces.limiters["shop"]; kept || len(l.namespaces.limiters) != 1 {
		t.Errorf("namespaces' buckets after shop's refilled: %v, want only bank's", l.namespaces.limiters)
	}
}

// TestCSRLimitsOfExtremeRates: a rate too low for its refill time to fit a Duration still limits,
// its full buckets looked for once a minute, and a rate that is no number is the default.
func TestCSRLimitsOfExtremeRates(t *testing.T) {
	l := newCSRLimits(csrLimit{rate: 1e-300, burst: 1}, csrLimit{})
	a := caller("shop", "a", "")
	if l.callers.sweepEvery != maxSweepInterval || l.allow(a) != nil || l.allow(a) == nil {
		t.Errorf("rate 1e-300: a sweep every %v, and not exactly one CSR allowed", l.callers.sweepEvery)
	}
	for _, r := range []float64{math.NaN(), math.Inf(1), -1} {
		got := newCSRLimits(csrLimit{rate: r}, csrLimit{rate: r})
		if got.callers.rate != DefaultCSRRate || got.callers.burst != DefaultCSRBurst ||
			got.namespaces.rate != DefaultCSRNamespaceRate || got.namespaces.burst != DefaultCSRNamespaceBurst {
			t.Errorf("rate %v: %v a second, burst %d, per namespace %v and %d; want the defaults", r,
				got.callers.rate, got.callers.burst, got.namespaces.rate, got.namespaces.burst)
		}
	}
}

// TestCSRLimitsKeepBucketsNotFull: a sweep drops only the buckets full again; one partly refilled
// stays, so its caller cannot get a full burst again by waiting for a sweep.
func TestCSRLimitsKeepBucketsNotFull(t *testing.T) {
	l := newCSRLimits(csrLimit{rate: 1, burst: 2}, csrLimit{rate: 100, burst: 100}) // callers' sweeps 2 s apart
	clock := time.Unix(0, 0)
	l.now = func() time.Time { return clock }
	a, b, c := caller("shop", "a", ""), caller("shop", "b", ""), caller("shop", "c", "")
	if err := l.allow(b); err != nil { // the first sweep; the next is due in 2 s
		t.Fatal(err)
	}
	clock = clock.Add(time.Second)
	if l.allow(a) != nil || l.allow(a) != nil || l.allow(a) == nil {
		t.Fatal("a bucket of two did not allow exactly two CSRs at once")
	}
	clock = clock.Add(time.Second)
	if err := l.allow(c); err != nil { // the second sweep: b's bucket is full, a's holds one token
		t.Fatal(err)
	}
	if _, kept := l.callers.limiters[b]; kept {
		t.Error("b's bucket, full again, was kept")
	}
	if _, kept := l.callers.limiters[a]; !kept {
		t.Fatal("a's bucket, one token of two, was dropped")
	}
	if l.allow(a) != nil || l.allow(a) == nil {
		t.Error("a, one second after emptying its bucket, did not get exactly the one CSR refilled")
	}
}

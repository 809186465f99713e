package server

import (
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/smi-operator/smi-operator/xds/auth"
)

// DefaultCSRRate and DefaultCSRBurst bound the CSRs signed per caller (Options.CSRRate,
// Options.CSRBurst): a pod, or a ServiceAccount for its tokens bound to no pod. A burst of 200,
// then 50 a second, so that one workload asking without end has the operator sign at most 50 a
// second for it.
const (
	DefaultCSRRate  = 50
	DefaultCSRBurst = 200
)

// DefaultCSRNamespaceRate and DefaultCSRNamespaceBurst bound the CSRs signed per namespace,
// whatever its pods and ServiceAccounts (Options.CSRNamespaceRate, Options.CSRNamespaceBurst):
// a rollout of 1,000 pods at once, then 200 a second, so that a tenant cannot have more signed
// by making more ServiceAccounts or pods, and one looping pod leaves the rest of its namespace
// three quarters of the rate.
const (
	DefaultCSRNamespaceRate  = 200
	DefaultCSRNamespaceBurst = 1000
)

// csrLimit is a token bucket's size: burst at once, then rate a second.
type csrLimit struct {
	rate  float64
	burst int
}

// csrLimits holds the token buckets of the callers and of the namespaces that asked recently; a
// CSR takes one token from each.
type csrLimits struct {
	now func() time.Time

	mu         sync.Mutex
	callers    buckets[auth.Caller]
	namespaces buckets[string]
}

// buckets holds a token bucket per key that asked recently. A bucket full again is the same as
// none, so such buckets are dropped (looked for once per sweepEvery): the map follows those
// asking, not everyone that ever asked.
type buckets[K comparable] struct {
	rate       rate.Limit
	burst      int
	sweepEvery time.Duration
	limiters   map[K]*rate.Limiter
	nextSweep  time.Time
}

// maxSweepInterval bounds how long a bucket full again may stay: the time an empty one takes to
// fill, or this if that is longer.
const maxSweepInterval = time.Minute

// newCSRLimits bounds the CSRs of each caller and of each namespace; a zero (or invalid) rate or
// burst is the default.
func newCSRLimits(perCaller, perNamespace csrLimit) *csrLimits {
	return &csrLimits{
		now:        time.Now,
		callers:    newBuckets[auth.Caller](perCaller, csrLimit{DefaultCSRRate, DefaultCSRBurst}),
		namespaces: newBuckets[string](perNamespace, csrLimit{DefaultCSRNamespaceRate, DefaultCSRNamespaceBurst}),
	}
}

func newBuckets[K comparable](limit, defaults csrLimit) buckets[K] {
	if !(limit.rate > 0) || math.IsInf(limit.rate, 0) { // NaN too
		limit.rate = defaults.rate
	}
	if limit.burst <= 0 {
		limit.burst = defaults.burst
	}
	sweepEvery := maxSweepInterval
	if fill := float64(limit.burst) / limit.rate; fill < sweepEvery.Seconds() {
		sweepEvery = time.Duration(fill * float64(time.Second))
	}
	return buckets[K]{rate: rate.Limit(limit.rate), burst: limit.burst, sweepEvery: sweepEvery, limiters: map[K]*rate.Limiter{}}
}

// of returns key's bucket, made now if it has none, after dropping the buckets full again.
func (b *buckets[K]) of(now time.Time, key K) *rate.Limiter {
	if !now.Before(b.nextSweep) {
		for other, limiter := range b.limiters {
			if limiter.TokensAt(now) >= float64(b.burst) {
				delete(b.limiters, other)
			}
		}
		b.nextSweep = now.Add(b.sweepEvery)
	}
	limiter, ok := b.limiters[key]
	if !ok {
		limiter = rate.NewLimiter(b.rate, b.burst)
		b.limiters[key] = limiter
	}
	return limiter
}

// csrLimited is a CSR refused by a bucket: reason is the metric's label.
type csrLimited struct {
	reason, message string
}

func (e *csrLimited) Error() string { return e.message }

func (b *buckets[K]) exceeded(reason, who string) *csrLimited {
	return &csrLimited{reason: reason, message: fmt.Sprintf("%s asked for more than %d certificates at once, or %v a second since",
		who, b.burst, float64(b.rate))}
}

// allow takes a token from c's bucket and from its namespace's if both have one, else says which
// has none: a caller refused by its namespace keeps its token, and one refused by its own bucket
// takes none from its namespace's.
func (l *csrLimits) allow(c auth.Caller) *csrLimited {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	namespace := l.namespaces.of(now, c.Identity.Namespace)
	if namespace.TokensAt(now) < 1 {
		return l.namespaces.exceeded("namespace-rate-limited", "namespace "+c.Identity.Namespace)
	}
	if !l.callers.of(now, c).AllowN(now, 1) {
		return l.callers.exceeded("rate-limited", c.String())
	}
	namespace.AllowN(now, 1)
	return nil
}

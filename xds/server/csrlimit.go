package server

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultCSRRate and DefaultCSRBurst bound the CSRs signed per ServiceAccount
// (Options.CSRRate, Options.CSRBurst): a burst of 200 (a rollout's pods, each asking once), then 50
// a second, so that one workload asking without end has the operator sign at most 50 a second
// for it.
const (
	DefaultCSRRate  = 50
	DefaultCSRBurst = 200
)

// csrLimits holds a token bucket per ServiceAccount that asked recently. A bucket full again is
// the same as none, so buckets idle for that long are dropped: the map follows the identities
// asking, not every identity that ever asked.
type csrLimits struct {
	rate  rate.Limit
	burst int
	// refill is how long an empty bucket takes to fill.
	refill time.Duration
	now    func() time.Time

	mu        sync.Mutex
	buckets   map[Identity]*csrBucket
	nextSweep time.Time
}

type csrBucket struct {
	limiter *rate.Limiter
	last    time.Time
}

func newCSRLimits(perSecond float64, burst int) *csrLimits {
	if !(perSecond > 0) || math.IsInf(perSecond, 0) { // NaN too
		perSecond = DefaultCSRRate
	}
	if burst <= 0 {
		burst = DefaultCSRBurst
	}
	// Bounded: a rate so low that filling overflows a Duration would otherwise drop every bucket
	// at every call, and so limit nothing.
	refill := time.Duration(min(float64(burst)/perSecond, (24*time.Hour).Seconds()) * float64(time.Second))
	return &csrLimits{rate: rate.Limit(perSecond), burst: burst, refill: refill, now: time.Now, buckets: map[Identity]*csrBucket{}}
}

// allow says whether id may have a CSR signed now, and takes one from its bucket if so.
func (l *csrLimits) allow(id Identity) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !now.Before(l.nextSweep) {
		for other, b := range l.buckets {
			if now.Sub(b.last) >= l.refill {
				delete(l.buckets, other)
			}
		}
		l.nextSweep = now.Add(l.refill)
	}
	b, ok := l.buckets[id]
	if !ok {
		b = &csrBucket{limiter: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[id] = b
	}
	b.last = now
	return b.limiter.AllowN(now, 1)
}

package server

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultCSRRate and DefaultCSRBurst bound the CSRs signed per ServiceAccount
// (Options.CSRRate, Options.CSRBurst): a rollout of up to 200 pods of one ServiceAccount gets its
// certificates at once, more at 50 a second, while one workload asking without end has the
// operator sign at most 50 a second for it.
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

	mu        sync.Mutex
	buckets   map[Identity]*csrBucket
	nextSweep time.Time
}

type csrBucket struct {
	limiter *rate.Limiter
	last    time.Time
}

func newCSRLimits(perSecond float64, burst int) *csrLimits {
	if perSecond <= 0 {
		perSecond = DefaultCSRRate
	}
	if burst <= 0 {
		burst = DefaultCSRBurst
	}
	return &csrLimits{rate: rate.Limit(perSecond), burst: burst, buckets: map[Identity]*csrBucket{}}
}

// allow says whether id may have a CSR signed now, and takes one from its bucket if so.
func (l *csrLimits) allow(id Identity) bool {
	now := time.Now()
	refill := time.Duration(float64(l.burst) / float64(l.rate) * float64(time.Second))
	l.mu.Lock()
	defer l.mu.Unlock()
	if !now.Before(l.nextSweep) {
		for other, b := range l.buckets {
			if now.Sub(b.last) >= refill {
				delete(l.buckets, other)
			}
		}
		l.nextSweep = now.Add(refill)
	}
	b, ok := l.buckets[id]
	if !ok {
		b = &csrBucket{limiter: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[id] = b
	}
	b.last = now
	return b.limiter.AllowN(now, 1)
}

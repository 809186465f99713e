package server

import (
	"slices"
	"sync"
	"time"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

// DefaultRejectionReportInterval is the least time between two reports of one SMI object's
// rejections (Options.RejectionReportInterval).
const DefaultRejectionReportInterval = 5 * time.Second

// spacedReports tells of changed SMI objects at most once per interval each: an object's first
// change at once, the changes that follow within the interval together when it ends, and so on
// until an interval passes without one. Each report reconciles the object, which writes its status
// (and, when a rejection appears, a Warning Event) when its conditions changed, and any workload that proves its identity can
// refuse and accept its resources as often as it likes: spacing bounds those writes by the number
// of objects, not by the proxies' will, and the last change is always told.
type spacedReports struct {
	interval time.Duration
	tell     func([]mesh.ObjectRef)
	// afterInterval runs f once the interval has passed (time.AfterFunc).
	afterInterval func(f func())

	mu sync.Mutex
	// open holds the objects told within the last interval: true when they changed since.
	open map[mesh.ObjectRef]bool
	// stopped: nothing more is told, and no interval started.
	stopped bool
}

func newSpacedReports(interval time.Duration, tell func([]mesh.ObjectRef)) *spacedReports {
	if interval == 0 {
		interval = DefaultRejectionReportInterval
	}
	return &spacedReports{interval: interval, tell: tell, open: map[mesh.ObjectRef]bool{},
		afterInterval: func(f func()) { time.AfterFunc(interval, f) }}
}

// changed tells of the objects refs that were not told within the interval, and holds the others
// until their interval ends.
func (r *spacedReports) changed(refs []mesh.ObjectRef) {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	if r.interval < 0 {
		r.mu.Unlock()
		r.tell(refs)
		return
	}
	var now []mesh.ObjectRef
	for _, ref := range refs {
		if _, told := r.open[ref]; told {
			r.open[ref] = true
			continue
		}
		r.open[ref] = false
		now = append(now, ref)
	}
	r.mu.Unlock()
	r.tellAndWait(now)
}

// tellAndWait tells of refs and ends their interval once it has passed.
func (r *spacedReports) tellAndWait(refs []mesh.ObjectRef) {
	if len(refs) == 0 {
		return
	}
	r.tell(slices.Clone(refs)) // refs is walked again when the interval ends
	r.afterInterval(func() { r.intervalEnded(refs) })
}

// intervalEnded tells of those of refs that changed in the interval that ended, starting another,
// and forgets the others.
func (r *spacedReports) intervalEnded(refs []mesh.ObjectRef) {
	var due []mesh.ObjectRef
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	for _, ref := range refs {
		if r.open[ref] {
			r.open[ref] = false
			due = append(due, ref)
		} else {
			delete(r.open, ref)
		}
	}
	r.mu.Unlock()
	r.tellAndWait(due)
}

// stop ends the reports: what changes from now on, and what is held, is never told (a report
// already under way still ends).
func (r *spacedReports) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	clear(r.open)
}

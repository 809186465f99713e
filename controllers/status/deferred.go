package status

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/smi-operator/smi-operator/apis/smi/hub"
)

// Updater records the conditions of an SMI object.
type Updater interface {
	Update(ctx context.Context, obj hub.Object, conds []metav1.Condition) error
}

var (
	_ Updater = Writer{}
	_ Updater = (*Deferred)(nil)
)

// Deferred programs first and reports after: Update only records an object's conditions, and
// workers write them (with Writer) once no backend write has been in flight for Quiet, or once
// they have waited MaxDelay. When thousands of SMI objects arrive at once (an install, a restart,
// a backend swap) the mesh is programmed before the API server spends its time on status patches
// and Events, the way istiod writes status apart from pushing configuration. At rest nothing
// waits longer than Quiet.
type Deferred struct {
	Writer Writer
	// Reader reads the objects afresh before their status is written: the manager's cache.
	Reader client.Reader
	// Workers write statuses in parallel; 1 when zero.
	Workers int
	// Quiet is how long no backend write must have been in flight; 250 ms when zero (shorter lets
	// statuses slip in between the writes of a burst).
	Quiet time.Duration
	// MaxDelay bounds how long a status waits for quiet; 30 s when zero.
	MaxDelay time.Duration

	mu      sync.Mutex
	pending map[objectKey]*entry
	order   []objectKey // FIFO of pending keys; a key is in it once
	// writing holds the keys a worker is writing: no other worker takes the same key then, or an
	// older status could land after a newer one.
	writing map[objectKey]bool
	wake    chan struct{}
	once    sync.Once

	busy     atomic.Int64
	lastBusy atomic.Int64 // UnixNano of the last backend write's end
}

type objectKey struct {
	kind string // Go type, as the cache knows it
	types.NamespacedName
}

type entry struct {
	obj        hub.Object // a copy, for its type and key
	generation int64
	conds      []metav1.Condition
	since      time.Time
}

func (d *Deferred) init() {
	d.once.Do(func() {
		d.pending = map[objectKey]*entry{}
		d.writing = map[objectKey]bool{}
		d.wake = make(chan struct{}, 1)
	})
}

// Programming marks a backend write in flight until the returned func is called.
func (d *Deferred) Programming() (done func()) {
	d.busy.Add(1)
	return func() {
		d.lastBusy.Store(time.Now().UnixNano())
		d.busy.Add(-1)
	}
}

// Update records conds as obj's conditions for its current generation, replacing what an earlier
// reconcile of obj recorded and not written yet.
func (d *Deferred) Update(_ context.Context, obj hub.Object, conds []metav1.Condition) error {
	d.init()
	key := objectKey{kind: typeName(obj), NamespacedName: client.ObjectKeyFromObject(obj)}
	// At rest most reconciles change no status: nothing to queue, copy, wait for or read again,
	// unless an older status of the object is still queued or being written.
	changes := Changes(obj, conds)
	d.mu.Lock()
	e, queued := d.pending[key]
	if !changes && !queued && !d.writing[key] {
		d.mu.Unlock()
		return nil
	}
	if queued {
		e.obj, e.generation, e.conds = obj.DeepCopyObject().(hub.Object), obj.GetGeneration(), conds
	} else {
		d.pending[key] = &entry{obj: obj.DeepCopyObject().(hub.Object), generation: obj.GetGeneration(), conds: conds, since: time.Now()}
		d.order = append(d.order, key)
	}
	d.mu.Unlock()
	d.signal()
	return nil
}

func (d *Deferred) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Start runs the workers until ctx ends; Deferred is a manager Runnable.
func (d *Deferred) Start(ctx context.Context) error {
	d.init()
	var wg sync.WaitGroup
	for range max(d.Workers, 1) {
		wg.Go(func() { d.work(ctx) })
	}
	wg.Wait()
	return nil
}

// NeedLeaderElection is true: the reconcilers that record statuses run on the leader only.
func (d *Deferred) NeedLeaderElection() bool { return true }

func (d *Deferred) work(ctx context.Context) {
	log := logf.FromContext(ctx).WithName("status")
	for {
		key, e, wait := d.next()
		if e == nil {
			select {
			case <-ctx.Done():
				return
			case <-d.wake:
			case <-time.After(wait):
			}
			continue
		}
		err := d.write(ctx, key, e)
		d.written(key, e, err)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Error(err, "writing status", "kind", key.kind, "object", key.NamespacedName)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// next takes the oldest pending status if it may be written now; otherwise it says how long to
// wait before asking again (a wake-up comes sooner when something new is recorded).
func (d *Deferred) next() (objectKey, *entry, time.Duration) {
	quiet, maxDelay := d.Quiet, d.MaxDelay
	if quiet <= 0 {
		quiet = 250 * time.Millisecond
	}
	if maxDelay <= 0 {
		maxDelay = 30 * time.Second
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.order) == 0 {
		return objectKey{}, nil, time.Minute
	}
	// The first object no worker is writing; when all are, written wakes a worker.
	i := slices.IndexFunc(d.order, func(k objectKey) bool { return !d.writing[k] })
	if i < 0 {
		return objectKey{}, nil, time.Minute
	}
	key := d.order[i]
	e := d.pending[key]
	now := time.Now()
	sinceBusy := now.Sub(time.Unix(0, d.lastBusy.Load()))
	if d.busy.Load() > 0 || sinceBusy < quiet {
		overdue := e.since.Add(maxDelay)
		if now.Before(overdue) {
			return objectKey{}, nil, min(quiet, overdue.Sub(now))
		}
	}
	if i == 0 {
		d.order = d.order[1:] // the usual case, without moving the rest of a long queue
	} else {
		d.order = slices.Delete(d.order, i, i+1)
	}
	delete(d.pending, key)
	d.writing[key] = true
	if len(d.order) > 0 {
		d.signal() // another worker takes the next one
	}
	return key, e, 0
}

func typeName(obj any) string { return fmt.Sprintf("%T", obj) }

// written ends a worker's write of key: a status whose write failed is put back to be retried,
// unless a newer one was recorded meanwhile (no other worker can have written one: see writing).
func (d *Deferred) written(key objectKey, e *entry, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.writing, key)
	if _, newer := d.pending[key]; err != nil && !newer {
		d.pending[key] = e
		d.order = append(d.order, key)
	}
	if len(d.order) > 0 {
		d.signal() // a newer status of key may have waited for this write
	}
}

// write reads the object afresh and writes the conditions if they still describe its generation;
// a newer generation gets its own conditions from its own reconcile.
func (d *Deferred) write(ctx context.Context, key objectKey, e *entry) error {
	fresh := e.obj.DeepCopyObject().(hub.Object)
	if err := d.Reader.Get(ctx, key.NamespacedName, fresh); err != nil {
		return client.IgnoreNotFound(err)
	}
	if fresh.GetGeneration() != e.generation {
		return nil
	}
	err := d.Writer.Update(ctx, fresh, e.conds)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

package status

import (
	"context"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
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
	_ Updater = (*WriteQueue)(nil)
)

// WriteQueue programs first and reports after: Update only records an object's conditions, and
// workers write them (with Writer) once no backend write has been in flight for Quiet, or once
// they have waited MaxDelay. When thousands of SMI objects arrive at once (an install, a restart,
// a backend swap) the mesh is programmed before the API server spends its time on status patches
// and Events, the way istiod writes status apart from pushing configuration. At rest nothing
// waits longer than Quiet.
//
// The objects wait in a client-go rate-limited workqueue (named "status", so controller-runtime's
// workqueue metrics report it), which hands an object to one worker at a time: an older status
// cannot land after a newer one. A write that fails is retried, with the latest conditions, after
// a per-object backoff that grows like a controller's requeues; each failure is logged and counted
// in smi_operator_status_write_failures_total. It is never given up: a status must land.
type WriteQueue struct {
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

	// rateLimiter spaces the retries of failed writes; retryLimiter() when nil. Tests record it.
	rateLimiter workqueue.TypedRateLimiter[objectKey]

	once  sync.Once
	queue workqueue.TypedRateLimitingInterface[objectKey]
	mu    sync.Mutex
	// wanted holds the latest conditions of every object whose status is not written yet, from
	// Update until a write of them succeeds: while an object is in it, its key is in the queue,
	// being written, or waiting out a failed write's backoff (so Update adds only new keys).
	wanted map[objectKey]*entry

	busy     atomic.Int64
	lastBusy atomic.Int64 // UnixNano of the last backend write's end
}

// queueName names the workqueue in controller-runtime's workqueue metrics (workqueue_depth and
// the rest, label name="status").
const queueName = "status"

// retryLimiter is what controller-runtime's controllers retry with: per object 5 ms doubling up
// to 1000 s, and at most 10 retries a second (bursts of 100) overall.
func retryLimiter() workqueue.TypedRateLimiter[objectKey] {
	return workqueue.DefaultTypedControllerRateLimiter[objectKey]()
}

type objectKey struct {
	kind string // the SMI kind, which is the hub type's name
	types.NamespacedName
}

// entry is the conditions recorded for an object; it is replaced, never changed, so that a worker
// writing one needs no lock.
type entry struct {
	obj   hub.Object // a copy taken with the conditions: its type, key and generation
	conds []metav1.Condition
	// since is when the object's status was first wanted and not written: newer conditions keep
	// it, so that an object updated again and again while programming still waits at most MaxDelay.
	since time.Time
}

func (d *WriteQueue) init() {
	d.once.Do(func() {
		d.wanted = map[objectKey]*entry{}
		limiter := d.rateLimiter
		if limiter == nil {
			limiter = retryLimiter()
		}
		d.queue = workqueue.NewTypedRateLimitingQueueWithConfig(limiter,
			workqueue.TypedRateLimitingQueueConfig[objectKey]{Name: queueName})
	})
}

// Programming marks a backend write in flight until the returned func is called.
func (d *WriteQueue) Programming() (done func()) {
	d.busy.Add(1)
	return func() {
		d.lastBusy.Store(time.Now().UnixNano())
		d.busy.Add(-1)
	}
}

// Update records conds as obj's conditions for its current generation, replacing what an earlier
// reconcile of obj recorded and not written yet.
func (d *WriteQueue) Update(_ context.Context, obj hub.Object, conds []metav1.Condition) error {
	d.init()
	key := objectKey{kind: kindOf(obj), NamespacedName: client.ObjectKeyFromObject(obj)}
	// At rest most reconciles change no status: nothing to queue, copy, wait for or read again,
	// unless an older status of the object is still wanted (queued or being written: these
	// conditions must then replace it, or it would land after them).
	changes := Changes(obj, conds)
	d.mu.Lock()
	defer d.mu.Unlock()
	older, wanted := d.wanted[key]
	if !changes && !wanted {
		return nil
	}
	e := &entry{obj: obj.DeepCopyObject().(hub.Object), conds: conds, since: time.Now()}
	if wanted {
		e.since = older.since
	} else {
		d.queue.Add(key)
	}
	d.wanted[key] = e
	return nil
}

// Start runs the workers until ctx ends; WriteQueue is a manager Runnable.
func (d *WriteQueue) Start(ctx context.Context) error {
	d.init()
	context.AfterFunc(ctx, d.queue.ShutDown) // workers blocked in Get return then
	log := logf.FromContext(ctx).WithName("status")
	var wg sync.WaitGroup
	for range max(d.Workers, 1) {
		wg.Go(func() {
			for d.writeNext(ctx, log) {
			}
		})
	}
	wg.Wait()
	return nil
}

// NeedLeaderElection is true: the reconcilers that record statuses run on the leader only.
func (d *WriteQueue) NeedLeaderElection() bool { return true }

// writeNext writes the latest conditions of the next object in the queue once programming is quiet;
// it is false once the workers must stop.
func (d *WriteQueue) writeNext(ctx context.Context, log logr.Logger) bool {
	key, shutdown := d.queue.Get()
	if shutdown {
		return false
	}
	defer d.queue.Done(key)
	d.mu.Lock()
	since := d.wanted[key].since
	d.mu.Unlock()
	if !d.waitForQuiet(ctx, since) {
		return false
	}
	d.mu.Lock()
	e := d.wanted[key] // the latest: Update may have replaced it while we waited
	d.mu.Unlock()
	err := d.write(ctx, key, e)
	if err != nil && ctx.Err() != nil {
		return false // cut short by the shutdown, not failed
	}
	d.mu.Lock()
	superseded := d.wanted[key] != e
	if err == nil && !superseded {
		delete(d.wanted, key)
	}
	d.mu.Unlock()
	if err != nil {
		// The retry writes whatever conditions are the latest then, these or newer ones.
		d.queue.AddRateLimited(key)
		writeFailures.WithLabelValues(key.kind).Inc()
		log.Error(err, "writing status; will retry", "kind", key.kind, "object", key.NamespacedName,
			"failures", d.queue.NumRequeues(key))
		return true
	}
	d.queue.Forget(key)
	if superseded {
		// The workqueue puts a key added while it is being processed back once it is done.
		d.queue.Add(key)
	}
	return true
}

// waitForQuiet returns true once no backend write has been in flight for Quiet, or once a status
// wanted since then has waited MaxDelay; false if ctx ends first.
func (d *WriteQueue) waitForQuiet(ctx context.Context, since time.Time) bool {
	quiet, maxDelay := d.Quiet, d.MaxDelay
	if quiet <= 0 {
		quiet = 250 * time.Millisecond
	}
	if maxDelay <= 0 {
		maxDelay = 30 * time.Second
	}
	for {
		now := time.Now()
		untilOverdue := since.Add(maxDelay).Sub(now)
		untilQuiet := quiet - now.Sub(time.Unix(0, d.lastBusy.Load()))
		if d.busy.Load() > 0 {
			untilQuiet = quiet // at the least: Programming's done has not been called yet
		}
		if untilOverdue <= 0 || untilQuiet <= 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(min(untilQuiet, untilOverdue)):
		}
	}
}

// kindOf is obj's SMI kind, the name of its hub type.
func kindOf(obj hub.Object) string { return reflect.Indirect(reflect.ValueOf(obj)).Type().Name() }

// write reads the object afresh and writes the conditions if they still describe its generation;
// a newer generation gets its own conditions from its own reconcile.
func (d *WriteQueue) write(ctx context.Context, key objectKey, e *entry) error {
	fresh := e.obj.DeepCopyObject().(hub.Object)
	if err := d.Reader.Get(ctx, key.NamespacedName, fresh); err != nil {
		return client.IgnoreNotFound(err)
	}
	if fresh.GetGeneration() != e.obj.GetGeneration() {
		return nil
	}
	err := d.Writer.Update(ctx, fresh, e.conds)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

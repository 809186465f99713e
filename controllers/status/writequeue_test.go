package status

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
)

// writeQueueFixture runs a WriteQueue over a fake API holding one TrafficSplit, counting status
// patches.
type writeQueueFixture struct {
	t       *testing.T
	client  client.Client
	d       *WriteQueue
	split   *hub.TrafficSplit
	patches atomic.Int32
	// failing is how many status patches still fail.
	failing atomic.Int32
	// hold, when set, holds the next status patch, failing or not: see holdNextPatch.
	hold    atomic.Pointer[heldPatch]
	retries *recordingLimiter

	mu       sync.Mutex
	attempts []time.Time // of every status patch, failed or not
}

type heldPatch struct{ inFlight, release chan struct{} }

// holdNextPatch makes the next status patch report on inFlight and wait for release.
func (f *writeQueueFixture) holdNextPatch() *heldPatch {
	h := &heldPatch{inFlight: make(chan struct{}), release: make(chan struct{})}
	f.hold.Store(h)
	return h
}

// recordingLimiter records the backoffs the queue's rate limiter gives failed writes.
type recordingLimiter struct {
	workqueue.TypedRateLimiter[objectKey]
	mu     sync.Mutex
	delays []time.Duration
}

func (r *recordingLimiter) When(key objectKey) time.Duration {
	d := r.TypedRateLimiter.When(key)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delays = append(r.delays, d)
	return d
}

func (r *recordingLimiter) recorded() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.delays)
}

func newWriteQueueFixture(t *testing.T) *writeQueueFixture {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := hub.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	split := &hub.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Generation: 1},
		Spec:       splitv1alpha4.TrafficSplitSpec{Service: "web", Backends: []splitv1alpha4.TrafficSplitBackend{{Service: "web-v1", Weight: 1}}},
	}
	f := &writeQueueFixture{t: t, split: split, retries: &recordingLimiter{TypedRateLimiter: retryLimiter()}}
	f.client = fake.NewClientBuilder().WithScheme(scheme).WithObjects(split).WithStatusSubresource(&hub.TrafficSplit{}).
		WithInterceptorFuncs(interceptor.Funcs{
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				f.mu.Lock()
				f.attempts = append(f.attempts, time.Now())
				f.mu.Unlock()
				if h := f.hold.Swap(nil); h != nil {
					h.inFlight <- struct{}{}
					<-h.release
				}
				if f.failing.Add(-1) >= 0 {
					return errors.New("the API server is away")
				}
				f.patches.Add(1)
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
		}).Build()
	f.d = &WriteQueue{
		Writer:   Writer{Client: f.client, Recorder: events.NewFakeRecorder(100)},
		Reader:   f.client,
		Workers:  2,
		Quiet:    20 * time.Millisecond,
		MaxDelay: 500 * time.Millisecond,

		rateLimiter: f.retries,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.d.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

func programmed(reason string) []metav1.Condition {
	status := metav1.ConditionTrue
	if reason != ReasonProgrammed {
		status = metav1.ConditionFalse
	}
	return []metav1.Condition{{Type: smi.ConditionProgrammed, Status: status, Reason: reason, ObservedGeneration: 1}}
}

// programmedReason reads the split's Programmed reason ("" when it has none).
func (f *writeQueueFixture) programmedReason() string {
	f.t.Helper()
	got := &hub.TrafficSplit{}
	if err := f.client.Get(context.Background(), client.ObjectKeyFromObject(f.split), got); err != nil {
		f.t.Fatal(err)
	}
	if c := meta.FindStatusCondition(got.Status.Conditions, smi.ConditionProgrammed); c != nil {
		return c.Reason
	}
	return ""
}

func (f *writeQueueFixture) waitReason(reason string, within time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for f.programmedReason() != reason {
		if time.Now().After(deadline) {
			f.t.Fatalf("Programmed reason %q after %s, want %q", f.programmedReason(), within, reason)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDeferredWaitsForProgramming: while a backend write is in flight the status waits; once
// quiet it is written, and only the latest conditions recorded meanwhile.
func TestDeferredWaitsForProgramming(t *testing.T) {
	f := newWriteQueueFixture(t)
	ctx := context.Background()
	done := f.d.Programming()
	if err := f.d.Update(ctx, f.split, programmed("BackendNotFound")); err != nil {
		t.Fatal(err)
	}
	if err := f.d.Update(ctx, f.split, programmed(ReasonProgrammed)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if r := f.programmedReason(); r != "" || f.patches.Load() != 0 {
		t.Fatalf("written while programming: reason %q, %d patches", r, f.patches.Load())
	}
	done()
	f.waitReason(ReasonProgrammed, time.Second)
	time.Sleep(100 * time.Millisecond)
	if n := f.patches.Load(); n != 1 {
		t.Errorf("%d status patches, want 1: the conditions recorded first were superseded before being written", n)
	}
}

// TestDeferredMaxDelay: a status does not wait for quiet longer than MaxDelay.
func TestDeferredMaxDelay(t *testing.T) {
	f := newWriteQueueFixture(t)
	done := f.d.Programming()
	defer done()
	start := time.Now()
	if err := f.d.Update(context.Background(), f.split, programmed(ReasonProgrammed)); err != nil {
		t.Fatal(err)
	}
	f.waitReason(ReasonProgrammed, 2*time.Second)
	if waited := time.Since(start); waited < f.d.MaxDelay {
		t.Errorf("written after %s while programming, before MaxDelay %s", waited, f.d.MaxDelay)
	}
}

// TestDeferredSkipsAnOutdatedGeneration: conditions recorded for a generation the object no
// longer has are not written; its new generation's reconcile records its own.
func TestDeferredSkipsAnOutdatedGeneration(t *testing.T) {
	f := newWriteQueueFixture(t)
	ctx := context.Background()
	done := f.d.Programming()
	if err := f.d.Update(ctx, f.split, programmed(ReasonProgrammed)); err != nil {
		t.Fatal(err)
	}
	newer := f.split.DeepCopy()
	newer.Generation = 2
	if err := f.client.Update(ctx, newer); err != nil {
		t.Fatal(err)
	}
	done()
	time.Sleep(300 * time.Millisecond)
	if r := f.programmedReason(); r != "" || f.patches.Load() != 0 {
		t.Errorf("generation 1's conditions written on generation 2: reason %q, %d patches", r, f.patches.Load())
	}
}

// TestDeferredRetriesAFailedWrite: a status write that fails is retried; conditions recorded
// meanwhile supersede the ones that failed, and no other worker writes them while it is in flight.
func TestDeferredRetriesAFailedWrite(t *testing.T) {
	f := newWriteQueueFixture(t)
	f.failing.Store(1)
	if err := f.d.Update(context.Background(), f.split, programmed("BackendNotFound")); err != nil {
		t.Fatal(err)
	}
	f.waitReason("BackendNotFound", 3*time.Second) // after a retry

	// Newer conditions recorded while the failing write is in flight win over its retry.
	held := f.holdNextPatch()
	f.failing.Store(1)
	if err := f.d.Update(context.Background(), f.split, programmed("NoWeightedBackends")); err != nil {
		t.Fatal(err)
	}
	<-held.inFlight
	if err := f.d.Update(context.Background(), f.split, programmed(ReasonProgrammed)); err != nil {
		t.Fatal(err)
	}
	// The second worker is free meanwhile: had it written the newer conditions while the older
	// write was in flight, the older one's retry would land last.
	time.Sleep(100 * time.Millisecond)
	close(held.release)
	f.waitReason(ReasonProgrammed, 3*time.Second)
	time.Sleep(200 * time.Millisecond) // a retry of the failed write's key comes after 5 ms
	if r := f.programmedReason(); r != ReasonProgrammed {
		t.Errorf("the failed, superseded conditions were written after the newer ones: %q", r)
	}
}

// TestDeferredWritesWhatWasRecordedDuringAWrite: conditions recorded while an object's status is
// being written are written after it.
func TestDeferredWritesWhatWasRecordedDuringAWrite(t *testing.T) {
	f := newWriteQueueFixture(t)
	held := f.holdNextPatch()
	if err := f.d.Update(context.Background(), f.split, programmed("BackendNotFound")); err != nil {
		t.Fatal(err)
	}
	<-held.inFlight
	if err := f.d.Update(context.Background(), f.split, programmed(ReasonProgrammed)); err != nil {
		t.Fatal(err)
	}
	close(held.release)
	f.waitReason(ReasonProgrammed, 3*time.Second)
	if n := f.patches.Load(); n != 2 {
		t.Errorf("%d status patches, want 2", n)
	}
}

// TestDeferredQueuesNothingThatChangesNothing: conditions the object already has are not queued
// (at rest, most reconciles change no status).
func TestDeferredQueuesNothingThatChangesNothing(t *testing.T) {
	f := newWriteQueueFixture(t)
	if err := f.d.Update(context.Background(), f.split, programmed(ReasonProgrammed)); err != nil {
		t.Fatal(err)
	}
	f.waitReason(ReasonProgrammed, 2*time.Second)
	// Until its worker is done with it, the status is still wanted, and conditions recorded then
	// are queued even when they change nothing: they would have to replace it.
	deadline := time.Now().Add(2 * time.Second)
	for f.wanted() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d statuses still wanted after they were written", f.wanted())
		}
		time.Sleep(5 * time.Millisecond)
	}
	current := &hub.TrafficSplit{}
	if err := f.client.Get(context.Background(), client.ObjectKeyFromObject(f.split), current); err != nil {
		t.Fatal(err)
	}
	if err := f.d.Update(context.Background(), current, programmed(ReasonProgrammed)); err != nil {
		t.Fatal(err)
	}
	if wanted := f.wanted(); wanted != 0 {
		t.Errorf("%d statuses wanted that change nothing", wanted)
	}
}

func (f *writeQueueFixture) wanted() int {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	return len(f.d.wanted)
}

// TestDeferredBacksOffAFailingWrite: a status write that keeps failing is retried after a backoff
// that grows with every failure (not in a tight loop, nor every second forever), each failure is
// counted, and once a write succeeds the next failure starts from the first backoff again.
func TestDeferredBacksOffAFailingWrite(t *testing.T) {
	const failures = 5
	f := newWriteQueueFixture(t)
	before := failuresCounted(t, smi.TrafficSplitKind)
	f.failing.Store(failures)
	if err := f.d.Update(context.Background(), f.split, programmed(ReasonProgrammed)); err != nil {
		t.Fatal(err)
	}
	f.waitReason(ReasonProgrammed, 10*time.Second)

	f.mu.Lock()
	attempts := slices.Clone(f.attempts)
	f.mu.Unlock()
	backoffs := f.retries.recorded()
	if len(attempts) != failures+1 || len(backoffs) != failures {
		t.Fatalf("%d attempts with %d backoffs, want %d with %d", len(attempts), len(backoffs), failures+1, failures)
	}
	for i, backoff := range backoffs {
		if backoff <= 0 || i > 0 && backoff <= backoffs[i-1] {
			t.Errorf("backoffs %v do not grow", backoffs)
			break
		}
		if gap := attempts[i+1].Sub(attempts[i]); gap < backoff {
			t.Errorf("failure %d retried after %s, before its backoff of %s", i+1, gap, backoff)
		}
	}
	if got := failuresCounted(t, smi.TrafficSplitKind) - before; got != failures {
		t.Errorf("smi_operator_status_write_failures_total rose by %v, want %d", got, failures)
	}

	f.failing.Store(1)
	if err := f.d.Update(context.Background(), f.split, programmed("BackendNotFound")); err != nil {
		t.Fatal(err)
	}
	f.waitReason("BackendNotFound", 3*time.Second)
	if after := f.retries.recorded(); len(after) != failures+1 || after[failures] != backoffs[0] {
		t.Errorf("backoffs %v after a success, want %v then the first again", after, backoffs)
	}
}

// failuresCounted reads smi_operator_status_write_failures_total of kind from controller-runtime's
// registry, which the manager serves.
func failuresCounted(t *testing.T, kind string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, family := range families {
		if family.GetName() != "smi_operator_status_write_failures_total" {
			continue
		}
		for _, m := range family.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0 // no failure of kind yet
}

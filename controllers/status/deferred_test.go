package status

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
)

// deferredFixture runs a Deferred over a fake API holding one TrafficSplit, counting status
// patches.
type deferredFixture struct {
	t       *testing.T
	client  client.Client
	d       *Deferred
	split   *hub.TrafficSplit
	patches atomic.Int32
	// failing is how many status patches still fail; a failing one first reports on inFlight,
	// when set, and waits for release.
	failing           atomic.Int32
	inFlight, release chan struct{}
}

func newDeferredFixture(t *testing.T) *deferredFixture {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := hub.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	split := &hub.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Generation: 1},
		Spec:       splitv1alpha4.TrafficSplitSpec{Service: "web", Backends: []splitv1alpha4.TrafficSplitBackend{{Service: "web-v1", Weight: 1}}},
	}
	f := &deferredFixture{t: t, split: split}
	f.client = fake.NewClientBuilder().WithScheme(scheme).WithObjects(split).WithStatusSubresource(&hub.TrafficSplit{}).
		WithInterceptorFuncs(interceptor.Funcs{
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				if f.failing.Add(-1) >= 0 {
					if f.inFlight != nil {
						f.inFlight <- struct{}{}
						<-f.release
					}
					return errors.New("the API server is away")
				}
				f.patches.Add(1)
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
		}).Build()
	f.d = &Deferred{
		Writer:   Writer{Client: f.client, Recorder: events.NewFakeRecorder(100)},
		Reader:   f.client,
		Workers:  2,
		Quiet:    20 * time.Millisecond,
		MaxDelay: 500 * time.Millisecond,
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
func (f *deferredFixture) programmedReason() string {
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

func (f *deferredFixture) waitReason(reason string, within time.Duration) {
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
	f := newDeferredFixture(t)
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
	f := newDeferredFixture(t)
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
	f := newDeferredFixture(t)
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
	f := newDeferredFixture(t)
	f.failing.Store(1)
	if err := f.d.Update(context.Background(), f.split, programmed("BackendNotFound")); err != nil {
		t.Fatal(err)
	}
	f.waitReason("BackendNotFound", 3*time.Second) // after a retry, a second later

	// Newer conditions recorded while the failing write is in flight win over its retry.
	f.inFlight, f.release = make(chan struct{}), make(chan struct{})
	f.failing.Store(1)
	if err := f.d.Update(context.Background(), f.split, programmed("NoWeightedBackends")); err != nil {
		t.Fatal(err)
	}
	<-f.inFlight
	if err := f.d.Update(context.Background(), f.split, programmed(ReasonProgrammed)); err != nil {
		t.Fatal(err)
	}
	// The second worker is free meanwhile: had it written the newer conditions while the older
	// write was in flight, the older one's retry would land last.
	time.Sleep(100 * time.Millisecond)
	close(f.release)
	f.waitReason(ReasonProgrammed, 3*time.Second)
	time.Sleep(1500 * time.Millisecond)
	if r := f.programmedReason(); r != ReasonProgrammed {
		t.Errorf("the failed, superseded conditions were written after the newer ones: %q", r)
	}
}

// TestDeferredQueuesNothingThatChangesNothing: conditions the object already has are not queued
// (at rest, most reconciles change no status).
func TestDeferredQueuesNothingThatChangesNothing(t *testing.T) {
	f := newDeferredFixture(t)
	if err := f.d.Update(context.Background(), f.split, programmed(ReasonProgrammed)); err != nil {
		t.Fatal(err)
	}
	f.waitReason(ReasonProgrammed, 2*time.Second)
	current := &hub.TrafficSplit{}
	if err := f.client.Get(context.Background(), client.ObjectKeyFromObject(f.split), current); err != nil {
		t.Fatal(err)
	}
	if err := f.d.Update(context.Background(), current, programmed(ReasonProgrammed)); err != nil {
		t.Fatal(err)
	}
	f.d.mu.Lock()
	queued := len(f.d.pending)
	f.d.mu.Unlock()
	if queued != 0 {
		t.Errorf("%d statuses queued that change nothing", queued)
	}
}

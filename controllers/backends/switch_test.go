package backends

import (
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/smioperator"
)

// TestState: the backend asked for is reported active only once it has programmed everything;
// until then the other one running is, and a retired xDS server shows as draining.
func TestState(t *testing.T) {
	until := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	pending := map[ObjectKey]bool{{Kind: "TrafficSplit", Namespace: "shop", Name: "web"}: true, {Kind: ServiceKind, Namespace: "shop", Name: "web"}: true}
	for _, tc := range []struct {
		name    string
		want    v1alpha1.Backend
		istio   bool
		xds     *xdsBackend
		pending map[v1alpha1.Backend]map[ObjectKey]bool
		state   smioperator.State
	}{
		{"nothing runs", v1alpha1.BackendIstio, false, nil, nil, smioperator.State{}},
		{"istio programs everything", v1alpha1.BackendIstio, true, nil, nil, smioperator.State{Active: v1alpha1.BackendIstio}},
		{"istio starting alone", v1alpha1.BackendIstio, true, nil, map[v1alpha1.Backend]map[ObjectKey]bool{v1alpha1.BackendIstio: pending},
			smioperator.State{Swapping: v1alpha1.BackendIstio, Pending: 2}},
		{"istio → xds: istio stays active until xds has everything", v1alpha1.BackendXDS, true, &xdsBackend{fed: true},
			map[v1alpha1.Backend]map[ObjectKey]bool{v1alpha1.BackendXDS: pending},
			smioperator.State{Active: v1alpha1.BackendIstio, Swapping: v1alpha1.BackendXDS, Pending: 2}},
		{"xds has everything; istio not retired yet", v1alpha1.BackendXDS, true, &xdsBackend{fed: true}, nil,
			smioperator.State{Active: v1alpha1.BackendXDS}},
		{"xds → istio: xds draining", v1alpha1.BackendIstio, true, &xdsBackend{drainUntil: until}, nil,
			smioperator.State{Active: v1alpha1.BackendIstio, Draining: &v1alpha1.DrainingBackend{Backend: v1alpha1.BackendXDS, Until: metav1.NewTime(until)}}},
		{"xds asked for but not running (unavailable): istio still active", v1alpha1.BackendXDS, true, nil, nil,
			smioperator.State{Active: v1alpha1.BackendIstio}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Switch{want: tc.want, xds: tc.xds, pending: tc.pending}
			if tc.istio {
				s.istio = &istioBackend{}
			}
			if s.pending == nil {
				s.pending = map[v1alpha1.Backend]map[ObjectKey]bool{}
			}
			if d := cmp.Diff(tc.state, s.state()); d != "" {
				t.Errorf("state (-want +got):\n%s", d)
			}
		})
	}
}

// TestProgrammedWakesOnTheLast: the last object a starting backend programs wakes the SMIOperator
// reconciler, once; objects it was not waiting for change nothing.
func TestProgrammedWakesOnTheLast(t *testing.T) {
	s := &Switch{pending: map[v1alpha1.Backend]map[ObjectKey]bool{}, changes: make(chan event.GenericEvent, 2)} // room for a second wake-up, to see none comes
	a, b := ObjectKey{Kind: "TrafficSplit", Namespace: "shop", Name: "a"}, ObjectKey{Kind: "TrafficTarget", Namespace: "shop", Name: "b"}
	s.setPending(v1alpha1.BackendXDS, []ObjectKey{a, b})
	s.programmed(v1alpha1.BackendXDS, a)
	s.programmed(v1alpha1.BackendIstio, b) // another backend's work
	s.programmed(v1alpha1.BackendXDS, ObjectKey{Kind: "Service", Namespace: "shop", Name: "new"})
	if len(s.changes) != 0 || s.pendingCount(v1alpha1.BackendXDS) != 1 {
		t.Fatalf("woken with %d of 2 objects left", s.pendingCount(v1alpha1.BackendXDS))
	}
	s.programmed(v1alpha1.BackendXDS, b)
	s.programmed(v1alpha1.BackendXDS, b)
	if len(s.changes) != 1 || s.pendingCount(v1alpha1.BackendXDS) != 0 {
		t.Fatalf("after the last object: %d wake-ups, %d left; want 1 and 0", len(s.changes), s.pendingCount(v1alpha1.BackendXDS))
	}
}

// TestRetireDropsAFailedDrainingServer: a draining xDS server that stopped serving on its own is
// no longer reported draining once the Switch is woken (its Serve failing wakes it); a healthy one
// drains until its time.
func TestRetireDropsAFailedDrainingServer(t *testing.T) {
	for _, failed := range []bool{false, true} {
		done := make(chan struct{})
		close(done)
		b := &xdsBackend{drainUntil: time.Now().Add(time.Hour), cancel: func() {}, done: done}
		b.failed.Store(failed)
		s := &Switch{want: v1alpha1.BackendIstio, istio: &istioBackend{}, xds: b,
			pending: map[v1alpha1.Backend]map[ObjectKey]bool{}, opts: Options{Log: logr.Discard()}}
		s.retireXDS(time.Hour)
		if draining := s.state().Draining != nil; draining == failed {
			t.Errorf("server failed: %v; reported draining: %v", failed, draining)
		}
	}
}

// TestRetireStopsAServerNeverActive: an xDS server retired before it ever became active (it was
// still being brought up when the other backend was asked for again) never answered a proxy, so
// it has no configuration to drain: it stops at once rather than hold its port and its proxies'
// streams for the grace period. One that was active drains.
func TestRetireStopsAServerNeverActive(t *testing.T) {
	for _, wasActive := range []bool{false, true} {
		done := make(chan struct{})
		close(done)
		b := &xdsBackend{fed: true, cancel: func() {}, done: done}
		b.active.Store(wasActive)
		s := &Switch{want: v1alpha1.BackendIstio, istio: &istioBackend{}, xds: b,
			pending: map[v1alpha1.Backend]map[ObjectKey]bool{}, opts: Options{Log: logr.Discard()}}
		s.retireXDS(time.Hour)
		if draining := s.state().Draining != nil; draining != wasActive {
			t.Errorf("server active before: %v; reported draining: %v", wasActive, draining)
		}
	}
}

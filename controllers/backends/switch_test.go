package backends

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/namespace"
	"github.com/smi-operator/smi-operator/controllers/service"
	"github.com/smi-operator/smi-operator/controllers/smiobject"
	"github.com/smi-operator/smi-operator/controllers/smioperator"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// TestState: the backend asked for is reported active only once it has programmed everything;
// until then another one running is, and a retired instance draining shows as such.
func TestState(t *testing.T) {
	until := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	pending := map[ObjectKey]bool{{Kind: "TrafficSplit", Namespace: "shop", Name: "web"}: true, {Kind: ServiceKind, Namespace: "shop", Name: "web"}: true}
	fed := &running{instance: &stubInstance{}, fed: true}
	for _, tc := range []struct {
		name       string
		want       v1alpha1.Backend
		istio, xds *running
		pending    map[v1alpha1.Backend]map[ObjectKey]bool
		state      smioperator.State
	}{
		{"nothing runs", v1alpha1.BackendIstio, nil, nil, nil, smioperator.State{}},
		{"istio programs everything", v1alpha1.BackendIstio, fed, nil, nil, smioperator.State{Active: v1alpha1.BackendIstio}},
		{"istio starting alone", v1alpha1.BackendIstio, fed, nil, map[v1alpha1.Backend]map[ObjectKey]bool{v1alpha1.BackendIstio: pending},
			smioperator.State{Swapping: v1alpha1.BackendIstio, Pending: 2}},
		{"istio → xds: istio stays active until xds has everything", v1alpha1.BackendXDS, fed, fed,
			map[v1alpha1.Backend]map[ObjectKey]bool{v1alpha1.BackendXDS: pending},
			smioperator.State{Active: v1alpha1.BackendIstio, Swapping: v1alpha1.BackendXDS, Pending: 2}},
		{"xds has everything; istio not retired yet", v1alpha1.BackendXDS, fed, fed, nil,
			smioperator.State{Active: v1alpha1.BackendXDS}},
		{"xds → istio: xds draining", v1alpha1.BackendIstio, fed, &running{instance: &stubInstance{}, drainUntil: until}, nil,
			smioperator.State{Active: v1alpha1.BackendIstio, Draining: &v1alpha1.DrainingBackend{Backend: v1alpha1.BackendXDS, Until: metav1.NewTime(until)}}},
		{"xds asked for but not running (unavailable): istio still active", v1alpha1.BackendXDS, fed, nil, nil,
			smioperator.State{Active: v1alpha1.BackendIstio}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStubSwitch(t)
			s.want = tc.want
			if tc.istio != nil {
				s.running[v1alpha1.BackendIstio] = tc.istio
			}
			if tc.xds != nil {
				s.running[v1alpha1.BackendXDS] = tc.xds
			}
			if tc.pending != nil {
				s.pending = tc.pending
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
	s := newStubSwitch(t)
	s.changes = make(chan event.GenericEvent, 2) // room for a second wake-up, to see none comes
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

// TestRetireDropsAFailedDrainingInstance: a draining instance that stopped serving on its own is
// stopped, and no longer reported draining, once the Switch is woken (an instance failing wakes
// it); a healthy one drains until its time.
func TestRetireDropsAFailedDrainingInstance(t *testing.T) {
	for _, failed := range []bool{false, true} {
		s := newStubSwitch(t)
		s.want = v1alpha1.BackendIstio
		draining := &stubInstance{failed: failed}
		s.running[v1alpha1.BackendXDS] = &running{instance: draining, drainUntil: time.Now().Add(time.Hour)}
		if err := s.retire(context.Background(), s.backend(v1alpha1.BackendXDS), v1alpha1.SMIOperatorSpec{}); err != nil {
			t.Fatal(err)
		}
		if reported := s.state().Draining != nil; reported == failed || draining.stopped != failed {
			t.Errorf("instance failed: %v; reported draining: %v, stopped: %v", failed, reported, draining.stopped)
		}
	}
}

// TestRetireStopsWhatHasNothingToDrain: retiring an instance that keeps nothing to serve (Retire
// says so with a zero time) stops it at once and has its backend clean up; one with a grace period
// is reported draining until then, still running, and its backend is not cleaned yet.
func TestRetireStopsWhatHasNothingToDrain(t *testing.T) {
	for _, drains := range []bool{false, true} {
		s := newStubSwitch(t)
		s.want = v1alpha1.BackendIstio
		retired := &stubInstance{}
		if drains {
			retired.drainFor = time.Hour
		}
		s.running[v1alpha1.BackendXDS] = &running{instance: retired, fed: true}
		b := s.backend(v1alpha1.BackendXDS).(*stubBackend)
		if err := s.retire(context.Background(), b, v1alpha1.SMIOperatorSpec{}); err != nil {
			t.Fatal(err)
		}
		if reported := s.state().Draining != nil; reported != drains || retired.stopped == drains || (b.cleaned > 0) == drains {
			t.Errorf("drains: %v; reported draining: %v, stopped: %v, cleaned %d times", drains, reported, retired.stopped, b.cleaned)
		}
		if s.programming[v1alpha1.BackendXDS].Load() {
			t.Error("a retired instance is still reported programming")
		}
	}
}

// newStubSwitch is a Switch over stub istio and xds backends, with nothing running.
func newStubSwitch(t *testing.T) *Switch {
	s, err := New(Options{Backends: []Backend{&stubBackend{name: v1alpha1.BackendIstio}, &stubBackend{name: v1alpha1.BackendXDS}}, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stubBackend and stubInstance stand in for a backend in the Switch's own tests; they record
// what the Switch had them do. (The Switch swapping to and from a registered backend, with the
// manager and the API server, is tested in package controllers.)
type stubBackend struct {
	name    v1alpha1.Backend
	cleaned int
}

func (b *stubBackend) Name() v1alpha1.Backend { return b.name }
func (b *stubBackend) Start(context.Context, Env, v1alpha1.SMIOperatorSpec, mesh.Settings, func()) (Instance, error) {
	return &stubInstance{}, nil
}
func (b *stubBackend) Clean(context.Context, Env) error { b.cleaned++; return nil }

type stubInstance struct {
	failed   bool
	drainFor time.Duration
	stopped  bool
}

func (*stubInstance) Splits() smiobject.Backend[*hub.TrafficSplit]   { return nil }
func (*stubInstance) Targets() smiobject.Backend[*hub.TrafficTarget] { return nil }
func (*stubInstance) Policies() smiobject.Backend[*policyv1alpha1.TrafficPolicy] {
	return nil
}
func (*stubInstance) Namespaces() namespace.Sink                        { return nil }
func (*stubInstance) Services() service.Sink                            { return nil }
func (*stubInstance) Fits(v1alpha1.SMIOperatorSpec, mesh.Settings) bool { return true }
func (*stubInstance) Activate()                                         {}
func (i *stubInstance) Failed() bool                                    { return i.failed }
func (i *stubInstance) Stop()                                           { i.stopped = true }
func (i *stubInstance) Retire(v1alpha1.SMIOperatorSpec) time.Time {
	if i.drainFor == 0 {
		return time.Time{}
	}
	return time.Now().Add(i.drainFor)
}

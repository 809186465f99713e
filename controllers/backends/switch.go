// Package backends runs the mesh backend the SMIOperator selects, with the settings it holds, and
// swaps backends without dropping traffic: the backend asked for programs every SMI object (and
// every Service, if it takes them) while the one it replaces keeps programming; only then is the
// old one retired.
//
// A backend is a package implementing Backend and Instance (istio and xds here), registered by
// one line in the list the Switch is built with (Options.Backends). The Switch knows nothing else
// of them: a Backend starts Instances, each running with one configuration, and cleans up after
// them (the Istio backend deletes what it wrote); an Instance takes the objects, and says whether
// it must drain when retired (an xDS server keeps serving its last configuration for the swap
// grace period, so that proxies still connected to it keep working while they move).
//
// The Switch stands in for every backend towards the reconcilers (Splits, Targets, Services,
// Namespaces): each Program and Forget goes to every instance taking updates, and tells the Switch
// which objects an instance being brought up has programmed. The SMIOperator reconciler calls
// MoveToward, which moves the backends one step towards the spec and reports where they are.
//
// Each backend is in one of these states:
//
//	stopped      no instance
//	bringing up  an instance takes updates, with a pending set (setPending) of the objects listed
//	             when it started and not programmed since; another backend, if running, stays in
//	             charge (State.Active)
//	active       an instance takes updates, its pending set empty: in charge (Instance.Activate)
//	draining     its instance is retired but keeps serving what it has (Instance.Retire said until
//	             when)
//
// and moves between them thus:
//
//	stopped     → bringing up  MoveToward: asked for, and Backend.Start succeeds (else it stays
//	                           stopped, reported unavailable, and whatever runs keeps running)
//	bringing up → active       a reconcile programs the last pending object
//	active      → bringing up  MoveToward: its instance does not fit the spec (Instance.Fits):
//	                           Start's new instance replaces it, which reports Swapping to itself
//	                           until it has programmed everything again
//	bringing up
//	or active   → stopped      MoveToward: another backend, asked for, is active, and Retire
//	                           leaves nothing to drain (then Backend.Clean); no SMIOperator selects
//	                           any (stopAll: every instance stops at once); Start, having stopped
//	                           the running instance (its port), fails
//	            → draining     another backend, asked for, is active, and Retire says until when
//	draining    → stopped      MoveToward at the end of the grace period (the SMIOperator
//	                           reconciler requeues for it), or once the instance failed
//	draining    → bringing up  MoveToward: asked for again (a new instance replaces it)
//
// Locks: moving serialises MoveToward and guards the fields under it and the Backends' own state;
// mu guards which instances run and the settings: Program, Forget and the sinks hold it to read,
// MoveToward to write (so that a write of an instance being replaced, still in flight, cannot
// count for its replacement, and an instance retired has no write in flight); pendingMu guards the
// pending sets, which reconciles update while holding mu to read.
package backends

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/smioperator"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Options configure a Switch.
type Options struct {
	Manager manager.Manager
	// Backends are those an SMIOperator can select, one per name; the first running answers for
	// an object's status when the one asked for does not run.
	Backends []Backend
	Log      logr.Logger
}

// ReasonNoBackend (Programmed=False) says no backend programs an SMI object: no SMIOperator
// selects one, or the one it selects cannot run.
const ReasonNoBackend = "NoBackend"

// Switch runs the backends an SMIOperator asks for. It is a manager Runnable (leader only: the
// reconcilers feeding it run on the leader) whose context bounds the instances it starts.
type Switch struct {
	opts Options

	// Resync channels: MoveToward sends every object a new instance must program to its controller.
	splitResync, targetResync, policyResync, serviceResync, namespaceResync chan event.GenericEvent
	// changes wakes the SMIOperator reconciler when an instance being brought up is done.
	changes chan event.GenericEvent

	controllers Controllers

	started   chan struct{} // closed by Start, once runCtx is set
	runCtx    context.Context
	firstMove chan struct{} // closed after the first MoveToward: until then nobody knows what to program
	once      sync.Once

	moving sync.Mutex // one MoveToward at a time; guards unavailable and the Backends' own state
	// unavailable is the last spec whose backend could not run, why, and when it was tried:
	// MoveToward runs on every SMI status change, and trying again (Secret reads, discovery, a listen)
	// waits for smioperator.UnavailableRetry unless the spec changes.
	unavailable struct {
		spec v1alpha1.SMIOperatorSpec
		err  error
		at   time.Time
	}

	mu       sync.RWMutex // Program, Forget and the Service and Namespace sinks hold it to read; MoveToward, to write
	settings mesh.Settings
	want     v1alpha1.Backend
	running  map[v1alpha1.Backend]*running
	idle     string // why no backend programs, while none does
	// programming mirrors running[b].fed for each backend, and servingServices whether a fed
	// instance takes Services, for event predicates and the Service reconciler, which must not
	// wait for the lock.
	programming     map[v1alpha1.Backend]*atomic.Bool
	servingServices atomic.Bool

	pendingMu sync.Mutex
	pending   map[v1alpha1.Backend]map[ObjectKey]bool
}

// running is a backend's instance: fed (being brought up or active), or draining until
// drainUntil.
type running struct {
	instance   Instance
	fed        bool
	drainUntil time.Time
}

// drained says a retired instance may stop: its grace period is over, or it failed, so there is
// nothing left to drain.
func (r *running) drained() bool {
	return r.instance.Failed() || !time.Now().Before(r.drainUntil)
}

// ServiceKind and NamespaceKind are the Kinds of the ObjectKeys of Services and Namespaces.
const (
	ServiceKind   = "Service"
	NamespaceKind = "Namespace"
)

// New returns a Switch; SetControllers wires it to the controllers, and the manager must run it.
func New(opts Options) (*Switch, error) {
	programming := map[v1alpha1.Backend]*atomic.Bool{}
	for _, b := range opts.Backends {
		if programming[b.Name()] != nil {
			return nil, fmt.Errorf("two backends are named %q", b.Name())
		}
		programming[b.Name()] = &atomic.Bool{}
	}
	return &Switch{
		opts:            opts,
		splitResync:     make(chan event.GenericEvent),
		targetResync:    make(chan event.GenericEvent),
		policyResync:    make(chan event.GenericEvent),
		serviceResync:   make(chan event.GenericEvent),
		namespaceResync: make(chan event.GenericEvent),
		changes:         make(chan event.GenericEvent, 1),
		started:         make(chan struct{}),
		firstMove:       make(chan struct{}),
		running:         map[v1alpha1.Backend]*running{},
		programming:     programming,
		pending:         map[v1alpha1.Backend]map[ObjectKey]bool{},
		idle:            "no SMIOperator selects a backend yet",
	}, nil
}

// SplitResync, TargetResync, PolicyResync, ServiceResync and NamespaceResync feed the controllers the objects to
// reconcile again when a backend starts; Changes wakes the SMIOperator reconciler.
func (s *Switch) SplitResync() <-chan event.GenericEvent   { return s.splitResync }
func (s *Switch) TargetResync() <-chan event.GenericEvent  { return s.targetResync }
func (s *Switch) PolicyResync() <-chan event.GenericEvent  { return s.policyResync }
func (s *Switch) ServiceResync() <-chan event.GenericEvent { return s.serviceResync }
func (s *Switch) NamespaceResync() <-chan event.GenericEvent {
	return s.namespaceResync
}
func (s *Switch) Changes() <-chan event.GenericEvent { return s.changes }

// SetControllers hands over the controllers, to which backends add their watches when they first
// start (Env.Controllers).
func (s *Switch) SetControllers(c Controllers) { s.controllers = c }

// ServingServices says whether an instance takes Services now.
func (s *Switch) ServingServices() bool { return s.servingServices.Load() }

// Settings are the mesh settings of the SMIOperator's spec.
func (s *Switch) Settings() mesh.Settings {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.settings
}

// Start records the context the instances run under, has the SMIOperator reconciled once
// (whether or not it exists), and stops every instance when ctx ends.
func (s *Switch) Start(ctx context.Context) error {
	s.runCtx = ctx
	close(s.started)
	s.notify()
	<-ctx.Done()
	s.moving.Lock()
	defer s.moving.Unlock()
	for _, b := range s.opts.Backends {
		s.stop(b.Name())
	}
	return nil
}

// NeedLeaderElection is true: only the leader reconciles, so only the leader has anything to run.
func (s *Switch) NeedLeaderElection() bool { return true }

// MoveToward moves the backends one step towards spec: it starts (or reconfigures) the backend asked
// for and, once that one has programmed everything, retires the others. A nil spec stops every
// backend and cleans up after them.
func (s *Switch) MoveToward(ctx context.Context, spec *v1alpha1.SMIOperatorSpec) (smioperator.State, error) {
	s.moving.Lock()
	defer s.moving.Unlock()
	select {
	case <-s.started:
	case <-ctx.Done():
		return smioperator.State{}, ctx.Err()
	}
	defer s.once.Do(func() { close(s.firstMove) })
	if spec == nil {
		return smioperator.State{}, s.stopAll(ctx, "no SMIOperator named "+v1alpha1.SingletonName+" selects a backend: create one to program the SMI objects")
	}
	d := spec.WithDefaults()
	settings, invalid := MeshSettings(d)
	s.mu.RLock()
	same := s.settings == settings && s.want == d.Backend
	s.mu.RUnlock()
	if !same {
		s.mu.Lock()
		s.settings, s.want = settings, d.Backend
		s.mu.Unlock()
	}

	last := s.unavailable
	if last.err != nil && equality.Semantic.DeepEqual(last.spec, d) && time.Since(last.at) < smioperator.UnavailableRetry {
		st := s.state()
		st.Unavailable = last.err
		return st, nil
	}
	// Nothing starts on settings that do not hold; what runs keeps running.
	unavailable := invalid
	if unavailable == nil {
		if b := s.backend(d.Backend); b == nil {
			unavailable = fmt.Errorf("this operator has no %q backend", d.Backend)
		} else {
			unavailable = s.ensure(ctx, b, d, settings)
		}
	}
	s.unavailable.spec, s.unavailable.err, s.unavailable.at = d, unavailable, time.Now()
	if unavailable != nil {
		s.setIdle(unavailable.Error())
		st := s.state()
		st.Unavailable = unavailable
		return st, nil
	}
	if s.pendingCount(d.Backend) == 0 {
		// The backend asked for programs everything: it is in charge, the others retire.
		s.mu.RLock()
		if r := s.running[d.Backend]; r != nil && r.fed {
			r.instance.Activate()
		}
		s.mu.RUnlock()
		for _, b := range s.opts.Backends {
			if b.Name() != d.Backend {
				if err := s.retire(ctx, b, d); err != nil {
					return s.state(), err
				}
			}
		}
	}
	return s.state(), nil
}

func (s *Switch) backend(name v1alpha1.Backend) Backend {
	for _, b := range s.opts.Backends {
		if b.Name() == name {
			return b
		}
	}
	return nil
}

// env is what backend b runs with.
func (s *Switch) env(b Backend) Env {
	return Env{
		Manager:     s.opts.Manager,
		Controllers: s.controllers,
		RunContext:  s.runCtx,
		Programming: s.programming[b.Name()].Load,
		Resync:      s.resyncRefs,
		Wake:        s.notify,
		Log:         s.opts.Log.WithName(string(b.Name())),
	}
}

// state reports the backends: the one asked for is active once it has programmed everything;
// until then, another one running is.
func (s *Switch) state() smioperator.State {
	s.mu.RLock()
	defer s.mu.RUnlock()
	fed := func(b v1alpha1.Backend) bool { r := s.running[b]; return r != nil && r.fed }
	var st smioperator.State
	if n := s.pendingCount(s.want); fed(s.want) && n > 0 {
		st.Swapping, st.Pending = s.want, n
	} else if fed(s.want) {
		st.Active = s.want
	}
	for _, b := range s.opts.Backends {
		name := b.Name()
		if st.Active == "" && name != s.want && fed(name) {
			st.Active = name
		}
		if r := s.running[name]; st.Draining == nil && r != nil && !r.fed {
			st.Draining = &v1alpha1.DrainingBackend{Backend: name, Until: metav1.NewTime(r.drainUntil)}
		}
	}
	return st
}

// ensure has backend b program with settings and spec: it keeps the instance running when that
// fits, or starts another and has it program every object; an error says why it cannot run.
func (s *Switch) ensure(ctx context.Context, b Backend, spec v1alpha1.SMIOperatorSpec, settings mesh.Settings) error {
	name := b.Name()
	s.mu.RLock()
	current := s.running[name]
	s.mu.RUnlock()
	if current != nil && current.fed && current.instance.Fits(spec, settings) {
		return nil
	}
	instance, err := b.Start(ctx, s.env(b), spec, settings, func() { s.stop(name) })
	if err != nil {
		return err
	}
	keys, err := s.list(ctx, instance.Services() != nil)
	if err != nil {
		instance.Stop()
		return err
	}
	// Under the write lock: a write of the instance replaced, still in flight, would otherwise
	// count as done by the new one.
	s.mu.Lock()
	replaced := s.running[name]
	s.setPending(name, keys)
	s.running[name] = &running{instance: instance, fed: true}
	s.fedChanged()
	s.mu.Unlock()
	if replaced != nil {
		replaced.instance.Stop()
	}
	s.opts.Log.Info("a backend programs the SMI objects", "backend", name, "objects", len(keys))
	s.resync(keys)
	return nil
}

// retire stops backend b taking updates (another is in charge) and, once it has drained, stops it
// and cleans up after it.
func (s *Switch) retire(ctx context.Context, b Backend, spec v1alpha1.SMIOperatorSpec) error {
	name := b.Name()
	s.mu.RLock()
	r := s.running[name]
	s.mu.RUnlock()
	if r != nil && !r.fed && !r.drained() {
		return nil // draining until later: no write lock (it would wait for every write in flight)
	}
	if r != nil && r.fed {
		// The write lock waits for the instance's writes in flight.
		s.mu.Lock()
		r.fed, r.drainUntil = false, r.instance.Retire(spec)
		s.fedChanged()
		s.mu.Unlock()
		s.clearPending(name)
	}
	if r != nil && r.drained() {
		s.stop(name)
	}
	s.mu.RLock()
	gone := s.running[name] == nil
	s.mu.RUnlock()
	if gone {
		return b.Clean(ctx, s.env(b))
	}
	return nil
}

// stop stops backend b's instance, if any, and waits until it has.
func (s *Switch) stop(name v1alpha1.Backend) {
	s.mu.Lock()
	r := s.running[name]
	delete(s.running, name)
	s.fedChanged()
	s.mu.Unlock()
	s.clearPending(name)
	if r != nil {
		r.instance.Stop()
	}
}

// fedChanged updates the flags read without the lock; s.mu is held to write.
func (s *Switch) fedChanged() {
	services := false
	for name, flag := range s.programming {
		r := s.running[name]
		flag.Store(r != nil && r.fed)
		services = services || (r != nil && r.fed && r.instance.Services() != nil)
	}
	s.servingServices.Store(services)
}

// stopAll stops programming: the SMIOperator is gone. Every instance stops at once and every
// backend cleans up. The SMI objects are reconciled again so that their status says nothing
// programs them.
func (s *Switch) stopAll(ctx context.Context, why string) error {
	s.mu.RLock()
	wasRunning := len(s.running) > 0
	s.mu.RUnlock()
	s.setIdle(why)
	s.mu.Lock()
	s.want = ""
	s.mu.Unlock()
	var errs []error
	for _, b := range s.opts.Backends {
		s.stop(b.Name())
		errs = append(errs, b.Clean(ctx, s.env(b)))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if wasRunning {
		keys, err := s.list(ctx, false)
		if err != nil {
			return err
		}
		s.resync(keys)
	}
	return nil
}

// resyncRefs has the SMI objects refs names reconciled again: an instance says their status
// changed (proxies began or stopped refusing their resources).
func (s *Switch) resyncRefs(refs []mesh.ObjectRef) {
	keys := make([]ObjectKey, 0, len(refs))
	for _, ref := range refs {
		keys = append(keys, ObjectKey{Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name})
	}
	s.resync(keys)
}

func (s *Switch) setIdle(why string) {
	s.mu.RLock()
	same := s.idle == why
	s.mu.RUnlock()
	if same {
		return // no write lock: it would wait for every Istio write in flight
	}
	s.mu.Lock()
	s.idle = why
	s.mu.Unlock()
}

// list names the SMI objects (and, with services, the Services) a backend must program.
func (s *Switch) list(ctx context.Context, services bool) ([]ObjectKey, error) {
	return ListObjects(ctx, s.opts.Manager.GetClient(), services)
}

// ObjectKey names an object a backend has to program: an SMI object, a Namespace (where access
// applies or not), or a Service (kind "Service") for an xDS server.
type ObjectKey struct{ Kind, Namespace, Name string }

// ListObjects lists from c what a backend being brought up has to program: the TrafficSplits,
// TrafficTargets and TrafficPolicies not being deleted, every Namespace not being deleted (where deny-by-default must
// hold before the other backend goes), and every Service when services is set (xds).
func ListObjects(ctx context.Context, c client.Reader, services bool) ([]ObjectKey, error) {
	var keys []ObjectKey
	splits, targets := &hub.TrafficSplitList{}, &hub.TrafficTargetList{}
	if err := c.List(ctx, splits, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	// Objects being deleted are left out: their reconcile programs nothing until they are gone
	// (then Forget), and waiting for them would hold a swap back.
	for i := range splits.Items {
		if splits.Items[i].DeletionTimestamp.IsZero() {
			keys = append(keys, ObjectKey{smi.TrafficSplitKind, splits.Items[i].Namespace, splits.Items[i].Name})
		}
	}
	if err := c.List(ctx, targets, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	for i := range targets.Items {
		if targets.Items[i].DeletionTimestamp.IsZero() {
			keys = append(keys, ObjectKey{smi.TrafficTargetKind, targets.Items[i].Namespace, targets.Items[i].Name})
		}
	}
	policies := &policyv1alpha1.TrafficPolicyList{}
	if err := c.List(ctx, policies, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	for i := range policies.Items {
		if policies.Items[i].DeletionTimestamp.IsZero() {
			keys = append(keys, ObjectKey{policyv1alpha1.TrafficPolicyKind, policies.Items[i].Namespace, policies.Items[i].Name})
		}
	}
	namespaces := &corev1.NamespaceList{}
	if err := c.List(ctx, namespaces, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	for i := range namespaces.Items {
		if namespaces.Items[i].DeletionTimestamp.IsZero() {
			keys = append(keys, ObjectKey{NamespaceKind, "", namespaces.Items[i].Name})
		}
	}
	if services {
		svcs := &corev1.ServiceList{}
		if err := c.List(ctx, svcs, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		for i := range svcs.Items {
			keys = append(keys, ObjectKey{ServiceKind, svcs.Items[i].Namespace, svcs.Items[i].Name})
		}
	}
	return keys, nil
}

// resync has the controllers reconcile keys again, in the background: the pending set already
// holds them, and a MoveToward must not wait for thousands of sends.
func (s *Switch) resync(keys []ObjectKey) {
	go func() {
		for _, k := range keys {
			ch := s.serviceResync
			switch k.Kind {
			case smi.TrafficSplitKind:
				ch = s.splitResync
			case smi.TrafficTargetKind:
				ch = s.targetResync
			case policyv1alpha1.TrafficPolicyKind:
				ch = s.policyResync
			case NamespaceKind:
				ch = s.namespaceResync
			}
			ev := event.GenericEvent{Object: &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name}}}
			select {
			case ch <- ev:
			case <-s.runCtx.Done():
				return
			}
		}
	}()
}

func (s *Switch) setPending(b v1alpha1.Backend, keys []ObjectKey) {
	set := make(map[ObjectKey]bool, len(keys))
	for _, k := range keys {
		set[k] = true
	}
	s.pendingMu.Lock()
	s.pending[b] = set
	s.pendingMu.Unlock()
	if len(set) == 0 {
		s.notify()
	}
}

func (s *Switch) clearPending(b v1alpha1.Backend) {
	s.pendingMu.Lock()
	delete(s.pending, b)
	s.pendingMu.Unlock()
}

func (s *Switch) pendingCount(b v1alpha1.Backend) int {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	return len(s.pending[b])
}

// programmed records that backend b has programmed (or forgotten) key; the last one of a backend
// being brought up wakes the SMIOperator reconciler, which retires the other backend.
func (s *Switch) programmed(b v1alpha1.Backend, key ObjectKey) {
	s.pendingMu.Lock()
	set := s.pending[b]
	last := false
	if set[key] {
		delete(set, key)
		last = len(set) == 0
	}
	s.pendingMu.Unlock()
	if last {
		s.notify()
	}
}

// notify wakes the SMIOperator reconciler; one wake-up pending is enough.
func (s *Switch) notify() {
	select {
	case s.changes <- event.GenericEvent{Object: &v1alpha1.SMIOperator{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SingletonName}}}:
	default:
	}
}

// waitFirstMove holds reconciles until the first MoveToward has said which backend runs, so that a
// starting operator does not report every SMI object unprogrammed in between.
func (s *Switch) waitFirstMove(ctx context.Context) error {
	select {
	case <-s.firstMove:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Package backends runs the mesh backend the SMIOperator selects, with the settings it holds, and
// swaps backends without dropping traffic: the backend asked for programs every SMI object (and,
// for xds, every Service) while the one it replaces keeps programming; only then is the old one
// retired. A retired Istio backend's objects are deleted; a retired xDS server stops taking
// updates and keeps serving its last configuration for the swap grace period, so that proxies
// still connected to it keep working while they move.
//
// The Switch stands in for both backends towards the reconcilers (Splits, Targets, Services,
// Namespaces): each Program and Forget goes to every backend running, and tells the Switch which
// objects a backend being brought up has programmed. The SMIOperator reconciler calls
// MoveToward, which moves the backends one step towards the spec and reports where they are.
//
// Each backend is in one of these states:
//
//	stopped      not running
//	bringing up  running and programming every SMI object, with a pending set (setPending) of the
//	             objects listed when it started and not programmed since; the other backend, if
//	             running, stays in charge (State.Active)
//	active       running, its pending set empty: in charge
//	draining     xds only: retired, serving its last configuration without updates
//
// and moves between them thus:
//
//	stopped     → bringing up  MoveToward: asked for, and it can run (else it stays stopped,
//	                           reported unavailable, and whatever runs keeps running)
//	bringing up → active       a reconcile programs the last pending object
//	active      → bringing up  MoveToward: its settings changed (istio: its adapters with the
//	                           new settings, the same writer; xds: a new server). Its State
//	                           says Swapping to itself until it has programmed everything again
//	bringing up
//	or active   → stopped      MoveToward: the other backend, asked for, is active (istio: its
//	                           objects are deleted); no SMIOperator selects any (stopAll: xds
//	                           too stops at once); xds only: its replacement server, the old one
//	                           stopped to free the port, cannot listen or list the objects
//	            → draining     xds: the other backend, asked for, is active. A server retired
//	                           before it was ever active stops at once: it never answered a
//	                           proxy, so it has nothing to drain
//	draining    → stopped      MoveToward at the end of the grace period (the SMIOperator
//	                           reconciler requeues for it)
//	draining    → bringing up  MoveToward: xds asked for again (a new server replaces it)
//
// Locks: moving serialises MoveToward and guards the fields under it; mu guards which backends run
// and their settings: Program, Forget and the sinks hold it to read, MoveToward to write (so a
// write of a backend being replaced, still in flight, cannot count for its replacement);
// pendingMu guards the pending sets, which reconciles update while holding mu to read.
package backends

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	istiobackend "github.com/smi-operator/smi-operator/controllers/backends/istio"
	xdsbackend "github.com/smi-operator/smi-operator/controllers/backends/xds"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/controllers/service"
	"github.com/smi-operator/smi-operator/controllers/smioperator"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/xds/server"
)

// Options configure a Switch.
type Options struct {
	Manager manager.Manager
	// IstioWriter writes the Istio backend's objects; its Unobserved is shared with the status writer.
	IstioWriter owned.Writer
	// Namespace is the operator's: the xDS CA root and the xDS TLS Secret live there.
	Namespace string
	// XDSHost is the address the xDS server listens on, with spec.xds.port; empty listens on
	// every address.
	XDSHost string
	// XDS holds what an SMIOperator does not say of the xDS server: ServiceName, the Service in
	// front of it (in Namespace: the built-in CA's serving certificate is issued for its DNS
	// names, and XDSHost when that is an address), and CASecret, the Secret keeping the xDS CA
	// root. The spec's xds settings fill the rest (xds.ConfigFrom).
	XDS xdsbackend.Config
	// Registerer receives the xDS server's metrics; nil registers none.
	Registerer prometheus.Registerer
	Log        logr.Logger
}

// ReasonNoBackend (Programmed=False) says no backend programs an SMI object: no SMIOperator
// selects one, or the one it selects cannot run.
const ReasonNoBackend = "NoBackend"

// Switch runs the backends an SMIOperator asks for. It is a manager Runnable (leader only: the
// reconcilers feeding it run on the leader) whose context bounds the xDS servers it starts.
type Switch struct {
	opts      Options
	clientset kubernetes.Interface

	// Resync channels: MoveToward sends every object a new backend must program to its controller.
	splitResync, targetResync, serviceResync, namespaceResync chan event.GenericEvent
	// changes wakes the SMIOperator reconciler when a backend being brought up is done.
	changes chan event.GenericEvent

	splitCtrl, targetCtrl, serviceCtrl, namespaceCtrl controller.Controller

	started   chan struct{} // closed by Start, once runCtx is set
	runCtx    context.Context
	firstMove chan struct{} // closed after the first MoveToward: until then nobody knows what to program
	once      sync.Once

	moving           sync.Mutex // one MoveToward at a time; guards the fields below
	istioWatched     bool       // the controllers watch Istio's kinds (added once, when first served)
	endpointsWatched bool       // the Service controller watches EndpointSlices (added once, with xDS)
	istioClean       bool       // no generated Istio object left since the Istio backend last ran
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
	istio    *istioBackend
	xds      *xdsBackend
	idle     string // why no backend programs, while none does
	// istioActive mirrors istio != nil, xdsFed xds != nil && xds.fed, for event predicates and
	// the Service reconciler, which must not wait for the lock.
	istioActive, xdsFed atomic.Bool

	pendingMu sync.Mutex
	pending   map[v1alpha1.Backend]map[ObjectKey]bool
}

type istioBackend struct {
	splits  istiobackend.Splits
	targets istiobackend.Targets
}

type xdsBackend struct {
	config xdsConfig
	server *server.Server
	cancel context.CancelFunc
	done   chan struct{}
	// fed is false once the server is retired: it keeps serving, takes no updates, and stops
	// at drainUntil.
	fed        bool
	drainUntil time.Time
	// failed is set when the server stopped serving on its own; the next MoveToward replaces it.
	failed atomic.Bool
	// active is set once the server held everything and was told to answer proxies (Synced,
	// called once); one retired before that has nothing to drain.
	active atomic.Bool
}

// xdsConfig is everything an xDS server is built from; a change restarts it. (Not the swap
// grace period, the Switch's: editing it must not restart the server.)
type xdsConfig struct {
	settings mesh.Settings
	xds      xdsbackend.Config
}

// ServiceKind and NamespaceKind are the Kinds of the ObjectKeys of Services and Namespaces.
const (
	ServiceKind   = "Service"
	NamespaceKind = "Namespace"
)

// New returns a Switch; Setup wires it to the controllers, and the manager must run it.
func New(opts Options) (*Switch, error) {
	clientset, err := kubernetes.NewForConfig(opts.Manager.GetConfig())
	if err != nil {
		return nil, err
	}
	return &Switch{
		opts:            opts,
		clientset:       clientset,
		splitResync:     make(chan event.GenericEvent),
		targetResync:    make(chan event.GenericEvent),
		serviceResync:   make(chan event.GenericEvent),
		namespaceResync: make(chan event.GenericEvent),
		changes:         make(chan event.GenericEvent, 1),
		started:         make(chan struct{}),
		firstMove:       make(chan struct{}),
		pending:         map[v1alpha1.Backend]map[ObjectKey]bool{},
		idle:            "no SMIOperator selects a backend yet",
	}, nil
}

// SplitResync, TargetResync, ServiceResync and NamespaceResync feed the controllers the objects to
// reconcile again when a backend starts; Changes wakes the SMIOperator reconciler.
func (s *Switch) SplitResync() <-chan event.GenericEvent   { return s.splitResync }
func (s *Switch) TargetResync() <-chan event.GenericEvent  { return s.targetResync }
func (s *Switch) ServiceResync() <-chan event.GenericEvent { return s.serviceResync }
func (s *Switch) NamespaceResync() <-chan event.GenericEvent {
	return s.namespaceResync
}
func (s *Switch) Changes() <-chan event.GenericEvent { return s.changes }

// SetControllers hands over the split, target and namespace controllers, to which the Istio
// watches are added once the cluster serves Istio's APIs, and the Service controller, which
// watches EndpointSlices once an xDS server first runs.
func (s *Switch) SetControllers(splits, targets, services, namespaces controller.Controller) {
	s.splitCtrl, s.targetCtrl, s.serviceCtrl, s.namespaceCtrl = splits, targets, services, namespaces
}

// ServingServices says whether an xDS server takes Services now.
func (s *Switch) ServingServices() bool { return s.xdsFed.Load() }

// Settings are the mesh settings of the SMIOperator's spec.
func (s *Switch) Settings() mesh.Settings {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.settings
}

// Start records the context the xDS servers run under, has the SMIOperator reconciled once
// (whether or not it exists), and stops the xDS server when ctx ends.
func (s *Switch) Start(ctx context.Context) error {
	s.runCtx = ctx
	close(s.started)
	s.notify()
	<-ctx.Done()
	s.moving.Lock()
	defer s.moving.Unlock()
	s.stopXDS()
	return nil
}

// NeedLeaderElection is true: only the leader reconciles, so only the leader has anything to run.
func (s *Switch) NeedLeaderElection() bool { return true }

// MoveToward moves the backends one step towards spec: it starts (or reconfigures) the backend asked
// for and, once that one has programmed everything, retires the other. A nil spec stops every
// backend and deletes what the Istio backend generated.
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
	unavailable := invalid
	switch {
	case unavailable != nil:
		// Nothing starts on settings that do not hold; what runs keeps running.
	case d.Backend == v1alpha1.BackendIstio:
		unavailable = s.ensureIstio(ctx, settings)
	case d.Backend == v1alpha1.BackendXDS:
		unavailable = s.ensureXDS(ctx, xdsConfig{settings: settings, xds: xdsbackend.ConfigFrom(d, s.opts.XDSHost, s.opts.XDS)})
	}
	s.unavailable.spec, s.unavailable.err, s.unavailable.at = d, unavailable, time.Now()
	if unavailable != nil {
		s.setIdle(unavailable.Error())
		st := s.state()
		st.Unavailable = unavailable
		return st, nil
	}
	if s.pendingCount(d.Backend) == 0 {
		// The backend asked for programs everything: retire the other.
		var err error
		if d.Backend == v1alpha1.BackendXDS {
			s.mu.RLock()
			if !s.xds.active.Swap(true) {
				s.xds.server.Synced() // it answers proxies from now on
			}
			s.mu.RUnlock()
			err = s.retireIstio(ctx)
		} else {
			s.retireXDS(d.XDS.SwapGracePeriod.Duration)
		}
		if err != nil {
			return s.state(), err
		}
	}
	return s.state(), nil
}

// state reports the backends: the one asked for is active once it has programmed everything;
// until then, the other one running is.
func (s *Switch) state() smioperator.State {
	s.mu.RLock()
	defer s.mu.RUnlock()
	running := map[v1alpha1.Backend]bool{
		v1alpha1.BackendIstio: s.istio != nil,
		v1alpha1.BackendXDS:   s.xds != nil && s.xds.fed,
	}
	var st smioperator.State
	if n := s.pendingCount(s.want); running[s.want] && n > 0 {
		st.Swapping, st.Pending = s.want, n
	} else if running[s.want] {
		st.Active = s.want
	}
	if st.Active == "" {
		for _, b := range []v1alpha1.Backend{v1alpha1.BackendIstio, v1alpha1.BackendXDS} {
			if running[b] && b != s.want {
				st.Active = b
			}
		}
	}
	if s.xds != nil && !s.xds.fed {
		st.Draining = &v1alpha1.DrainingBackend{Backend: v1alpha1.BackendXDS, Until: metav1.NewTime(s.xds.drainUntil)}
	}
	return st
}

// ensureIstio runs the Istio backend with settings; an error says why it cannot.
func (s *Switch) ensureIstio(ctx context.Context, settings mesh.Settings) error {
	if err := s.watchIstio(ctx); err != nil {
		return err
	}
	s.mu.RLock()
	current := s.istio
	s.mu.RUnlock()
	if current != nil && current.splits.Settings == settings {
		return nil
	}
	keys, err := s.list(ctx, false)
	if err != nil {
		return err
	}
	b := &istioBackend{
		splits:  istiobackend.Splits{Writer: s.opts.IstioWriter, Settings: settings},
		targets: istiobackend.Targets{Writer: s.opts.IstioWriter, Settings: settings},
	}
	// Under the write lock: a write of the backend replaced, still in flight, would otherwise
	// count as done by the new one.
	s.mu.Lock()
	s.setPending(v1alpha1.BackendIstio, keys)
	s.istio = b
	s.istioActive.Store(true)
	s.mu.Unlock()
	s.istioClean = false
	s.opts.Log.Info("the istio backend programs the SMI objects", "objects", len(keys))
	s.resync(keys)
	return nil
}

// watchIstio adds, once Istio's kinds are served, the cache indexes and the controllers' watches
// of the Istio objects (filtered to nothing while the Istio backend does not run). They cannot be
// set up at start: a watch of a kind the cluster does not serve would fail the manager.
func (s *Switch) watchIstio(ctx context.Context) error {
	if s.istioWatched {
		return nil
	}
	if err := istiobackend.Served(s.opts.Manager); err != nil {
		return err
	}
	if err := owned.IndexGenerated(ctx, s.opts.Manager.GetFieldIndexer(), istiobackend.Kinds...); err != nil {
		return fmt.Errorf("indexing Istio objects: %w", err)
	}
	active := predicate.NewPredicateFuncs(func(client.Object) bool { return s.istioActive.Load() })
	forget := s.opts.IstioWriter.ForgetDeleted()
	for _, src := range istiobackend.SplitWatches(s.opts.Manager, forget, active) {
		if err := s.splitCtrl.Watch(src); err != nil {
			return err
		}
	}
	for _, src := range istiobackend.TargetWatches(s.opts.Manager, forget, active) {
		if err := s.targetCtrl.Watch(src); err != nil {
			return err
		}
	}
	for _, src := range istiobackend.BaselineWatches(s.opts.Manager, forget, active) {
		if err := s.namespaceCtrl.Watch(src); err != nil {
			return err
		}
	}
	s.istioWatched = true
	return nil
}

// retireIstio stops writing Istio objects and deletes every one the operator generated. It waits
// for the writes in flight (the write lock), and lists from the API server, not the cache, so
// that none of them is missed.
func (s *Switch) retireIstio(ctx context.Context) error {
	// MoveToward runs on every SMI status change: once retired and clean, take no lock (the write lock
	// would wait for every backend write in flight).
	if !s.istioActive.Load() && s.istioClean {
		return nil
	}
	s.mu.Lock()
	wasRunning := s.istio != nil
	s.istio = nil
	s.istioActive.Store(false)
	s.mu.Unlock()
	s.clearPending(v1alpha1.BackendIstio)
	if s.istioClean {
		return nil
	}
	if !wasRunning && istiobackend.Served(s.opts.Manager) != nil {
		s.istioClean = true // no Istio, so nothing of it to delete
		return nil
	}
	n, err := s.opts.IstioWriter.DeleteAllGenerated(ctx, s.opts.Manager.GetAPIReader(), istiobackend.Lists())
	if err != nil {
		return fmt.Errorf("deleting the istio backend's objects: %w", err)
	}
	s.istioClean = true
	s.opts.Log.Info("the istio backend is retired", "deleted", n)
	return nil
}

// ensureXDS runs an xDS server configured as cfg; an error says why it cannot.
func (s *Switch) ensureXDS(ctx context.Context, cfg xdsConfig) error {
	s.mu.RLock()
	current := s.xds
	s.mu.RUnlock()
	if current != nil && current.fed && !current.failed.Load() && reflect.DeepEqual(current.config, cfg) {
		return nil
	}
	if !s.endpointsWatched {
		fed := predicate.NewPredicateFuncs(func(client.Object) bool { return s.xdsFed.Load() })
		if err := service.WatchEndpointSlices(ctx, s.opts.Manager, s.serviceCtrl, fed); err != nil {
			return fmt.Errorf("watching EndpointSlices: %w", err)
		}
		s.endpointsWatched = true
	}
	// Everything that can fail on a bad setting (the TLS Secret, the CA) before the running server
	// is stopped, so that it keeps serving then.
	srv, address, err := s.newXDSServer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("the xds backend cannot run: %w", err)
	}
	// One server at a time: it holds the port. A draining one is replaced too, since it missed
	// the updates of its drain.
	s.stopXDS()
	lis, err := net.Listen("tcp", address)
	if err != nil {
		return fmt.Errorf("the xds backend cannot run: %w", err)
	}
	keys, err := s.list(ctx, true)
	if err != nil {
		_ = lis.Close()
		return err
	}
	runCtx, cancel := context.WithCancel(s.runCtx)
	b := &xdsBackend{config: cfg, server: srv, cancel: cancel, done: make(chan struct{}), fed: true}
	go func() {
		defer close(b.done)
		if err := srv.Serve(runCtx, lis); err != nil && runCtx.Err() == nil {
			s.opts.Log.Error(err, "the xDS server stopped serving; starting another")
			b.failed.Store(true)
			s.notify()
		}
	}()
	s.mu.Lock()
	s.setPending(v1alpha1.BackendXDS, keys)
	s.xds = b
	s.xdsFed.Store(true)
	s.mu.Unlock()
	s.opts.Log.Info("the xds backend programs the SMI objects", "address", lis.Addr().String(), "objects", len(keys))
	s.resync(keys)
	return nil
}

// newXDSServer builds an xDS server for cfg and says where it is to listen, so that a missing TLS
// Secret shows in the SMIOperator's status rather than in a log.
func (s *Switch) newXDSServer(ctx context.Context, cfg xdsConfig) (*server.Server, string, error) {
	var serving *tls.Config
	if cfg.xds.TLSSecretName != "" {
		tlsConfig, err := xdsbackend.TLSFromSecret(ctx, s.opts.Manager.GetAPIReader(), types.NamespacedName{Namespace: s.opts.Namespace, Name: cfg.xds.TLSSecretName})
		if err != nil {
			return nil, "", err
		}
		serving = tlsConfig
	}
	// Answering nobody until the server has everything: see ensureXDS and MoveToward.
	srv, err := xdsbackend.NewServer(ctx, s.clientset, cfg.settings, cfg.xds, xdsbackend.ServerWiring{
		TLS: serving, HoldUntilSynced: true, Registerer: s.opts.Registerer, Log: s.opts.Log.WithName("xds"),
	})
	if err == nil {
		srv.OnRejections(s.resyncRejected)
	}
	return srv, cfg.xds.Address, err
}

// resyncRejected has the SMI objects whose resources proxies began or stopped refusing
// reconciled again, so that their status says so (xdsbackend.Splits and xdsbackend.Targets read
// the server's rejections).
func (s *Switch) resyncRejected(refs []mesh.ObjectRef) {
	keys := make([]ObjectKey, 0, len(refs))
	for _, ref := range refs {
		keys = append(keys, ObjectKey{Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name})
	}
	s.resync(keys)
}

// retireXDS stops feeding the xDS server, which keeps serving its last configuration until the
// grace period ends; then it stops. A server that stopped serving on its own is dropped at once:
// it has nothing left to drain.
func (s *Switch) retireXDS(grace time.Duration) {
	s.mu.RLock()
	b := s.xds
	s.mu.RUnlock()
	if b == nil {
		return
	}
	// Done: drained, or failed with nothing left to drain.
	done := func() bool { return b.failed.Load() || !time.Now().Before(b.drainUntil) }
	if !b.fed && !done() {
		return // draining until later: no write lock (see retireIstio)
	}
	s.mu.Lock()
	if b.fed {
		b.fed, b.drainUntil = false, time.Now().Add(grace)
		s.xdsFed.Store(false)
		if b.active.Load() {
			s.opts.Log.Info("the xds backend is retired: it serves its last configuration until the grace period ends", "until", b.drainUntil)
		} else {
			// Never answered a proxy (it was held until synced): nothing to drain.
			b.drainUntil = time.Now()
			s.opts.Log.Info("the xds backend is retired before it ever answered a proxy: it stops now")
		}
	}
	s.mu.Unlock()
	s.clearPending(v1alpha1.BackendXDS)
	if done() {
		s.stopXDS()
	}
}

// stopXDS stops the xDS server, if any, and waits until it has.
func (s *Switch) stopXDS() {
	s.mu.Lock()
	b := s.xds
	s.xds = nil
	s.xdsFed.Store(false)
	s.mu.Unlock()
	s.clearPending(v1alpha1.BackendXDS)
	if b == nil {
		return
	}
	b.cancel()
	<-b.done
	s.opts.Log.Info("the xDS server stopped")
}

// stopAll stops programming: the SMIOperator is gone. What the Istio backend generated is deleted;
// the xDS server stops at once. The SMI objects are reconciled again so that their status says
// nothing programs them.
func (s *Switch) stopAll(ctx context.Context, why string) error {
	s.mu.RLock()
	wasRunning := s.istio != nil || s.xds != nil
	s.mu.RUnlock()
	s.setIdle(why)
	s.mu.Lock()
	s.want = ""
	s.mu.Unlock()
	s.stopXDS()
	if err := s.retireIstio(ctx); err != nil {
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

// ListObjects lists from c what a backend being brought up has to program: the TrafficSplits and
// TrafficTargets not being deleted, every Namespace not being deleted (where deny-by-default must
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

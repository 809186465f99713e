// Package controllers wires the operator's parts into a controller-runtime manager: the scheme, the
// SMI webhooks, the webhook certificate rotation, and the reconcilers of the active backend.
package controllers

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/source"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/smi-operator/smi-operator/apis/linkerd"
	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/conversion"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/smi/validation"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/backends"
	gammabackend "github.com/smi-operator/smi-operator/controllers/backends/gamma"
	istiobackend "github.com/smi-operator/smi-operator/controllers/backends/istio"
	xdsbackend "github.com/smi-operator/smi-operator/controllers/backends/xds"
	"github.com/smi-operator/smi-operator/controllers/index"
	"github.com/smi-operator/smi-operator/controllers/namespace"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/controllers/service"
	"github.com/smi-operator/smi-operator/controllers/smiobject"
	"github.com/smi-operator/smi-operator/controllers/smioperator"
	"github.com/smi-operator/smi-operator/controllers/status"
	"github.com/smi-operator/smi-operator/controllers/trafficpolicy"
	"github.com/smi-operator/smi-operator/controllers/trafficsplit"
	"github.com/smi-operator/smi-operator/controllers/traffictarget"
	"github.com/smi-operator/smi-operator/controllers/unobserved"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/xds/server"
)

// ConversionPath is where the SMI CRDs' conversion webhook is served (config/crd refers to it).
const ConversionPath = "/convert"

// NewScheme returns the scheme the operator's clients and caches use: Kubernetes' own types, the
// SMI hub versions with their status, and the Istio, Gateway API and Linkerd types it generates.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	utilruntime.Must(hub.AddToScheme(s))
	utilruntime.Must(networkingv1.AddToScheme(s))
	utilruntime.Must(securityv1.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	utilruntime.Must(policyv1alpha1.AddToScheme(s))
	utilruntime.Must(gatewayv1.Install(s))
	utilruntime.Must(linkerd.AddToScheme(s))
	return s
}

// Webhooks are the SMI conversion and validation webhooks, by the path they are served at.
func Webhooks() map[string]http.Handler {
	return map[string]http.Handler{
		ConversionPath:         conversion.NewWebhookHandler(),
		validation.WebhookPath: validation.NewWebhook(),
	}
}

// SetupWebhooks registers Webhooks on the manager's webhook server.
func SetupWebhooks(mgr ctrl.Manager) {
	for path, handler := range Webhooks() {
		mgr.GetWebhookServer().Register(path, handler)
	}
}

// Options configure the reconcilers.
type Options struct {
	Settings mesh.Settings
	// MaxConcurrentReconciles per controller.
	MaxConcurrentReconciles int
}

// SetupIstio registers the reconcilers that program Istio from SMI objects. It fails when the
// cluster serves no Istio API, rather than starting controllers that cannot watch.
func SetupIstio(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if err := istiobackend.Served(mgr); err != nil {
		return err
	}
	if err := owned.IndexGenerated(ctx, mgr.GetFieldIndexer(), istiobackend.Kinds...); err != nil {
		return err
	}
	for _, index := range istiobackend.Indexes() {
		if err := index(ctx, mgr.GetFieldIndexer()); err != nil {
			return err
		}
	}
	statuses, err := newStatuses(mgr, opts.MaxConcurrentReconciles)
	if err != nil {
		return err
	}
	writer := generatedWriter(mgr, statuses)
	targets := istiobackend.Targets{Writer: writer, Settings: opts.Settings}
	ctrls, err := setupReconcilers(ctx, mgr, opts, statuses, backendSet{
		splits:   istiobackend.Splits{Writer: writer, Settings: opts.Settings},
		targets:  targets,
		policies: istiobackend.Policies{Writer: writer, Settings: opts.Settings},
		settings: func() mesh.Settings { return opts.Settings },
	})
	if err != nil {
		return err
	}
	namespaceCtrl, err := (&namespace.Reconciler{
		Client: mgr.GetClient(), Sink: targets, MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
	}).SetupWithManager(mgr)
	if err != nil {
		return err
	}
	changes := writer.ChangesToCorrect()
	if err := watch(namespaceCtrl, istiobackend.BaselineWatches(mgr, changes)); err != nil {
		return err
	}
	for c, sources := range map[controller.Controller][]source.Source{
		ctrls.splits:   istiobackend.SplitWatches(mgr, changes),
		ctrls.targets:  istiobackend.TargetWatches(mgr, changes),
		ctrls.policies: istiobackend.PolicyWatches(mgr, changes),
	} {
		if err := watch(c, sources); err != nil {
			return err
		}
	}
	return nil
}

// watch adds sources to a controller.
func watch(c controller.Controller, sources []source.Source) error {
	for _, src := range sources {
		if err := c.Watch(src); err != nil {
			return err
		}
	}
	return nil
}

// newStatuses returns the status writer of the SMI reconcilers, run by the manager.
func newStatuses(mgr ctrl.Manager, workers int) (*status.WriteQueue, error) {
	statuses := &status.WriteQueue{
		Writer:  status.Writer{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder(EventReporter), Unobserved: &unobserved.Writes{}},
		Reader:  mgr.GetClient(),
		Workers: workers,
	}
	return statuses, mgr.Add(statuses)
}

// generatedWriter writes the generated objects (Istio's, the Gateway API routes); its writes hold
// the statuses back and share their memory of recent writes, and the watches of what it wrote
// skip its own writes (ChangesToCorrect); the gamma backend writes its routes, whose status it
// reads, with a copy that records nothing.
func generatedWriter(mgr ctrl.Manager, statuses *status.WriteQueue) owned.Writer {
	return owned.Writer{Client: mgr.GetClient(), Reader: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Scheme: mgr.GetScheme(),
		Unobserved: statuses.Writer.Unobserved, LastWritten: &owned.LastWritten{}, Busy: statuses.Programming}
}

// EventReporter is the component the operator's Events are reported as.
const EventReporter = "smi-operator"

// backendSet is what the SMI reconcilers program through.
type backendSet struct {
	splits   trafficsplit.Backend
	targets  traffictarget.Backend
	policies trafficpolicy.Backend
	settings func() mesh.Settings
	// splitResync, targetResync and policyResync, when set, deliver objects to reconcile again.
	splitResync, targetResync, policyResync <-chan event.GenericEvent
}

// reconcilerControllers are the controllers of the SMI root kinds and of TrafficPolicies, for
// watches added later.
type reconcilerControllers struct {
	splits, targets, policies controller.Controller
}

// setupReconcilers registers the cache indexes and the reconcilers of the SMI root kinds and of
// TrafficPolicies with the backends of set, reporting through statuses.
func setupReconcilers(ctx context.Context, mgr ctrl.Manager, opts Options, statuses *status.WriteQueue, set backendSet) (reconcilerControllers, error) {
	var out reconcilerControllers
	if err := index.Setup(ctx, mgr.GetFieldIndexer()); err != nil {
		return out, err
	}
	var err error
	if out.splits, err = (&smiobject.Reconciler[*hub.TrafficSplit]{
		Kind: trafficsplit.Kind(), Client: mgr.GetClient(), Backend: set.splits, Status: statuses, Settings: set.settings,
		Resync: set.splitResync, MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
	}).SetupWithManager(mgr); err != nil {
		return out, err
	}
	if out.targets, err = (&smiobject.Reconciler[*hub.TrafficTarget]{
		Kind: traffictarget.Kind(), Client: mgr.GetClient(), Backend: set.targets, Status: statuses, Settings: set.settings,
		Resync: set.targetResync, MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
	}).SetupWithManager(mgr); err != nil {
		return out, err
	}
	out.policies, err = (&smiobject.Reconciler[*policyv1alpha1.TrafficPolicy]{
		Kind: trafficpolicy.Kind(), Client: mgr.GetClient(), Backend: set.policies, Status: statuses, Settings: set.settings,
		Resync: set.policyResync, MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
	}).SetupWithManager(mgr)
	return out, err
}

// SetupXDS registers the reconcilers that feed the operator's own xDS server from SMI objects,
// Services and EndpointSlices, and the server itself.
func SetupXDS(ctx context.Context, mgr ctrl.Manager, opts Options, xdsServer *server.Server) error {
	settings := func() mesh.Settings { return opts.Settings }
	statuses, err := newStatuses(mgr, opts.MaxConcurrentReconciles)
	if err != nil {
		return err
	}
	gate := newSyncGate(mgr.GetClient(), xdsServer.Synced)
	resyncs := map[string]chan event.GenericEvent{
		smi.TrafficSplitKind: make(chan event.GenericEvent), smi.TrafficTargetKind: make(chan event.GenericEvent),
		policyv1alpha1.TrafficPolicyKind: make(chan event.GenericEvent),
	}
	xdsServer.OnRejections(func(refs []mesh.ObjectRef) { go resyncRefs(ctx, refs, resyncs) })
	_, err = setupReconcilers(ctx, mgr, opts, statuses, backendSet{
		splits:      gatedBackend[*hub.TrafficSplit]{xdsbackend.Splits{Server: xdsServer}, smi.TrafficSplitKind, gate},
		targets:     gatedBackend[*hub.TrafficTarget]{xdsbackend.Targets{Server: xdsServer}, smi.TrafficTargetKind, gate},
		policies:    gatedBackend[*policyv1alpha1.TrafficPolicy]{xdsbackend.Policies{Server: xdsServer}, policyv1alpha1.TrafficPolicyKind, gate},
		settings:    settings,
		splitResync: resyncs[smi.TrafficSplitKind], targetResync: resyncs[smi.TrafficTargetKind], policyResync: resyncs[policyv1alpha1.TrafficPolicyKind],
	})
	if err != nil {
		return err
	}
	serviceCtrl, err := (&service.Reconciler{
		Client: mgr.GetClient(), Server: gatedSink{service.OnServer(xdsServer), gate}, MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
	}).SetupWithManager(mgr)
	if err != nil {
		return err
	}
	if err := service.WatchEndpointSlices(ctx, mgr, serviceCtrl); err != nil {
		return err
	}
	if _, err := (&namespace.Reconciler{
		Client: mgr.GetClient(), Sink: gatedNamespaces{xdsbackend.Targets{Server: xdsServer}, gate}, MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := mgr.Add(gate); err != nil {
		return err
	}
	return mgr.Add(xdsServer)
}

// resyncRefs sends the controllers of the objects refs names (by kind) those objects, to reconcile
// again: the xDS server's rejections of their resources changed, and so must their status.
func resyncRefs(ctx context.Context, refs []mesh.ObjectRef, controllers map[string]chan event.GenericEvent) {
	for _, ref := range refs {
		ch, ok := controllers[ref.Kind]
		if !ok {
			continue
		}
		ev := event.GenericEvent{Object: &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ref.Namespace, Name: ref.Name}}}
		select {
		case ch <- ev:
		case <-ctx.Done():
			return
		}
	}
}

// ResourceOptions configure an operator whose SMIOperator resource selects the backend.
type ResourceOptions struct {
	// MaxConcurrentReconciles per controller.
	MaxConcurrentReconciles int
	// Namespace is the operator's: the xDS CA root and TLS Secret live there.
	Namespace string
	// XDSHost is the address the xDS server listens on, with spec.xds.port; empty: every one.
	XDSHost string
	// XDS holds what the SMIOperator does not say of the xDS server: ServiceName, the Service in
	// front of it (in Namespace: the serving certificate's DNS names), and CASecret, the Secret
	// keeping the xDS CA root (backends.Options.XDS).
	XDS xdsbackend.Config
	// Registerer receives the xDS server's metrics; the manager's registry when nil.
	Registerer prometheus.Registerer
	// MoreBackends are backends an SMIOperator can select besides the built-in ones (a test's).
	MoreBackends []backends.Backend
}

// SetupFromResource registers the reconcilers of an operator that runs what the SMIOperator named
// "default" selects, and swaps backends when it changes: the SMI reconcilers, the Service
// reconciler (feeding the xDS server while one runs), the backend switch and the SMIOperator
// reconciler driving it.
func SetupFromResource(ctx context.Context, mgr ctrl.Manager, opts ResourceOptions) error {
	statuses, err := newStatuses(mgr, opts.MaxConcurrentReconciles)
	if err != nil {
		return err
	}
	registerer := opts.Registerer
	if registerer == nil {
		registerer = metrics.Registry
	}
	writer := generatedWriter(mgr, statuses)
	// Istio's access policy, which the istio backend and the gamma backend (accessPolicy istio)
	// both write: one Access, so that neither deletes it while the other writes it.
	istioAccess := &istiobackend.Access{Writer: writer}
	sw, err := backends.New(backends.Options{
		Manager: mgr,
		// The backends an SMIOperator can select.
		Backends: append([]backends.Backend{
			istiobackend.Backend(writer, istioAccess),
			xdsbackend.Backend(xdsbackend.BackendOptions{Host: opts.XDSHost, Base: opts.XDS, Registerer: registerer}),
			gammabackend.Backend(writer, istioAccess),
		}, opts.MoreBackends...),
		Log: ctrl.Log.WithName("backends"),
	})
	if err != nil {
		return err
	}
	reconcilerOpts := Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}
	ctrls, err := setupReconcilers(ctx, mgr, reconcilerOpts, statuses, backendSet{
		splits: sw.Splits(), targets: sw.Targets(), policies: sw.Policies(), settings: sw.Settings,
		splitResync: sw.SplitResync(), targetResync: sw.TargetResync(), policyResync: sw.PolicyResync(),
	})
	if err != nil {
		return err
	}
	serviceCtrl, err := (&service.Reconciler{
		Client: mgr.GetClient(), Server: sw.Services(), Resync: sw.ServiceResync(),
		Serving: sw.ServingServices, MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
	}).SetupWithManager(mgr)
	if err != nil {
		return err
	}
	namespaceCtrl, err := (&namespace.Reconciler{
		Client: mgr.GetClient(), Sink: sw.Namespaces(), Resync: sw.NamespaceResync(), MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
	}).SetupWithManager(mgr)
	if err != nil {
		return err
	}
	sw.SetControllers(backends.Controllers{Splits: ctrls.splits, Targets: ctrls.targets, Policies: ctrls.policies, Services: serviceCtrl, Namespaces: namespaceCtrl})
	if err := mgr.Add(sw); err != nil {
		return err
	}
	return (&smioperator.Reconciler{
		Client: mgr.GetClient(), Backends: sw, Changes: sw.Changes(), Recorder: mgr.GetEventRecorder(EventReporter),
	}).SetupWithManager(mgr)
}

// SetupOperatorStatus registers the reconciler that reports, on the SMIOperator singleton, the
// backend this operator runs (fixed by its --backend flag) and how the SMI objects fare.
func SetupOperatorStatus(mgr ctrl.Manager, active v1alpha1.Backend) error {
	return (&smioperator.Reconciler{
		Client: mgr.GetClient(), Backends: smioperator.FixedBackend(active), Recorder: mgr.GetEventRecorder(EventReporter),
	}).SetupWithManager(mgr)
}

// Package controllers wires the operator's parts into a controller-runtime manager: the scheme, the
// SMI webhooks, the webhook certificate rotation, and the reconcilers of the active backend.
package controllers

import (
	"context"
	"fmt"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"

	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/smi-operator/smi-operator/apis/smi/conversion"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/smi/validation"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/index"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/controllers/recent"
	"github.com/smi-operator/smi-operator/controllers/service"
	"github.com/smi-operator/smi-operator/controllers/smioperator"
	"github.com/smi-operator/smi-operator/controllers/status"
	"github.com/smi-operator/smi-operator/controllers/trafficsplit"
	"github.com/smi-operator/smi-operator/controllers/traffictarget"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/xds/server"
)

// ConversionPath is where the SMI CRDs' conversion webhook is served (config/crd refers to it).
const ConversionPath = "/convert"

// NewScheme returns the scheme the operator's clients and caches use: Kubernetes' own types, the
// SMI hub versions with their status, and the Istio types it generates.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	utilruntime.Must(hub.AddToScheme(s))
	utilruntime.Must(networkingv1.AddToScheme(s))
	utilruntime.Must(securityv1.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

// SetupWebhooks registers the SMI conversion and validation webhooks on the manager's webhook server.
func SetupWebhooks(mgr ctrl.Manager) {
	server := mgr.GetWebhookServer()
	server.Register(ConversionPath, conversion.NewWebhookHandler())
	server.Register(validation.WebhookPath, validation.NewWebhook())
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
	for _, gvk := range []schema.GroupVersionKind{
		networkingv1.SchemeGroupVersion.WithKind("VirtualService"),
		securityv1.SchemeGroupVersion.WithKind("AuthorizationPolicy"),
	} {
		if _, err := mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return fmt.Errorf("the cluster does not serve %s (is Istio installed?): %w", gvk, err)
		}
	}
	err := owned.IndexGenerated(ctx, mgr.GetFieldIndexer(), &networkingv1.VirtualService{}, &networkingv1.DestinationRule{},
		&securityv1.AuthorizationPolicy{}, &securityv1.PeerAuthentication{})
	if err != nil {
		return err
	}
	writes := &recent.Writes{}
	writer := owned.Writer{Client: mgr.GetClient(), Reader: mgr.GetClient(), Scheme: mgr.GetScheme(), Recent: writes}
	return setupReconcilers(ctx, mgr, opts, writes,
		trafficsplit.Istio{Writer: writer, Settings: opts.Settings},
		traffictarget.Istio{Client: mgr.GetClient(), Writer: writer, Settings: opts.Settings})
}

// setupReconcilers registers the cache indexes and the reconcilers of the SMI root kinds with
// one backend; writes is the memory of recent writes the backend's writer shares with the status
// writer.
func setupReconcilers(ctx context.Context, mgr ctrl.Manager, opts Options, writes *recent.Writes, splits trafficsplit.Backend, targets traffictarget.Backend) error {
	if err := index.Setup(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	statusWriter := status.Writer{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("smi-operator"), Recent: writes}
	if err := (&trafficsplit.Reconciler{
		Client: mgr.GetClient(), Backend: splits, Status: statusWriter,
		Settings: opts.Settings, MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&traffictarget.Reconciler{
		Client: mgr.GetClient(), Backend: targets, Status: statusWriter,
		Settings: opts.Settings, MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
	}).SetupWithManager(mgr)
}

// SetupXDS registers the reconcilers that feed the operator's own xDS server from SMI objects,
// Services and EndpointSlices, and the server itself.
func SetupXDS(ctx context.Context, mgr ctrl.Manager, opts Options, xdsServer *server.Server) error {
	if err := setupReconcilers(ctx, mgr, opts, &recent.Writes{}, trafficsplit.XDS{Server: xdsServer}, traffictarget.XDS{Server: xdsServer}); err != nil {
		return err
	}
	if err := (&service.Reconciler{
		Client: mgr.GetClient(), Server: xdsServer, Settings: opts.Settings, MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
	}).SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	return mgr.Add(xdsServer)
}

// NewXDSServer returns an xDS server registering its metrics with the manager's registry unless
// opts name another.
func NewXDSServer(opts server.Options) *server.Server {
	if opts.Registerer == nil {
		opts.Registerer = metrics.Registry
	}
	return server.New(opts)
}

// SetupOperatorStatus registers the reconciler that reports, on the SMIOperator singleton, the
// backend this operator runs and how the SMI objects fare.
func SetupOperatorStatus(mgr ctrl.Manager, active v1alpha1.Backend) error {
	return (&smioperator.Reconciler{Client: mgr.GetClient(), Active: active}).SetupWithManager(mgr)
}

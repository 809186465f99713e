// Package service serves every Service to the xDS backend's clients: its listener, default
// route, cluster and endpoints, whether or not an SMI object names it, so proxyless gRPC clients
// can dial any Service through xds:///, and splits can send traffic to any Service.
package service

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/server"
)

// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch

// Reconciler serves one Service and its ready endpoints at a time.
type Reconciler struct {
	Client client.Client
	Server Sink
	// Resync, when set, delivers Services to serve again whatever changed, such as every Service
	// when an xDS server starts.
	Resync <-chan event.GenericEvent
	// Serving, when set, says whether a server takes Services now; while none does, a reconcile
	// does nothing (and the EndpointSlices need not be watched: see WatchEndpointSlices).
	Serving                 func() bool
	MaxConcurrentReconciles int
}

// Sink receives the Services to serve: an xDS server (OnServer), or whatever stands for the ones
// running now. Each serves a Service as the settings it runs with say (its cluster domain).
type Sink interface {
	SetService(key types.NamespacedName, svc *corev1.Service, endpoints xds.Endpoints)
	DeleteService(key types.NamespacedName)
}

// OnServer is the Sink of one xDS server.
func OnServer(srv *server.Server) Sink { return serverSink{srv} }

type serverSink struct{ srv *server.Server }

func (s serverSink) SetService(key types.NamespacedName, svc *corev1.Service, endpoints xds.Endpoints) {
	s.srv.SetService(key, mesh.ServiceOf(svc, s.srv.Settings()), endpoints)
}

func (s serverSink) DeleteService(key types.NamespacedName) { s.srv.DeleteService(key) }

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if r.Serving != nil && !r.Serving() {
		return ctrl.Result{}, nil
	}
	svc := &corev1.Service{}
	err := r.Client.Get(ctx, req.NamespacedName, svc)
	if apierrors.IsNotFound(err) {
		r.Server.DeleteService(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	slices := &discoveryv1.EndpointSliceList{}
	if err := r.Client.List(ctx, slices, client.InNamespace(svc.Namespace),
		client.MatchingFields{sliceService: svc.Name}); err != nil {
		return ctrl.Result{}, err
	}
	endpoints := xds.BuildEndpoints([]corev1.Service{*svc}, slices.Items)
	r.Server.SetService(req.NamespacedName, svc, endpoints)
	return ctrl.Result{}, nil
}

// sliceService indexes EndpointSlices by the Service they belong to: a label selector on the
// cache would scan every slice of the namespace, for every Service.
const sliceService = "xds.service"

// SetupWithManager watches Services and returns the controller, to which WatchEndpointSlices adds
// their EndpointSlices.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) (controller.Controller, error) {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("xds-service").
		For(&corev1.Service{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles})
	if r.Resync != nil {
		b = b.WatchesRawSource(source.Channel(r.Resync, &handler.EnqueueRequestForObject{}))
	}
	return b.Build(r)
}

// WatchEndpointSlices indexes EndpointSlices by Service and has c reconcile a Service when one
// of its slices changes; predicates filter the events. It may be called on a running controller:
// an operator that starts an xDS server only when asked does not cache every EndpointSlice of
// the cluster before.
func WatchEndpointSlices(ctx context.Context, mgr ctrl.Manager, c controller.Controller, predicates ...predicate.Predicate) error {
	err := mgr.GetFieldIndexer().IndexField(ctx, &discoveryv1.EndpointSlice{}, sliceService, func(o client.Object) []string {
		if name := o.GetLabels()[discoveryv1.LabelServiceName]; name != "" {
			return []string{name}
		}
		return nil
	})
	if err != nil {
		return err
	}
	toService := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		name := o.GetLabels()[discoveryv1.LabelServiceName]
		if name == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
	})
	return c.Watch(source.Kind(mgr.GetCache(), client.Object(&discoveryv1.EndpointSlice{}), toService, predicates...))
}

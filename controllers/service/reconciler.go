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
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

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
	pods, err := r.podsOf(ctx, slices.Items)
	if err != nil {
		return ctrl.Result{}, err
	}
	endpoints := xds.BuildEndpoints([]corev1.Service{*svc}, slices.Items, pods)
	r.Server.SetService(req.NamespacedName, svc, endpoints)
	return ctrl.Result{}, nil
}

// podsOf returns the Pods the slices' endpoints name that the cache holds, whose ServiceAccounts
// the Service's clusters accept (secure naming). A Pod not in the cache yet is left out: its
// endpoint is accepted under no identity (fail closed) until the Pod's creation reconciles the
// Service again (WatchEndpointSlices), which is how a rollout converges whatever the order in
// which the Pod and slice informers see the new Pod.
func (r *Reconciler) podsOf(ctx context.Context, slices []discoveryv1.EndpointSlice) ([]corev1.Pod, error) {
	var pods []corev1.Pod
	for _, key := range xds.PodKeys(slices) {
		pod := corev1.Pod{}
		err := r.Client.Get(ctx, key, &pod)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		pods = append(pods, pod)
	}
	return pods, nil
}

// sliceService indexes EndpointSlices by the Service they belong to: a label selector on the
// cache would scan every slice of the namespace, for every Service. slicePod indexes them by the
// Pods their endpoints name, to find the Services a Pod serves.
const (
	sliceService = "xds.service"
	slicePod     = "xds.pod"
)

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

// WatchEndpointSlices indexes EndpointSlices by Service and by the Pods they name, and has c
// reconcile a Service when one of its slices changes, or when a Pod one of them names is created
// or deleted (a Pod's ServiceAccount never changes; the Service's clusters accept the identities
// of its endpoints' Pods, see podsOf); predicates filter the events. It may be called on a running
// controller: an operator that starts an xDS server only when asked does not cache every
// EndpointSlice and Pod of the cluster before.
func WatchEndpointSlices(ctx context.Context, mgr ctrl.Manager, c controller.Controller, predicates ...predicate.Predicate) error {
	indexer := mgr.GetFieldIndexer()
	err := indexer.IndexField(ctx, &discoveryv1.EndpointSlice{}, sliceService, func(o client.Object) []string {
		if name := o.GetLabels()[discoveryv1.LabelServiceName]; name != "" {
			return []string{name}
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = indexer.IndexField(ctx, &discoveryv1.EndpointSlice{}, slicePod, func(o client.Object) []string {
		var names []string
		for _, key := range xds.PodKeys([]discoveryv1.EndpointSlice{*o.(*discoveryv1.EndpointSlice)}) {
			names = append(names, key.Name)
		}
		return names
	})
	if err != nil {
		return err
	}
	toService := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		return serviceOf(o)
	})
	err = c.Watch(source.Kind(mgr.GetCache(), client.Object(&discoveryv1.EndpointSlice{}), toService, predicates...))
	if err != nil {
		return err
	}
	reader := mgr.GetClient()
	podToServices := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, pod client.Object) []reconcile.Request {
		slices := &discoveryv1.EndpointSliceList{}
		if err := reader.List(ctx, slices, client.InNamespace(pod.GetNamespace()), client.MatchingFields{slicePod: pod.GetName()}); err != nil {
			return nil // the cache lists from memory; it fails only when stopping
		}
		var out []reconcile.Request
		for i := range slices.Items {
			out = append(out, serviceOf(&slices.Items[i])...)
		}
		return out
	})
	createdOrDeleted := predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }}
	return c.Watch(source.Kind(mgr.GetCache(), client.Object(&corev1.Pod{}), podToServices, append(predicates, createdOrDeleted)...))
}

// serviceOf is the Service an EndpointSlice belongs to, as a request.
func serviceOf(slice client.Object) []reconcile.Request {
	name := slice.GetLabels()[discoveryv1.LabelServiceName]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: slice.GetNamespace(), Name: name}}}
}

// Package namespace tells the backends which namespaces SMI access applies to: where, in
// enforcing mode, what no TrafficTarget allows is denied whether or not a TrafficTarget lives
// there (mesh.Settings.AccessNamespaces). The Istio backend keeps an allow-nothing
// AuthorizationPolicy in each; the xDS server builds the listeners of the identities of the
// others without deny-by-default.
package namespace

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// Reconciler hands one Namespace at a time to the backends.
type Reconciler struct {
	Client client.Client
	Sink   Sink
	// Resync, when set, delivers Namespaces to hand over again whatever changed, such as every
	// Namespace when a backend starts or its settings change.
	Resync                  <-chan event.GenericEvent
	MaxConcurrentReconciles int
}

// Sink receives the Namespaces: a backend, or whatever stands for the ones running now. Each
// judges a namespace by the settings it runs with.
type Sink interface {
	// SetNamespace is called for every Namespace that exists and is not being deleted.
	SetNamespace(ctx context.Context, ns *corev1.Namespace) error
	// DeleteNamespace is called for a Namespace that is gone or being deleted.
	DeleteNamespace(ctx context.Context, name string) error
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ns := &corev1.Namespace{}
	err := r.Client.Get(ctx, req.NamespacedName, ns)
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, r.Sink.DeleteNamespace(ctx, req.Name)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if !ns.DeletionTimestamp.IsZero() {
		// Nothing new is written into a namespace on its way out.
		return ctrl.Result{}, r.Sink.DeleteNamespace(ctx, req.Name)
	}
	return ctrl.Result{}, r.Sink.SetNamespace(ctx, ns)
}

// SetupWithManager watches Namespaces (their labels: the selector reads nothing else) and returns
// the controller, to which a backend may add watches of what it writes per namespace.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) (controller.Controller, error) {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("namespace").
		For(&corev1.Namespace{}, builder.WithPredicates(predicate.Or(predicate.LabelChangedPredicate{}, deletionStarted))).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles})
	if r.Resync != nil {
		b = b.WatchesRawSource(source.Channel(r.Resync, &handler.EnqueueRequestForObject{}))
	}
	return b.Build(r)
}

// deletionStarted passes the update that marks a Namespace for deletion. (Creates, deletes and
// generic events pass LabelChangedPredicate already.)
var deletionStarted = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
}}

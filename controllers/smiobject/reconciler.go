// Package smiobject reconciles the SMI objects of one kind into the running backends. The
// reconcile is the same for every kind: read the object from the cache, collect what its model
// depends on, build the model with the settings in force, have the Backend program it, and report
// the outcome in the object's status. What differs between kinds (what the model depends on, which
// changes to watch) is a Kind: package trafficsplit's, package traffictarget's and package
// trafficpolicy's (the operator's own TrafficPolicy, reconciled the same way).
package smiobject

import (
	"context"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers/status"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Backend programs what the SMI objects of one kind generate on one mesh.
type Backend[T hub.Object] interface {
	// Program makes the mesh carry obj as its model says, the model built with the settings the
	// backend runs with (models.BuiltWith), and returns what it could not express or write. When
	// the model holds nothing of obj (a split that lost its apex, references that do not
	// resolve), whatever obj generated before must go.
	Program(ctx context.Context, obj T, models *mesh.Models) ([]mesh.Diagnostic, error)
	// Forget removes what an object that no longer exists generated.
	Forget(ctx context.Context, ref mesh.ObjectRef) error
}

// Kind is what a Reconciler needs to know of one SMI kind.
type Kind[T hub.Object] struct {
	// Name is the kind (smi.TrafficSplitKind, …); the controller is named after it.
	Name string
	// New returns an empty object of the kind.
	New func() T
	// Snapshot collects, from the cache, what obj's model depends on. Objects it names that do
	// not exist are left out: the model reports them.
	Snapshot func(ctx context.Context, c client.Reader, obj T) (mesh.Snapshot, error)
	// Narrow, when set, trims every model built to what obj programs (self).
	Narrow func(m *mesh.Model, self mesh.ObjectRef)
	// Changed passes the updates of the object itself that can change what it programs: status
	// writes (ours) change nothing.
	Changed predicate.Predicate
	// Watch adds the watches of what the objects reference: a change there reconciles the
	// objects that reference it.
	Watch func(b *builder.Builder, c client.Client) *builder.Builder
}

// Reconciler programs the SMI objects of one kind, one at a time, from the cache.
type Reconciler[T hub.Object] struct {
	Kind    Kind[T]
	Client  client.Client
	Backend Backend[T]
	Status  status.Updater
	// Settings returns the mesh settings in force; they change when the SMIOperator's do.
	Settings func() mesh.Settings
	// Resync, when set, delivers objects to reconcile again whatever changed, such as every
	// object when a backend starts.
	Resync <-chan event.GenericEvent
	// MaxConcurrentReconciles sizes the worker pool; each reconcile is independent of the others.
	MaxConcurrentReconciles int
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler[T]) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	self := mesh.ObjectRef{Kind: r.Kind.Name, Namespace: req.Namespace, Name: req.Name}
	obj := r.Kind.New()
	err := r.Client.Get(ctx, req.NamespacedName, obj)
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, r.Backend.Forget(ctx, self)
	}
	if err != nil || !obj.GetDeletionTimestamp().IsZero() {
		return ctrl.Result{}, err
	}
	snap, err := r.Kind.Snapshot(ctx, r.Client, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	var narrow func(*mesh.Model)
	if r.Kind.Narrow != nil {
		narrow = func(m *mesh.Model) { r.Kind.Narrow(m, self) }
	}
	models := mesh.NewModels(snap, narrow)
	_, diags := models.BuiltWith(r.Settings())
	programDiags, err := r.Backend.Program(ctx, obj, models)
	if err != nil {
		return ctrl.Result{}, err
	}
	diags = append(diags, programDiags...)
	return ctrl.Result{}, r.Status.Update(ctx, obj, status.Conditions(obj.GetGeneration(), status.DiagnosticsOf(diags, self)))
}

// SetupWithManager watches the objects of the kind and everything they reference, and returns the
// controller so that watches of what a backend generates can be added to it, also once it runs.
func (r *Reconciler[T]) SetupWithManager(mgr ctrl.Manager) (controller.Controller, error) {
	b := ctrl.NewControllerManagedBy(mgr).
		Named(strings.ToLower(r.Kind.Name)).
		For(r.Kind.New(), builder.WithPredicates(r.Kind.Changed))
	b = r.Kind.Watch(b, r.Client).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles})
	if r.Resync != nil {
		b = b.WatchesRawSource(source.Channel(r.Resync, &handler.EnqueueRequestForObject{}))
	}
	return b.Build(r)
}

// Package trafficsplit reconciles TrafficSplits into the active backend's routing objects.
package trafficsplit

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers/index"
	"github.com/smi-operator/smi-operator/controllers/status"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// +kubebuilder:rbac:groups=split.smi-spec.io,resources=trafficsplits,verbs=get;list;watch
// +kubebuilder:rbac:groups=split.smi-spec.io,resources=trafficsplits/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=specs.smi-spec.io,resources=httproutegroups,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconciler programs one TrafficSplit at a time: it reads the split, the splits sharing its apex
// (the oldest wins), the Services and HTTPRouteGroups it names, all from the cache, builds the
// model, has the Backend program it, and reports the outcome in the split's status.
type Reconciler struct {
	Client  client.Client
	Backend Backend
	Status  status.Updater
	// Settings returns the mesh settings in force; they change when the SMIOperator's do.
	Settings func() mesh.Settings
	// Resync, when set, delivers splits to reconcile again whatever changed, such as every split
	// when a backend starts.
	Resync <-chan event.GenericEvent
	// MaxConcurrentReconciles sizes the worker pool; each reconcile is independent of the others.
	MaxConcurrentReconciles int
}

// Backend programs what TrafficSplits generate on one mesh.
type Backend interface {
	// Program makes the mesh carry split as its model says, the model built with the settings
	// the backend runs with: model.Splits holds split when it is programmable (it won its apex
	// and its references resolve), else nothing, and then whatever split generated before must
	// go. It returns what it could not express or write.
	Program(ctx context.Context, split *hub.TrafficSplit, models *mesh.Models) ([]mesh.Diagnostic, error)
	// Forget removes what a TrafficSplit that no longer exists generated.
	Forget(ctx context.Context, ref mesh.ObjectRef) error
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	split := &hub.TrafficSplit{}
	err := r.Client.Get(ctx, req.NamespacedName, split)
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, r.Backend.Forget(ctx, mesh.ObjectRef{Kind: smi.TrafficSplitKind, Namespace: req.Namespace, Name: req.Name})
	}
	if err != nil || !split.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, err
	}
	snap, err := r.snapshot(ctx, split)
	if err != nil {
		return ctrl.Result{}, err
	}
	self := mesh.ObjectRef{Kind: smi.TrafficSplitKind, Namespace: split.Namespace, Name: split.Name}
	models := mesh.NewModels(snap, func(m *mesh.Model) { m.Splits = onlyFrom(m.Splits, self) })
	_, diags := models.BuiltWith(r.Settings())
	programDiags, err := r.Backend.Program(ctx, split, models)
	if err != nil {
		return ctrl.Result{}, err
	}
	diags = append(diags, programDiags...)
	return ctrl.Result{}, r.Status.Update(ctx, split, status.Conditions(split.Generation, status.DiagnosticsOf(diags, self)))
}

// snapshot collects what the split's model depends on: every split on the same apex (to settle
// conflicts), the Services it names and the HTTPRouteGroups it matches on. Missing ones are left
// out; the model reports them.
func (r *Reconciler) snapshot(ctx context.Context, split *hub.TrafficSplit) (mesh.Snapshot, error) {
	var snap mesh.Snapshot
	apex := index.ApexName(split)
	rivals := &hub.TrafficSplitList{}
	if err := r.Client.List(ctx, rivals, client.InNamespace(split.Namespace), client.MatchingFields{index.SplitApex: apex}); err != nil {
		return snap, err
	}
	for i := range rivals.Items {
		snap.TrafficSplits = append(snap.TrafficSplits, *rivals.Items[i].SDK())
	}
	names := []string{apex}
	for _, b := range split.Spec.Backends {
		names = append(names, b.Service)
	}
	for _, name := range names {
		svc := &corev1.Service{}
		if found, err := r.get(ctx, split.Namespace, name, svc); err != nil {
			return snap, err
		} else if found {
			snap.Services = append(snap.Services, *svc)
		}
	}
	for _, m := range split.Spec.Matches {
		group := &hub.HTTPRouteGroup{}
		if found, err := r.get(ctx, split.Namespace, m.Name, group); err != nil {
			return snap, err
		} else if found {
			snap.HTTPRouteGroups = append(snap.HTTPRouteGroups, *group.SDK())
		}
	}
	return snap, nil
}

func (r *Reconciler) get(ctx context.Context, namespace, name string, obj client.Object) (bool, error) {
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func onlyFrom(splits []mesh.Split, ref mesh.ObjectRef) []mesh.Split {
	for _, s := range splits {
		if s.Source == ref {
			return []mesh.Split{s}
		}
	}
	return nil
}

// SetupWithManager watches TrafficSplits and everything they reference, and returns the controller
// so that watches of what a backend generates can be added to it (IstioWatches), also once it runs.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) (controller.Controller, error) {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("trafficsplit").
		// Status writes (ours) and metadata edits change nothing the reconcile reads from the object.
		For(&hub.TrafficSplit{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// A split created or deleted on the same apex can change who wins the apex.
		Watches(&hub.TrafficSplit{}, r.splitsByIndex(index.SplitApex, func(o client.Object) string {
			return index.ApexName(o.(*hub.TrafficSplit))
		}), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Service{}, r.splitsByIndex(index.SplitServices, client.Object.GetName)).
		Watches(&hub.HTTPRouteGroup{}, r.splitsByIndex(index.SplitRoutes, client.Object.GetName)).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles})
	if r.Resync != nil {
		b = b.WatchesRawSource(source.Channel(r.Resync, &handler.EnqueueRequestForObject{}))
	}
	return b.Build(r)
}

// splitsByIndex maps an object to the splits in its namespace whose field index holds key(object).
func (r *Reconciler) splitsByIndex(field string, key func(client.Object) string) handler.EventHandler {
	return index.Enqueue(r.Client, func() client.ObjectList { return &hub.TrafficSplitList{} }, field, key)
}

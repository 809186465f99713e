// Package traffictarget reconciles TrafficTargets into the active backend's access policies.
package traffictarget

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
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

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers/index"
	"github.com/smi-operator/smi-operator/controllers/status"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// +kubebuilder:rbac:groups=access.smi-spec.io,resources=traffictargets,verbs=get;list;watch
// +kubebuilder:rbac:groups=access.smi-spec.io,resources=traffictargets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=specs.smi-spec.io,resources=httproutegroups;tcproutes;udproutes,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// Reconciler programs one TrafficTarget at a time from the cache: the target, the routes its rules
// name and the workloads running as its destination ServiceAccount; the Backend programs the
// model, and the outcome goes to the target's status.
type Reconciler struct {
	Client  client.Client
	Backend Backend
	Status  status.Updater
	// Settings returns the mesh settings in force; they change when the SMIOperator's do.
	Settings func() mesh.Settings
	// Resync, when set, delivers targets to reconcile again whatever changed, such as every
	// target when a backend starts.
	Resync                  <-chan event.GenericEvent
	MaxConcurrentReconciles int
}

// Backend programs what TrafficTargets generate on one mesh.
type Backend interface {
	// Program makes the mesh enforce target as its model says, the model built with the settings
	// the backend runs with (model.AccessRules holds its rule when it is accepted), and returns
	// what it could not express or write.
	Program(ctx context.Context, target *hub.TrafficTarget, models *mesh.Models) ([]mesh.Diagnostic, error)
	// Forget removes what a TrafficTarget that no longer exists generated.
	Forget(ctx context.Context, ref mesh.ObjectRef) error
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	target := &hub.TrafficTarget{}
	err := r.Client.Get(ctx, req.NamespacedName, target)
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, r.Backend.Forget(ctx, mesh.ObjectRef{Kind: smi.TrafficTargetKind, Namespace: req.Namespace, Name: req.Name})
	}
	if err != nil || !target.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, err
	}
	snap, err := r.snapshot(ctx, target)
	if err != nil {
		return ctrl.Result{}, err
	}
	self := mesh.ObjectRef{Kind: smi.TrafficTargetKind, Namespace: target.Namespace, Name: target.Name}
	models := mesh.NewModels(snap, nil)
	_, diags := models.BuiltWith(r.Settings())
	programDiags, err := r.Backend.Program(ctx, target, models)
	if err != nil {
		return ctrl.Result{}, err
	}
	diags = append(diags, programDiags...)
	return ctrl.Result{}, r.Status.Update(ctx, target, status.Conditions(target.Generation, status.DiagnosticsOf(diags, self)))
}

// snapshot collects the target, the routes its rules name and the workloads of its destination.
func (r *Reconciler) snapshot(ctx context.Context, target *hub.TrafficTarget) (mesh.Snapshot, error) {
	snap := mesh.Snapshot{TrafficTargets: []accessv1alpha3.TrafficTarget{*target.SDK()}}
	for _, rule := range target.Spec.Rules {
		var obj client.Object
		switch rule.Kind {
		case smi.HTTPRouteGroupKind:
			obj = &hub.HTTPRouteGroup{}
		case smi.TCPRouteKind:
			obj = &hub.TCPRoute{}
		case smi.UDPRouteKind:
			obj = &hub.UDPRoute{}
		default:
			continue // the model reports the kind
		}
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: target.Namespace, Name: rule.Name}, obj)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return snap, err
		}
		switch o := obj.(type) {
		case *hub.HTTPRouteGroup:
			snap.HTTPRouteGroups = append(snap.HTTPRouteGroups, *o.SDK())
		case *hub.TCPRoute:
			snap.TCPRoutes = append(snap.TCPRoutes, *o.SDK())
		case *hub.UDPRoute:
			snap.UDPRoutes = append(snap.UDPRoutes, *o.SDK())
		}
	}
	bySA := []client.ListOption{client.InNamespace(target.Namespace), client.MatchingFields{index.WorkloadServiceAccount: target.Spec.Destination.Name}}
	deployments, statefulSets, daemonSets := &appsv1.DeploymentList{}, &appsv1.StatefulSetList{}, &appsv1.DaemonSetList{}
	for _, list := range []client.ObjectList{deployments, statefulSets, daemonSets} {
		if err := r.Client.List(ctx, list, bySA...); err != nil {
			return snap, err
		}
	}
	snap.Deployments, snap.StatefulSets, snap.DaemonSets = deployments.Items, statefulSets.Items, daemonSets.Items
	return snap, nil
}

// SetupWithManager watches TrafficTargets and everything they reference, and returns the
// controller so that watches of what a backend generates can be added to it (IstioWatches), also
// once it runs.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) (controller.Controller, error) {
	byRoute := func(kind string) handler.EventHandler {
		return r.targetsByIndex(index.TargetRoutes, func(o client.Object) string { return index.RouteKey(kind, o.GetName()) })
	}
	byWorkload := r.targetsByIndex(index.TargetDestination, func(o client.Object) string {
		switch w := o.(type) {
		case *appsv1.Deployment:
			return mesh.ServiceAccountOf(w.Spec.Template.Spec)
		case *appsv1.StatefulSet:
			return mesh.ServiceAccountOf(w.Spec.Template.Spec)
		case *appsv1.DaemonSet:
			return mesh.ServiceAccountOf(w.Spec.Template.Spec)
		}
		return ""
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named("traffictarget").
		// Status writes (ours) change nothing the reconcile reads from the object; of its metadata,
		// the conversion data does: a v1alpha1/v1alpha2 destination port lives there. Other
		// annotations (kubectl's, GitOps tools') change nothing.
		For(&hub.TrafficTarget{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, conversionDataChanged))).
		Watches(&hub.HTTPRouteGroup{}, byRoute(smi.HTTPRouteGroupKind)).
		Watches(&hub.TCPRoute{}, byRoute(smi.TCPRouteKind)).
		Watches(&hub.UDPRoute{}, byRoute(smi.UDPRouteKind)).
		// A workload's selector, pod labels and ServiceAccount are spec: its status updates (every
		// rollout tick) change nothing a target reads.
		Watches(&appsv1.Deployment{}, byWorkload, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&appsv1.StatefulSet{}, byWorkload, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&appsv1.DaemonSet{}, byWorkload, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles})
	if r.Resync != nil {
		b = b.WatchesRawSource(source.Channel(r.Resync, &handler.EnqueueRequestForObject{}))
	}
	return b.Build(r)
}

// targetsByIndex maps an object to the targets in its namespace whose field index holds key(object).
func (r *Reconciler) targetsByIndex(field string, key func(client.Object) string) handler.EventHandler {
	return index.Enqueue(r.Client, func() client.ObjectList { return &hub.TrafficTargetList{} }, field, key)
}

// conversionDataChanged passes updates that change an object's conversion-data annotation.
var conversionDataChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	return e.ObjectOld.GetAnnotations()[smi.ConversionDataAnnotation] != e.ObjectNew.GetAnnotations()[smi.ConversionDataAnnotation]
}}

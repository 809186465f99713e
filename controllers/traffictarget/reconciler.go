// Package traffictarget reconciles TrafficTargets into the active backend's access policies.
package traffictarget

import (
	"context"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers/index"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/controllers/status"
	"github.com/smi-operator/smi-operator/translators/istio"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// +kubebuilder:rbac:groups=access.smi-spec.io,resources=traffictargets,verbs=get;list;watch
// +kubebuilder:rbac:groups=access.smi-spec.io,resources=traffictargets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=specs.smi-spec.io,resources=httproutegroups;tcproutes;udproutes,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=security.istio.io,resources=authorizationpolicies;peerauthentications,verbs=get;list;watch;create;update;patch;delete

// Reconciler programs one TrafficTarget at a time from the cache: the target, the routes its rules
// name and the workloads running as its destination ServiceAccount. It also keeps the namespace's
// allow-nothing baseline (enforcing mode) while any TrafficTarget lives there.
type Reconciler struct {
	Client                  client.Client
	Writer                  owned.Writer
	Status                  status.Writer
	Settings                mesh.Settings
	MaxConcurrentReconciles int
}

func generatedKinds() []client.ObjectList {
	return []client.ObjectList{&securityv1.AuthorizationPolicyList{}, &securityv1.PeerAuthenticationList{}}
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	target := &hub.TrafficTarget{}
	err := r.Client.Get(ctx, req.NamespacedName, target)
	if apierrors.IsNotFound(err) {
		if err := r.Writer.PruneAfterDelete(ctx, smi.TrafficTargetKind, req.Namespace, req.Name, generatedKinds()); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, r.syncBaseline(ctx, req.Namespace)
	}
	if err != nil || !target.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, err
	}
	snap, err := r.snapshot(ctx, target)
	if err != nil {
		return ctrl.Result{}, err
	}
	self := mesh.ObjectRef{Kind: smi.TrafficTargetKind, Namespace: target.Namespace, Name: target.Name}
	model, diags := mesh.Build(snap, r.Settings)
	out, translateDiags := istio.Translate(model, r.Settings)
	diags = append(diags, translateDiags...)

	res, err := r.Writer.Sync(ctx, target, generatedFrom(out.Objects(), smi.TrafficTargetKind), generatedKinds())
	if err != nil {
		return ctrl.Result{}, err
	}
	diags = append(diags, status.Conflicts(self, res.Conflicts)...)
	if err := r.syncBaseline(ctx, target.Namespace); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.Status.Update(ctx, target, status.Conditions(target.Generation, status.About(diags, self)))
}

// syncBaseline keeps the namespace's allow-nothing policy while enforcing mode is on and any
// TrafficTarget lives there, so SMI's deny-by-default holds; the Namespace controls it.
func (r *Reconciler) syncBaseline(ctx context.Context, namespace string) error {
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil {
		return client.IgnoreNotFound(err)
	}
	// Only whether any target is left matters: one, uncopied.
	targets := &hub.TrafficTargetList{}
	if err := r.Client.List(ctx, targets, client.InNamespace(namespace), client.Limit(1), client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	var wanted []client.Object
	if len(targets.Items) > 0 && ns.DeletionTimestamp.IsZero() {
		if r.Settings.Enforcing() {
			wanted = []client.Object{istio.DefaultDeny(namespace)}
		}
	}
	_, err := r.Writer.Sync(ctx, ns, wanted, []client.ObjectList{&securityv1.AuthorizationPolicyList{}})
	return err
}

// generatedFrom keeps the objects generated from an SMI object of kind, leaving out the namespace
// baseline, which syncBaseline keeps.
func generatedFrom(objs []client.Object, kind string) []client.Object {
	var out []client.Object
	for _, o := range objs {
		if o.GetLabels()[smi.LabelSourceKind] == kind {
			out = append(out, o)
		}
	}
	return out
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

// SetupWithManager watches TrafficTargets, what they generate, and everything they reference.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
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
	return ctrl.NewControllerManagedBy(mgr).
		Named("traffictarget").
		// Status writes (ours) and metadata edits change nothing the reconcile reads from the object.
		For(&hub.TrafficTarget{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&securityv1.AuthorizationPolicy{}).
		Owns(&securityv1.PeerAuthentication{}).
		Watches(&hub.HTTPRouteGroup{}, byRoute(smi.HTTPRouteGroupKind)).
		Watches(&hub.TCPRoute{}, byRoute(smi.TCPRouteKind)).
		Watches(&hub.UDPRoute{}, byRoute(smi.UDPRouteKind)).
		Watches(&appsv1.Deployment{}, byWorkload).
		Watches(&appsv1.StatefulSet{}, byWorkload).
		Watches(&appsv1.DaemonSet{}, byWorkload).
		// The baseline is controlled by its Namespace: edits to it re-check one target there.
		Watches(&securityv1.AuthorizationPolicy{}, handler.EnqueueRequestsFromMapFunc(r.oneTargetIn)).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Complete(r)
}

func (r *Reconciler) oneTargetIn(ctx context.Context, o client.Object) []reconcile.Request {
	if o.GetLabels()[smi.LabelSourceKind] != smi.NamespaceSourceKind {
		return nil
	}
	targets := &hub.TrafficTargetList{}
	if err := r.Client.List(ctx, targets, client.InNamespace(o.GetNamespace()), client.Limit(1)); err != nil || len(targets.Items) == 0 {
		// No target: a reconcile of any name in the namespace prunes the baseline.
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}}}
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(&targets.Items[0])}}
}

// targetsByIndex maps an object to the targets in its namespace whose field index holds key(object).
func (r *Reconciler) targetsByIndex(field string, key func(client.Object) string) handler.EventHandler {
	return index.Enqueue(r.Client, func() client.ObjectList { return &hub.TrafficTargetList{} }, field, key)
}

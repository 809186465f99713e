// Package traffictarget is the TrafficTarget kind of the SMI reconciler (package smiobject): what
// a target's model depends on and which changes reconcile it. What each backend does with a target
// is the backend's (controllers/backends/istio, controllers/backends/xds).
package traffictarget

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers/index"
	"github.com/smi-operator/smi-operator/controllers/smiobject"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// +kubebuilder:rbac:groups=access.smi-spec.io,resources=traffictargets,verbs=get;list;watch
// +kubebuilder:rbac:groups=access.smi-spec.io,resources=traffictargets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=specs.smi-spec.io,resources=httproutegroups;tcproutes;udproutes,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;watch

// Backend programs what TrafficTargets generate on one mesh: the model a target is programmed
// from holds its rules in AccessRules when it is accepted.
type Backend = smiobject.Backend[*hub.TrafficTarget]

// Kind is the TrafficTarget kind: a target is reconciled with the routes its rules name and the
// workloads running as its destination ServiceAccount, all read from the cache.
func Kind() smiobject.Kind[*hub.TrafficTarget] {
	return smiobject.Kind[*hub.TrafficTarget]{
		Name:     smi.TrafficTargetKind,
		New:      func() *hub.TrafficTarget { return &hub.TrafficTarget{} },
		Snapshot: snapshot,
		// Status writes (ours) change nothing the reconcile reads from the object; of its
		// metadata, the conversion data does: a v1alpha1/v1alpha2 destination port lives there.
		// Other annotations (kubectl's, GitOps tools') change nothing.
		Changed: predicate.Or(predicate.GenerationChangedPredicate{}, conversionDataChanged),
		Watch:   watch,
	}
}

// snapshot collects the target, the routes its rules name and the workloads of its destination.
func snapshot(ctx context.Context, c client.Reader, target *hub.TrafficTarget) (mesh.Snapshot, error) {
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
		err := c.Get(ctx, types.NamespacedName{Namespace: target.Namespace, Name: rule.Name}, obj)
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
		if err := c.List(ctx, list, bySA...); err != nil {
			return snap, err
		}
	}
	snap.Deployments, snap.StatefulSets, snap.DaemonSets = deployments.Items, statefulSets.Items, daemonSets.Items
	return snap, nil
}

// watch reconciles a target when what it references changes.
func watch(b *builder.Builder, c client.Client) *builder.Builder {
	byRoute := func(kind string) handler.EventHandler {
		return targetsByIndex(c, index.TargetRoutes, func(o client.Object) string { return index.RouteKey(kind, o.GetName()) })
	}
	byWorkload := targetsByIndex(c, index.TargetDestination, func(o client.Object) string {
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
	return b.
		Watches(&hub.HTTPRouteGroup{}, byRoute(smi.HTTPRouteGroupKind)).
		Watches(&hub.TCPRoute{}, byRoute(smi.TCPRouteKind)).
		Watches(&hub.UDPRoute{}, byRoute(smi.UDPRouteKind)).
		// A workload's selector, pod labels and ServiceAccount are spec: its status updates (every
		// rollout tick) change nothing a target reads.
		Watches(&appsv1.Deployment{}, byWorkload, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&appsv1.StatefulSet{}, byWorkload, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&appsv1.DaemonSet{}, byWorkload, builder.WithPredicates(predicate.GenerationChangedPredicate{}))
}

// targetsByIndex maps an object to the targets in its namespace whose field index holds key(object).
func targetsByIndex(c client.Client, field string, key func(client.Object) string) handler.EventHandler {
	return index.Enqueue(c, func() client.ObjectList { return &hub.TrafficTargetList{} }, field, key)
}

// conversionDataChanged passes updates that change an object's conversion-data annotation.
var conversionDataChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	return e.ObjectOld.GetAnnotations()[smi.ConversionDataAnnotation] != e.ObjectNew.GetAnnotations()[smi.ConversionDataAnnotation]
}}

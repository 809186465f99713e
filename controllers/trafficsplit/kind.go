// Package trafficsplit is the TrafficSplit kind of the SMI reconciler (package smiobject): what a
// split's model depends on and which changes reconcile it. What each backend does with a split is
// the backend's (controllers/backends/istio, controllers/backends/xds).
package trafficsplit

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers/index"
	"github.com/smi-operator/smi-operator/controllers/smiobject"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// +kubebuilder:rbac:groups=split.smi-spec.io,resources=trafficsplits,verbs=get;list;watch
// +kubebuilder:rbac:groups=split.smi-spec.io,resources=trafficsplits/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=specs.smi-spec.io,resources=httproutegroups,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy.smi-operator.io,resources=trafficpolicies,verbs=get;list;watch

// Backend programs what TrafficSplits generate on one mesh. The model a split is programmed from
// holds, in Splits, only that split, when it is programmable (it won its apex and its references
// resolve), or, in UnweightedSplits, only that split when its weights alone keep it from being
// programmed, else nothing, and then whatever the split generated before must go.
type Backend = smiobject.Backend[*hub.TrafficSplit]

// Kind is the TrafficSplit kind: a split is reconciled with the splits sharing its apex (the
// oldest wins), the Services and HTTPRouteGroups it names, all read from the cache.
func Kind() smiobject.Kind[*hub.TrafficSplit] {
	return smiobject.Kind[*hub.TrafficSplit]{
		Name:     smi.TrafficSplitKind,
		New:      func() *hub.TrafficSplit { return &hub.TrafficSplit{} },
		Snapshot: Snapshot,
		Narrow: func(m *mesh.Model, self mesh.ObjectRef) {
			m.Splits, m.UnweightedSplits = onlyFrom(m.Splits, self), onlyFrom(m.UnweightedSplits, self)
		},
		// Status writes (ours) and metadata edits change nothing the reconcile reads from the object.
		Changed: predicate.GenerationChangedPredicate{},
		Watch:   watch,
	}
}

// Snapshot collects what the split's model depends on: every split on the same apex (to settle
// conflicts), the Services it names, the HTTPRouteGroups it matches on and the TrafficPolicies
// of those Services (a backend may carry a policy's settings in what the split generates: Istio's
// one VirtualService per host). Missing ones are left out; the model reports them.
func Snapshot(ctx context.Context, c client.Reader, split *hub.TrafficSplit) (mesh.Snapshot, error) {
	var snap mesh.Snapshot
	apex := index.ApexName(split)
	rivals := &hub.TrafficSplitList{}
	if err := c.List(ctx, rivals, client.InNamespace(split.Namespace), client.MatchingFields{index.SplitApex: apex}); err != nil {
		return snap, err
	}
	for i := range rivals.Items {
		snap.TrafficSplits = append(snap.TrafficSplits, *rivals.Items[i].SDK())
	}
	names := index.SplitServiceNames(split)
	for _, name := range names {
		svc := &corev1.Service{}
		if found, err := get(ctx, c, split.Namespace, name, svc); err != nil {
			return snap, err
		} else if found {
			snap.Services = append(snap.Services, *svc)
		}
	}
	policies, err := index.PoliciesOf(ctx, c, split.Namespace, names...)
	if err != nil {
		return snap, err
	}
	snap.TrafficPolicies = policies
	for _, m := range split.Spec.Matches {
		group := &hub.HTTPRouteGroup{}
		if found, err := get(ctx, c, split.Namespace, m.Name, group); err != nil {
			return snap, err
		} else if found {
			snap.HTTPRouteGroups = append(snap.HTTPRouteGroups, *group.SDK())
		}
	}
	return snap, nil
}

func get(ctx context.Context, c client.Reader, namespace, name string, obj client.Object) (bool, error) {
	err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, obj)
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

// watch reconciles a split when what it references changes.
func watch(b *builder.Builder, c client.Client) *builder.Builder {
	return b.
		// A split created or deleted on the same apex can change who wins the apex.
		Watches(&hub.TrafficSplit{}, splitsByIndex(c, index.SplitApex, func(o client.Object) string {
			return index.ApexName(o.(*hub.TrafficSplit))
		}), builder.WithPredicates(apexChanged)).
		Watches(&corev1.Service{}, splitsByIndex(c, index.SplitServices, client.Object.GetName)).
		Watches(&hub.HTTPRouteGroup{}, splitsByIndex(c, index.SplitRoutes, client.Object.GetName)).
		// A policy's settings may go into what the split generates (Istio merges them into the
		// split's VirtualService and DestinationRules).
		Watches(&policyv1alpha1.TrafficPolicy{}, splitsByIndex(c, index.SplitServices, func(o client.Object) string {
			return o.(*policyv1alpha1.TrafficPolicy).Spec.TargetRef.Name
		}), builder.WithPredicates(predicate.GenerationChangedPredicate{}))
}

// apexChanged passes the events of a split that can change who wins an apex: its creation, its
// deletion, a change of the apex it names (spec.service: another Service, or one package mesh takes
// for no apex, of another namespace or cluster domain). The oldest split of an apex wins it
// whatever the rest of its spec, so any other change is the split's own reconcile's alone;
// passing it would reconcile every split of the apex, the changed one twice, on every weight
// change.
var apexChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	return e.ObjectOld.(*hub.TrafficSplit).Spec.Service != e.ObjectNew.(*hub.TrafficSplit).Spec.Service
}}

// splitsByIndex maps an object to the splits in its namespace whose field index holds key(object).
func splitsByIndex(c client.Client, field string, key func(client.Object) string) handler.EventHandler {
	return index.Enqueue(c, func() client.ObjectList { return &hub.TrafficSplitList{} }, field, key)
}

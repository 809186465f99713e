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
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

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

// Backend programs what TrafficSplits generate on one mesh. The model a split is programmed from
// holds, in Splits, only that split, when it is programmable (it won its apex and its references
// resolve), else nothing, and then whatever the split generated before must go.
type Backend = smiobject.Backend[*hub.TrafficSplit]

// Kind is the TrafficSplit kind: a split is reconciled with the splits sharing its apex (the
// oldest wins), the Services and HTTPRouteGroups it names, all read from the cache.
func Kind() smiobject.Kind[*hub.TrafficSplit] {
	return smiobject.Kind[*hub.TrafficSplit]{
		Name:     smi.TrafficSplitKind,
		New:      func() *hub.TrafficSplit { return &hub.TrafficSplit{} },
		Snapshot: snapshot,
		Narrow:   func(m *mesh.Model, self mesh.ObjectRef) { m.Splits = onlyFrom(m.Splits, self) },
		// Status writes (ours) and metadata edits change nothing the reconcile reads from the object.
		Changed: predicate.GenerationChangedPredicate{},
		Watch:   watch,
	}
}

// snapshot collects what the split's model depends on: every split on the same apex (to settle
// conflicts), the Services it names and the HTTPRouteGroups it matches on. Missing ones are left
// out; the model reports them.
func snapshot(ctx context.Context, c client.Reader, split *hub.TrafficSplit) (mesh.Snapshot, error) {
	var snap mesh.Snapshot
	apex := index.ApexName(split)
	rivals := &hub.TrafficSplitList{}
	if err := c.List(ctx, rivals, client.InNamespace(split.Namespace), client.MatchingFields{index.SplitApex: apex}); err != nil {
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
		if found, err := get(ctx, c, split.Namespace, name, svc); err != nil {
			return snap, err
		} else if found {
			snap.Services = append(snap.Services, *svc)
		}
	}
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
		}), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Service{}, splitsByIndex(c, index.SplitServices, client.Object.GetName)).
		Watches(&hub.HTTPRouteGroup{}, splitsByIndex(c, index.SplitRoutes, client.Object.GetName))
}

// splitsByIndex maps an object to the splits in its namespace whose field index holds key(object).
func splitsByIndex(c client.Client, field string, key func(client.Object) string) handler.EventHandler {
	return index.Enqueue(c, func() client.ObjectList { return &hub.TrafficSplitList{} }, field, key)
}

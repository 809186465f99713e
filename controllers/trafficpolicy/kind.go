// Package trafficpolicy is the TrafficPolicy kind of the SMI reconciler (package smiobject): what
// a policy's model depends on and which changes reconcile it. A TrafficPolicy is the operator's
// own kind, not SMI's, but it is reconciled the same way: its model is built with the settings in
// force, each backend programs it, and its status says how that went. What each backend does
// with a policy is the backend's (controllers/backends/istio, controllers/backends/xds).
package trafficpolicy

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers/index"
	"github.com/smi-operator/smi-operator/controllers/smiobject"
	"github.com/smi-operator/smi-operator/controllers/trafficsplit"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// +kubebuilder:rbac:groups=policy.smi-operator.io,resources=trafficpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy.smi-operator.io,resources=trafficpolicies/status,verbs=get;update;patch

// Backend programs what TrafficPolicies generate on one mesh. The model a policy is programmed
// from holds, in Policies, the accepted policies of its Service (the policy itself among them
// when it won its ports and resolves, else whatever it generated before must go), and the splits
// naming that Service, into whose objects a backend may merge the policy's settings.
type Backend = smiobject.Backend[*policyv1alpha1.TrafficPolicy]

// Kind is the TrafficPolicy kind: a policy is reconciled with the policies of the same target
// (the oldest wins each port), the Service it targets and the splits naming that Service, all
// read from the cache.
func Kind() smiobject.Kind[*policyv1alpha1.TrafficPolicy] {
	return smiobject.Kind[*policyv1alpha1.TrafficPolicy]{
		Name:     policyv1alpha1.TrafficPolicyKind,
		New:      func() *policyv1alpha1.TrafficPolicy { return &policyv1alpha1.TrafficPolicy{} },
		Snapshot: snapshot,
		Narrow:   narrow,
		// Status writes (ours) and metadata edits change nothing the reconcile reads.
		Changed: predicate.GenerationChangedPredicate{},
		Watch:   watch,
	}
}

// snapshot collects what the policy's model depends on: every policy naming the same target (to
// settle conflicts, and because the policies of one Service share what a backend writes for it),
// the Service, and each split naming the Service with everything that split's own model depends
// on (a split that does not resolve generates nothing to merge into).
func snapshot(ctx context.Context, c client.Reader, policy *policyv1alpha1.TrafficPolicy) (mesh.Snapshot, error) {
	var snap mesh.Snapshot
	target := policy.Spec.TargetRef.Name
	policies, err := index.PoliciesOf(ctx, c, policy.Namespace, target)
	if err != nil {
		return snap, err
	}
	snap.TrafficPolicies = policies
	svc := &corev1.Service{}
	err = c.Get(ctx, types.NamespacedName{Namespace: policy.Namespace, Name: target}, svc)
	switch {
	case err == nil:
		snap.Services = append(snap.Services, *svc)
	case !apierrors.IsNotFound(err):
		return snap, err
	}
	splits := &hub.TrafficSplitList{}
	if err := c.List(ctx, splits, client.InNamespace(policy.Namespace), client.MatchingFields{index.SplitServices: target}); err != nil {
		return snap, err
	}
	for i := range splits.Items {
		splitSnap, err := trafficsplit.Snapshot(ctx, c, &splits.Items[i])
		if err != nil {
			return snap, err
		}
		snap.Merge(splitSnap)
	}
	return snap, nil
}

// narrow keeps, of the policies, those of self's Service: the splits' snapshots bring the
// policies of their other Services, which generate nothing of self's.
func narrow(m *mesh.Model, self mesh.ObjectRef) {
	var service types.NamespacedName
	if p := m.PolicyOf(self); p != nil {
		service = types.NamespacedName{Namespace: p.Service.Namespace, Name: p.Service.Name}
	}
	kept := m.Policies[:0:0]
	for _, p := range m.Policies {
		if p.Service.Namespace == service.Namespace && p.Service.Name == service.Name {
			kept = append(kept, p)
		}
	}
	m.Policies = kept
}

// watch reconciles a policy when what its model depends on changes: a policy of the same target,
// the target Service, and a split naming it or what such a split depends on (its other Services,
// its HTTPRouteGroups), which decides whether the split generates objects the policy's settings
// merge into, or the policy must generate its own.
func watch(b *builder.Builder, c client.Client) *builder.Builder {
	generation := builder.WithPredicates(predicate.GenerationChangedPredicate{})
	return b.
		Watches(&policyv1alpha1.TrafficPolicy{}, enqueue(c, func(_ context.Context, o client.Object) []string {
			return []string{o.(*policyv1alpha1.TrafficPolicy).Spec.TargetRef.Name}
		}), generation).
		// A split changed, created or deleted changes what it, and the splits sharing its apex
		// (which may win or lose the apex), write for their Services.
		Watches(&hub.TrafficSplit{}, enqueue(c, func(ctx context.Context, o client.Object) []string {
			split := o.(*hub.TrafficSplit)
			return append(index.SplitServiceNames(split), servicesOfSplits(ctx, c, split.Namespace, index.SplitApex, index.ApexName(split))...)
		}), generation).
		Watches(&corev1.Service{}, enqueue(c, func(ctx context.Context, o client.Object) []string {
			return append([]string{o.GetName()}, servicesOfSplits(ctx, c, o.GetNamespace(), index.SplitServices, o.GetName())...)
		})).
		Watches(&hub.HTTPRouteGroup{}, enqueue(c, func(ctx context.Context, o client.Object) []string {
			return servicesOfSplits(ctx, c, o.GetNamespace(), index.SplitRoutes, o.GetName())
		}))
}

// servicesOfSplits names the Services named by the splits of namespace whose field index holds key.
func servicesOfSplits(ctx context.Context, c client.Reader, namespace, field, key string) []string {
	splits := &hub.TrafficSplitList{}
	if err := c.List(ctx, splits, client.InNamespace(namespace), client.MatchingFields{field: key}); err != nil {
		return nil
	}
	var names []string
	for i := range splits.Items {
		names = append(names, index.SplitServiceNames(&splits.Items[i])...)
	}
	return names
}

// enqueue maps an object to the policies of its namespace targeting one of the names targets
// returns for it.
func enqueue(c client.Reader, targets func(context.Context, client.Object) []string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		policies, err := index.PoliciesOf(ctx, c, o.GetNamespace(), targets(ctx, o)...)
		if err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(policies))
		for i := range policies {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&policies[i])})
		}
		return reqs
	})
}

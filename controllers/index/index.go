// Package index names the cache field indexes the reconcilers look SMI objects up by, so that a
// change to any object re-reconciles exactly the SMI objects that reference it.
package index

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Index names.
const (
	// SplitApex indexes TrafficSplits by apex Service name.
	SplitApex = "smi.apex"
	// SplitServices indexes TrafficSplits by every Service they name (apex and backends).
	SplitServices = "smi.services"
	// SplitRoutes indexes TrafficSplits by the HTTPRouteGroups they match on.
	SplitRoutes = "smi.httproutegroups"
	// TargetRoutes indexes TrafficTargets by "<Kind>/<name>" of the routes their rules name.
	TargetRoutes = "smi.routes"
	// TargetDestination indexes TrafficTargets by destination ServiceAccount name.
	TargetDestination = "smi.destination"
	// PolicyTarget indexes TrafficPolicies by the name their targetRef names (a Service's, when
	// the policy is valid).
	PolicyTarget = "smi.policytarget"
	// WorkloadServiceAccount indexes Deployments, StatefulSets and DaemonSets by the
	// ServiceAccount their pods run as.
	WorkloadServiceAccount = "smi.serviceaccount"
)

// RouteKey is how TargetRoutes names a route.
func RouteKey(kind, name string) string { return kind + "/" + name }

// Setup registers every index with the manager's cache.
func Setup(ctx context.Context, indexer client.FieldIndexer) error {
	split := func(f func(*hub.TrafficSplit) []string) client.IndexerFunc {
		return func(o client.Object) []string { return f(o.(*hub.TrafficSplit)) }
	}
	target := func(f func(*hub.TrafficTarget) []string) client.IndexerFunc {
		return func(o client.Object) []string { return f(o.(*hub.TrafficTarget)) }
	}
	indexes := []struct {
		obj   client.Object
		field string
		fn    client.IndexerFunc
	}{
		{&hub.TrafficSplit{}, SplitApex, split(func(s *hub.TrafficSplit) []string { return []string{ApexName(s)} })},
		{&hub.TrafficSplit{}, SplitServices, split(SplitServiceNames)},
		{&hub.TrafficSplit{}, SplitRoutes, split(func(s *hub.TrafficSplit) []string {
			var names []string
			for _, m := range s.Spec.Matches {
				names = append(names, m.Name)
			}
			return names
		})},
		{&hub.TrafficTarget{}, TargetRoutes, target(func(t *hub.TrafficTarget) []string {
			var keys []string
			for _, r := range t.Spec.Rules {
				keys = append(keys, RouteKey(r.Kind, r.Name))
			}
			return keys
		})},
		{&hub.TrafficTarget{}, TargetDestination, target(func(t *hub.TrafficTarget) []string {
			return []string{t.Spec.Destination.Name}
		})},
		{&policyv1alpha1.TrafficPolicy{}, PolicyTarget, func(o client.Object) []string {
			return []string{o.(*policyv1alpha1.TrafficPolicy).Spec.TargetRef.Name}
		}},
		{&appsv1.Deployment{}, WorkloadServiceAccount, func(o client.Object) []string {
			return []string{mesh.ServiceAccountOf(o.(*appsv1.Deployment).Spec.Template.Spec)}
		}},
		{&appsv1.StatefulSet{}, WorkloadServiceAccount, func(o client.Object) []string {
			return []string{mesh.ServiceAccountOf(o.(*appsv1.StatefulSet).Spec.Template.Spec)}
		}},
		{&appsv1.DaemonSet{}, WorkloadServiceAccount, func(o client.Object) []string {
			return []string{mesh.ServiceAccountOf(o.(*appsv1.DaemonSet).Spec.Template.Spec)}
		}},
	}
	for _, ix := range indexes {
		if err := indexer.IndexField(ctx, ix.obj, ix.field, ix.fn); err != nil {
			return err
		}
	}
	return nil
}

// Enqueue maps an object to the objects in its namespace, listed with newList, whose field index
// holds key(object): what a change to it must re-reconcile.
func Enqueue(c client.Reader, newList func() client.ObjectList, field string, key func(client.Object) string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		list := newList()
		if err := c.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{field: key(o)}); err != nil {
			return nil
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(items))
		for _, item := range items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(item.(client.Object))})
		}
		return reqs
	})
}

// SplitServiceNames are the names of the Services a split names: its apex, then its backends.
func SplitServiceNames(s *hub.TrafficSplit) []string {
	names := []string{ApexName(s)}
	for _, b := range s.Spec.Backends {
		names = append(names, b.Service)
	}
	return names
}

// ApexName is the name of the Service a split's spec.service names, however it spells it
// ("web", "web.shop.svc.cluster.local": smi.ParseSplitService): what splits of one apex share.
// The model says when the value names no Service of the split's namespace.
func ApexName(s *hub.TrafficSplit) string {
	parsed, _ := smi.ParseSplitService(s.Spec.Service)
	return parsed.Name
}

// PoliciesOf lists, through the PolicyTarget index, the TrafficPolicies of namespace whose target has
// one of names, each once.
func PoliciesOf(ctx context.Context, c client.Reader, namespace string, names ...string) ([]policyv1alpha1.TrafficPolicy, error) {
	var out []policyv1alpha1.TrafficPolicy
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		list := &policyv1alpha1.TrafficPolicyList{}
		if err := c.List(ctx, list, client.InNamespace(namespace), client.MatchingFields{PolicyTarget: name}); err != nil {
			return nil, err
		}
		out = append(out, list.Items...)
	}
	return out, nil
}

package istio

import (
	"context"
	"slices"

	"github.com/smi-operator/smi-operator/controllers/backends"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// HostIndex indexes VirtualServices and DestinationRules by "<namespace>/<name>" of each Service
// their hosts may name (servicesOfHosts): a policy's reconcile reads the objects that may hold its
// Service's host, not every one of the cluster.
const HostIndex = "istio.hostservice"

// hostKinds are the kinds HostIndex indexes: those of hostsOf.
var hostKinds = []client.Object{&networkingv1.VirtualService{}, &networkingv1.DestinationRule{}}

// Indexes add the cache indexes the Istio backend's controllers read its kinds through, besides
// owned.GeneratedByIndex: HostIndex, of each of hostKinds. Both ways of running the backend (the
// Switch's, and the fixed --backend=istio of SetupIstio) add them; an index the controllers need
// goes here. The Istio kinds must be served.
func Indexes() []backends.IndexStep {
	var steps []backends.IndexStep
	for _, kind := range hostKinds {
		steps = append(steps, func(ctx context.Context, indexer client.FieldIndexer) error {
			return indexer.IndexField(ctx, kind, HostIndex, hostIndexKeys)
		})
	}
	return steps
}

// hostIndexKeys are the HostIndex keys of an object of hostKinds.
func hostIndexKeys(o client.Object) []string {
	var keys []string
	for _, svc := range servicesOfHosts(o) {
		keys = append(keys, svc.String())
	}
	return keys
}

// hostsOf are the hosts an Istio object of hostKinds is for: a VirtualService's, a
// DestinationRule's one.
func hostsOf(o client.Object) []string {
	switch o := o.(type) {
	case *networkingv1.VirtualService:
		return o.Spec.Hosts
	case *networkingv1.DestinationRule:
		return []string{o.Spec.Host}
	}
	return nil
}

// firstServiceHost is the first of an Istio object's hosts that may name a Service
// (serviceOfHost), and that Service.
func firstServiceHost(o client.Object) (string, types.NamespacedName, bool) {
	for _, h := range hostsOf(o) {
		if svc, ok := serviceOfHost(h, o.GetNamespace()); ok {
			return h, svc, true
		}
	}
	return "", types.NamespacedName{}, false
}

// servicesOfHosts are the Services, each once, that the hosts of an Istio object may name
// (serviceOfHost).
func servicesOfHosts(o client.Object) []types.NamespacedName {
	var out []types.NamespacedName
	for _, h := range hostsOf(o) {
		if svc, ok := serviceOfHost(h, o.GetNamespace()); ok && !slices.Contains(out, svc) {
			out = append(out, svc)
		}
	}
	return out
}

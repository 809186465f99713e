package istio

import (
	"context"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// HostIndex indexes VirtualServices and DestinationRules by "<namespace>/<name>" of each Service
// their hosts may name (serviceOfHost): a policy's reconcile reads the objects that may hold its
// Service's host, not every one of the cluster.
const HostIndex = "istio.hostservice"

// hostIndexes are the objects HostIndex indexes, and the keys of each.
var hostIndexes = []struct {
	Object client.Object
	Hosts  client.IndexerFunc
}{
	{&networkingv1.VirtualService{}, func(o client.Object) []string {
		return hostServices(o.GetNamespace(), o.(*networkingv1.VirtualService).Spec.Hosts...)
	}},
	{&networkingv1.DestinationRule{}, func(o client.Object) []string {
		return hostServices(o.GetNamespace(), o.(*networkingv1.DestinationRule).Spec.Host)
	}},
}

// Indexes adds the cache indexes the Istio backend's controllers read its kinds through, besides
// owned.GeneratedByIndex: HostIndex. Both ways of running the backend (the Switch's, and the fixed
// --backend=istio of SetupIstio) call it; an index the controllers need goes here. The Istio kinds
// must be served.
func Indexes(ctx context.Context, indexer client.FieldIndexer) error {
	for _, ix := range hostIndexes {
		if err := indexer.IndexField(ctx, ix.Object, HostIndex, ix.Hosts); err != nil {
			return err
		}
	}
	return nil
}

// hostServices are the HostIndex keys of hosts written in an Istio object of namespace.
func hostServices(namespace string, hosts ...string) []string {
	var keys []string
	for _, h := range hosts {
		if svc, ok := serviceOfHost(h, namespace); ok {
			keys = append(keys, hostKey(svc))
		}
	}
	return keys
}

func hostKey(svc types.NamespacedName) string {
	return svc.String()
}

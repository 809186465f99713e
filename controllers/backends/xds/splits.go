package xds

import (
	"context"
	"slices"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/xds/server"
)

// Splits programs a split on the operator's xDS server: the RouteConfigurations of its apex, and
// its TCP weights on the Envoy outbound chains.
type Splits struct {
	Server *server.Server
}

// Program serves the split's routes, or stops serving them when the model does not program it.
// A split unprogrammed for its all-zero weights alone is served all the same: its routes send
// everything to the apex, as its default routes would, but keep naming the backends, which
// proxyless clients then go on holding (xds.SplitRoutes): grpc-go fails the RPCs the weights
// coming back would move onto a cluster it had dropped. Proxies that refused the routes
// (server.Rejections) make the split not Programmed: they keep routing as before.
func (b Splits) Program(_ context.Context, split *hub.TrafficSplit, models *mesh.Models) ([]mesh.Diagnostic, error) {
	model, _ := models.BuiltWith(b.Server.Settings())
	var served *mesh.Split
	if splits := slices.Concat(model.Splits, model.UnweightedSplits); len(splits) > 0 {
		served = &splits[0]
	}
	self := mesh.ObjectRef{Kind: smi.TrafficSplitKind, Namespace: split.Namespace, Name: split.Name}
	diags := b.Server.SetSplit(self, served)
	return append(diags, b.Server.RejectionDiagnostics(self)...), nil
}

// Forget stops serving a deleted split's routes; its apex falls back to its default routes.
func (b Splits) Forget(_ context.Context, ref mesh.ObjectRef) error {
	b.Server.SetSplit(ref, nil)
	return nil
}

package xds

import (
	"context"

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
// Proxies that refused the routes (server.Rejections) make the split not Programmed: they keep
// routing as before.
func (b Splits) Program(_ context.Context, split *hub.TrafficSplit, models *mesh.Models) ([]mesh.Diagnostic, error) {
	model, _ := models.BuiltWith(b.Server.Settings())
	var programmed *mesh.Split
	if len(model.Splits) > 0 {
		programmed = &model.Splits[0]
	}
	self := mesh.ObjectRef{Kind: smi.TrafficSplitKind, Namespace: split.Namespace, Name: split.Name}
	diags := b.Server.SetSplit(self, programmed)
	return append(diags, b.Server.RejectionDiagnostics(self)...), nil
}

// Forget stops serving a deleted split's routes; its apex falls back to its default routes.
func (b Splits) Forget(_ context.Context, ref mesh.ObjectRef) error {
	b.Server.SetSplit(ref, nil)
	return nil
}

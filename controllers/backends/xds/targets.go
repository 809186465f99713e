package xds

import (
	"context"

	corev1 "k8s.io/api/core/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/translators/mesh"
	xdstranslator "github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/server"
)

// Targets programs a target as access rules of its destination identity on the operator's xDS
// server, which turns them into the RBAC of that identity's gRPC server listeners and Envoy
// inbound listeners.
type Targets struct {
	Server *server.Server
}

// Program serves the target's rule, or withdraws it when the model does not accept it.
func (b Targets) Program(_ context.Context, target *hub.TrafficTarget, models *mesh.Models) ([]mesh.Diagnostic, error) {
	model, _ := models.BuiltWith(b.Server.Settings())
	self := mesh.ObjectRef{Kind: smi.TrafficTargetKind, Namespace: target.Namespace, Name: target.Name}
	var rules []mesh.AccessRule
	for _, r := range model.AccessRules {
		if r.Source == self {
			rules = append(rules, r)
		}
	}
	b.Server.SetAccess(self, rules)
	// What the xDS listeners cannot enforce as written (UDP grants, "grpc-" headers on gRPC
	// servers) goes to the target's status, and so do proxies that refused the listeners its
	// rules are part of (server.Rejections): they enforce their last good ones.
	return append(xdstranslator.AccessDiagnostics(rules), b.Server.RejectionDiagnostics(self)...), nil
}

// Forget withdraws a deleted target's rule.
func (b Targets) Forget(_ context.Context, ref mesh.ObjectRef) error {
	b.Server.SetAccess(ref, nil)
	return nil
}

// SetNamespace tells the server whether access applies in the namespace (its labels), which it
// judges with its own settings, and publishes the CA's trust bundle there (TrustBundles).
func (b Targets) SetNamespace(ctx context.Context, ns *corev1.Namespace) error {
	b.Server.SetNamespace(ns.Name, ns.Labels)
	if tb := b.Server.TrustBundles(); tb != nil {
		return tb.SetNamespace(ctx, ns)
	}
	return nil
}

// DeleteNamespace has the server forget the namespace.
func (b Targets) DeleteNamespace(_ context.Context, name string) error {
	b.Server.DeleteNamespace(name)
	if tb := b.Server.TrustBundles(); tb != nil {
		tb.DeleteNamespace(name)
	}
	return nil
}

package xds

import (
	"context"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/xds/server"
)

// Policies feeds the xDS server the TrafficPolicies: the server puts a policy's settings on the
// routes and clusters of its Service it serves to every proxy.
type Policies struct {
	Server *server.Server
}

// Program serves the policy, or stops serving it when the model does not program it (it lost its
// ports to an older policy, or does not resolve). The server reports what proxyless gRPC clients
// cannot honour, as a warning; proxies that refused the resources it programs make it not
// Programmed.
func (b Policies) Program(_ context.Context, policy *policyv1alpha1.TrafficPolicy, models *mesh.Models) ([]mesh.Diagnostic, error) {
	model, _ := models.BuiltWith(b.Server.Settings())
	self := mesh.ObjectRef{Kind: policyv1alpha1.TrafficPolicyKind, Namespace: policy.Namespace, Name: policy.Name}
	diags := b.Server.SetPolicy(self, model.PolicyOf(self))
	return append(diags, b.Server.RejectionDiagnostics(self)...), nil
}

// Forget stops serving a deleted policy's settings.
func (b Policies) Forget(_ context.Context, ref mesh.ObjectRef) error {
	b.Server.SetPolicy(ref, nil)
	return nil
}

package gamma

import (
	"context"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	gammatranslator "github.com/smi-operator/smi-operator/translators/gamma"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Policies writes nothing: the Gateway API has no standard for a policy's settings, and the
// translator reports each policy not programmed (PolicyNotSupported).
type Policies struct {
	Settings mesh.Settings
}

// Program returns the translator's diagnostics of the policy.
func (b Policies) Program(_ context.Context, _ *policyv1alpha1.TrafficPolicy, models *mesh.Models) ([]mesh.Diagnostic, error) {
	model, _ := models.BuiltWith(b.Settings)
	_, diags := gammatranslator.Translate(model, b.Settings)
	return diags, nil
}

// Forget: nothing was written.
func (Policies) Forget(context.Context, mesh.ObjectRef) error { return nil }

package istio_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/smi-operator/smi-operator/translators/internal/accesscheck"
	"github.com/smi-operator/smi-operator/translators/istio"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// istioBackend is the Istio backend as the property sees it: the AuthorizationPolicies of the
// model, judged as Istio's sidecars would.
var istioBackend = accesscheck.Backend{
	Translate: func(t testing.TB, model mesh.Model, settings mesh.Settings) func(accesscheck.Request) bool {
		out, _ := istio.Translate(model, settings)
		return accesscheck.NewIstio(t, out.AuthorizationPolicies).Allows
	},
	KnownGap: unselectableWorkload,
}

// unselectableWorkload recognises requests to pods whose Deployment no policy can select (its
// selector has matchExpressions, or also selects pods of another ServiceAccount), which the build
// reports. Istio attaches policies by workload selector only, so those pods get no ALLOW policy
// from their TrafficTargets; the namespace's allow-nothing policy denies them in enforcing mode,
// but where none applies (permissive mode) they stay open although the model restricts them.
func unselectableWorkload(diags []mesh.Diagnostic, settings mesh.Settings, req accesscheck.Request) (mesh.Diagnostic, bool) {
	if settings.Enforcing() {
		return mesh.Diagnostic{}, false
	}
	i := slices.IndexFunc(diags, func(d mesh.Diagnostic) bool {
		return (d.Reason == mesh.ReasonUnsupportedSelector || d.Reason == mesh.ReasonOverlappingSelector) &&
			d.Object.Namespace == req.Pod.Namespace &&
			strings.HasPrefix(d.Message, fmt.Sprintf("%s %q ", mesh.DeploymentKind, req.Pod.Workload))
	})
	if i < 0 {
		return mesh.Diagnostic{}, false
	}
	return diags[i], true
}

// TestAccessPropertyIstio: for random valid SMI input, the Istio backend never allows a request
// that the model's access rules deny, wherever the model governs access (issue 12).
func TestAccessPropertyIstio(t *testing.T) {
	accesscheck.Property(t, istioBackend, 2000, 150)
}

// TestAccessPropertyIstioCatchesWidenings: the property, on this backend, sees access widened
// in any one dimension.
func TestAccessPropertyIstioCatchesWidenings(t *testing.T) {
	accesscheck.RequireCatchesWidenings(t, istioBackend)
}

func FuzzAccessPropertyIstio(f *testing.F) {
	accesscheck.FuzzProperty(f, istioBackend)
}

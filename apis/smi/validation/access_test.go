package validation

import (
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

// A TrafficTarget without rules allows no traffic. traffic-access v1alpha3 says "A valid
// TrafficTarget must specify a destination, at least one rule, and at least one source", so the
// webhook refuses it there, naming spec.rules; in v1alpha1 and v1alpha2 rules were optional, so it
// is admitted with a warning naming the field of that version (issue 12).
func TestTrafficTargetWithoutRules(t *testing.T) {
	const v1alpha3 = `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: api, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api}
  sources: [{kind: ServiceAccount, name: web}]`
	resp := review(t, admissionv1.Create, "shop", v1alpha3, "")
	if resp.Allowed || len(resp.Result.Details.Causes) != 1 || resp.Result.Details.Causes[0].Field != "spec.rules" ||
		!strings.Contains(resp.Result.Message, "spec.rules: Required value: A valid TrafficTarget must specify a destination, at least one rule, and at least one source") {
		t.Errorf("v1alpha3 without rules: allowed=%v, status %+v; want denied for spec.rules in the spec's words", resp.Allowed, resp.Result)
	}

	for _, tc := range []struct{ version, yaml, field string }{{
		version: "v1alpha1", field: "specs", yaml: `
apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata: {name: api, namespace: shop}
destination: {kind: ServiceAccount, name: api}
sources: [{kind: ServiceAccount, name: web}]`,
	}, {
		version: "v1alpha2", field: "spec.rules", yaml: `
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: api, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api}
  sources: [{kind: ServiceAccount, name: web}]`,
	}} {
		resp := review(t, admissionv1.Create, "shop", tc.yaml, "")
		if !resp.Allowed {
			t.Errorf("%s without rules denied: %+v", tc.version, resp.Result)
		}
		if len(resp.Warnings) != 1 || !strings.HasPrefix(resp.Warnings[0], tc.field+": no rules, so this TrafficTarget allows no traffic") {
			t.Errorf("%s without rules: warnings %q, want one about %s", tc.version, resp.Warnings, tc.field)
		}
	}

	// With a rule, nothing to say.
	withRule := strings.Replace(v1alpha3, "  sources:", "  rules: [{kind: TCPRoute, name: api-tcp}]\n  sources:", 1)
	if resp := review(t, admissionv1.Create, "shop", withRule, ""); !resp.Allowed || len(resp.Warnings) != 0 {
		t.Errorf("v1alpha3 with a rule: allowed=%v, warnings %q, status %+v", resp.Allowed, resp.Warnings, resp.Result)
	}
}

package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	rbacv1 "k8s.io/api/rbac/v1"
)

func TestDisplayName(t *testing.T) {
	for path, want := range map[string]string{
		"trustDomain":                        "Trust Domain",
		"mtls":                               "mTLS",
		"xds.certificateTTL":                 "xDS Certificate TTL",
		"xds.tls.secretName":                 "xDS TLS Secret Name",
		"smiObjects.withProblems":            "SMI Objects With Problems",
		"observedGeneration":                 "Observed Generation",
		"xds.injection.excludeOutboundCIDRs": "xDS Injection Exclude Outbound CIDRs",
	} {
		if got := displayName(strings.Split(path, ".")); got != want {
			t.Errorf("displayName(%s) = %q, want %q", path, got, want)
		}
	}
}

func TestWithoutCertRotation(t *testing.T) {
	keep := rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get"}}
	crdRead := rbacv1.PolicyRule{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"get", "list", "watch"}}
	vwcPatch := rbacv1.PolicyRule{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"},
		ResourceNames: []string{"smi-operator-validating-webhook-configuration"}, Verbs: []string{"patch"}}
	got, err := withoutCertRotation([]rbacv1.PolicyRule{keep, crdRead, vwcPatch})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]rbacv1.PolicyRule{keep}, got); diff != "" {
		t.Errorf("withoutCertRotation (-want +got):\n%s", diff)
	}
	mixed := rbacv1.PolicyRule{APIGroups: []string{"apiextensions.k8s.io", ""}, Resources: []string{"customresourcedefinitions", "services"}, Verbs: []string{"get"}}
	if _, err := withoutCertRotation([]rbacv1.PolicyRule{mixed}); err == nil {
		t.Error("a rule mixing cert-rotation resources with others was split silently")
	}
}

func TestAllNamespacesOnly(t *testing.T) {
	mode := func(typ operatorsv1alpha1.InstallModeType, ok bool) operatorsv1alpha1.InstallMode {
		return operatorsv1alpha1.InstallMode{Type: typ, Supported: ok}
	}
	for _, tc := range []struct {
		modes []operatorsv1alpha1.InstallMode
		want  bool
	}{
		{[]operatorsv1alpha1.InstallMode{mode(operatorsv1alpha1.InstallModeTypeAllNamespaces, true)}, true},
		{[]operatorsv1alpha1.InstallMode{mode(operatorsv1alpha1.InstallModeTypeOwnNamespace, false), mode(operatorsv1alpha1.InstallModeTypeAllNamespaces, true)}, true},
		{[]operatorsv1alpha1.InstallMode{mode(operatorsv1alpha1.InstallModeTypeOwnNamespace, true), mode(operatorsv1alpha1.InstallModeTypeAllNamespaces, true)}, false},
		{[]operatorsv1alpha1.InstallMode{mode(operatorsv1alpha1.InstallModeTypeAllNamespaces, false)}, false},
		{nil, false},
	} {
		if got := allNamespacesOnly(tc.modes); got != tc.want {
			t.Errorf("allNamespacesOnly(%v) = %v, want %v", tc.modes, got, tc.want)
		}
	}
}

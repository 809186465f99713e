package v1alpha1_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// controlPlane (with every CRD under config/crd/bases installed) is started by the first test
// that needs it, so the package's unit tests run without one, and stopped by TestMain.
var controlPlane testenv.Lazy

func TestMain(m *testing.M) { controlPlane.Main(m) }

// TestCRDValidation sends the sample, and the sample with one thing wrong, to a real API server
// (dry run: nothing is stored) and checks that the CRD's schema and CEL rules accept the good ones
// and refuse each bad one with the message that names the problem.
func TestCRDValidation(t *testing.T) {
	c := controlPlane.Client(t, v1alpha1.AddToScheme)
	set := testenv.Set
	sample := filepath.Join("..", "..", "config", "samples", "smi-operator.io_v1alpha1_smioperator_default.yaml")
	for _, tc := range []struct {
		name string
		edit testenv.Edit
		want string // "" when the object must be accepted, else a part of the error
	}{
		{"the sample", nil, ""},
		{"backend xds", set("spec.backend", "xds"), ""},
		{"permissive with mTLS", func(u *unstructured.Unstructured) error {
			return errors.Join(set("spec.accessMode", "Permissive")(u), set("spec.mtls", true)(u))
		}, ""},
		{"trust domain with every allowed character", set("spec.trustDomain", "corp_1.example-x"), ""},
		{"another cluster domain", set("spec.clusterDomain", "k8s.example.com"), ""},
		{"xDS over TLS", set("spec.xds.tls", map[string]any{"secretName": "xds-serving-cert"}), ""},
		{"xDS in plain text", set("spec.xds.insecurePlaintext", true), ""},
		{"lowest port", set("spec.xds.port", int64(1)), ""},
		{"highest port", set("spec.xds.port", int64(65535)), ""},
		{"several audiences", set("spec.xds.tokenAudiences", []any{"a", "b"}), ""},
		{"composite certificate TTL", set("spec.xds.certificateTTL", "1h30m"), ""},
		{"shortest certificate TTL", set("spec.xds.certificateTTL", "1m"), ""},
		{"longest certificate TTL", set("spec.xds.certificateTTL", "8760h"), ""},
		{"no grace period", set("spec.xds.swapGracePeriod", "0s"), ""},
		{"no grace period, bare 0", set("spec.xds.swapGracePeriod", "0"), ""},
		{"longest grace period", set("spec.xds.swapGracePeriod", "24h"), ""},
		{"gamma enforcing access with Istio's policies", set("spec.gamma.accessPolicy", "istio"), ""},
		{"gamma enforcing access with Linkerd's policies", set("spec.gamma.accessPolicy", "linkerd"), ""},

		{"another name", set("metadata.name", "mesh"), "SMIOperator is a cluster singleton: its name must be 'default'"},
		{"unknown backend", set("spec.backend", "linkerd"), `spec.backend: Unsupported value: "linkerd"`},
		{"backend none is not offered", set("spec.backend", "none"), `spec.backend: Unsupported value: "none"`},
		{"gamma access by an unknown mesh", set("spec.gamma.accessPolicy", "cilium"), `spec.gamma.accessPolicy: Unsupported value: "cilium"`},
		{"access mode in lower case", set("spec.accessMode", "enforcing"), `spec.accessMode: Unsupported value: "enforcing"`},
		{"trust domain with a scheme", set("spec.trustDomain", "spiffe://corp.example"), "trustDomain must be a SPIFFE trust domain"},
		{"upper-case trust domain", set("spec.trustDomain", "Corp.Example"), "trustDomain must be a SPIFFE trust domain"},
		{"empty trust domain", set("spec.trustDomain", ""), "spec.trustDomain in body should be at least 1 chars long"},
		{"cluster domain with an underscore", set("spec.clusterDomain", "cluster_local"), "clusterDomain must be a DNS subdomain"},
		{"cluster domain ending in a dot", set("spec.clusterDomain", "cluster.local."), "clusterDomain must be a DNS subdomain"},
		{"port 0", set("spec.xds.port", int64(0)), "spec.xds.port in body should be greater than or equal to 1"},
		{"port above 65535", set("spec.xds.port", int64(65536)), "spec.xds.port in body should be less than or equal to 65535"},
		{"the webhook's port", set("spec.xds.port", int64(9443)), "pick another xDS port"},
		{"the metrics port", set("spec.xds.port", int64(8443)), "pick another xDS port"},
		{"the probes' port", set("spec.xds.port", int64(8081)), "pick another xDS port"},
		{"TLS without a Secret", set("spec.xds.tls", map[string]any{}), "spec.xds.tls.secretName: Required value"},
		{"a TLS Secret in plain text", func(u *unstructured.Unstructured) error {
			return errors.Join(set("spec.xds.tls", map[string]any{"secretName": "xds-serving-cert"})(u), set("spec.xds.insecurePlaintext", true)(u))
		}, "tls and insecurePlaintext exclude each other"},
		{"TLS Secret that is not a name", set("spec.xds.tls", map[string]any{"secretName": "Xds_Cert"}), "secretName must be the name of a Secret"},
		{"no audiences", set("spec.xds.tokenAudiences", []any{}), "spec.xds.tokenAudiences in body should have at least 1 items"},
		{"an empty audience", set("spec.xds.tokenAudiences", []any{""}), "spec.xds.tokenAudiences[0] in body should be at least 1 chars long"},
		{"an audience twice", set("spec.xds.tokenAudiences", []any{"a", "a"}), `spec.xds.tokenAudiences[1]: Duplicate value: "a"`},
		{"zero certificate TTL", set("spec.xds.certificateTTL", "0s"), "certificateTTL must be a duration from 1m to 8760h"},
		{"negative certificate TTL", set("spec.xds.certificateTTL", "-1h"), "certificateTTL must be a duration from 1m to 8760h"},
		{"certificate TTL below a minute", set("spec.xds.certificateTTL", "30s"), "certificateTTL must be a duration from 1m to 8760h"},
		{"certificate TTL beyond the root's", set("spec.xds.certificateTTL", "8761h"), "certificateTTL must be a duration from 1m to 8760h"},
		{"certificate TTL in words", set("spec.xds.certificateTTL", "one hour"), "certificateTTL must be a duration from 1m to 8760h"},
		{"certificate TTL as a number", set("spec.xds.certificateTTL", int64(3600)), `spec.xds.certificateTTL: Invalid value: "integer": spec.xds.certificateTTL in body must be of type string`},
		{"negative grace period", set("spec.xds.swapGracePeriod", "-5m"), "swapGracePeriod must be a duration from 0s to 24h"},
		{"grace period beyond a day", set("spec.xds.swapGracePeriod", "25h"), "swapGracePeriod must be a duration from 0s to 24h"},
		{"grace period without a unit", set("spec.xds.swapGracePeriod", "300"), "swapGracePeriod must be a duration from 0s to 24h"},
		{"injection exclusions", set("spec.xds.injection", map[string]any{
			"excludeInboundPorts": []any{int64(22)}, "excludeOutboundPorts": []any{int64(5432), int64(65535)},
			"excludeOutboundCIDRs": []any{"169.254.169.254/32", "fd00::/8"},
		}), ""},
		{"injected proxy resources", set("spec.xds.injection.proxyResources", map[string]any{"cpuLimit": "2", "memoryLimit": "512Mi"}), ""},
		{"an excluded inbound port 0", set("spec.xds.injection.excludeInboundPorts", []any{int64(0)}), "spec.xds.injection.excludeInboundPorts[0]"},
		{"an excluded outbound port beyond 65535", set("spec.xds.injection.excludeOutboundPorts", []any{int64(65536)}), "spec.xds.injection.excludeOutboundPorts[0]"},
		{"an excluded CIDR that is an address", set("spec.xds.injection.excludeOutboundCIDRs", []any{"10.0.0.1"}), "must be a CIDR such as 10.0.0.0/8 or fd00::/8"},
		{"an empty Envoy image", set("spec.xds.injection.envoyImage", ""), "spec.xds.injection.envoyImage"},
		{"a proxy memory limit in words", set("spec.xds.injection.proxyResources.memoryLimit", "lots"), "spec.xds.injection.proxyResources.memoryLimit"},
	} {
		testenv.CheckCreate(t, c, sample, tc.name, tc.edit, tc.want)
	}
}

// TestCRDDefaults checks that the API server fills an SMIOperator without a spec with exactly
// the defaults WithDefaults (and so main.go's flags) uses, nested objects included.
func TestCRDDefaults(t *testing.T) {
	c := controlPlane.Client(t, v1alpha1.AddToScheme)
	for _, tc := range []struct {
		name string
		obj  map[string]any
	}{
		{"no spec", map[string]any{}},
		{"empty spec", map[string]any{"spec": map[string]any{}}},
		{"empty xds", map[string]any{"spec": map[string]any{"xds": map[string]any{}}}},
		{"empty gamma", map[string]any{"spec": map[string]any{"gamma": map[string]any{}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &unstructured.Unstructured{Object: tc.obj}
			u.SetAPIVersion(v1alpha1.GroupVersion.String())
			u.SetKind("SMIOperator")
			u.SetName(v1alpha1.SingletonName)
			if err := c.Create(context.Background(), u, client.DryRunAll); err != nil {
				t.Fatal(err)
			}
			var got v1alpha1.SMIOperator
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(v1alpha1.SMIOperatorSpec{}.WithDefaults(), got.Spec); diff != "" {
				t.Errorf("API server defaults differ from WithDefaults (-Go +API server):\n%s", diff)
			}
		})
	}
}

// TestStatusValidation writes the status subresource (server-side dry run): a valid status is
// accepted, counts below zero and unknown backends are refused.
func TestStatusValidation(t *testing.T) {
	c := controlPlane.Client(t, v1alpha1.AddToScheme)
	ctx := context.Background()
	obj := &v1alpha1.SMIOperator{}
	obj.Name = v1alpha1.SingletonName
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(ctx, obj) })

	good := obj.DeepCopy()
	good.Status = v1alpha1.SMIOperatorStatus{
		ObservedGeneration: good.Generation,
		ActiveBackend:      v1alpha1.BackendIstio,
		SMIObjects:         &v1alpha1.ObjectCounts{Programmed: 3, WithProblems: 1},
	}
	if err := c.Status().Update(ctx, good, client.DryRunAll); err != nil {
		t.Errorf("valid status refused: %v", err)
	}
	for _, tc := range []struct {
		name   string
		status v1alpha1.SMIOperatorStatus
		want   string
	}{
		{"negative count", v1alpha1.SMIOperatorStatus{SMIObjects: &v1alpha1.ObjectCounts{Programmed: -1}}, "status.smiObjects.programmed: Invalid value: -1: smiObjects.programmed in body should be greater than or equal to 0"},
		{"unknown active backend", v1alpha1.SMIOperatorStatus{ActiveBackend: "linkerd"}, `status.activeBackend: Unsupported value: "linkerd"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := obj.DeepCopy()
			bad.Status = tc.status
			err := c.Status().Update(ctx, bad, client.DryRunAll)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("status update error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

package crdvalidation

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi/validation"
)

// TestServesWhatTheWebhookValidates checks that the embedded CRDs load and serve exactly the kinds
// and versions the validating webhook knows, and the TrafficPolicy (which has no webhook):
// translate judges every SMI version it reads against a schema, and a version the CRDs do not
// serve is "no matches for kind", as in the cluster.
func TestServesWhatTheWebhookValidates(t *testing.T) {
	versions, err := loadVersions()
	if err != nil {
		t.Fatal(err)
	}
	webhook := validation.GroupVersionKinds()
	policy := policyv1alpha1.GroupVersion.WithKind(policyv1alpha1.TrafficPolicyKind)
	if !Served(policy) {
		t.Errorf("%s is not served", policy)
	}
	for _, gvk := range webhook {
		if !Served(gvk) {
			t.Errorf("%s: validated by the webhook, not served by the CRDs", gvk)
		}
	}
	if len(versions) != len(webhook)+1 {
		t.Errorf("the CRDs serve %d kinds and versions, the webhook validates %d and one is the TrafficPolicy", len(versions), len(webhook))
	}
	if Served(schema.GroupVersionKind{Group: "specs.smi-spec.io", Version: "v1alpha3", Kind: "UDPRoute"}) {
		t.Error("UDPRoute v1alpha3 is served; it exists only in v1alpha4")
	}
}

// TestValidateChangesTheObjectAsTheAPIServerDoes checks what Validate leaves of an accepted
// object: the status dropped (a subresource: ignored on create), the type fields and metadata
// kept.
func TestValidateChangesTheObjectAsTheAPIServerDoes(t *testing.T) {
	obj := map[string]any{
		"apiVersion": "split.smi-spec.io/v1alpha4",
		"kind":       "TrafficSplit",
		"metadata":   map[string]any{"name": "web", "namespace": "shop", "labels": map[string]any{"app": "web"}},
		"spec": map[string]any{"service": "web", "backends": []any{
			map[string]any{"service": "web-v1", "weight": int64(1)},
		}},
		"status": map[string]any{"observedGeneration": int64(-1)},
	}
	errs, err := Validate(schema.GroupVersionKind{Group: "split.smi-spec.io", Version: "v1alpha4", Kind: "TrafficSplit"}, obj)
	if err != nil || len(errs) > 0 {
		t.Fatalf("refused: %v %v", err, errs)
	}
	if _, ok := obj["status"]; ok {
		t.Error("status kept")
	}
	meta, _ := obj["metadata"].(map[string]any)
	if obj["kind"] != "TrafficSplit" || obj["apiVersion"] != "split.smi-spec.io/v1alpha4" || meta["name"] != "web" || meta["labels"] == nil {
		t.Errorf("type fields or metadata lost: %v", obj)
	}
}

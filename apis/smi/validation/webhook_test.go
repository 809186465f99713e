package validation

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// review sends an AdmissionReview, as the API server does, through NewWebhook's HTTP handler and
// returns the response.
func review(t *testing.T, op admissionv1.Operation, namespace, newYAML, oldYAML string) *admissionv1.AdmissionResponse {
	t.Helper()
	req := &admissionv1.AdmissionRequest{UID: types.UID("uid-1"), Operation: op, Namespace: namespace}
	for _, y := range []string{newYAML, oldYAML} {
		if y == "" {
			continue
		}
		gvk, _ := doc(t, y)
		req.Kind = metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind}
		req.Resource = metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: strings.ToLower(gvk.Kind) + "s"}
	}
	if newYAML != "" {
		_, req.Object.Raw = doc(t, newYAML)
	}
	if oldYAML != "" {
		_, req.OldObject.Raw = doc(t, oldYAML)
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	})
	if err != nil {
		t.Fatal(err)
	}
	httpReq := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(body))
	httpReq.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	NewWebhook().ServeHTTP(rec, httpReq)
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("decoding the AdmissionReview response: %v\n%s", err, rec.Body)
	}
	if out.Response == nil || out.Response.UID != req.UID {
		t.Fatalf("response does not answer the request: %s", rec.Body)
	}
	return out.Response
}

const (
	badSplit = `
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  backends: [{service: web-v1, weight: 10}, {service: web-v2, weight: -5}]`
	goodSplit = `
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  backends: [{service: web-v1, weight: 10}, {service: web-v2, weight: 5}]`
)

func TestWebhookDeniesInvalidCreate(t *testing.T) {
	resp := review(t, admissionv1.Create, "shop", badSplit, "")
	if resp.Allowed {
		t.Fatal("invalid TrafficSplit allowed")
	}
	st := resp.Result
	want := `TrafficSplit.split.smi-spec.io "ab" is invalid: spec.backends[1].weight: Invalid value: -5: must be non-negative`
	if st == nil || st.Code != http.StatusUnprocessableEntity || st.Reason != metav1.StatusReasonInvalid || !strings.HasPrefix(st.Message, want) {
		t.Fatalf("status %+v, want 422 Invalid with message starting %q", st, want)
	}
	if st.Details == nil || len(st.Details.Causes) != 1 || st.Details.Causes[0].Field != "spec.backends[1].weight" ||
		st.Details.Kind != "TrafficSplit" || st.Details.Group != "split.smi-spec.io" {
		t.Errorf("details %+v", st.Details)
	}
}

func TestWebhookAllows(t *testing.T) {
	if resp := review(t, admissionv1.Create, "shop", goodSplit, ""); !resp.Allowed {
		t.Errorf("valid create denied: %+v", resp.Result)
	}
	// DELETE carries the old object only, and an invalid one must still go.
	if resp := review(t, admissionv1.Delete, "shop", "", badSplit); !resp.Allowed {
		t.Errorf("delete denied: %+v", resp.Result)
	}
	// An update of an object that is being deleted (say, removing a finalizer) always passes.
	deleting := strings.Replace(badSplit, "metadata: {name: ab, namespace: shop}",
		"metadata: {name: ab, namespace: shop, deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: []}", 1)
	if resp := review(t, admissionv1.Update, "shop", deleting, badSplit); !resp.Allowed {
		t.Errorf("update of a deleted object denied: %+v", resp.Result)
	}
}

// An update keeps problems the object already had as warnings, and denies only new ones.
func TestWebhookRatchetsUpdates(t *testing.T) {
	relabelled := strings.Replace(badSplit, "metadata: {name: ab, namespace: shop}",
		"metadata: {name: ab, namespace: shop, labels: {team: web}}", 1)
	resp := review(t, admissionv1.Update, "shop", relabelled, badSplit)
	if !resp.Allowed {
		t.Fatalf("relabelling an object with an old problem denied: %+v", resp.Result)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "spec.backends[1].weight") {
		t.Errorf("warnings %q, want the old problem", resp.Warnings)
	}

	worse := strings.Replace(badSplit, "service: web\n", "service: Web\n", 1)
	resp = review(t, admissionv1.Update, "shop", worse, badSplit)
	if resp.Allowed || len(resp.Result.Details.Causes) != 1 || resp.Result.Details.Causes[0].Field != "spec.service" {
		t.Errorf("an update adding a problem: allowed=%v, status %+v; want denied for spec.service only", resp.Allowed, resp.Result)
	}

	if resp := review(t, admissionv1.Update, "shop", badSplit, goodSplit); resp.Allowed {
		t.Error("an update breaking a valid object allowed")
	}
}

// The request's namespace stands in for an object that does not name one, as on `kubectl create -n`.
func TestWebhookUsesRequestNamespace(t *testing.T) {
	resp := review(t, admissionv1.Create, "shop", `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: api}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: bank}
  sources: [{kind: ServiceAccount, name: web}]`, "")
	if resp.Allowed || !strings.Contains(resp.Result.Message, `spec.destination.namespace: Invalid value: "bank": must be the TrafficTarget's own namespace "shop"`) {
		t.Errorf("allowed=%v, status %+v", resp.Allowed, resp.Result)
	}
}

// Headers repeated in the YAML reach the webhook as written, and are caught.
func TestWebhookReadsHeadersAsWritten(t *testing.T) {
	resp := review(t, admissionv1.Create, "shop", `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
spec:
  matches:
  - name: android
    headers: [{user-agent: .*Android.*}, {user-agent: .*Mobile.*}]`, "")
	if resp.Allowed || !strings.Contains(resp.Result.Message, "spec.matches[0].headers[1]: Duplicate value") {
		t.Errorf("allowed=%v, status %+v", resp.Allowed, resp.Result)
	}
}

func TestWebhookRejectsWhatItCannotRead(t *testing.T) {
	resp := review(t, admissionv1.Create, "shop", `
apiVersion: split.smi-spec.io/v1alpha5
kind: TrafficSplit
metadata: {name: ab}`, "")
	if resp.Allowed || resp.Result.Code != http.StatusBadRequest || !strings.Contains(resp.Result.Message, "not an SMI kind") {
		t.Errorf("unknown version: allowed=%v, status %+v", resp.Allowed, resp.Result)
	}
}

// The handler works on its own too, for callers composing handlers.
func TestHandlerDirect(t *testing.T) {
	var h Handler
	_, raw := doc(t, goodSplit)
	req := admissionv1.AdmissionRequest{
		Operation: admissionv1.Create,
		Kind:      metav1.GroupVersionKind{Group: "split.smi-spec.io", Version: "v1alpha2", Kind: "TrafficSplit"},
		Object:    runtime.RawExtension{Raw: raw},
	}
	if resp := h.Handle(t.Context(), admission.Request{AdmissionRequest: req}); !resp.Allowed {
		t.Errorf("denied: %+v", resp.Result)
	}
}

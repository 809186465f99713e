package conversion

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A ConversionReview as the API server sends it: a list read as v1alpha4, one object stored by an
// older release of the operator as v1alpha1, one as v1alpha2.
const splitReview = `{
  "kind": "ConversionReview",
  "apiVersion": "apiextensions.k8s.io/v1",
  "request": {
    "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
    "desiredAPIVersion": "split.smi-spec.io/v1alpha4",
    "objects": [
      {
        "apiVersion": "split.smi-spec.io/v1alpha1",
        "kind": "TrafficSplit",
        "metadata": {"name": "bookstore", "namespace": "shop", "uid": "0b9ad2e4-1c4c-4a4e-9c56-3f5c5ad2e7a1",
          "resourceVersion": "811", "generation": 1, "creationTimestamp": "2024-05-06T07:08:09Z"},
        "spec": {"service": "bookstore", "backends": [{"service": "bookstore-v1", "weight": 1}, {"service": "bookstore-v2", "weight": "500m"}]},
        "status": {"observedGeneration": 1}
      },
      {
        "apiVersion": "split.smi-spec.io/v1alpha2",
        "kind": "TrafficSplit",
        "metadata": {"name": "orders", "namespace": "shop", "uid": "c5e1e8f0-3f43-4c8b-bd39-8b0e0d3c1f22",
          "resourceVersion": "812", "generation": 2, "creationTimestamp": "2024-05-06T07:08:09Z"},
        "spec": {"service": "orders", "backends": [{"service": "orders-v1", "weight": 90}, {"service": "orders-v2", "weight": 10}]}
      }
    ]
  }
}`

// postReview posts body to a test server running the webhook and decodes the answer.
func postReview(t *testing.T, method, body string) (int, *apiextensionsv1.ConversionReview) {
	t.Helper()
	server := httptest.NewServer(NewWebhookHandler())
	defer server.Close()
	request, err := http.NewRequest(method, server.URL+"/convert", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	request.Header.Set("Content-Type", "application/json")
	response, err := server.Client().Do(request)
	if err != nil {
		t.Fatal(err)
	}
	defer response.Body.Close()
	data, err := io.ReadAll(response.Body)
	if err != nil {
		t.Fatal(err)
	}
	review := &apiextensionsv1.ConversionReview{}
	if err := json.Unmarshal(data, review); err != nil {
		return response.StatusCode, nil
	}
	return response.StatusCode, review
}

func TestWebhookConvertsAReview(t *testing.T) {
	status, review := postReview(t, http.MethodPost, splitReview)
	if status != http.StatusOK || review == nil || review.Response == nil {
		t.Fatalf("status %d, review %+v", status, review)
	}
	if review.APIVersion != "apiextensions.k8s.io/v1" || review.Kind != "ConversionReview" {
		t.Errorf("answered as %s %s", review.APIVersion, review.Kind)
	}
	response := review.Response
	if response.UID != "705ab4f5-6393-11e8-b7cc-42010a800002" {
		t.Errorf("uid %q", response.UID)
	}
	if response.Result.Status != metav1.StatusSuccess {
		t.Fatalf("result %+v", response.Result)
	}
	if len(response.ConvertedObjects) != 2 {
		t.Fatalf("%d converted objects", len(response.ConvertedObjects))
	}
	var got []map[string]any
	for _, raw := range response.ConvertedObjects {
		obj := map[string]any{}
		if err := json.Unmarshal(raw.Raw, &obj); err != nil {
			t.Fatal(err)
		}
		got = append(got, obj)
	}
	wantSpecs := []any{
		map[string]any{"service": "bookstore", "backends": []any{
			map[string]any{"service": "bookstore-v1", "weight": 1000.0},
			map[string]any{"service": "bookstore-v2", "weight": 500.0},
		}},
		map[string]any{"service": "orders", "backends": []any{
			map[string]any{"service": "orders-v1", "weight": 90.0},
			map[string]any{"service": "orders-v2", "weight": 10.0},
		}},
	}
	for i, obj := range got {
		if obj["apiVersion"] != "split.smi-spec.io/v1alpha4" {
			t.Errorf("object %d: apiVersion %v", i, obj["apiVersion"])
		}
		if diff := cmp.Diff(wantSpecs[i], obj["spec"]); diff != "" {
			t.Errorf("object %d spec (-want +got):\n%s", i, diff)
		}
	}
	if diff := cmp.Diff(map[string]any{"observedGeneration": 1.0}, got[0]["status"]); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	meta := got[0]["metadata"].(map[string]any)
	if meta["uid"] != "0b9ad2e4-1c4c-4a4e-9c56-3f5c5ad2e7a1" || meta["resourceVersion"] != "811" {
		t.Errorf("metadata changed: %v", meta)
	}
}

func TestWebhookFailsAReviewWithAnObjectItCannotConvert(t *testing.T) {
	body := strings.Replace(splitReview, `"weight": "500m"`, `"weight": "1e-999999999"`, 1)
	status, review := postReview(t, http.MethodPost, body)
	if status != http.StatusOK || review == nil || review.Response == nil {
		t.Fatalf("status %d, review %+v", status, review)
	}
	result := review.Response.Result
	if result.Status != metav1.StatusFailure || len(review.Response.ConvertedObjects) != 0 {
		t.Fatalf("result %+v with %d objects", result, len(review.Response.ConvertedObjects))
	}
	for _, want := range []string{`object 1 of 2`, `TrafficSplit "shop/bookstore"`, `split.smi-spec.io/v1alpha1`, `backend "bookstore-v2"`, `out of range`} {
		if !strings.Contains(result.Message, want) {
			t.Errorf("message %q does not say %q", result.Message, want)
		}
	}
	if review.Response.UID != "705ab4f5-6393-11e8-b7cc-42010a800002" {
		t.Errorf("uid %q", review.Response.UID)
	}
}

func TestWebhookRejectsMalformedReviews(t *testing.T) {
	tests := []struct {
		name, method, body string
		wantStatus         int
		wantMessage        string
	}{
		{"not JSON", http.MethodPost, `{"kind": "ConversionReview",`, http.StatusBadRequest, "not a ConversionReview"},
		{"empty body", http.MethodPost, ``, http.StatusBadRequest, "not a ConversionReview"},
		{"a JSON list", http.MethodPost, `[1, 2]`, http.StatusBadRequest, "not a ConversionReview"},
		{"another kind", http.MethodPost, `{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}}`, http.StatusBadRequest, "expected an apiextensions.k8s.io/v1 ConversionReview"},
		{"v1beta1 review", http.MethodPost, `{"kind": "ConversionReview", "apiVersion": "apiextensions.k8s.io/v1beta1", "request": {}}`, http.StatusBadRequest, "expected an apiextensions.k8s.io/v1 ConversionReview"},
		{"no request", http.MethodPost, `{"kind": "ConversionReview", "apiVersion": "apiextensions.k8s.io/v1"}`, http.StatusBadRequest, "no request"},
		{"no desired version", http.MethodPost, `{"kind": "ConversionReview", "apiVersion": "apiextensions.k8s.io/v1", "request": {"uid": "1"}}`, http.StatusBadRequest, "no desiredAPIVersion"},
		{"objects of the wrong type", http.MethodPost, `{"kind": "ConversionReview", "apiVersion": "apiextensions.k8s.io/v1", "request": {"uid": "1", "desiredAPIVersion": "split.smi-spec.io/v1alpha4", "objects": {"a": 1}}}`, http.StatusBadRequest, "not a ConversionReview"},
		{"an object that is no object", http.MethodPost, `{"kind": "ConversionReview", "apiVersion": "apiextensions.k8s.io/v1", "request": {"uid": "1", "desiredAPIVersion": "split.smi-spec.io/v1alpha4", "objects": ["x"]}}`, http.StatusOK, "object 1 of 1: cannot read the object"},
		{"a null object", http.MethodPost, `{"kind": "ConversionReview", "apiVersion": "apiextensions.k8s.io/v1", "request": {"uid": "1", "desiredAPIVersion": "split.smi-spec.io/v1alpha4", "objects": [null]}}`, http.StatusOK, "object 1 of 1: cannot read the object"},
		{"an object without kind", http.MethodPost, `{"kind": "ConversionReview", "apiVersion": "apiextensions.k8s.io/v1", "request": {"uid": "1", "desiredAPIVersion": "split.smi-spec.io/v1alpha4", "objects": [{"apiVersion": "split.smi-spec.io/v1alpha1"}]}}`, http.StatusOK, "object 1 of 1: cannot read the object"},
		{"an object of another group", http.MethodPost, `{"kind": "ConversionReview", "apiVersion": "apiextensions.k8s.io/v1", "request": {"uid": "1", "desiredAPIVersion": "split.smi-spec.io/v1alpha4", "objects": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}]}}`, http.StatusOK, `cannot convert ConfigMap "c"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, review := postReview(t, tt.method, tt.body)
			if status != tt.wantStatus {
				t.Errorf("status %d, want %d", status, tt.wantStatus)
			}
			if review == nil || review.Response == nil {
				t.Fatalf("no ConversionReview in the answer")
			}
			if result := review.Response.Result; result.Status != metav1.StatusFailure || !strings.Contains(result.Message, tt.wantMessage) {
				t.Errorf("result %+v, want a Failure saying %q", result, tt.wantMessage)
			}
		})
	}
}

func TestWebhookOnlyAcceptsPOST(t *testing.T) {
	if status, _ := postReview(t, http.MethodGet, ""); status != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d", status)
	}
}

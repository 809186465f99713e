package conversion

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
)

// maxReviewBytes bounds the body of a ConversionReview. The API server sends a whole list in one
// review, and etcd's default request limit (1.5 MiB) bounds each object, not the list.
const maxReviewBytes = 64 << 20

// NewWebhookHandler returns the http.Handler of the SMI CRDs' conversion webhook: it answers
// apiextensions.k8s.io/v1 ConversionReviews for every SMI kind and version. A review it cannot read
// gets status 400; one whose objects do not all convert gets a Failure result naming the first
// object that did not, and why.
func NewWebhookHandler() http.Handler {
	return webhookHandler{}
}

type webhookHandler struct{}

func (webhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "a ConversionReview must be POSTed", http.StatusMethodNotAllowed)
		return
	}
	request, err := readReview(w, r)
	if err != nil {
		writeReview(w, http.StatusBadRequest, failure("", err))
		return
	}
	// Conversion handles any JSON without panicking (FuzzConvertRoundTrip holds it to that); this
	// keeps an unforeseen bug to one failed review with a message, rather than a dropped connection.
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("internal error while converting: %v", p)
			utilruntime.HandleErrorWithContext(r.Context(), err, "SMI conversion webhook panicked", "uid", request.UID)
			writeReview(w, http.StatusInternalServerError, failure(request.UID, err))
		}
	}()
	writeReview(w, http.StatusOK, convertReview(request))
}

// readReview reads the ConversionReview request in r's body.
func readReview(w http.ResponseWriter, r *http.Request) (*apiextensionsv1.ConversionRequest, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxReviewBytes))
	if err != nil {
		return nil, fmt.Errorf("cannot read the request body: %w", err)
	}
	review := &apiextensionsv1.ConversionReview{}
	if err := utiljson.Unmarshal(body, review); err != nil {
		return nil, fmt.Errorf("the request body is not a ConversionReview: %w", err)
	}
	if gvk := review.GroupVersionKind(); gvk != apiextensionsv1.SchemeGroupVersion.WithKind("ConversionReview") {
		return nil, fmt.Errorf("expected an %s ConversionReview, got apiVersion %q kind %q",
			apiextensionsv1.SchemeGroupVersion, review.APIVersion, review.Kind)
	}
	if review.Request == nil {
		return nil, errors.New("the ConversionReview has no request")
	}
	if review.Request.DesiredAPIVersion == "" {
		return nil, errors.New("the ConversionReview request has no desiredAPIVersion")
	}
	return review.Request, nil
}

// convertReview converts every object of request; one that fails fails the whole review, as the
// API server takes all of them or none.
func convertReview(request *apiextensionsv1.ConversionRequest) *apiextensionsv1.ConversionResponse {
	converted := make([]runtime.RawExtension, 0, len(request.Objects))
	for i, object := range request.Objects {
		raw, err := convertRaw(object.Raw, request.DesiredAPIVersion)
		if err != nil {
			return failure(request.UID, fmt.Errorf("object %d of %d: %w", i+1, len(request.Objects), err))
		}
		converted = append(converted, runtime.RawExtension{Raw: raw})
	}
	return &apiextensionsv1.ConversionResponse{
		UID:              request.UID,
		ConvertedObjects: converted,
		Result:           metav1.Status{Status: metav1.StatusSuccess},
	}
}

// convertRaw converts one JSON object to toAPIVersion; errors name the object.
func convertRaw(raw []byte, toAPIVersion string) ([]byte, error) {
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("cannot read the object: %w", err)
	}
	converted, err := Convert(obj, toAPIVersion)
	if err != nil {
		return nil, fmt.Errorf("cannot convert %s from %s to %s: %w", describe(obj), obj.GetAPIVersion(), toAPIVersion, err)
	}
	return json.Marshal(converted.Object)
}

// describe names an object for messages: kind and namespace/name.
func describe(obj *unstructured.Unstructured) string {
	name := obj.GetName()
	if ns := obj.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return fmt.Sprintf("%s %q", obj.GetKind(), name)
}

// failure is a response that fails a review with err's message.
func failure(uid types.UID, err error) *apiextensionsv1.ConversionResponse {
	return &apiextensionsv1.ConversionResponse{
		UID:    uid,
		Result: metav1.Status{Status: metav1.StatusFailure, Message: err.Error()},
	}
}

// writeReview writes a ConversionReview holding response.
func writeReview(w http.ResponseWriter, status int, response *apiextensionsv1.ConversionResponse) {
	review := apiextensionsv1.ConversionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: apiextensionsv1.SchemeGroupVersion.String(), Kind: "ConversionReview"},
		Response: response,
	}
	body, err := json.Marshal(review)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

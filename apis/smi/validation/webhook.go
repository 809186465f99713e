package validation

import (
	"context"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// WebhookPath is where the webhook server serves [NewWebhook]; the ValidatingWebhookConfiguration
// points every SMI kind and version here.
const WebhookPath = "/validate-smi"

// One webhook per API group, all served by the same handler (config/webhook is generated from these).
// +kubebuilder:webhook:path=/validate-smi,mutating=false,failurePolicy=fail,sideEffects=None,admissionReviewVersions=v1,groups=split.smi-spec.io,resources=trafficsplits,verbs=create;update,versions=v1alpha1;v1alpha2;v1alpha3;v1alpha4,name=split.validate.smi-operator.io
// +kubebuilder:webhook:path=/validate-smi,mutating=false,failurePolicy=fail,sideEffects=None,admissionReviewVersions=v1,groups=access.smi-spec.io,resources=traffictargets,verbs=create;update,versions=v1alpha1;v1alpha2;v1alpha3,name=access.validate.smi-operator.io
// +kubebuilder:webhook:path=/validate-smi,mutating=false,failurePolicy=fail,sideEffects=None,admissionReviewVersions=v1,groups=specs.smi-spec.io,resources=httproutegroups;tcproutes;udproutes,verbs=create;update,versions=v1alpha1;v1alpha2;v1alpha3;v1alpha4,name=specs.validate.smi-operator.io

// NewWebhook returns the validating webhook for every served SMI kind and version, to register with
// the manager's webhook server at [WebhookPath].
func NewWebhook() *admission.Webhook {
	return &admission.Webhook{Handler: Handler{}}
}

// Handler is the admission handler behind [NewWebhook]. It decodes the object by the request's
// kind and version, not by a scheme guess, because the API server sends it in the version the
// user wrote and error paths must be in that version.
type Handler struct{}

var _ admission.Handler = Handler{}

// Handle denies a CREATE or UPDATE of an invalid SMI object with every problem found, as an
// Invalid status (HTTP 422) listing each field, and allows everything else.
func (Handler) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("") // DELETE and CONNECT write no spec
	}
	if req.SubResource != "" {
		return admission.Allowed("") // status and other subresources leave the spec as it is
	}
	gvk := schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind}
	obj, errs, err := validateJSON(gvk, req.Object.Raw, req.Namespace)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if req.Operation == admissionv1.Update {
		if obj.GetDeletionTimestamp() != nil {
			// Removing a finalizer is an update; blocking it would keep the object forever.
			return admission.Allowed("the object is being deleted")
		}
		var warnings []string
		if errs, warnings = ratchet(gvk, req, errs); len(errs) == 0 {
			return admission.Allowed("").WithWarnings(append(warnings, advice(obj)...)...)
		}
	}
	if len(errs) == 0 {
		return admission.Allowed("").WithWarnings(advice(obj)...)
	}
	name := obj.GetName()
	if name == "" {
		name = obj.GetGenerateName()
	}
	status := apierrors.NewInvalid(gvk.GroupKind(), name, errs).Status()
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}
}

// warner is a form with something to tell the author of an object it admits.
type warner interface {
	warnings() []string
}

// advice returns the warnings for an admitted object: what its version allows but makes it do
// less than its author may think (a TrafficTarget without rules allows nothing).
func advice(obj metav1.Object) []string {
	typed, ok := obj.(runtime.Object)
	if !ok {
		return nil
	}
	if f, err := formOf(typed); err == nil {
		if w, ok := f.(warner); ok {
			return w.warnings()
		}
	}
	return nil
}

// ratchet keeps, of an update's errors, those the old object did not already have; the others are
// returned as warnings. An object admitted before this webhook (or before a rule) existed must stay
// editable: its labels, its finalizers, and the fix of one problem at a time. Errors are the same
// when type, path, value and detail are; a list item moved to another index counts as new.
func ratchet(gvk schema.GroupVersionKind, req admission.Request, errs field.ErrorList) (field.ErrorList, []string) {
	if len(errs) == 0 || len(req.OldObject.Raw) == 0 {
		return errs, nil
	}
	_, oldErrs, err := validateJSON(gvk, req.OldObject.Raw, req.Namespace)
	if err != nil {
		return errs, nil
	}
	old := make(map[string]bool, len(oldErrs))
	for _, e := range oldErrs {
		old[e.Error()] = true
	}
	var kept field.ErrorList
	var warnings []string
	for _, e := range errs {
		if old[e.Error()] {
			warnings = append(warnings, fmt.Sprintf("%s (already so before this update, so not enforced until it changes)", e.Error()))
		} else {
			kept = append(kept, e)
		}
	}
	return kept, warnings
}

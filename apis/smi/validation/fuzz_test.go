package validation

import (
	"slices"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	splitv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha1"
)

// FuzzValidate feeds arbitrary JSON as an arbitrary SMI kind and version to ValidateJSON, the
// typed Validate and the webhook handler: none may panic or hang, every error must name a field,
// and the same input must always give the same errors (maps must not leak their order).
//
//	go test -run x -fuzz FuzzValidate -fuzztime 30s ./apis/smi/validation/
func FuzzValidate(f *testing.F) {
	kinds := GroupVersionKinds()
	seed := func(y string) {
		gvk, raw := doc(f, y)
		f.Add(uint8(slices.Index(kinds, gvk)), raw)
	}
	for _, y := range validDocs(f) {
		seed(y)
	}
	for _, tc := range invalidCases {
		seed(tc.yaml)
	}
	f.Add(uint8(0), []byte(`{"spec":{"backends":[5,{"weight":"1e-99999999999"}]}}`))
	f.Add(uint8(0), []byte(`null`))

	f.Fuzz(func(t *testing.T, kind uint8, raw []byte) {
		gvk := kinds[int(kind)%len(kinds)]
		_, errs, err := validateJSON(gvk, raw, "shop") // the namespace the handler is given below
		for _, op := range []admissionv1.Operation{admissionv1.Create, admissionv1.Update} {
			resp := Handler{}.Handle(t.Context(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				Operation: op, Namespace: "shop",
				Kind:   metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
				Object: runtime.RawExtension{Raw: raw}, OldObject: runtime.RawExtension{Raw: raw},
			}})
			if op == admissionv1.Create && resp.Allowed != (err == nil && len(errs) == 0) {
				t.Errorf("CREATE allowed=%v with %d errors and decoding error %v", resp.Allowed, len(errs), err)
			}
		}
		if err != nil {
			if errs != nil {
				t.Fatalf("both errors and a decoding error: %v; %v", errs, err)
			}
			return
		}
		for _, e := range errs {
			if e.Field == "" {
				t.Errorf("error without a field: %v", e)
			}
		}
		_, again, _ := validateJSON(gvk, raw, "shop")
		if errorLines(again) != errorLines(errs) {
			t.Errorf("not deterministic:\n%s\nthen:\n%s", errorLines(errs), errorLines(again))
		}

		// The typed path, on what smi-sdk-go decodes. Not for v1alpha1 TrafficSplits: decoding
		// their weights is what defuseWeights protects against (resource.ParseQuantity can hang).
		if obj, _ := scheme.New(gvk); obj != nil {
			if _, v1alpha1 := obj.(*splitv1alpha1.TrafficSplit); !v1alpha1 && utiljson.Unmarshal(raw, obj) == nil {
				_ = Validate(obj)
			}
		}
	})
}

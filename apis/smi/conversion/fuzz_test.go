package conversion

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// FuzzConvertRoundTrip feeds JSON objects, read as the webhook reads them, to Convert with a target
// version picked from the object's kind, and checks that:
//   - nothing panics, whatever the input;
//   - what converts also converts back;
//   - an object without a conversion annotation of its own comes back as its version reads it
//     (its SDK type's fields, its metadata and its unknown top-level fields), i.e. nothing is lost;
//   - an object with one (possibly stale or garbage) is stable from the second round trip on.
//
// The seeds are the fixtures, one per kind and version, with every target, and what they convert
// to (which carries conversion annotations). They are made small: the fuzzer spends much of its
// time minimizing each input that reaches new code, and that time grows with the input's size.
func FuzzConvertRoundTrip(f *testing.F) {
	for _, fixture := range fixtures(f) {
		obj := fixture.DeepCopy()
		obj.Object["metadata"] = map[string]any{"name": "n", "namespace": "ns", "annotations": map[string]any{"team": "checkout"}}
		obj.Object["status"] = map[string]any{"observedGeneration": int64(3)}
		for i, version := range versionsOf(obj.GroupVersionKind().GroupKind()) {
			converted := mustConvert(f, obj, version)
			for _, seed := range []*unstructured.Unstructured{obj, converted} {
				data, err := json.Marshal(seed.Object)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(data, uint8(i))
			}
		}
	}
	f.Add([]byte(`{"apiVersion":"split.smi-spec.io/v1alpha1","kind":"TrafficSplit","spec":{"backends":[{"service":"a","weight":0.5},{"service":"b"}]}}`), uint8(3))
	f.Add([]byte(`{"apiVersion":"access.smi-spec.io/v1alpha2","kind":"TrafficTarget","spec":{"sources":[{"kind":"a","port":0},{"kind":"a"}]}}`), uint8(0))

	f.Fuzz(func(t *testing.T, data []byte, pick uint8) {
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(data); err != nil {
			return
		}
		from := obj.GroupVersionKind()
		served := versionsOf(from.GroupKind())
		if len(served) == 0 {
			if _, err := Convert(obj, "split.smi-spec.io/v1alpha4"); err == nil {
				t.Fatalf("converted an object of unknown kind %s", from)
			}
			return
		}
		to := from.GroupKind().WithVersion(served[int(pick)%len(served)]).GroupVersion().String()
		there, err := Convert(obj, to)
		if err != nil {
			return
		}
		back, err := Convert(there, from.GroupVersion().String())
		if err != nil {
			t.Fatalf("converted to %s, but not back: %v\nconverted: %v", to, err, there.Object)
		}
		if to == obj.GetAPIVersion() {
			if diff := cmp.Diff(withoutEmpty(jsonCopy(t, obj.Object)), withoutEmpty(back.Object)); diff != "" {
				t.Fatalf("same-version conversion changed the object (-in +out):\n%s", diff)
			}
			return
		}
		if _, annotated := obj.GetAnnotations()[smi.ConversionDataAnnotation]; !annotated {
			want := asVersionReadsIt(t, obj)
			if diff := cmp.Diff(withoutEmpty(want), withoutEmpty(back.Object)); diff != "" {
				t.Fatalf("round trip through %s lost something (-want +back):\n%s", to, diff)
			}
			return
		}
		thereAgain, err := Convert(back, to)
		if err != nil {
			t.Fatalf("converted back, but not there again: %v", err)
		}
		backAgain, err := Convert(thereAgain, from.GroupVersion().String())
		if err != nil {
			t.Fatalf("converted there again, but not back: %v", err)
		}
		if diff := cmp.Diff(withoutEmpty(back.Object), withoutEmpty(backAgain.Object)); diff != "" {
			t.Fatalf("second round trip through %s changed the object (-first +second):\n%s", to, diff)
		}
	})
}

// jsonCopy is obj after a JSON round trip, with numbers read as the webhook reads them.
func jsonCopy(t *testing.T, obj map[string]any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	if err := utiljson.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// asVersionReadsIt is obj as its own version reads it: through its SDK type, with its metadata and
// unknown top-level fields kept, as Convert builds its output.
func asVersionReadsIt(t *testing.T, obj *unstructured.Unstructured) map[string]any {
	t.Helper()
	in := jsonCopy(t, obj.Object)
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	v := versionsByGVK[obj.GroupVersionKind()]
	typedObj, err := v.decode(in, raw)
	if err != nil {
		t.Fatalf("converted, yet it does not decode as its own version: %v", err)
	}
	out, err := encode(in, typedObj, v.gvk)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// withoutEmpty drops nulls, empty maps and empty lists, at any depth: JSON that means the same as
// leaving them out, and that the SDK types do not tell apart.
func withoutEmpty(value any) any {
	switch value := value.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, v := range value {
			if v = withoutEmpty(v); v != nil {
				out[k] = v
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		if len(value) == 0 {
			return nil
		}
		out := make([]any, len(value))
		for i, v := range value {
			out[i] = withoutEmpty(v)
		}
		return out
	}
	return value
}

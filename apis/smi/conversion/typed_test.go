package conversion

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	splitv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha1"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// typedObject decodes a fixture into its SDK type (through JSON: the SDK's header lists have their
// own codec).
func typedObject(t testing.TB, u *unstructured.Unstructured) runtime.Object {
	t.Helper()
	obj, err := scheme.New(u.GroupVersionKind())
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestTypedRoundTripThroughHub(t *testing.T) {
	for gvk, fixture := range fixtures(t) {
		t.Run(gvk.String(), func(t *testing.T) {
			original := typedObject(t, fixture)
			in := original.DeepCopyObject()
			hubObj, err := ToHub(in)
			if err != nil {
				t.Fatal(err)
			}
			if !apiequality.Semantic.DeepEqual(original, in) {
				t.Fatal("ToHub modified its input")
			}
			hubGV, _ := smi.HubFor(gvk.Group)
			if got := hubObj.GetObjectKind().GroupVersionKind(); got != hubGV.WithKind(gvk.Kind) {
				t.Errorf("ToHub gave a %s", got)
			}
			back, err := versionsByGVK[gvk].fromHub(hubObj)
			if err != nil {
				t.Fatal(err)
			}
			if hubObj == in {
				t.Error("ToHub returned its input instead of a copy")
			}
			if got := back.GetObjectKind().GroupVersionKind(); got != gvk {
				t.Errorf("converting back gave a %s", got)
			}
			if !apiequality.Semantic.DeepEqual(original, back) {
				t.Errorf("round trip through the hub changed the object:\n%s", cmp.Diff(original, back))
			}
		})
	}
}

func TestToHubRejects(t *testing.T) {
	var nilSplit *splitv1alpha1.TrafficSplit
	var nilHubSplit *splitv1alpha4.TrafficSplit
	for name, obj := range map[string]runtime.Object{
		"nil":               nil,
		"nil pointer":       nilSplit,
		"nil hub pointer":   nilHubSplit,
		"not an SMI object": &corev1.ConfigMap{},
		"a list":            &splitv1alpha1.TrafficSplitList{},
	} {
		if _, err := ToHub(obj); err == nil {
			t.Errorf("%s: ToHub did not fail", name)
		}
	}
}

// TestTypedFunctionsGiveTheOneAndFiveHundredMilliSplitTwoToOne is the v1alpha1 example that a known
// upstream converter read as 1:500.
func TestTypedFunctionsGiveTheOneAndFiveHundredMilliSplitTwoToOne(t *testing.T) {
	in := &splitv1alpha1.TrafficSplit{Spec: splitv1alpha1.TrafficSplitSpec{Service: "web", Backends: []splitv1alpha1.TrafficSplitBackend{
		{Service: "v1", Weight: quantity(t, "1")}, {Service: "v2", Weight: quantity(t, "500m")},
	}}}
	hubSplit, err := TrafficSplitV1alpha1ToHub(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []splitv1alpha4.TrafficSplitBackend{{Service: "v1", Weight: 1000}, {Service: "v2", Weight: 500}}
	if diff := cmp.Diff(want, hubSplit.Spec.Backends); diff != "" {
		t.Errorf("hub backends (-want +got):\n%s", diff)
	}
	back, err := TrafficSplitHubToV1alpha1(hubSplit)
	if err != nil {
		t.Fatal(err)
	}
	if !apiequality.Semantic.DeepEqual(in.Spec, back.Spec) || len(back.Annotations) != 0 {
		t.Errorf("back in v1alpha1: %+v, annotations %v", back.Spec, back.Annotations)
	}
	if !strings.Contains(hubSplit.Annotations[smi.ConversionDataAnnotation], `"weight":"500m"`) {
		t.Errorf("hub annotation %q does not keep 500m", hubSplit.Annotations[smi.ConversionDataAnnotation])
	}
}

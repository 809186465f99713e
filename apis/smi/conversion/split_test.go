package conversion

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	splitv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha1"

	"github.com/smi-operator/smi-operator/apis/smi"
)

func quantity(t testing.TB, s string) *resource.Quantity {
	t.Helper()
	q, err := resource.ParseQuantity(s)
	if err != nil {
		t.Fatal(err)
	}
	return &q
}

func TestHubWeights(t *testing.T) {
	const none = "none"
	tests := []struct {
		name    string
		weights []string // none: no weight
		want    []int
		wantErr string
	}{
		{"spec example: 1 and 500m is 2:1", []string{"1", "500m"}, []int{1000, 500}, ""},
		{"whole numbers stay as written", []string{"1", "2"}, []int{1, 2}, ""},
		{"suffixes of whole numbers", []string{"1k", "500", "1Ki"}, []int{1000, 500, 1024}, ""},
		{"missing weight is 0", []string{none, "3"}, []int{0, 3}, ""},
		{"missing weight among milli-values", []string{none, "0.5"}, []int{0, 500}, ""},
		{"decimals", []string{"0.5", "1.5", "2"}, []int{500, 1500, 2000}, ""},
		{"sub-milli rounds up as MilliValue does", []string{"1u", "1"}, []int{1, 1000}, ""},
		{"negative converts as it is", []string{"-1", "2"}, []int{-1, 2}, ""},
		{"negative milli-value", []string{"-500m", "1"}, []int{-500, 1000}, ""},
		{"largest whole weight", []string{"9223372036854775807"}, []int{9223372036854775807}, ""},
		{"no backends", nil, []int{}, ""},
		{"milli-value beyond an int", []string{"500m", "9300000000000000"}, nil, `backend "b1": weight 9300T is out of range`},
		{"whole value beyond an int", []string{"10E"}, nil, `backend "b0": weight 10E is out of range`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var backends []splitv1alpha1.TrafficSplitBackend
			for i, w := range tt.weights {
				b := splitv1alpha1.TrafficSplitBackend{Service: "b" + string(rune('0'+i))}
				if w != none {
					b.Weight = quantity(t, w)
				}
				backends = append(backends, b)
			}
			got, err := hubWeights(backends)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("weights (-want +got):\n%s", diff)
			}
		})
	}
}

// TestScaledWeightAgreesWithMilliValue: hub weights are MilliValue(), computed without its overflow.
func TestScaledWeightAgreesWithMilliValue(t *testing.T) {
	for _, s := range []string{"0", "1", "500m", "1u", "-1u", "1n", "-1e-9", "1.0005", "-1.5", "123456.789", "9e15", "1Ki", "0.1Ki", "-9e15"} {
		q := quantity(t, s)
		got, _, fits := scaledWeight(*q, 3)
		if want := q.MilliValue(); !fits || int64(got) != want {
			t.Errorf("%s: scaledWeight = %d (fits %v), MilliValue = %d", s, got, fits, want)
		}
	}
	for _, s := range []string{"9.3e15", "-9.3e15", "1e30", "1e99"} {
		if _, _, fits := scaledWeight(*quantity(t, s), 3); fits {
			t.Errorf("%s: milli-value reported to fit an int", s)
		}
	}
}

// setWeight sets spec.backends[i].weight of a JSON TrafficSplit.
func setWeight(t testing.TB, obj *unstructured.Unstructured, i int, weight any) {
	t.Helper()
	backends, _, _ := unstructured.NestedSlice(obj.Object, "spec", "backends")
	backends[i].(map[string]any)["weight"] = weight
	if err := unstructured.SetNestedSlice(obj.Object, backends, "spec", "backends"); err != nil {
		t.Fatal(err)
	}
}

func backendsOf(t testing.TB, obj *unstructured.Unstructured) []any {
	t.Helper()
	backends, _, err := unstructured.NestedSlice(obj.Object, "spec", "backends")
	if err != nil {
		t.Fatal(err)
	}
	return backends
}

func TestStaleV1alpha1WeightsDoNotOverrideNewerEdits(t *testing.T) {
	v1alpha1 := fixtures(t)[gvk(smi.SplitGroup, "v1alpha1", smi.TrafficSplitKind)]
	tests := []struct {
		name string
		// edit changes the object while it is served as version.
		version string
		edit    func(*unstructured.Unstructured)
		want    []any
	}{{
		name:    "weight changed in the hub",
		version: "v1alpha4",
		edit:    func(obj *unstructured.Unstructured) { setWeight(t, obj, 1, int64(600)) },
		want: []any{
			map[string]any{"service": "web-v1", "weight": "1k"},
			map[string]any{"service": "web-v2", "weight": "600"},
			map[string]any{"service": "web-canary", "weight": "0"},
		},
	}, {
		name:    "weight changed in v1alpha2",
		version: "v1alpha2",
		edit:    func(obj *unstructured.Unstructured) { setWeight(t, obj, 2, int64(100)) },
		want: []any{
			map[string]any{"service": "web-v1", "weight": "1k"},
			map[string]any{"service": "web-v2", "weight": "500"},
			map[string]any{"service": "web-canary", "weight": "100"},
		},
	}, {
		name:    "backend renamed in v1alpha3",
		version: "v1alpha3",
		edit: func(obj *unstructured.Unstructured) {
			backends := backendsOf(t, obj)
			backends[0].(map[string]any)["service"] = "web-v0"
			_ = unstructured.SetNestedSlice(obj.Object, backends, "spec", "backends")
		},
		want: []any{
			map[string]any{"service": "web-v0", "weight": "1k"},
			map[string]any{"service": "web-v2", "weight": "500"},
			map[string]any{"service": "web-canary", "weight": "0"},
		},
	}, {
		name:    "only a label changed: the written quantities come back",
		version: "v1alpha2",
		edit:    func(obj *unstructured.Unstructured) { obj.SetLabels(map[string]string{"edited": "yes"}) },
		want:    backendsOf(t, v1alpha1),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := mustConvert(t, v1alpha1, tt.version)
			tt.edit(obj)
			back := mustConvert(t, obj, "v1alpha1")
			if diff := cmp.Diff(tt.want, backendsOf(t, back)); diff != "" {
				t.Errorf("v1alpha1 backends (-want +got):\n%s", diff)
			}
			if _, ok := back.GetAnnotations()[smi.ConversionDataAnnotation]; ok {
				t.Errorf("the conversion annotation is left: %v", back.GetAnnotations())
			}
			if back.GetAnnotations()["team"] != "checkout" {
				t.Errorf("other annotations lost: %v", back.GetAnnotations())
			}
		})
	}
}

func TestStaleV1alpha1WeightsAreDroppedOnTheWay(t *testing.T) {
	v1alpha2 := mustConvert(t, fixtures(t)[gvk(smi.SplitGroup, "v1alpha1", smi.TrafficSplitKind)], "v1alpha2")
	if !strings.Contains(v1alpha2.GetAnnotations()[smi.ConversionDataAnnotation], "v1alpha1Backends") {
		t.Fatalf("v1alpha2 does not carry the v1alpha1 weights: %v", v1alpha2.GetAnnotations())
	}
	setWeight(t, v1alpha2, 0, int64(7))
	hubSplit := mustConvert(t, v1alpha2, "v1alpha4")
	if _, ok := hubSplit.GetAnnotations()[smi.ConversionDataAnnotation]; ok {
		t.Errorf("stale v1alpha1 weights kept in the hub: %v", hubSplit.GetAnnotations())
	}
}

func TestSplitMatchesSurviveAnEditThroughV1alpha2(t *testing.T) {
	hubSplit := fixtures(t)[gvk(smi.SplitGroup, "v1alpha4", smi.TrafficSplitKind)]
	v1alpha2 := mustConvert(t, hubSplit, "v1alpha2")
	setWeight(t, v1alpha2, 0, int64(1))
	back := mustConvert(t, v1alpha2, "v1alpha4")
	want := hubSplit.DeepCopy()
	setWeight(t, want, 0, int64(1))
	if diff := cmp.Diff(want.Object, back.Object); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestUnreadableConversionAnnotationIsIgnored(t *testing.T) {
	for _, annotation := range []string{
		`not JSON`,
		`{"matches":"not a list"}`,
		// Parsing this quantity would take minutes.
		`{"v1alpha1Backends":[{"service":"web-v1","weight":"1e-999999999"}]}`,
	} {
		hubSplit := fixtures(t)[gvk(smi.SplitGroup, "v1alpha4", smi.TrafficSplitKind)]
		hubSplit.SetAnnotations(map[string]string{smi.ConversionDataAnnotation: annotation})
		for _, version := range []string{"v1alpha1", "v1alpha2", "v1alpha3"} {
			out := mustConvert(t, hubSplit, version)
			if got := out.GetAnnotations()[smi.ConversionDataAnnotation]; strings.Contains(got, "v1alpha1Backends") || strings.Contains(got, "not") {
				t.Errorf("%s: %s: annotation %q", annotation, version, got)
			}
		}
	}
}

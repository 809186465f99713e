package conversion

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// headersByMatch maps each match name of a hub HTTPRouteGroup to its header list (nil for none).
func headersByMatch(t testing.TB, obj *unstructured.Unstructured) map[string]any {
	t.Helper()
	matches, _, err := unstructured.NestedSlice(obj.Object, "spec", "matches")
	if err != nil {
		t.Fatal(err)
	}
	headers := map[string]any{}
	for _, m := range matches {
		match := m.(map[string]any)
		headers[match["name"].(string)] = match["headers"]
	}
	return headers
}

func TestHeadersFollowTheirMatchThroughV1alpha1(t *testing.T) {
	hubGroup := fixtures(t)[gvk(smi.SpecsGroup, "v1alpha4", smi.HTTPRouteGroupKind)]
	original := headersByMatch(t, hubGroup)
	readHeaders, firefoxHeaders := original["read"], original["firefox-users"]

	v1alpha1 := mustConvert(t, hubGroup, "v1alpha1")
	matches, _, _ := unstructured.NestedSlice(v1alpha1.Object, "matches")
	// A v1alpha1 client reorders the matches, edits the path of "read" and renames "firefox-users".
	matches[0], matches[2] = matches[2], matches[0]
	for _, m := range matches {
		match := m.(map[string]any)
		switch match["name"] {
		case "read":
			match["pathRegex"] = "/api/v2/.*"
		case "firefox-users":
			match["name"] = "firefox"
		}
	}
	_ = unstructured.SetNestedSlice(v1alpha1.Object, matches, "matches")

	back := mustConvert(t, v1alpha1, "v1alpha4")
	want := map[string]any{"read": readHeaders, "write": nil, "firefox": nil, "metrics": nil}
	if diff := cmp.Diff(want, headersByMatch(t, back)); diff != "" {
		t.Errorf("headers by match (-want +got):\n%s", diff)
	}
	if firefoxHeaders == nil {
		t.Fatal("the fixture's firefox-users match should have headers")
	}
	if _, ok := back.GetAnnotations()[smi.ConversionDataAnnotation]; ok {
		t.Errorf("annotation left: %v", back.GetAnnotations())
	}
}

func TestHeadersOfIdenticalMatchesComeBackInOrder(t *testing.T) {
	hubGroup := decodeObject(t, []byte(`{"apiVersion":"specs.smi-spec.io/v1alpha4","kind":"HTTPRouteGroup","metadata":{"name":"g"},
		"spec":{"matches":[{"pathRegex":"/x","headers":[{"a":"1"}]},{"pathRegex":"/x"},{"pathRegex":"/x","headers":[{"b":"2"}]}]}}`))
	back := mustConvert(t, mustConvert(t, hubGroup, "v1alpha1"), "v1alpha4")
	if diff := cmp.Diff(hubGroup.Object, back.Object); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestTCPRouteMatchesSurviveAnEditThroughV1alpha1(t *testing.T) {
	hubRoute := fixtures(t)[gvk(smi.SpecsGroup, "v1alpha4", smi.TCPRouteKind)]
	v1alpha1 := mustConvert(t, hubRoute, "v1alpha1")
	if _, ok := v1alpha1.Object["spec"]; ok {
		t.Errorf("v1alpha1 has a spec: %v", v1alpha1.Object["spec"])
	}
	v1alpha1.SetLabels(map[string]string{"edited": "yes"})
	back := mustConvert(t, v1alpha1, "v1alpha4")
	want := hubRoute.DeepCopy()
	want.SetLabels(map[string]string{"edited": "yes"})
	if diff := cmp.Diff(want.Object, back.Object); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestUDPRouteConvertsOnlyToItself(t *testing.T) {
	udp := fixtures(t)[gvk(smi.SpecsGroup, "v1alpha4", smi.UDPRouteKind)]
	if diff := cmp.Diff(udp.Object, mustConvert(t, udp, "v1alpha4").Object); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := Convert(udp, "specs.smi-spec.io/v1alpha1"); err == nil {
		t.Error("UDPRoute converted to v1alpha1")
	}
}

package conversion

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// fixtures reads testdata/objects: one object of every served kind and version, with every field
// set, other annotations, and a status.
func fixtures(t testing.TB) map[schema.GroupVersionKind]*unstructured.Unstructured {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "objects", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	objs := map[schema.GroupVersionKind]*unstructured.Unstructured{}
	for _, file := range files {
		obj := readObject(t, file)
		objs[obj.GroupVersionKind()] = obj
	}
	for _, v := range versions {
		if objs[v.gvk] == nil {
			t.Fatalf("no fixture for %s", v.gvk)
		}
	}
	return objs
}

func readObject(t testing.TB, file string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return decodeObject(t, data)
}

func decodeObject(t testing.TB, data []byte) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		t.Fatalf("%v in %s", err, data)
	}
	return obj
}

// versionsOf lists the served versions of a kind, oldest first.
func versionsOf(gk schema.GroupKind) []string {
	var names []string
	for _, v := range versions {
		if v.gvk.GroupKind() == gk {
			names = append(names, v.gvk.Version)
		}
	}
	return names
}

func mustConvert(t testing.TB, obj *unstructured.Unstructured, version string) *unstructured.Unstructured {
	t.Helper()
	out, err := Convert(obj, obj.GroupVersionKind().Group+"/"+version)
	if err != nil {
		t.Fatalf("converting %s to %s: %v", obj.GetAPIVersion(), version, err)
	}
	if want := obj.GroupVersionKind().Group + "/" + version; out.GetAPIVersion() != want {
		t.Fatalf("converted object has apiVersion %s, want %s", out.GetAPIVersion(), want)
	}
	return out
}

func TestRoundTripThroughEveryOtherVersion(t *testing.T) {
	for gvk, original := range fixtures(t) {
		others := versionsOf(gvk.GroupKind())
		// Every path original -> a [-> b] -> back, so data kept in the annotation also survives
		// a stop in a version that did not need it.
		var paths [][]string
		for _, a := range others {
			if a == gvk.Version {
				continue
			}
			paths = append(paths, []string{a})
			for _, b := range others {
				if b != a {
					paths = append(paths, []string{a, b})
				}
			}
		}
		for _, path := range paths {
			name := gvk.Kind + "/" + gvk.Version + "->" + strings.Join(path, "->")
			t.Run(name, func(t *testing.T) {
				obj := original
				for _, version := range append(path, gvk.Version) {
					obj = mustConvert(t, obj, version)
				}
				if diff := cmp.Diff(original.Object, obj.Object); diff != "" {
					t.Errorf("round trip changed the object (-original +back):\n%s", diff)
				}
			})
		}
	}
}

func TestConvertKeepsMetadataStatusAndUnknownFields(t *testing.T) {
	for gvk, original := range fixtures(t) {
		in := original.DeepCopy()
		in.Object["extension"] = map[string]any{"note": "no SDK version has this field"}
		for _, version := range versionsOf(gvk.GroupKind()) {
			t.Run(gvk.Kind+"/"+gvk.Version+"->"+version, func(t *testing.T) {
				before := in.DeepCopy()
				out := mustConvert(t, in, version)
				if diff := cmp.Diff(before.Object, in.Object); diff != "" {
					t.Fatalf("Convert modified its input:\n%s", diff)
				}
				for _, field := range []string{"status", "extension"} {
					if diff := cmp.Diff(in.Object[field], out.Object[field]); diff != "" {
						t.Errorf("%s changed (-in +out):\n%s", field, diff)
					}
				}
				inMeta, outMeta := in.DeepCopy(), out.DeepCopy()
				for _, m := range []*unstructured.Unstructured{inMeta, outMeta} {
					annotations := m.GetAnnotations()
					delete(annotations, smi.ConversionDataAnnotation)
					m.SetAnnotations(annotations)
				}
				if diff := cmp.Diff(inMeta.Object["metadata"], outMeta.Object["metadata"]); diff != "" {
					t.Errorf("metadata changed beyond the conversion annotation (-in +out):\n%s", diff)
				}
			})
		}
	}
}

func TestConvertSameVersionReturnsACopy(t *testing.T) {
	for gvk, original := range fixtures(t) {
		out := mustConvert(t, original, gvk.Version)
		if diff := cmp.Diff(original.Object, out.Object); diff != "" {
			t.Errorf("%s: same-version conversion changed the object:\n%s", gvk, diff)
		}
		out.SetName("changed")
		if original.GetName() == "changed" {
			t.Errorf("%s: same-version conversion returned the input itself", gvk)
		}
	}
}

// TestConvertToHub pins what each older version means in the hub, and the annotation's format.
func TestConvertToHub(t *testing.T) {
	objs := fixtures(t)
	tests := []struct {
		from           schema.GroupVersionKind
		wantSpec       string
		wantAnnotation string // "" for none
	}{{
		from: gvk(smi.SplitGroup, "v1alpha1", smi.TrafficSplitKind),
		// {1, 500m, none} is 2:1:0 in milli-values.
		wantSpec:       `{"service":"web","backends":[{"service":"web-v1","weight":1000},{"service":"web-v2","weight":500},{"service":"web-canary","weight":0}]}`,
		wantAnnotation: `{"v1alpha1Backends":[{"service":"web-v1","weight":"1"},{"service":"web-v2","weight":"500m"},{"service":"web-canary"}]}`,
	}, {
		from:     gvk(smi.SplitGroup, "v1alpha2", smi.TrafficSplitKind),
		wantSpec: `{"service":"web","backends":[{"service":"web-v1","weight":90},{"service":"web-v2","weight":10},{"service":"web","weight":0}]}`,
	}, {
		from: gvk(smi.SplitGroup, "v1alpha3", smi.TrafficSplitKind),
		wantSpec: `{"service":"web","backends":[{"service":"web-v1","weight":75},{"service":"web-v2","weight":25}],
			"matches":[{"kind":"HTTPRouteGroup","apiGroup":"specs.smi-spec.io","name":"web-routes"},{"kind":"HTTPRouteGroup","name":"mobile-routes"}]}`,
	}, {
		from: gvk(smi.AccessGroup, "v1alpha1", smi.TrafficTargetKind),
		wantSpec: `{"destination":{"kind":"ServiceAccount","name":"api","namespace":"shop"},
			"sources":[{"kind":"ServiceAccount","name":"web","namespace":"shop"},{"kind":"ServiceAccount","name":"batch","namespace":"jobs"}],
			"rules":[{"kind":"HTTPRouteGroup","name":"api-routes","matches":["read","write"]},{"kind":"TCPRoute","name":"api-tcp"}]}`,
		wantAnnotation: `{"ports":[{"role":"destination","index":0,"kind":"ServiceAccount","name":"api","namespace":"shop","port":8080},` +
			`{"role":"source","index":1,"kind":"ServiceAccount","name":"batch","namespace":"jobs","port":9090}]}`,
	}, {
		from: gvk(smi.AccessGroup, "v1alpha2", smi.TrafficTargetKind),
		wantSpec: `{"destination":{"kind":"ServiceAccount","name":"api","namespace":"shop"},
			"sources":[{"kind":"ServiceAccount","name":"web","namespace":"shop"},{"kind":"ServiceAccount","name":"batch","namespace":"jobs"},{"kind":"ServiceAccount","name":"cron"}],
			"rules":[{"kind":"HTTPRouteGroup","name":"api-routes","matches":["read"]},{"kind":"TCPRoute","name":"api-tcp"}]}`,
		wantAnnotation: `{"ports":[{"role":"destination","index":0,"kind":"ServiceAccount","name":"api","namespace":"shop","port":8443},` +
			`{"role":"source","index":0,"kind":"ServiceAccount","name":"web","namespace":"shop","port":0},` +
			`{"role":"source","index":2,"kind":"ServiceAccount","name":"cron","port":9090}]}`,
	}, {
		from: gvk(smi.SpecsGroup, "v1alpha1", smi.HTTPRouteGroupKind),
		wantSpec: `{"matches":[{"name":"read","methods":["GET","HEAD"],"pathRegex":"/api/.*"},
			{"name":"write","methods":["POST","PUT"],"pathRegex":"/api/orders"},{"name":"everything","methods":["*"],"pathRegex":".*"}]}`,
	}, {
		from: gvk(smi.SpecsGroup, "v1alpha2", smi.HTTPRouteGroupKind),
		wantSpec: `{"matches":[{"name":"read","methods":["GET","HEAD"],"pathRegex":"/api/.*",
			"headers":[{"cookie":"^(.*?;)?(type=insecure)(;.*)?$"},{"user-agent":".*Firefox.*"},{"x-canary":"true"}]},
			{"name":"write","methods":["POST"],"pathRegex":"/api/orders"},{"name":"firefox-users","headers":[{"user-agent":".*Firefox.*"}]}]}`,
	}, {
		from:     gvk(smi.SpecsGroup, "v1alpha1", smi.TCPRouteKind),
		wantSpec: `{"matches":{}}`,
	}, {
		from:     gvk(smi.SpecsGroup, "v1alpha3", smi.TCPRouteKind),
		wantSpec: `{"matches":{}}`,
	}}
	for _, tt := range tests {
		t.Run(tt.from.String(), func(t *testing.T) {
			hubGV, _ := smi.HubFor(tt.from.Group)
			out := mustConvert(t, objs[tt.from], hubGV.Version)
			var want any
			if err := json.Unmarshal([]byte(tt.wantSpec), &want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, jsonValue(t, out.Object["spec"])); diff != "" {
				t.Errorf("hub spec (-want +got):\n%s", diff)
			}
			if got := out.GetAnnotations()[smi.ConversionDataAnnotation]; got != tt.wantAnnotation {
				t.Errorf("annotation\n got %s\nwant %s", got, tt.wantAnnotation)
			}
		})
	}
}

// TestConvertFromHub pins what the hub keeps in the annotation for each older version.
func TestConvertFromHub(t *testing.T) {
	objs := fixtures(t)
	tests := []struct {
		to             schema.GroupVersionKind
		wantAnnotation string
	}{
		{gvk(smi.SplitGroup, "v1alpha1", smi.TrafficSplitKind), `{"matches":[{"apiGroup":"specs.smi-spec.io","kind":"HTTPRouteGroup","name":"web-routes"}]}`},
		{gvk(smi.SplitGroup, "v1alpha2", smi.TrafficSplitKind), `{"matches":[{"apiGroup":"specs.smi-spec.io","kind":"HTTPRouteGroup","name":"web-routes"}]}`},
		{gvk(smi.SplitGroup, "v1alpha3", smi.TrafficSplitKind), ``},
		{gvk(smi.AccessGroup, "v1alpha1", smi.TrafficTargetKind), ``},
		{gvk(smi.SpecsGroup, "v1alpha1", smi.HTTPRouteGroupKind), `{"headers":[` +
			`{"index":0,"match":{"name":"read","methods":["GET","HEAD"],"pathRegex":"/api/.*"},"headers":{"cookie":"^(.*?;)?(type=insecure)(;.*)?$","user-agent":".*Firefox.*","x-canary":"true"},"order":["cookie","user-agent","x-canary"]},` +
			`{"index":2,"match":{"name":"firefox-users"},"headers":{"user-agent":".*Firefox.*"},"order":["user-agent"]}]}`},
		{gvk(smi.SpecsGroup, "v1alpha2", smi.HTTPRouteGroupKind), ``},
		{gvk(smi.SpecsGroup, "v1alpha3", smi.TCPRouteKind), `{"matches":{"name":"postgres","ports":[5432,6432]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.to.String(), func(t *testing.T) {
			hubGV, _ := smi.HubFor(tt.to.Group)
			out := mustConvert(t, objs[hubGV.WithKind(tt.to.Kind)], tt.to.Version)
			if got := out.GetAnnotations()[smi.ConversionDataAnnotation]; got != tt.wantAnnotation {
				t.Errorf("annotation\n got %s\nwant %s", got, tt.wantAnnotation)
			}
		})
	}
}

func TestConvertKeepsHeaderOrder(t *testing.T) {
	in := decodeObject(t, []byte(`{"apiVersion":"specs.smi-spec.io/v1alpha2","kind":"HTTPRouteGroup","metadata":{"name":"h"},
		"matches":[{"name":"m","headers":[{"x-f":"6"},{"x-b":"2"},{"x-e":"5"},{"x-a":"1"},{"x-d":"4"},{"x-c":"3"}]}]}`))
	want, _, _ := unstructured.NestedSlice(in.Object, "matches")
	wantHeaders := want[0].(map[string]any)["headers"]
	// Go randomizes map order on each iteration: repeat to see that the output does not depend on it.
	for range 20 {
		for _, version := range []string{"v1alpha3", "v1alpha4"} {
			out := mustConvert(t, in, version)
			matches, _, _ := unstructured.NestedSlice(out.Object, "spec", "matches")
			if got := matches[0].(map[string]any)["headers"]; !reflect.DeepEqual(got, wantHeaders) {
				t.Fatalf("%s headers = %v, want the order written %v", version, got, wantHeaders)
			}
		}
		// v1alpha1 has no headers: the annotation keeps them, and their order, for the way back.
		back := mustConvert(t, mustConvert(t, in, "v1alpha1"), "v1alpha2")
		matches, _, _ := unstructured.NestedSlice(back.Object, "matches")
		if got := matches[0].(map[string]any)["headers"]; !reflect.DeepEqual(got, wantHeaders) {
			t.Fatalf("through v1alpha1 headers = %v, want the order written %v", got, wantHeaders)
		}
	}
}

func TestConvertSortsHeadersOfUnknownOrderByName(t *testing.T) {
	// An annotation saved without an order (or naming other headers) leaves the order unknown.
	in := decodeObject(t, []byte(`{"apiVersion":"specs.smi-spec.io/v1alpha1","kind":"HTTPRouteGroup","metadata":{"name":"h",
		"annotations":{"smi-operator.io/conversion-data":"{\"headers\":[{\"index\":0,\"match\":{\"name\":\"m\"},\"headers\":{\"x-c\":\"3\",\"x-a\":\"1\",\"x-b\":\"2\"}}]}"}},
		"matches":[{"name":"m"}]}`))
	want := []any{map[string]any{"x-a": "1"}, map[string]any{"x-b": "2"}, map[string]any{"x-c": "3"}}
	for range 20 {
		out := mustConvert(t, in, "v1alpha4")
		matches, _, _ := unstructured.NestedSlice(out.Object, "spec", "matches")
		if got := matches[0].(map[string]any)["headers"]; !reflect.DeepEqual(got, want) {
			t.Fatalf("headers = %v, want sorted %v", got, want)
		}
	}
}

func TestConvertRejects(t *testing.T) {
	tests := []struct {
		name, object, to, wantErr string
	}{
		{"unknown kind", `{"apiVersion":"split.smi-spec.io/v1alpha1","kind":"TrafficSplat","metadata":{"name":"x"}}`,
			"split.smi-spec.io/v1alpha4", "not an SMI kind and version"},
		{"unknown source version", `{"apiVersion":"split.smi-spec.io/v1alpha9","kind":"TrafficSplit"}`,
			"split.smi-spec.io/v1alpha4", "not an SMI kind and version"},
		{"unknown target version", `{"apiVersion":"split.smi-spec.io/v1alpha1","kind":"TrafficSplit"}`,
			"split.smi-spec.io/v1", "not served as split.smi-spec.io/v1"},
		{"other group", `{"apiVersion":"split.smi-spec.io/v1alpha1","kind":"TrafficSplit"}`,
			"access.smi-spec.io/v1alpha3", "stays within an API group"},
		{"malformed target", `{"apiVersion":"split.smi-spec.io/v1alpha1","kind":"TrafficSplit"}`,
			"a/b/c", "target version"},
		{"UDPRoute has one version", `{"apiVersion":"specs.smi-spec.io/v1alpha4","kind":"UDPRoute"}`,
			"specs.smi-spec.io/v1alpha3", "UDPRoute is not served as specs.smi-spec.io/v1alpha3"},
		{"spec of the wrong type", `{"apiVersion":"split.smi-spec.io/v1alpha2","kind":"TrafficSplit","spec":"all of it"}`,
			"split.smi-spec.io/v1alpha4", "cannot read the object as split.smi-spec.io/v1alpha2"},
		{"weight that is no quantity", `{"apiVersion":"split.smi-spec.io/v1alpha1","kind":"TrafficSplit","spec":{"backends":[{"service":"a","weight":"lots"}]}}`,
			"split.smi-spec.io/v1alpha4", "cannot read the object"},
		{"milli-value out of range", `{"apiVersion":"split.smi-spec.io/v1alpha1","kind":"TrafficSplit","spec":{"backends":[{"service":"a","weight":"500m"},{"service":"b","weight":"1e16"}]}}`,
			"split.smi-spec.io/v1alpha4", `backend "b": weight 10e15 is out of range`},
		{"whole value out of range", `{"apiVersion":"split.smi-spec.io/v1alpha1","kind":"TrafficSplit","spec":{"backends":[{"service":"a","weight":"1e19"}]}}`,
			"split.smi-spec.io/v1alpha4", `backend "a": weight 10e18 is out of range`},
		// ParseQuantity would take minutes on this one.
		{"exponent out of range", `{"apiVersion":"split.smi-spec.io/v1alpha1","kind":"TrafficSplit","spec":{"backends":[{"service":"a","weight":"1e-999999999"}]}}`,
			"split.smi-spec.io/v1alpha4", `backend "a": weight "1e-999999999" is out of range`},
		{"exponent beyond an int", `{"apiVersion":"split.smi-spec.io/v1alpha1","kind":"TrafficSplit","spec":{"backends":[{"service":"a","weight":"1e99999999999999999999"}]}}`,
			"split.smi-spec.io/v1alpha4", `is out of range`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := Convert(decodeObject(t, []byte(tt.object)), tt.to)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
			if elapsed := time.Since(start); elapsed > 10*time.Second {
				t.Errorf("took %v", elapsed)
			}
		})
	}
	if _, err := Convert(nil, "split.smi-spec.io/v1alpha4"); err == nil {
		t.Error("Convert(nil) did not fail")
	}
}

func TestConvertAcceptsGoValues(t *testing.T) {
	// A Go caller may build an object with int rather than int64, which unstructured's DeepCopy
	// would panic on.
	in := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
		"metadata": map[string]any{"name": "x", "generation": 2},
		"spec":     map[string]any{"service": "a", "backends": []any{map[string]any{"service": "b", "weight": 3}}},
		"status":   map[string]any{"observedGeneration": 2},
	}}
	out := mustConvert(t, in, "v1alpha4")
	if w, _, _ := unstructured.NestedSlice(out.Object, "spec", "backends"); w[0].(map[string]any)["weight"] != int64(3) {
		t.Errorf("backends = %v", w)
	}
	if g, _, _ := unstructured.NestedInt64(out.Object, "status", "observedGeneration"); g != 2 {
		t.Errorf("status = %v", out.Object["status"])
	}
}

func gvk(group, version, kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: group, Version: version, Kind: kind}
}

// jsonValue is v after a JSON round trip through any, for comparing with a decoded literal.
func jsonValue(t testing.TB, v any) any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEveryServedVersionIsRegistered(t *testing.T) {
	var got []schema.GroupVersion
	for _, v := range versions {
		if !slices.Contains(got, v.gvk.GroupVersion()) {
			got = append(got, v.gvk.GroupVersion())
		}
	}
	if diff := cmp.Diff(smi.GroupVersions, got); diff != "" {
		t.Errorf("conversion versions differ from smi.GroupVersions (-smi +conversion):\n%s", diff)
	}
}

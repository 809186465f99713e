package conversion

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	accessv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha1"
	accessv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha2"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"

	"github.com/smi-operator/smi-operator/apis/smi"
)

func TestV1alpha1PortsShowInV1alpha2(t *testing.T) {
	v1alpha1 := fixtures(t)[gvk(smi.AccessGroup, "v1alpha1", smi.TrafficTargetKind)]
	v1alpha2 := mustConvert(t, v1alpha1, "v1alpha2")
	want := map[string]any{
		"destination": map[string]any{"kind": "ServiceAccount", "name": "api", "namespace": "shop", "port": int64(8080)},
		"sources": []any{
			map[string]any{"kind": "ServiceAccount", "name": "web", "namespace": "shop"},
			map[string]any{"kind": "ServiceAccount", "name": "batch", "namespace": "jobs", "port": int64(9090)},
		},
		"rules": []any{
			map[string]any{"kind": "HTTPRouteGroup", "name": "api-routes", "matches": []any{"read", "write"}},
			map[string]any{"kind": "TCPRoute", "name": "api-tcp"},
		},
	}
	if diff := cmp.Diff(want, v1alpha2.Object["spec"]); diff != "" {
		t.Errorf("v1alpha2 spec (-want +got):\n%s", diff)
	}
	if _, ok := v1alpha2.GetAnnotations()[smi.ConversionDataAnnotation]; ok {
		t.Errorf("v1alpha2 holds every port, yet the annotation is left: %v", v1alpha2.GetAnnotations())
	}
}

func TestPortZeroOfV1alpha2SurvivesV1alpha1(t *testing.T) {
	v1alpha2 := fixtures(t)[gvk(smi.AccessGroup, "v1alpha2", smi.TrafficTargetKind)]
	v1alpha1 := mustConvert(t, v1alpha2, "v1alpha1")
	sources, _, _ := unstructured.NestedSlice(v1alpha1.Object, "sources")
	if _, ok := sources[0].(map[string]any)["port"]; ok {
		t.Errorf("v1alpha1 shows port 0: %v", sources[0])
	}
	// Only the 0, which v1alpha1 cannot show, stays in the annotation.
	want := `{"ports":[{"role":"source","index":0,"kind":"ServiceAccount","name":"web","namespace":"shop","port":0}]}`
	if got := v1alpha1.GetAnnotations()[smi.ConversionDataAnnotation]; got != want {
		t.Errorf("annotation\n got %s\nwant %s", got, want)
	}
	// A v1alpha1 client that sets a port replaces the 0.
	sources[0].(map[string]any)["port"] = int64(81)
	_ = unstructured.SetNestedSlice(v1alpha1.Object, sources, "sources")
	back := mustConvert(t, v1alpha1, "v1alpha2")
	if backSources, _, _ := unstructured.NestedSlice(back.Object, "spec", "sources"); backSources[0].(map[string]any)["port"] != int64(81) {
		t.Errorf("sources = %v, want port 81 on the first", backSources)
	}
}

func TestPortsOfChangedSubjectsAreDropped(t *testing.T) {
	v1alpha1 := fixtures(t)[gvk(smi.AccessGroup, "v1alpha1", smi.TrafficTargetKind)]
	hubTarget := mustConvert(t, v1alpha1, "v1alpha3")
	sources, _, _ := unstructured.NestedSlice(hubTarget.Object, "spec", "sources")
	sources[1].(map[string]any)["namespace"] = "batch-jobs" // another identity: its port is not known
	_ = unstructured.SetNestedSlice(hubTarget.Object, sources, "spec", "sources")
	back := mustConvert(t, hubTarget, "v1alpha1")
	want := []any{
		map[string]any{"kind": "ServiceAccount", "name": "web", "namespace": "shop"},
		map[string]any{"kind": "ServiceAccount", "name": "batch", "namespace": "batch-jobs"},
	}
	if diff := cmp.Diff(want, back.Object["sources"]); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
	if port, _, _ := unstructured.NestedInt64(back.Object, "destination", "port"); port != 8080 {
		t.Errorf("destination port = %d, want 8080", port)
	}
	if _, ok := back.GetAnnotations()[smi.ConversionDataAnnotation]; ok {
		t.Errorf("annotation left: %v", back.GetAnnotations())
	}
}

func TestPortsFollowReorderedAndRepeatedSources(t *testing.T) {
	v1alpha1 := decodeObject(t, []byte(`{"apiVersion":"access.smi-spec.io/v1alpha1","kind":"TrafficTarget","metadata":{"name":"t"},
		"destination":{"kind":"ServiceAccount","name":"api"},
		"sources":[{"kind":"ServiceAccount","name":"a","port":1},{"kind":"ServiceAccount","name":"b","port":2},{"kind":"ServiceAccount","name":"a","port":3}],
		"specs":[{"kind":"TCPRoute","name":"r"}]}`))
	hubTarget := mustConvert(t, v1alpha1, "v1alpha3")
	sources, _, _ := unstructured.NestedSlice(hubTarget.Object, "spec", "sources")
	sources[0], sources[1] = sources[1], sources[0] // b, a, a
	_ = unstructured.SetNestedSlice(hubTarget.Object, sources, "spec", "sources")
	back := mustConvert(t, hubTarget, "v1alpha1")
	want := []any{
		map[string]any{"kind": "ServiceAccount", "name": "b", "port": int64(2)},
		map[string]any{"kind": "ServiceAccount", "name": "a", "port": int64(1)},
		map[string]any{"kind": "ServiceAccount", "name": "a", "port": int64(3)},
	}
	if diff := cmp.Diff(want, back.Object["sources"]); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
}

// TestTrafficTargetDestinationPort checks that the port read from a hub TrafficTarget is the one its
// v1alpha1 or v1alpha2 author wrote, and always the one reading it as v1alpha2 shows.
func TestTrafficTargetDestinationPort(t *testing.T) {
	port := func(p int) *int { return &p }
	destination := func(name string) accessv1alpha3.IdentityBindingSubject {
		return accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: name}
	}
	fromV1alpha1 := func(p int) *accessv1alpha3.TrafficTarget {
		out, err := TrafficTargetV1alpha1ToHub(&accessv1alpha1.TrafficTarget{
			Destination: accessv1alpha1.IdentityBindingSubject{Kind: "ServiceAccount", Name: "api", Port: p},
			Sources:     []accessv1alpha1.IdentityBindingSubject{{Kind: "ServiceAccount", Name: "web", Port: 9999}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	fromV1alpha2 := func(p *int) *accessv1alpha3.TrafficTarget {
		out, err := TrafficTargetV1alpha2ToHub(&accessv1alpha2.TrafficTarget{Spec: accessv1alpha2.TrafficTargetSpec{
			Destination: accessv1alpha2.IdentityBindingSubject{Kind: "ServiceAccount", Name: "api", Port: p},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	renamed := fromV1alpha2(port(9090))
	renamed.Spec.Destination = destination("other")
	undecodable := &accessv1alpha3.TrafficTarget{Spec: accessv1alpha3.TrafficTargetSpec{Destination: destination("api")}}
	undecodable.Annotations = map[string]string{smi.ConversionDataAnnotation: `{"ports":`}

	for _, tc := range []struct {
		name    string
		in      *accessv1alpha3.TrafficTarget
		want    *int
		wantErr bool
	}{
		{name: "v1alpha1 with a port", in: fromV1alpha1(8080), want: port(8080)},
		{name: "v1alpha1 without a port (a source's port is not the destination's)", in: fromV1alpha1(0)},
		{name: "v1alpha2 with a port", in: fromV1alpha2(port(9090)), want: port(9090)},
		{name: "v1alpha2 without a port", in: fromV1alpha2(nil)},
		{name: "v1alpha3", in: &accessv1alpha3.TrafficTarget{Spec: accessv1alpha3.TrafficTargetSpec{Destination: destination("api")}}},
		{name: "destination changed since the port was written", in: renamed},
		{name: "annotation that does not decode", in: undecodable, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TrafficTargetDestinationPort(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want one: %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("port (-want +got):\n%s", diff)
			}
			v1alpha2, err := TrafficTargetHubToV1alpha2(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(v1alpha2.Spec.Destination.Port, got); diff != "" {
				t.Errorf("port differs from the v1alpha2 view's (-v1alpha2 +got):\n%s", diff)
			}
		})
	}
}

package smi

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
)

func TestAddToSchemeRegistersEveryServedKind(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	kinds := map[string][]string{
		SplitGroup:  {TrafficSplitKind},
		AccessGroup: {TrafficTargetKind},
		SpecsGroup:  {HTTPRouteGroupKind, TCPRouteKind},
	}
	for _, gv := range GroupVersions {
		for _, kind := range kinds[gv.Group] {
			for _, k := range []string{kind, kind + "List"} {
				if !s.Recognizes(gv.WithKind(k)) {
					t.Errorf("%s is not registered", gv.WithKind(k))
				}
			}
		}
	}
	for _, k := range []string{UDPRouteKind, UDPRouteKind + "List"} {
		if !s.Recognizes(SpecsHub.WithKind(k)) {
			t.Errorf("%s is not registered", SpecsHub.WithKind(k))
		}
	}
}

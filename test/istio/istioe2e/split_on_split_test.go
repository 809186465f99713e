package istioe2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
)

// TestSplitOnASplitsBackendOnIstiod: for every served version of TrafficSplit, a split whose
// backend ("mid") is the apex of another split. istiod does not chain them: a VirtualService
// applies to the host a client dials, not to the destination of another VirtualService's route,
// and istiod builds proxyless gRPC's routes that way too (the outer route's weighted clusters are
// the backends' own, outbound|80||<backend>, holding their own endpoints). So the outer split's
// share of mid lands on mid's own workload, and mid's split applies only to clients that dial
// mid. The xDS backend does the same by construction (its backend clusters hold the backend
// Service's own endpoints, translators/xds), so the two backends agree. Both splits report
// Programmed, and neither says anything about the other.
func TestSplitOnASplitsBackendOnIstiod(t *testing.T) {
	m := start(t)
	for _, version := range []string{"v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"} {
		t.Run(version, func(t *testing.T) { splitOnASplitsBackend(t, m, version) })
	}
}

func splitOnASplitsBackend(t *testing.T, m *meshEnv, version string) {
	ctx := context.Background()
	ns := m.namespace(t, "split-on-split-"+version)
	for i, name := range []string{"apex", "mid", "v1", "v2", "v3"} {
		m.service(t, ns, name, netns.Addr(3+i))
	}
	m.pod(t, ns, "client", "client", clientAddr)
	toApex, toMid := m.dial(t, ns, "apex"), m.dial(t, ns, "mid")
	wait(t, ctx, func(ctx context.Context) error { return grpcxds.WaitOnly(ctx, toApex, "apex", 20) })
	wait(t, ctx, func(ctx context.Context) error { return grpcxds.WaitOnly(ctx, toMid, "mid", 20) })

	// The inner split first, seen by a client of mid, so that istiod has it before the outer one.
	inner := m.split(t, version, ns, "mid", 80, 20)
	wait(t, ctx, func(ctx context.Context) error { return grpcxds.WaitFor(ctx, toMid, notFrom("mid")) })
	shares(t, ctx, toMid, map[string]float64{"v1": 80, "v2": 20})

	outer := m.createSMI(t, "split.smi-spec.io/"+version, "TrafficSplit", ns, "apex", map[string]any{
		"service":  "apex",
		"backends": []any{map[string]any{"service": "mid", "weight": weight(version, 50)}, map[string]any{"service": "v3", "weight": weight(version, 50)}},
	})
	wait(t, ctx, func(ctx context.Context) error { return grpcxds.WaitFor(ctx, toApex, notFrom("apex")) })
	// Chained, the calls would spread as v1 40, v2 10, v3 50. Not chained, mid's own workload
	// answers its half, and v1 and v2 get no call (CheckShares requires none for a backend it is
	// not given).
	counts, err := grpcxds.Distribution(ctx, toApex, calls)
	if err != nil {
		t.Fatal(err)
	}
	if grpcxds.CheckShares(counts, map[string]float64{"v1": 40, "v2": 10, "v3": 50}) == nil {
		t.Fatalf("istiod chained the splits: calls to apex spread as %v", counts)
	}
	if err := grpcxds.CheckShares(counts, map[string]float64{"mid": 50, "v3": 50}); err != nil {
		t.Fatal(err)
	}
	t.Logf("calls to apex spread as %v: the outer split's share of mid goes to mid's own workload, not through mid's split", counts)
	// And mid's own clients still get mid's split.
	shares(t, ctx, toMid, map[string]float64{"v1": 80, "v2": 20})

	// What the operator says of it (statuses are written after the mesh is programmed): both
	// splits programmed, and nothing about the other split.
	for _, split := range []*unstructured.Unstructured{inner, outer} {
		var said []string
		wait(t, ctx, func(ctx context.Context) error {
			for {
				if err := m.client.Get(ctx, client.ObjectKeyFromObject(split), split); err != nil {
					return err
				}
				said = nil
				programmed := ""
				conditions, _, _ := unstructured.NestedSlice(split.Object, "status", "conditions")
				for _, c := range conditions {
					f, _ := c.(map[string]any)
					said = append(said, fmt.Sprintf("%v=%v (%v: %v)", f["type"], f["status"], f["reason"], f["message"]))
					if f["type"] == "Programmed" {
						programmed, _ = f["status"].(string)
					}
				}
				if programmed == "True" {
					return nil
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("split %s is not Programmed: %v", split.GetName(), said)
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
		t.Logf("split %s reports: %v", split.GetName(), said)
	}
}

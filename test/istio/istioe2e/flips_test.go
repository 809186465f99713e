package istioe2e

import (
	"context"
	"slices"
	"testing"

	"github.com/smi-operator/smi-operator/test/grpcxds"
)

// TestFlipsLoseNoCallOnIstiod flips a split's whole traffic between its backends, then sets every
// weight to zero and deletes the split, while a proxyless client of istiod calls back to back:
// each change moves the calls to a backend (or the apex) they did not go to, and none of them
// fails. The client must already hold each destination's cluster when the routes move it there
// (noRPCLost): the operator's VirtualService names the split's backends without traffic, and the
// apex, on a standby route.
func TestFlipsLoseNoCallOnIstiod(t *testing.T) {
	m := start(t)
	ns := m.namespace(t, "flips")
	c := m.apexAndBackends(t, ns)
	split := m.split(t, "v1alpha4", ns, "apex", 100, 0)
	wait(t, context.Background(), func(ctx context.Context) error { return grpcxds.WaitOnly(ctx, c, "v1", 50) })

	calls := callContinuously(c)
	t.Cleanup(calls.stop)
	want := []string{"v1"}
	for _, step := range []struct {
		v1, v2 int
		to     string
	}{{0, 100, "v2"}, {100, 0, "v1"}, {0, 100, "v2"}, {100, 0, "v1"}, {0, 0, "apex"}, {0, 100, "v2"}} {
		m.setWeights(t, split, step.v1, step.v2)
		wait(t, context.Background(), func(ctx context.Context) error { return calls.waitFor(ctx, step.to) })
		want = append(want, step.to)
	}
	if err := m.client.Delete(context.Background(), split); err != nil {
		t.Fatal(err)
	}
	wait(t, context.Background(), func(ctx context.Context) error { return calls.waitFor(ctx, "apex") })
	want = append(want, "apex")

	calls.stop()
	runs, failures := calls.seen()
	t.Logf("the calls through the flips: %v, %d failed", runs, len(failures))
	noRPCLost(t, "the client through the flips", failures)
	if !slices.Equal(backendsOf(runs), want) {
		t.Errorf("the calls were answered by %v; want %v, each change followed once", runs, want)
	}
}

package istioe2e

import (
	"context"
	"testing"
	"time"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// TestSwapIstioToGammaOnIstiod: swapping the backend istio → gamma while a proxyless client of
// istiod calls continuously, with the whole split on v1, loses no RPC and no call leaves the split
// (none reaches the apex): the routes are written before the VirtualService goes, and istiod
// applies them. The swap on to xds is not shown here: a proxyless client follows the one xDS server
// its bootstrap names, so a client of istiod keeps istiod's routes (none, once the routes are
// deleted: its calls go back to the apex), and a client of the operator's xDS server is another
// client.
func TestSwapIstioToGammaOnIstiod(t *testing.T) {
	m := start(t)
	if err := testenv.InstallGatewayAPICRDs(m.env.Config, testenv.GatewayAPIStandard); err != nil {
		t.Fatal(err)
	}
	ns := m.namespace(t, "swap-to-gamma")
	c := m.apexAndBackends(t, ns)
	m.split(t, "v1alpha4", ns, "apex", 100, 0)
	wait(t, context.Background(), func(ctx context.Context) error { return grpcxds.WaitOnly(ctx, c, "v1", 50) })

	ctx, stop := context.WithCancel(context.Background())
	answered, failed := map[string]int{}, 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			r, err := grpcxds.Call(ctx, c)
			switch {
			case ctx.Err() != nil:
			case err != nil:
				failed++
			default:
				answered[r.Backend]++
			}
		}
	}()
	t.Cleanup(func() { m.setBackend(t, v1alpha1.BackendIstio) })
	m.setBackend(t, v1alpha1.BackendGamma)
	// The VirtualService's deletion reaches the client after the swap is reported done.
	time.Sleep(2 * time.Second)
	stop()
	<-done
	m.noVirtualServices(t, ns)
	t.Logf("through the swap: %v answered, %d failed", answered, failed)
	if failed > 0 || len(answered) != 1 || answered["v1"] == 0 {
		t.Errorf("through the swap istio → gamma, %d RPCs failed and %v answered; want every one answered by v1", failed, answered)
	}
}

package bootstrap_test

import (
	"path/filepath"
	"testing"

	"github.com/smi-operator/smi-operator/internal/golden"
	"github.com/smi-operator/smi-operator/xds/bootstrap"
)

// TestEnvoyGolden pins the Envoy sidecar's bootstrap; Build refuses one that fails ValidateAll.
func TestEnvoyGolden(t *testing.T) {
	out, err := bootstrap.Envoy{NodeID: "web-7d9f8c-x2x4z.shop", Namespace: "shop", ServiceAccount: "web"}.JSON()
	if err != nil {
		t.Fatal(err)
	}
	golden.Compare(t, filepath.Join("testdata", "envoy.golden.json"), string(out)+"\n")
}

// TestEnvoyNeedsAnIdentity: a bootstrap without the node's identity is refused, not written with
// empty metadata the xDS server would refuse at the first request.
func TestEnvoyNeedsAnIdentity(t *testing.T) {
	for _, e := range []bootstrap.Envoy{
		{Namespace: "shop", ServiceAccount: "web"},
		{NodeID: "web.shop", ServiceAccount: "web"},
		{NodeID: "web.shop", Namespace: "shop"},
	} {
		if _, err := e.JSON(); err == nil {
			t.Errorf("%+v: built", e)
		}
	}
}

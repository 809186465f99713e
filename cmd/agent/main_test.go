package agent

import (
	"io"
	"strings"
	"testing"

	"github.com/smi-operator/smi-operator/xds/bootstrap"
)

func env(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

var pod = map[string]string{"POD_NAME": "web-1", "POD_NAMESPACE": "shop", "SERVICE_ACCOUNT": "web", "INSTANCE_IP": "10.0.0.7"}

// TestParse: the pod comes from the downward API's variables, the paths from the pod layout (the
// workload's files under --workload-dir), and what is missing or wrong is named.
func TestParse(t *testing.T) {
	opts, health, err := parse([]string{"--proxy", "grpc", "--xds-address", "smi-operator-xds.smi-operator-system.svc:15010"}, env(pod), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if opts.PodName != "web-1" || opts.PodNamespace != "shop" || opts.ServiceAccount != "web" || opts.InstanceIP != "10.0.0.7" {
		t.Errorf("pod %+v", opts)
	}
	if opts.Paths.CertChainFile != bootstrap.CertChainFile || opts.Paths.Socket != bootstrap.AgentSocket ||
		opts.Paths.TokenFile != bootstrap.TokenFile || opts.Paths.TrustBundleFile != bootstrap.TrustBundleFile || health != ":15020" {
		t.Errorf("paths %+v, health %q: want the pod layout", opts.Paths, health)
	}
	opts, _, err = parse([]string{"--proxy", "envoy", "--xds-address", "x:1", "--workload-dir", "/tmp/w"}, env(pod), io.Discard)
	if err != nil || opts.Paths.KeyFile != "/tmp/w/key.pem" || opts.Paths.TokenFile != bootstrap.TokenFile {
		t.Errorf("--workload-dir: %+v, %v", opts.Paths, err)
	}

	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--xds-address", "x:1"}, pod, `--proxy ""`},
		{[]string{"--proxy", "sidecar", "--xds-address", "x:1"}, pod, `--proxy "sidecar"`},
		{[]string{"--proxy", "grpc"}, pod, "--xds-address is required"},
		{[]string{"--proxy", "grpc", "--xds-address", "x:1"}, map[string]string{"POD_NAME": "a", "POD_NAMESPACE": "b"}, "SERVICE_ACCOUNT is required"},
	} {
		if _, _, err := parse(tc.args, env(tc.env), io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parse(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

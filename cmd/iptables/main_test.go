package iptables_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smi-operator/smi-operator/cmd/iptables"
	"github.com/smi-operator/smi-operator/internal/golden"
)

// TestDryRunGolden pins the rules a fresh pod gets (iptables-restore input, both families) for the
// defaults and for every option; the netns test proves what they do.
func TestDryRunGolden(t *testing.T) {
	for name, args := range map[string]string{
		"defaults": "--ipv6 true",
		"options": "--ipv6 true --proxy-uid 2000 --proxy-gid 2001 --outbound-port 16001 --inbound-port 16006 " +
			"--include-inbound-ports 8080,9090,8080 --exclude-inbound-ports 9090 --exclude-outbound-ports 5432,6379 " +
			"--exclude-outbound-cidrs 10.0.0.0/8,192.168.1.7/16,fd00::/8",
		"ipv4-only": "--ipv6 false --include-inbound-ports ''",
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			fields := strings.Fields(strings.ReplaceAll(args, "''", ""))
			if strings.Contains(args, "''") {
				fields = append(fields, "") // an empty --include-inbound-ports: capture no inbound port
			}
			if code := iptables.Main(append([]string{"--dry-run"}, fields...), &stdout, &stderr); code != iptables.ExitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			golden.Compare(t, filepath.Join("testdata", name+".golden"), stdout.String())
		})
	}
}

// TestRefusesBadFlags: a malformed value is refused with exit code 2 and a message naming the flag,
// before anything is applied.
func TestRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--exclude-inbound-ports", "80,http"}, `--exclude-inbound-ports: "http" is not a port`},
		{[]string{"--exclude-outbound-ports", "70000"}, `--exclude-outbound-ports: "70000" is not a port`},
		{[]string{"--exclude-outbound-ports", "*"}, `--exclude-outbound-ports: "*" is not allowed here`},
		{[]string{"--include-inbound-ports", "0"}, `--include-inbound-ports: "0" is not a port`},
		{[]string{"--exclude-outbound-cidrs", "10.0.0.0"}, `--exclude-outbound-cidrs: "10.0.0.0" is not a CIDR`},
		{[]string{"--outbound-port", "0"}, "--outbound-port: 0 is not a port"},
		{[]string{"--inbound-port", "15001"}, "--outbound-port and --inbound-port are both 15001"},
		{[]string{"--proxy-uid", "4294967296"}, "--proxy-uid: 4294967296 is not an ID"},
		{[]string{"--ipv6", "yes"}, `--ipv6: "yes" is not auto, true or false`},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
	} {
		var stdout, stderr bytes.Buffer
		code := iptables.Main(append([]string{"--dry-run"}, tc.args...), &stdout, &stderr)
		if code != iptables.ExitUsage || !strings.Contains(stderr.String(), tc.want) || stdout.Len() != 0 {
			t.Errorf("%q: exit %d, stderr %q, stdout %q; want exit %d and %q", tc.args, code, stderr.String(), stdout.String(), iptables.ExitUsage, tc.want)
		}
	}
}

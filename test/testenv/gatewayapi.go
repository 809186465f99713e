package testenv

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Gateway API release channels, as the sigs.k8s.io/gateway-api module ships its CRDs.
const (
	GatewayAPIStandard     = "standard"
	GatewayAPIExperimental = "experimental"
)

// InstallGatewayAPICRDs installs, or replaces, the Gateway API CRDs of one release channel from
// the sigs.k8s.io/gateway-api module the operator builds with (config/crd/<channel>), so that
// routes are checked by the spec's own schemas and CEL rules. Like Istio's, they are installed
// apart from the SMI CRDs, which envtest points at the SMI conversion webhook. The channel's
// ValidatingAdmissionPolicy (safe upgrades) is not a CRD and is left out, so that a test may move
// from one channel to the other. With resources (plurals: "httproutes", "grpcroutes"), only
// their CRDs are installed: a cluster whose Gateway API lacks the others (a release before
// TCPRoute was standard).
func InstallGatewayAPICRDs(cfg *rest.Config, channel string, resources ...string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("locating the sigs.k8s.io/gateway-api module: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", channel)
	paths := []string{dir}
	if len(resources) > 0 {
		paths = nil
		for _, r := range resources {
			paths = append(paths, filepath.Join(dir, gatewayv1.GroupName+"_"+r+".yaml"))
		}
	}
	_, err = envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: paths, ErrorIfPathMissing: true})
	if err != nil {
		return fmt.Errorf("installing the Gateway API CRDs of %s: %w", dir, err)
	}
	return nil
}

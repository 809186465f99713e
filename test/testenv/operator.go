package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// BuildOperator builds the operator's binary (the repository's main package, as `make build`
// does) into dir and returns its path, for suites that run the operator as its own process.
func BuildOperator(dir string) (string, error) {
	return BuildOperatorTagged(dir, "smi-operator")
}

// BuildOperatorTagged builds the operator's binary like BuildOperator, into dir/name, with the
// given build tags: a test build, such as one with a deliberate bug a suite must catch.
func BuildOperatorTagged(dir, name string, tags ...string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	binary := filepath.Join(dir, name)
	args := []string{"build", "-o", binary}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	build := exec.Command("go", append(args, ".")...)
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building the operator in %s (tags %v): %w", root, tags, err)
	}
	return binary, nil
}

// OperatorArgs are the flags an operator process needs to serve this control plane: its
// kubeconfig (written by WriteKubeconfig), and the webhooks on the port and with the certificate
// that the installed CRDs and webhook configuration call and trust (so no certificate rotation).
func (e *Env) OperatorArgs(kubeconfig string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--cert-rotation=false",
		"--webhook-port=" + strconv.Itoa(e.Webhook.LocalServingPort),
		"--webhook-cert-dir=" + e.Webhook.LocalServingCertDir,
	}
}

package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// BuildOperator builds the operator's binary (the repository's main package, as `make build`
// does) into dir and returns its path, for suites that run the operator as its own process.
func BuildOperator(dir string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	binary := filepath.Join(dir, "smi-operator")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building the operator in %s: %w", root, err)
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

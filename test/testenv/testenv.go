// Package testenv starts a real control plane (kube-apiserver + etcd, built by
// hack/control-plane.sh) with the operator's CRDs and webhook configurations installed, the
// webhooks pointed at a local server. The e2e suites and `make run`'s embedded cluster share it.
package testenv

import (
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Options tune the control plane.
type Options struct {
	// APIServerFlags are set on kube-apiserver, e.g. "service-cluster-ip-range" for scale tests.
	APIServerFlags map[string]string
	// IstioCRDs is a file of Istio's CRDs to install instead of those of the istio.io/api module
	// the operator builds with: an Istio release's own (manifests/charts/base/files/crd-all.gen.yaml),
	// for suites that run that release's istiod.
	IstioCRDs string
	// WithoutIstioCRDs installs none of Istio's CRDs: a cluster without Istio.
	WithoutIstioCRDs bool
}

// Env is a running control plane.
type Env struct {
	Config  *rest.Config
	Webhook *envtest.WebhookInstallOptions // local serving host, port and certificate folder
	env     *envtest.Environment
}

// modulePath is the operator's module; RepoRoot looks for its go.mod.
const modulePath = "github.com/smi-operator/smi-operator"

// RepoRoot finds the repository root (the folder holding the operator's go.mod) from the working
// directory, passing over the go.mod of nested modules (test/istio) on the way up.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && declaresModule(data, modulePath) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", modulePath)
		}
		dir = parent
	}
}

// declaresModule reports whether go.mod content declares the module path.
func declaresModule(gomod []byte, path string) bool {
	for _, line := range strings.Split(string(gomod), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module"); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`) == path
		}
	}
	return false
}

// assetsDir is KUBEBUILDER_ASSETS when set (make test sets it), else the cache folder that
// hack/control-plane.sh builds into, so `go test` alone works once `make test` has run.
func assetsDir(root string) (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	out, err := exec.Command("bash", filepath.Join(root, "hack", "control-plane.sh"), "--print-dir").Output()
	if err != nil {
		return "", fmt.Errorf("locating the control plane binaries: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Errorf("%s is not built yet: run `make test` (or hack/control-plane.sh) once", filepath.Join(dir, bin))
		}
	}
	return dir, nil
}

// Start starts the control plane and installs Istio's CRDs (unless opts says not to) and the SMI CRDs (conversion through
// https://<Webhook.LocalServingHost>:<Webhook.LocalServingPort>/convert) and the validating webhook
// configuration from config/webhook, both trusting Webhook.LocalServingCertDir's certificate.
func Start(opts Options) (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := assetsDir(root)
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			Paths: []string{filepath.Join(root, "config", "webhook")},
			// The SMI Go types come from smi-sdk-go and cannot implement controller-runtime's
			// conversion interfaces; our own handler serves /convert for every SMI CRD.
			IgnoreSchemeConvertible: true,
		},
	}
	apiServer := env.ControlPlane.GetAPIServer().Configure()
	for k, v := range opts.APIServerFlags {
		apiServer.Set(k, v)
	}
	cfg, err := env.Start()
	if err == nil && !opts.WithoutIstioCRDs {
		err = installIstioCRDs(root, opts.IstioCRDs, cfg)
	}
	if err != nil {
		// envtest leaves the processes it started running when a later step (CRDs, webhooks) fails.
		_ = env.Stop()
		return nil, fmt.Errorf("starting the control plane from %s: %w", assets, err)
	}
	return &Env{Config: cfg, Webhook: &env.WebhookInstallOptions, env: env}, nil
}

// installIstioCRDs installs Istio's own CRDs, from the istio.io/api module the operator builds
// with. They are installed apart from the SMI CRDs: envtest would point every multi-version CRD it
// installs at the SMI conversion webhook, and Istio's versions share one schema (no webhook).
func installIstioCRDs(root, file string, cfg *rest.Config) error {
	if file == "" {
		cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api")
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("locating the istio.io/api module: %w", err)
		}
		file = filepath.Join(strings.TrimSpace(string(out)), "kubernetes", "customresourcedefinitions.gen.yaml")
	}
	_, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: []string{file}, ErrorIfPathMissing: true})
	return err
}

// WebhookServer returns a webhook server listening where the installed CRDs and webhook
// configuration call, with the certificate they trust.
func (e *Env) WebhookServer() webhook.Server {
	return webhook.NewServer(webhook.Options{
		Host:    e.Webhook.LocalServingHost,
		Port:    e.Webhook.LocalServingPort,
		CertDir: e.Webhook.LocalServingCertDir,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	})
}

// Stop stops the control plane and removes its files.
func (e *Env) Stop() error { return e.env.Stop() }

// WriteKubeconfig writes an admin kubeconfig for the control plane to path.
func (e *Env) WriteKubeconfig(path string) error {
	user, err := e.env.AddUser(envtest.User{Name: "smi-operator-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// IstiodNamespace is the namespace istiod runs in (POD_NAMESPACE): Istio's root namespace, where it
// keeps its CA (the Secret istio-ca-secret).
const IstiodNamespace = "istio-system"

// Ports istiod listens on, on IstiodOptions.Host (Istio's defaults, but for the debug port).
const (
	IstiodXDSPort        = 15010 // plain-text xDS (--grpcAddr), what proxyless clients here dial
	IstiodSecureXDSPort  = 15012 // xDS and the CA over TLS (--secureGRPCAddr)
	IstiodMonitoringPort = 15014 // Prometheus metrics (--monitoringAddr)
	IstiodWebhookPort    = 15017 // injection and validation webhooks (--httpsAddr); none is registered here
	IstiodDebugPort      = 15080 // /ready and /debug/* (--httpAddr; 8080 by default)
)

// IstiodOptions say how to run istiod.
type IstiodOptions struct {
	// Binary is pilot-discovery; empty: IstiodBinary().
	Binary string
	// Host is the address every listener binds to (netns.Addr(1) in a network namespace).
	Host string
	// Dir is istiod's working directory; its log (istiod.log), kubeconfig and mesh config go
	// there. Required.
	Dir string
	// MeshConfig is the mesh config (YAML, meshConfig.* of an Istio install); empty: trust domain
	// and root namespace as an install's defaults.
	MeshConfig string
	// Env is added to istiod's environment (PILOT_* feature flags).
	Env []string
}

// DefaultMeshConfig is the mesh config istiod runs with unless IstiodOptions.MeshConfig says
// otherwise: an Istio install's defaults, written out.
const DefaultMeshConfig = `trustDomain: cluster.local
rootNamespace: istio-system
`

// Istiod is a running istiod.
type Istiod struct {
	*Process
	// XDSAddress is the plain-text xDS server, "host:port", for proxyless gRPC bootstraps.
	XDSAddress string
	// DebugAddress serves /ready and istiod's /debug endpoints (configz, syncz, adsz, …).
	DebugAddress string
}

// IstiodBinary is the pilot-discovery that hack/control-plane.sh builds for the istio.io/istio
// version test/istio pins, or $SMI_ISTIOD when set.
func IstiodBinary() (string, error) {
	if bin := os.Getenv("SMI_ISTIOD"); bin != "" {
		return bin, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out, err := exec.Command("bash", filepath.Join(root, "hack", "control-plane.sh"), "--print-dir", "istiod").Output()
	if err != nil {
		return "", fmt.Errorf("locating istiod: %w", err)
	}
	bin := filepath.Join(strings.TrimSpace(string(out)), "pilot-discovery")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s is not built yet: run `make test` (or hack/control-plane.sh istiod) once", bin)
	}
	return bin, nil
}

// StartIstiod runs istiod against the control plane, in IstiodNamespace (created if missing), as
// an Istio install runs it but without sidecar injection: its own self-signed CA, the Kubernetes
// registry, the mesh config from a file, every listener on opts.Host. It returns once istiod is
// ready (its caches synced); Stop stops it.
func (e *Env) StartIstiod(opts IstiodOptions) (*Istiod, error) {
	if opts.Dir == "" || opts.Host == "" {
		return nil, errors.New("istiod: Dir and Host are required")
	}
	if opts.Binary == "" {
		bin, err := IstiodBinary()
		if err != nil {
			return nil, err
		}
		opts.Binary = bin
	}
	if opts.MeshConfig == "" {
		opts.MeshConfig = DefaultMeshConfig
	}
	clientset, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return nil, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: IstiodNamespace}}
	if _, err := clientset.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	kubeconfig, meshConfig := filepath.Join(opts.Dir, "kubeconfig"), filepath.Join(opts.Dir, "mesh.yaml")
	if err := e.WriteKubeconfig(kubeconfig); err != nil {
		return nil, err
	}
	if err := os.WriteFile(meshConfig, []byte(opts.MeshConfig), 0o600); err != nil {
		return nil, err
	}
	addr := func(port int) string { return net.JoinHostPort(opts.Host, fmt.Sprint(port)) }
	i := &Istiod{XDSAddress: addr(IstiodXDSPort), DebugAddress: addr(IstiodDebugPort)}
	cmd := exec.Command(opts.Binary, "discovery",
		"--kubeconfig="+kubeconfig,
		"--meshConfig="+meshConfig,
		"--grpcAddr="+i.XDSAddress,
		"--secureGRPCAddr="+addr(IstiodSecureXDSPort),
		"--monitoringAddr="+addr(IstiodMonitoringPort),
		"--httpsAddr="+addr(IstiodWebhookPort),
		"--httpAddr="+i.DebugAddress,
		"--shutdownDuration=1s",
	)
	cmd.Dir = opts.Dir
	cmd.Env = append(os.Environ(),
		"POD_NAMESPACE="+IstiodNamespace,
		"POD_NAME=istiod-test",
		"REVISION=default",
		"PILOT_CERT_PROVIDER=istiod", // its DNS certificate from its own CA
	)
	cmd.Env = append(cmd.Env, opts.Env...)
	if i.Process, err = StartProcess(cmd, filepath.Join(opts.Dir, "istiod.log")); err != nil {
		return nil, err
	}
	if err := i.WaitHTTP("http://"+i.DebugAddress+"/ready", 2*time.Minute); err != nil {
		i.Stop()
		return nil, fmt.Errorf("istiod: %w", err)
	}
	return i, nil
}

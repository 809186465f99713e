// Package istioe2e proves the Istio backend on a real istiod: the operator, run as its own process
// with its backend chosen by the SMIOperator "default", and istiod (pilot-discovery, built by
// hack/control-plane.sh from the istio.io/istio version this module pins) share one real
// kube-apiserver and etcd holding that Istio version's CRDs; real grpc-go proxyless clients,
// bootstrapped against istiod as Istio's proxyless gRPC is (node metadata GENERATOR: grpc, an
// Istio sidecar node ID), call real gRPC servers behind Services and EndpointSlices. What the
// tests check is where RPCs land, not what objects exist.
//
// Everything runs in a network namespace of the test binary's own (package test/netns), so that
// EndpointSlices hold addresses the servers really listen on. Without root the tests skip and say
// why; with SMI_E2E_NETNS_STRICT set that is a failure.
//
// It lives in module test/istio, beside istiod's validators, because that module pins the Istio
// version: the binary, the CRDs installed (this module's istio.io/istio
// manifests/charts/base/files/crd-all.gen.yaml) and istiod's own analysis of the generated objects
// (judgement_test.go) come from one commit.
package istioe2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// The proxyless clients of the operator's own xDS server (after a swap to it) send their
// bootstrap's token (call_creds), as injected pods do: it serves a node's identity over TLS only
// to a stream whose token proves it.
func TestMain(m *testing.M) {
	os.Exit(grpcxds.RunWithCallCreds(func() int { return netns.Run(suite{m}) }))
}

// suite runs the tests, then stops the shared mesh, inside the namespace.
type suite struct{ m *testing.M }

func (s suite) Run() int {
	code := s.m.Run()
	if mesh != nil {
		mesh.stop(code != 0)
	}
	return code
}

// operatorNamespace is the operator's own namespace (POD_NAMESPACE), as config/default makes it.
const operatorNamespace = "smi-operator-system"

// operatorProbePort serves the operator's /readyz, on netns.Addr(1).
const operatorProbePort = 18081

// meshEnv is the control plane, istiod and the operator, all running.
type meshEnv struct {
	env      *testenv.Env
	client   client.Client
	istiod   *testenv.Istiod
	operator *testenv.Process
	// operatorBinary is the operator as `make build` builds it; kubeconfig is its kubeconfig.
	operatorBinary, kubeconfig string
	dir                        string
	// istioVersion is the version proxies claim (ISTIO_VERSION), istiod's own.
	istioVersion string
}

var (
	mesh      *meshEnv
	meshErr   error
	meshStart sync.Once
)

// start returns the shared mesh, starting it on first use. Tests call it first.
func start(t testing.TB) *meshEnv {
	t.Helper()
	netns.Require(t)
	meshStart.Do(func() { mesh, meshErr = newMesh() })
	if errors.Is(meshErr, errNoIstiod) && os.Getenv(netns.StrictEnv) == "" {
		t.Skip(meshErr)
	}
	if meshErr != nil {
		t.Fatal(meshErr)
	}
	return mesh
}

var errNoIstiod = errors.New("istiod is not built")

func newMesh() (*meshEnv, error) {
	ctrllog.SetLogger(logr.Discard()) // the clients here log nothing worth reading
	istiodBinary, err := testenv.IstiodBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoIstiod, err)
	}
	istioDir, err := istioModuleDir()
	if err != nil {
		return nil, err
	}
	crds := filepath.Join(istioDir, "manifests", "charts", "base", "files", "crd-all.gen.yaml")
	// What Istio's agent of this build would put in its node metadata: the release line of the
	// module's VERSION file, "-dev" for a build between releases (the pin is a commit).
	version, err := os.ReadFile(filepath.Join(istioDir, "VERSION"))
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "istioe2e-")
	if err != nil {
		return nil, err
	}
	m := &meshEnv{dir: dir, istioVersion: strings.TrimSpace(string(version)) + "-dev"}
	began := time.Now()
	// Built before the control plane starts: a cold build takes a while, and the API server need
	// not wait for it.
	m.operatorBinary, err = testenv.BuildOperator(dir)
	if err != nil {
		m.stop(true)
		return nil, err
	}
	flags := netns.APIServerFlags()
	if err := os.WriteFile(filepath.Join(dir, "audit-policy.yaml"), []byte(auditPolicy), 0o644); err != nil {
		m.stop(true)
		return nil, err
	}
	flags["audit-policy-file"], flags["audit-log-path"] = filepath.Join(dir, "audit-policy.yaml"), filepath.Join(dir, auditLog)
	m.env, err = testenv.Start(testenv.Options{APIServerFlags: flags, IstioCRDs: crds})
	if err != nil {
		m.stop(true)
		return nil, err
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(networkingv1.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	if m.client, err = client.New(m.env.Config, client.Options{Scheme: scheme}); err != nil {
		m.stop(true)
		return nil, err
	}
	m.istiod, err = m.env.StartIstiod(testenv.IstiodOptions{Binary: istiodBinary, Host: netns.Addr(1).String(), Dir: dir, Env: istiodEnv})
	if err != nil {
		m.stop(true)
		return nil, err
	}
	if err := m.startOperator(); err != nil {
		m.stop(true)
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "istioe2e: API server, istiod and the operator ready in %v (logs in %s)\n", time.Since(began).Round(time.Millisecond), dir)
	return m, nil
}

// auditPolicy has the API server log when each patch of a VirtualService or a TrafficSplit
// arrived and was answered, to its audit log (auditLog, in the mesh's folder): BenchmarkFlipOnIstiod
// reads there how long the writes of a flip took in the API server, and when the operator's write
// arrived.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted, Panic]
rules:
- level: Metadata
  verbs: [patch]
  resources:
  - {group: networking.istio.io, resources: [virtualservices]}
  - {group: split.smi-spec.io, resources: [trafficsplits]}
- level: None
`

const auditLog = "audit.log"

// istioModuleDir is the folder of the istio.io/istio module this module pins.
func istioModuleDir() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/istio").Output()
	if err != nil {
		return "", fmt.Errorf("locating the istio.io/istio module: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// startOperator runs the operator binary as `make run` does against this control plane, with
// every flag at its default but the webhook and probe addresses: --backend=resource, so the
// SMIOperator "default" it is then given selects the Istio backend, enforcing.
func (m *meshEnv) startOperator() error {
	ctx := context.Background()
	if err := m.client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		return err
	}
	m.kubeconfig = filepath.Join(m.dir, "operator.kubeconfig")
	if err := m.env.WriteKubeconfig(m.kubeconfig); err != nil {
		return err
	}
	if err := m.runOperator(m.operatorBinary, "operator.log"); err != nil {
		return err
	}
	op := &v1alpha1.SMIOperator{
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SingletonName},
		Spec:       v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendIstio},
	}
	if err := m.client.Create(ctx, op); err != nil {
		return err
	}
	return m.waitBackend(v1alpha1.BackendIstio)
}

// waitBackend waits, a minute at most, until the SMIOperator's status, computed from its spec as
// it is now, is Ready with backend active.
func (m *meshEnv) waitBackend(backend v1alpha1.Backend) error {
	ctx := context.Background()
	op := &v1alpha1.SMIOperator{}
	deadline := time.Now().Add(time.Minute)
	for {
		if err := m.client.Get(ctx, client.ObjectKey{Name: v1alpha1.SingletonName}, op); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(op.Status.Conditions, v1alpha1.ConditionReady)
		if op.Status.ObservedGeneration == op.Generation && ready != nil && ready.Status == metav1.ConditionTrue && op.Status.ActiveBackend == backend {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the SMIOperator is not Ready with the %s backend after a minute: %+v\n%s", backend, op.Status, m.operator.LogTail(40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runOperator starts binary, an operator build, with startOperator's flags and its output in
// logName, as m.operator, and waits until it is ready.
func (m *meshEnv) runOperator(binary, logName string) error {
	probe := netns.HostPort(1, operatorProbePort)
	cmd := exec.Command(binary, append(m.env.OperatorArgs(m.kubeconfig),
		"--metrics-bind-address=0", "--health-probe-bind-address="+probe)...)
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+operatorNamespace)
	var err error
	if m.operator, err = testenv.StartProcess(cmd, filepath.Join(m.dir, logName)); err != nil {
		return err
	}
	if err := m.operator.WaitHTTP("http://"+probe+"/readyz", time.Minute); err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	return nil
}

// keepLogsEnv, set to anything, keeps the folder of the operator's and istiod's logs after a
// passing run too.
const keepLogsEnv = "ISTIOE2E_KEEP_LOGS"

// stop stops the operator, istiod and the control plane. After a failure (or with keepLogsEnv) it
// prints the end of the operator's and istiod's logs and keeps the folder holding them.
func (m *meshEnv) stop(failed bool) {
	if m.operator != nil {
		m.operator.Stop()
	}
	if m.istiod != nil {
		m.istiod.Stop()
	}
	if m.env != nil {
		_ = m.env.Stop()
	}
	if failed || os.Getenv(keepLogsEnv) != "" {
		if m.operator != nil {
			fmt.Fprintf(os.Stderr, "istioe2e: the operator's log ends with:\n%s\n", m.operator.LogTail(30))
		}
		if m.istiod != nil {
			fmt.Fprintf(os.Stderr, "istioe2e: istiod's log ends with:\n%s\n", m.istiod.LogTail(30))
		}
		fmt.Fprintf(os.Stderr, "istioe2e: logs kept in %s\n", m.dir)
		return
	}
	_ = os.RemoveAll(m.dir)
}

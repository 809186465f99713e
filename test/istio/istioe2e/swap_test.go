package istioe2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/xds/bootstrap"
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

// TestSwapIstioToGammaToXDS swaps the backend istio → gamma → xds while a proxyless client of
// istiod calls back to back, the whole split on v1:
//   - istio → gamma: no call leaves the split (none reaches the apex): the routes are written
//     before the VirtualService goes, and istiod applies them.
//   - gamma → xds: the client's calls move from v1 to the apex, after the routes are deleted and
//     never before. A proxyless client follows the one xDS server its bootstrap names: the xds
//     backend writes nothing istiod reads, so once the gamma backend deletes its routes (after
//     the xds backend has programmed everything) istiod has no route for the apex left and its
//     client calls the apex Service itself. The split is lost for it; no call may fail as the
//     client moves to the apex's cluster (noRPCLost: the gamma standby rule keeps it held).
//   - A second proxyless client, bootstrapped to the operator's own xDS server once the xds
//     backend is active, follows the split (weights 80/20, flips, all-zero weights, deletion:
//     weightChangesFollowed), no call failing.
//
// Every RPC of both clients is counted; any failure fails the test.
func TestSwapIstioToGammaToXDS(t *testing.T) {
	m := start(t)
	m.gatewayAPIOnIstiod(t)
	ns := m.namespace(t, "swap")
	c := m.apexAndBackends(t, ns)
	split := m.split(t, "v1alpha4", ns, "apex", 100, 0)
	wait(t, context.Background(), func(ctx context.Context) error { return grpcxds.WaitOnly(ctx, c, "v1", 50) })

	m.issueXDSServingSecret(t)
	t.Cleanup(func() { m.backToIstio(t) })
	istiodClient := callContinuously(c)
	t.Cleanup(istiodClient.stop)

	// 1. istio → gamma.
	m.setBackend(t, v1alpha1.BackendGamma)
	// The VirtualService's deletion reaches the client after the swap is reported done.
	time.Sleep(2 * time.Second)
	m.noVirtualServices(t, ns)
	runs, failures := istiodClient.seen()
	t.Logf("istiod's client through the swap istio → gamma: %v, %d failed", runs, len(failures))
	noRPCLost(t, "istiod's client through the swap istio → gamma", failures)
	if !slices.Equal(backendsOf(runs), []string{"v1"}) {
		t.Fatalf("through the swap istio → gamma, istiod's client was answered by %v; want every call answered by v1", runs)
	}

	// 2. gamma → xds. The routes' last sighting is the earliest their deletion can have happened.
	routesGone := m.lastSeenGRPCRoutes(ns)
	m.editOperator(t, xdsSpec())
	gone := <-routesGone
	if gone.err != nil {
		t.Fatal(gone.err)
	}
	wait(t, context.Background(), func(ctx context.Context) error { return istiodClient.waitFor(ctx, "apex") })
	runs, _ = istiodClient.seen()
	t.Logf("istiod's client through the swap gamma → xds: %v; the gamma routes were last seen at %s", runs, gone.lastSeen.Format(time.StampMilli))
	switch {
	case !slices.Equal(backendsOf(runs), []string{"v1", "apex"}):
		t.Errorf("istiod's client was answered by %v; want v1, then the apex once the gamma routes are deleted", runs)
	case !runs[1].from.After(gone.lastSeen):
		t.Errorf("istiod's client left the split at %s, while a gamma route still existed (seen at %s)",
			runs[1].from.Format(time.StampMilli), gone.lastSeen.Format(time.StampMilli))
	}

	// 3. A client of the operator's xDS server, which has the split.
	operatorClient := &countingConn{ClientConnInterface: m.dialAs(t, ns, "apex", m.operatorXDSBootstrap(t, ns, "client"))}
	wait(t, context.Background(), func(ctx context.Context) error { return grpcxds.WaitOnly(ctx, operatorClient, "v1", 50) })
	m.setWeights(t, split, 80, 20)
	wait(t, context.Background(), func(ctx context.Context) error {
		return grpcxds.WaitFor(ctx, operatorClient, grpcxds.FromBackend("v2"))
	})
	shares(t, context.Background(), operatorClient, map[string]float64{"v1": 80, "v2": 20})
	m.weightChangesFollowed(t, split, operatorClient)
	calls, failures := operatorClient.counts()
	t.Logf("the client of the operator's xDS server: %d RPCs, %d failed", calls, len(failures))
	noRPCLost(t, "the client of the operator's xDS server", failures)

	// istiod's client, meanwhile, stayed on the apex: the split's changes reach only the
	// operator's xDS server.
	istiodClient.stop()
	runs, failures = istiodClient.seen()
	t.Logf("istiod's client in all: %v, %d failed", runs, len(failures))
	noRPCLost(t, "istiod's client", failures)
	if !slices.Equal(backendsOf(runs), []string{"v1", "apex"}) {
		t.Errorf("istiod's client was answered by %v; want v1, then the apex", runs)
	}
}

// noRPCLost fails the test for every failed RPC of who's. grpc-go (v1.84) fails the calls it
// picks while new routes send it to a cluster its balancer does not hold yet ("unknown cluster
// selected for RPC": it applies the routes before the balancer has the cluster); the routes the
// operator writes, on every backend, name every cluster a split may route to (the standby routes
// and rules of translators/istio, translators/gamma and translators/xds), so that no swap or flip moves a client onto a
// cluster it did not hold.
func noRPCLost(t testing.TB, who string, failures []error) {
	t.Helper()
	if len(failures) > 0 {
		t.Errorf("%s: %s", who, failed(failures))
	}
}

// operatorXDSPort is where the operator's xDS server listens when the SMIOperator selects xds.
// The operator binary, run with --backend=resource, listens on every address; istiod holds the
// default port, 15010, on netns.Addr(1), which would make the bind fail.
const operatorXDSPort = 15011

// xdsServingSecret is the TLS Secret, in the operator's namespace, of the xDS server's certificate.
const xdsServingSecret = "xds-serving"

// xdsSpec is the SMIOperator's spec to swap to xds here:
//   - accessMode Permissive (and mtls false, the default): in Enforcing mode the xDS backend has
//     proxyless clients speak mutual TLS to every backend, since RBAC principals are only proven
//     by client certificates; the backends here are plain gRPC servers, the ones istiod's client
//     calls without TLS.
//   - a serving certificate from a Secret (issueXDSServingSecret): the one the built-in CA issues
//     itself names the operator's Service (smi-operator-xds.<namespace>.svc), which nothing
//     resolves in the test's network namespace, and the address the server listens on only
//     when that is not a wildcard, as it is for this binary. Clients verify it, as they verify
//     the built-in one, with the trust bundle the operator publishes.
//   - no grace period: the swap back to istio when the test ends stops the xDS server at once.
func xdsSpec() map[string]any {
	return map[string]any{
		"backend":    v1alpha1.BackendXDS,
		"accessMode": v1alpha1.AccessPermissive,
		"xds": map[string]any{
			"port":            operatorXDSPort,
			"tls":             map[string]any{"secretName": xdsServingSecret},
			"swapGracePeriod": "0s",
		},
	}
}

// backToIstio swaps back to istio, then gives the settings xdsSpec changed their defaults back:
// in two steps, so that the xDS server retires with its own (no grace period).
func (m *meshEnv) backToIstio(t testing.TB) {
	t.Helper()
	m.setBackend(t, v1alpha1.BackendIstio)
	m.editOperator(t, map[string]any{"accessMode": nil, "xds": nil})
}

// issueXDSServingSecret issues a serving certificate for netns.Addr(1), the address clients dial,
// from the operator's xDS CA (its root kept in the Secret the operator reads it from, made here
// when the operator has not made it yet), into the Secret xdsServingSecret.
func (m *meshEnv) issueXDSServingSecret(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	clientset, err := kubernetes.NewForConfig(m.env.Config)
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New(ctx, clientset, ca.Options{
		Secret:      types.NamespacedName{Namespace: operatorNamespace, Name: "smi-operator-xds-ca"}, // the operator's --xds-ca-secret default
		TrustDomain: "cluster.local",
	})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := authority.IssueServing(nil, []net.IP{netns.Addr(1).AsSlice()}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: xdsServingSecret},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: cert.CertChainPEM, corev1.TLSPrivateKeyKey: cert.PrivateKeyPEM},
	}
	if err := m.client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.client.Delete(context.Background(), secret) })
}

// operatorXDSBootstrap is the bootstrap of a proxyless gRPC client of the operator's own xDS
// server, running as ServiceAccount namespace/serviceAccount, which verifies the server with the
// trust bundle the operator publishes in namespace (the ConfigMap an injected pod mounts), and
// proves its identity with a token of it for the operator's xDS audience (call_creds), as an
// injected pod does. It has no certificate: with mutual TLS off, it needs none.
func (m *meshEnv) operatorXDSBootstrap(t testing.TB, namespace, serviceAccount string) []byte {
	t.Helper()
	bundle := &corev1.ConfigMap{}
	m.waitExists(t, client.ObjectKey{Namespace: namespace, Name: bootstrap.TrustBundleConfigMap}, bundle)
	roots := filepath.Join(t.TempDir(), "xds-roots.pem")
	if err := os.WriteFile(roots, []byte(bundle.Data[bootstrap.TrustBundleKey]), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "xds-token")
	if err := os.WriteFile(tokenFile, []byte(m.serviceAccountToken(t, namespace, serviceAccount, v1alpha1.DefaultTokenAudience)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := grpcxds.Bootstrap{
		ServerURI: netns.HostPort(1, operatorXDSPort),
		ServerTLS: &grpcxds.PEMFiles{CACertificateFile: roots},
		NodeID:    namespace + "/" + serviceAccount,
		NodeMetadata: map[string]any{
			server.MetadataProxy:          server.ProxyGRPC,
			server.MetadataNamespace:      namespace,
			server.MetadataServiceAccount: serviceAccount,
		},
		JWTTokenFile: tokenFile,
	}.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// failed says how many RPCs failed, with the first and last errors.
func failed(failures []error) string {
	switch len(failures) {
	case 0:
		return "no RPC failed"
	case 1:
		return fmt.Sprintf("1 RPC failed: %v", failures[0])
	}
	return fmt.Sprintf("%d RPCs failed, the first %v, the last %v", len(failures), failures[0], failures[len(failures)-1])
}

// routesSighting is when a poll last saw a route, or why polling failed.
type routesSighting struct {
	lastSeen time.Time
	err      error
}

// lastSeenGRPCRoutes polls namespace's GRPCRoutes (what the gamma backend writes for a gRPC port)
// until none is left, a minute at most, and delivers when the last poll that saw one began: the
// earliest the last route can have been deleted. A first poll seeing none is an error: the
// routes should exist when it starts.
func (m *meshEnv) lastSeenGRPCRoutes(namespace string) <-chan routesSighting {
	out := make(chan routesSighting, 1)
	go func() {
		var lastSeen time.Time
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			began := time.Now()
			routes := &unstructured.UnstructuredList{}
			routes.SetAPIVersion("gateway.networking.k8s.io/v1")
			routes.SetKind("GRPCRouteList")
			if err := m.client.List(context.Background(), routes, client.InNamespace(namespace)); err != nil {
				out <- routesSighting{err: err}
				return
			}
			switch {
			case len(routes.Items) > 0:
				lastSeen = began
			case lastSeen.IsZero():
				out <- routesSighting{err: fmt.Errorf("no GRPCRoute in %s with the gamma backend", namespace)}
				return
			default:
				out <- routesSighting{lastSeen: lastSeen}
				return
			}
		}
		out <- routesSighting{err: fmt.Errorf("the GRPCRoutes of %s still exist a minute after the swap", namespace)}
	}()
	return out
}

// countingConn counts the RPCs made through a client and keeps the errors of those that failed,
// whichever helper makes them.
type countingConn struct {
	grpc.ClientConnInterface
	mu       sync.Mutex
	calls    int
	failures []error
}

func (c *countingConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	err := c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if err != nil {
		c.failures = append(c.failures, fmt.Errorf("at %s: %w", time.Now().Format(time.StampMilli), err))
	}
	return err
}

// counts is how many RPCs were made, and the errors of those that failed.
func (c *countingConn) counts() (int, []error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls, slices.Clone(c.failures)
}

// run is a stretch of consecutive calls answered by one backend.
type run struct {
	backend string
	calls   int
	from    time.Time // when its first call was answered
}

func (r run) String() string {
	return fmt.Sprintf("%s ×%d from %s", r.backend, r.calls, r.from.Format(time.StampMilli))
}

// backendsOf lists the backends of runs, in order.
func backendsOf(runs []run) []string {
	var out []string
	for _, r := range runs {
		out = append(out, r.backend)
	}
	return out
}

// continuousCalls is a client calling back to back: which backends answered, in which order
// (runs), and the errors of the calls that failed.
type continuousCalls struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	runs     []run
	failures []error
}

// callContinuously calls through c back to back until stop.
func callContinuously(c grpc.ClientConnInterface) *continuousCalls {
	ctx, cancel := context.WithCancel(context.Background())
	calls := &continuousCalls{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(calls.done)
		for ctx.Err() == nil {
			r, err := grpcxds.Call(ctx, c)
			if ctx.Err() != nil {
				return // stopped, not failed
			}
			calls.record(r.Backend, err)
		}
	}()
	return calls
}

func (c *continuousCalls) record(backend string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil:
		c.failures = append(c.failures, fmt.Errorf("at %s: %w", time.Now().Format(time.StampMilli), err))
	case len(c.runs) > 0 && c.runs[len(c.runs)-1].backend == backend:
		c.runs[len(c.runs)-1].calls++
	default:
		c.runs = append(c.runs, run{backend: backend, calls: 1, from: time.Now()})
	}
}

// seen is what the calls saw so far: the runs of answers, the errors of the failures.
func (c *continuousCalls) seen() ([]run, []error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.runs), slices.Clone(c.failures)
}

// waitFor waits until backend answers the calls.
func (c *continuousCalls) waitFor(ctx context.Context, backend string) error {
	for {
		runs, _ := c.seen()
		if len(runs) > 0 && runs[len(runs)-1].backend == backend {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: the calls were answered by %v, want %s now", ctx.Err(), runs, backend)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// stop ends the calls; it may be called again.
func (c *continuousCalls) stop() {
	c.cancel()
	<-c.done
}

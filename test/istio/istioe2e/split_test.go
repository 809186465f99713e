package istioe2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// servicePort is the port every test Service exposes; clients dial <svc>.<ns>.svc.cluster.local
// on it.
const servicePort = 80

// clientAddr is the address of the client Pod of every namespace, the one proxyless clients claim
// in their node IDs. The workloads of a namespace (its Pods and gRPC servers) are at the addresses
// after it, one each (istiod finds a Pod by IP within a namespace), on ports of their own.
var clientAddr = netns.Addr(2)

// calls is how many RPCs a weighted distribution is judged on: with grpcxds.CheckShares'
// tolerance (4 standard deviations + 1), an 80/20 split must land 800 ± 51.6 calls on the 80%
// backend, and fails falsely with probability 5e-5.
const calls = 1000

// TestSplitWeightsOnIstiod: for every served version of TrafficSplit, the weights the operator
// programs into istiod show in how a proxyless client's RPCs spread; a zero weight gets no call, a
// flip is followed, all-zero weights and deleting the split give the apex its traffic back.
func TestSplitWeightsOnIstiod(t *testing.T) {
	m := start(t)
	for _, version := range []string{"v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"} {
		t.Run(version, func(t *testing.T) {
			ns := m.namespace(t, "split-"+version)
			c := m.apexAndBackends(t, ns)
			split := m.splitFollowed(t, version, ns, c)
			m.istiodFindsNothingWrong(t, ns)
			m.weightChangesFollowed(t, split, c)
		})
	}
}

// splitFollowed creates a TrafficSplit of version in namespace, apex 80/20 between v1 and v2, and
// checks that c's RPCs spread so.
func (m *meshEnv) splitFollowed(t *testing.T, version, namespace string, c grpc.ClientConnInterface) *unstructured.Unstructured {
	t.Helper()
	ctx := context.Background()
	split := m.split(t, version, namespace, "apex", 80, 20)
	wait(t, ctx, func(ctx context.Context) error { return grpcxds.WaitFor(ctx, c, notFrom("apex")) })
	shares(t, ctx, c, map[string]float64{"v1": 80, "v2": 20})
	return split
}

// weightChangesFollowed edits the 80/20 split of splitFollowed and checks that c's RPCs follow:
// a zero weight gets no call, a flip is followed, all-zero weights and deleting the split give
// the apex its traffic back.
func (m *meshEnv) weightChangesFollowed(t *testing.T, split *unstructured.Unstructured, c grpc.ClientConnInterface) {
	t.Helper()
	ctx := context.Background()
	// A zero weight gets nothing: all to v2, then all to v1 (a 1:0 split), then back. A flip to a
	// backend that had no weight is timed from the write's answer to its first RPC.
	previous := map[string]int{"v1": 80, "v2": 20}
	for _, flip := range []struct {
		v1, v2 int
		to     string
	}{{0, 100, "v2"}, {100, 0, "v1"}, {0, 100, "v2"}} {
		m.setWeights(t, split, flip.v1, flip.v2)
		if previous[flip.to] == 0 {
			t.Logf("weights %d/%d: first RPC on %s %v after the write returned", flip.v1, flip.v2, flip.to, firstFrom(t, ctx, c, flip.to).Round(time.Millisecond))
		}
		wait(t, ctx, func(ctx context.Context) error { return grpcxds.WaitOnly(ctx, c, flip.to, 50) })
		shares(t, ctx, c, map[string]float64{flip.to: 1})
		previous = map[string]int{"v1": flip.v1, "v2": flip.v2}
	}

	// All weights zero: the split is not programmed, the apex gets its traffic back.
	m.setWeights(t, split, 0, 0)
	wait(t, ctx, func(ctx context.Context) error { return grpcxds.WaitOnly(ctx, c, "apex", 50) })
	m.setWeights(t, split, 20, 80)
	wait(t, ctx, func(ctx context.Context) error { return grpcxds.WaitOnly(ctx, c, "v2", 1) })
	shares(t, ctx, c, map[string]float64{"v1": 20, "v2": 80})

	if err := m.client.Delete(ctx, split); err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, func(ctx context.Context) error { return grpcxds.WaitOnly(ctx, c, "apex", 50) })
}

// mostlyOn makes runs of 100 calls until more than half of a run lands on backend: a change of
// weights has reached the client.
func mostlyOn(ctx context.Context, c grpc.ClientConnInterface, backend string) error {
	for {
		counts, err := grpcxds.Distribution(ctx, c, 100)
		if err == nil && counts[backend] > 50 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: calls spread as %v (error %v), want most on %s", ctx.Err(), counts, err, backend)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// apexAndBackends starts the workloads apex, v1 and v2 of namespace (at the addresses after
// clientAddr) and the Pod "client" of a proxyless client of apex, and waits until the apex
// answers it.
func (m *meshEnv) apexAndBackends(t testing.TB, namespace string) grpc.ClientConnInterface {
	t.Helper()
	for i, name := range []string{"apex", "v1", "v2"} {
		m.service(t, namespace, name, netns.Addr(3+i))
	}
	m.pod(t, namespace, "client", "client", clientAddr)
	c := m.dial(t, namespace, "apex")
	wait(t, context.Background(), func(ctx context.Context) error { return grpcxds.WaitOnly(ctx, c, "apex", 20) })
	return c
}

// namespace creates a namespace for one test, labelled for Istio's sidecar injection as a mesh
// user's would be (nothing injects here: the Pods are written as injection leaves them).
func (m *meshEnv) namespace(t testing.TB, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"istio-injection": "enabled"}}}
	if err := m.client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return name
}

// service starts a workload answering as name at addr: its gRPC server, its ServiceAccount and Pod
// name-0 (labelled app=<name>), and the Service name with the EndpointSlice holding that Pod.
func (m *meshEnv) service(t testing.TB, namespace, name string, addr netip.Addr) {
	t.Helper()
	b, err := grpcxds.StartBackend(name, netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	pod := m.pod(t, namespace, name+"-0", name, addr)
	svc, slice := testenv.GRPCService(namespace, name, servicePort, netip.MustParseAddrPort(b.Addr).Port(), pod)
	for _, obj := range []client.Object{svc, slice} {
		if err := m.client.Create(context.Background(), obj); err != nil {
			t.Fatal(err)
		}
	}
}

// pod creates a running Pod labelled app=<app>, and its ServiceAccount <app>. Its containers are
// what Istio's "grpc-agent" injection template leaves for a proxyless gRPC workload: the app and
// the agent, istio-proxy.
func (m *meshEnv) pod(t testing.TB, namespace, name, app string, addr netip.Addr) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: app}}
	if err := m.client.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	// security.istio.io/tlsMode is what injection labels a Pod with: it has a proxy (here, the
	// agent) holding Istio certificates.
	pod := testenv.RunningPod(namespace, name, app, addr, map[string]string{"app": app, "security.istio.io/tlsMode": "istio"})
	pod.Annotations = map[string]string{"inject.istio.io/templates": "grpc-agent"}
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "istio-proxy", Image: "istio/proxyv2"})
	if err := testenv.CreatePod(ctx, m.client, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

// dial connects a proxyless gRPC client of istiod, as the Pod "client" of namespace would through
// Istio's agent, to xds:///<service>.<namespace>.svc.cluster.local:80.
func (m *meshEnv) dial(t testing.TB, namespace, service string) grpc.ClientConnInterface {
	t.Helper()
	return m.dialAs(t, namespace, service, m.bootstrap(t, namespace, "client", clientAddr, nil))
}

// dialAs connects a proxyless gRPC client with the given bootstrap to
// xds:///<service>.<namespace>.svc.cluster.local:80.
func (m *meshEnv) dialAs(t testing.TB, namespace, service string, bootstrap []byte) grpc.ClientConnInterface {
	t.Helper()
	conn, err := grpcxds.Dial(fmt.Sprintf("%s.%s.svc.cluster.local:%d", service, namespace, servicePort), bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// bootstrap is the gRPC xDS bootstrap Istio's agent writes for a proxyless gRPC workload, the Pod
// pod of namespace at ip, pointed at istiod's plain-text xDS port: Istio's node ID and metadata,
// its server listener names, and, with an identity, the certificate provider "default" that
// istiod's TLS settings name.
func (m *meshEnv) bootstrap(t testing.TB, namespace, pod string, ip netip.Addr, identity *grpcxds.PEMFiles) []byte {
	t.Helper()
	b := grpcxds.Bootstrap{
		ServerURI: m.istiod.XDSAddress,
		// Istio's node ID: type~IP~pod.namespace~namespace.svc.<cluster domain>.
		NodeID: fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", ip, pod, namespace, namespace),
		// What Istio's agent writes for proxyless gRPC (pkg/istio-agent/grpcxds).
		NodeMetadata: map[string]any{
			"GENERATOR":     "grpc",
			"NAMESPACE":     namespace,
			"CLUSTER_ID":    "Kubernetes",
			"ISTIO_VERSION": m.istioVersion,
		},
		ServerListenerTemplate: "xds.istio.io/grpc/lds/inbound/%s",
	}
	if identity != nil {
		b.CertificateProviders = map[string]grpcxds.PEMFiles{"default": *identity}
	}
	out, err := b.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// split creates a TrafficSplit of the given served version: apex split between v1 and v2 with
// weights w1 and w2 (v1alpha1's quantities in milli-units: 80 is "800m"), for the requests that
// the HTTPRouteGroups named match (v1alpha3 and later; none: every request).
func (m *meshEnv) split(t testing.TB, version, namespace, apex string, w1, w2 int, matches ...string) *unstructured.Unstructured {
	t.Helper()
	spec := map[string]any{"service": apex, "backends": backends(version, w1, w2)}
	for _, group := range matches {
		refs, _ := spec["matches"].([]any)
		spec["matches"] = append(refs, map[string]any{"kind": "HTTPRouteGroup", "name": group})
	}
	return m.createSMI(t, "split.smi-spec.io/"+version, "TrafficSplit", namespace, apex, spec)
}

// createSMI creates an SMI object of any served version.
func (m *meshEnv) createSMI(t testing.TB, apiVersion, kind, namespace, name string, spec map[string]any) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion,
		"kind":       kind,
		"metadata":   map[string]any{"namespace": namespace, "name": name},
		"spec":       spec,
	}}
	if err := m.client.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// patchSpec merges fields into an object's spec, an SMI object's or the SMIOperator's (lists are
// replaced whole, a nil drops a field), and updates obj with what the API server answered.
func (m *meshEnv) patchSpec(t testing.TB, obj client.Object, fields map[string]any) {
	t.Helper()
	patch, err := json.Marshal(map[string]any{"spec": fields})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.client.Patch(context.Background(), obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
}

// setWeights changes the split's weights of v1 and v2, in the split's own version.
func (m *meshEnv) setWeights(t testing.TB, split *unstructured.Unstructured, w1, w2 int) {
	t.Helper()
	m.patchSpec(t, split, map[string]any{"backends": backends(split.GroupVersionKind().Version, w1, w2)})
}

func backends(version string, w1, w2 int) []any {
	return []any{
		map[string]any{"service": "v1", "weight": weight(version, w1)},
		map[string]any{"service": "v2", "weight": weight(version, w2)},
	}
}

// weight is a backend's weight w in a TrafficSplit of version: v1alpha1's a quantity in
// milli-units ("800m" for 80), the others' an integer.
func weight(version string, w int) any {
	if version == "v1alpha1" {
		return fmt.Sprintf("%dm", w*10)
	}
	return w
}

// wait runs until (with a minute to succeed) and fails the test with its error.
func wait(t testing.TB, ctx context.Context, until func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := until(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitExists reads the object key names into obj, waiting a minute at most until it exists.
func (m *meshEnv) waitExists(t testing.TB, key client.ObjectKey, obj client.Object) {
	t.Helper()
	wait(t, context.Background(), func(ctx context.Context) error {
		for {
			err := m.client.Get(ctx, key, obj)
			if err == nil || ctx.Err() != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// shares makes calls RPCs and checks how they spread over backends.
func shares(t testing.TB, ctx context.Context, c grpc.ClientConnInterface, weights map[string]float64) {
	t.Helper()
	counts, err := grpcxds.Distribution(ctx, c, calls)
	if err != nil {
		t.Fatal(err)
	}
	if err := grpcxds.CheckShares(counts, weights); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d calls spread as %v, expected shares %v", calls, counts, weights)
}

// notFrom is a grpcxds.WaitFor check: the call succeeded and another backend than name answered.
func notFrom(name string) func(grpcxds.Reply, error) error {
	return func(r grpcxds.Reply, err error) error {
		if err == nil && r.Backend == name {
			return fmt.Errorf("%s still answers", name)
		}
		return err
	}
}

// firstFromPause is how long firstFrom waits between calls. Calls back to back keep the client
// and the answering server busy, two processes on these 2 cores, and slow down what is being
// timed (the operator's own write, in a trial). It costs at most that much resolution, the same
// on every path timed.
const firstFromPause = time.Millisecond

// firstFrom calls, firstFromPause apart, until backend answers, and returns how long that took.
func firstFrom(t testing.TB, ctx context.Context, c grpc.ClientConnInterface, backend string) time.Duration {
	t.Helper()
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		r, err := grpcxds.Call(ctx, c)
		if err == nil && r.Backend == backend {
			return time.Since(began)
		}
		if ctx.Err() != nil {
			t.Fatalf("%s did not answer within a minute; last call: %+v, %v", backend, r, err)
		}
		time.Sleep(firstFromPause)
	}
}

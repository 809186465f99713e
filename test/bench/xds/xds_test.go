// Package xdsbench measures the xDS backend at scale: the operator runs as its own process (so
// its memory is its own) against a real API server holding 1,000 and then 10,000 unrelated
// Services with EndpointSlices, and real grpc-go xDS clients send RPCs through it. The figures
// are printed, not asserted: they depend on the machine. Run with `make bench`.
package xdsbench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/go-logr/logr"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers"
	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/test/testenv"
	"github.com/smi-operator/smi-operator/xds/server"
)

func TestMain(m *testing.M) { os.Exit(netns.Run(m)) }

const (
	benchNamespace = "bench"
	xdsPort        = 15010
	backendPort    = 8080
	flips          = 21
	extraClients   = 99
	perNamespace   = 100 // unrelated Services per namespace
	pprofPort      = 6060
	metricsPort    = 8080
	settle         = 30 * time.Second // idle time before the steady-state RSS
)

// BenchmarkXDS prints, at 1,000 and at 10,000 unrelated Services: the time from the operator's
// start to every Service in its xDS server's store (nothing is built then: resources are built
// when a client asks), the time a TrafficSplit weight change takes to reach a client over many
// flips (from just before the API write to the first RPC on the new backend, with the write's
// own time apart), the operator's memory with 1 and with 100 connected clients, and the time
// building every Cluster once takes.
func BenchmarkXDS(b *testing.B) {
	netns.Require(b)
	h := newHarness(b)
	defer h.stop()
	for _, total := range sizes(b) {
		h.addServices(b, total)
		h.measure(b, total)
	}
}

// sizes are the numbers of unrelated Services measured at: 1,000 and 10,000, or
// BENCH_XDS_SERVICES (comma-separated) to look at one size.
func sizes(b *testing.B) []int {
	env := os.Getenv("BENCH_XDS_SERVICES")
	if env == "" {
		return []int{1000, 10000}
	}
	var out []int
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			b.Fatalf("BENCH_XDS_SERVICES: %v", err)
		}
		out = append(out, n)
	}
	return out
}

type harness struct {
	env        *testenv.Env
	client     client.Client
	kubeconfig string
	binary     string
	cancel     context.CancelFunc
}

func newHarness(b *testing.B) *harness {
	ctrl.SetLogger(logr.Discard())
	env, err := testenv.Start(testenv.Options{APIServerFlags: netns.APIServerFlags()})
	if err != nil {
		b.Fatal(err)
	}
	h := &harness{env: env}
	dir := b.TempDir()
	h.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := env.WriteKubeconfig(h.kubeconfig); err != nil {
		b.Fatal(err)
	}
	if h.binary, err = testenv.BuildOperator(dir); err != nil {
		b.Fatal(err)
	}

	// The SMI CRDs call the validating webhook on every write; serve it from here, since the
	// operator under test runs without webhooks (the API server calls this process).
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme: controllers.NewScheme(), Metrics: metricsserver.Options{BindAddress: "0"}, WebhookServer: env.WebhookServer(),
	})
	if err != nil {
		b.Fatal(err)
	}
	controllers.SetupWebhooks(mgr)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { _ = mgr.Start(ctx) }()
	for mgr.GetWebhookServer().StartedChecker()(nil) != nil {
		time.Sleep(50 * time.Millisecond)
	}

	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	h.client, err = client.New(cfg, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		b.Fatal(err)
	}
	for _, ns := range []string{benchNamespace, "smi-operator-system"} {
		h.create(b, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	// The split under test: apex web, backends web-v1 and web-v2, each a real gRPC server.
	for i, name := range []string{"web", "web-v1", "web-v2"} {
		backend, err := grpcxds.StartBackend(name, netns.HostPort(2+i, backendPort))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(backend.Stop)
		h.createService(b, benchNamespace, name, netns.Addr(2+i).String())
	}
	h.create(b, &hub.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: "web"},
		Spec: splitv1alpha4.TrafficSplitSpec{Service: "web", Backends: []splitv1alpha4.TrafficSplitBackend{
			{Service: "web-v1", Weight: 100}, {Service: "web-v2", Weight: 0},
		}},
	})
	return h
}

func (h *harness) stop() {
	h.cancel()
	_ = h.env.Stop()
}

func (h *harness) create(b *testing.B, obj client.Object) {
	if err := h.client.Create(context.Background(), obj); err != nil {
		b.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// createService creates a Service with one gRPC port and an EndpointSlice with one ready
// endpoint per address.
func (h *harness) createService(b *testing.B, namespace, name string, addrs ...string) {
	h.create(b, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "grpc", Port: 80, TargetPort: intstr.FromInt32(backendPort), AppProtocol: ptr.To("grpc"),
		}}},
	})
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("grpc"), Port: ptr.To(int32(backendPort))}},
	}
	for _, a := range addrs {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	h.create(b, slice)
}

// unrelated counts the unrelated Services created so far.
var unrelated int

func unrelatedNamespace(i int) string { return fmt.Sprintf("unrelated-%03d", i/perNamespace) }

// createUnrelated creates the i-th unrelated Service and its EndpointSlice.
func (h *harness) createUnrelated(b *testing.B, i int) {
	h.createService(b, unrelatedNamespace(i), fmt.Sprintf("svc-%05d", i), fmt.Sprintf("10.201.%d.%d", i/250, 1+i%250),
		fmt.Sprintf("10.202.%d.%d", i/250, 1+i%250), fmt.Sprintf("10.203.%d.%d", i/250, 1+i%250))
}

// parallel runs do for every i in [from, to) that pick accepts, from n goroutines.
func parallel(n, from, to int, pick func(int) bool, do func(int)) {
	work := make(chan int)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				do(i)
			}
		}()
	}
	for i := from; i < to; i++ {
		if pick(i) {
			work <- i
		}
	}
	close(work)
	wg.Wait()
}

// addServices creates unrelated Services (each with an EndpointSlice of 3 endpoints) until there
// are total, perNamespace to a namespace, from 16 writers: first the namespaces with their first
// Service, then the other Services.
func (h *harness) addServices(b *testing.B, total int) {
	start := time.Now()
	parallel(16, unrelated, total, func(i int) bool { return i%perNamespace == 0 }, func(i int) {
		h.create(b, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: unrelatedNamespace(i)}})
		h.createUnrelated(b, i)
	})
	parallel(16, unrelated, total, func(i int) bool { return i%perNamespace != 0 }, func(i int) { h.createUnrelated(b, i) })
	fmt.Printf("created %d unrelated Services with EndpointSlices in %v\n", total-unrelated, time.Since(start).Round(time.Millisecond))
	unrelated = total
}

// measure starts the operator, and prints its figures with total unrelated Services.
func (h *harness) measure(b *testing.B, total int) {
	op := h.startOperator(b)
	defer op.stop()
	want := total + 3 // and the split's three Services
	served := waitForServices(b, want)
	fmt.Printf("\n== %d unrelated Services ==\n", total)
	fmt.Printf("operator start to all %d Services in the xDS server's store (nothing built yet): %v\n", want, served.Round(time.Millisecond))

	bootstrap := func(id string) []byte {
		js, err := grpcxds.Bootstrap{ServerURI: netns.HostPort(1, xdsPort), NodeID: id,
			NodeMetadata: map[string]any{server.MetadataProxy: server.ProxyGRPC}}.JSON()
		if err != nil {
			b.Fatal(err)
		}
		return js
	}
	target := "web." + benchNamespace + ".svc.cluster.local:80"
	conn, err := grpcxds.Dial(target, bootstrap("client-0"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := grpcxds.WaitFor(waitCtx, conn, func(r grpcxds.Reply, err error) error { return err }); err != nil {
		b.Fatal(err)
	}

	flipped := h.flip(b, conn, target)
	fmt.Printf("weight change as a user sees it, from just before the API write to the first RPC on the new backend, %d flips: %s\n",
		len(flipped), spread(flipped, func(f flipTimes) time.Duration { return f.landed.Sub(f.sent) }))
	fmt.Printf("  the API write itself, sent to answered: %s\n",
		spread(flipped, func(f flipTimes) time.Duration { return f.written.Sub(f.sent) }))
	fmt.Printf("  the RouteConfiguration push reaching a bare ADS watcher, from just before the write: %s\n",
		spread(flipped, func(f flipTimes) time.Duration { return f.pushed.Sub(f.sent) }))
	fmt.Printf("  the first RPC on the new backend, from the write's answer (negative: it landed before the writer had the answer): %s\n",
		spread(flipped, func(f flipTimes) time.Duration { return f.landed.Sub(f.written) }))

	// Steady state: the Go runtime returns what start-up (the first LIST of every Service and
	// EndpointSlice) left over to the OS gradually, in the background.
	fmt.Printf("operator RSS right after the flips: %.1f MiB\n", mib(op.rss(b)))
	time.Sleep(settle)
	rss1 := op.rss(b)
	if dir := os.Getenv("BENCH_XDS_HEAP_PROFILE_DIR"); dir != "" {
		op.saveHeapProfile(b, filepath.Join(dir, fmt.Sprintf("operator-heap-%d.pprof", total)))
	}
	var extra []*grpc.ClientConn
	for i := 1; i <= extraClients; i++ {
		c, err := grpcxds.Dial(target, bootstrap(fmt.Sprintf("client-%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		extra = append(extra, c)
		if err := grpcxds.WaitFor(waitCtx, c, func(r grpcxds.Reply, err error) error { return err }); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	rss100 := op.rss(b)
	fmt.Printf("operator RSS: %.1f MiB with 1 client, %.1f MiB with %d clients (%.3f MiB per extra client)\n",
		mib(rss1), mib(rss100), 1+extraClients, (mib(rss100)-mib(rss1))/extraClients)
	for _, c := range extra {
		_ = c.Close()
	}

	// What the first Envoy sidecar costs: it asks for every cluster, which are then all built.
	start := time.Now()
	waitForClusters(b, want)
	fmt.Printf("building every Cluster once (a wildcard CDS request, as an Envoy sidecar sends): %v; RSS after: %.1f MiB\n",
		time.Since(start).Round(time.Millisecond), mib(op.rss(b)))
}

// waitForServices polls the operator's metrics until its xDS server holds want Services, and
// returns the time since the operator started.
func waitForServices(b *testing.B, want int) time.Duration {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + netns.HostPort(1, metricsPort) + "/metrics"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(string(body), "\n") {
				if v, ok := strings.CutPrefix(line, "smi_operator_xds_services "); ok {
					if n, err := strconv.ParseFloat(v, 64); err == nil && int(n) >= want {
						return time.Since(operatorStarted)
					}
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("the operator did not hold %d Services within 5 minutes", want)
	return 0
}

// flipTimes are the moments of one flip.
type flipTimes struct {
	sent    time.Time // just before the API write
	written time.Time // the write's answer received
	landed  time.Time // the first RPC answered by the new backend
	pushed  time.Time // the first RouteConfiguration push a bare ADS watcher received after sent
}

// spread is the minimum, median and maximum of d over the flips.
func spread(flips []flipTimes, d func(flipTimes) time.Duration) string {
	ds := make([]time.Duration, 0, len(flips))
	for _, f := range flips {
		ds = append(ds, d(f))
	}
	slices.Sort(ds)
	return fmt.Sprintf("min %v, median %v, max %v", ds[0], ds[len(ds)/2], ds[len(ds)-1])
}

// flip moves all the split's weight from one backend to the other, flips times, while a client
// sends RPCs back to back, and returns the moments of each flip. The clock of a flip starts just
// before the write: the operator may push, and the client move, before the writer has the API
// server's answer. A bare ADS client watching the apex's routes shows the push itself, without
// grpc-go's share.
func (h *harness) flip(b *testing.B, conn *grpc.ClientConn, routeName string) []flipTimes {
	pushedAt := watchRoutes(b, routeName)
	type answer struct {
		at      time.Time
		backend string
	}
	var mu sync.Mutex
	var answers []answer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			r, err := grpcxds.Call(ctx, conn)
			if err != nil {
				continue
			}
			mu.Lock()
			answers = append(answers, answer{time.Now(), r.Backend})
			mu.Unlock()
		}
	}()
	defer func() { cancel(); <-done }()

	split := &hub.TrafficSplit{}
	var out []flipTimes
	for i := range flips {
		if err := h.client.Get(ctx, client.ObjectKey{Namespace: benchNamespace, Name: "web"}, split); err != nil {
			b.Fatal(err)
		}
		// Away from where the split is: a size measured after another starts where that one left
		// it, and a write that changes nothing pushes nothing.
		want := "web-v2"
		if split.Spec.Backends[1].Weight > 0 {
			want = "web-v1"
		}
		split.Spec.Backends[0].Weight, split.Spec.Backends[1].Weight = 0, 100
		if want == "web-v1" {
			split.Spec.Backends[0].Weight, split.Spec.Backends[1].Weight = 100, 0
		}
		mu.Lock()
		seen := len(answers)
		mu.Unlock()
		f := flipTimes{sent: time.Now()}
		if err := h.client.Update(ctx, split); err != nil {
			b.Fatal(err)
		}
		f.written = time.Now()
		deadline := f.sent.Add(30 * time.Second)
		for f.landed.IsZero() {
			if time.Now().After(deadline) {
				b.Fatalf("flip %d: no RPC reached %s within 30s", i, want)
			}
			time.Sleep(time.Millisecond)
			mu.Lock()
			for _, a := range answers[seen:] {
				if a.backend == want {
					f.landed = a.at
					break
				}
			}
			seen = len(answers)
			mu.Unlock()
		}
		// The watcher's push may come a little after the client's: wait for it, so that every
		// flip has its push figure.
		for {
			pushed, ended := pushedAt(f.sent)
			if f.pushed = pushed; !pushed.IsZero() {
				break
			}
			if ended != nil {
				b.Fatalf("flip %d: the route watcher's stream ended before the push: %v", i, ended)
			}
			if time.Now().After(deadline) {
				b.Fatalf("flip %d: the route watcher saw no push within 30s", i)
			}
			time.Sleep(time.Millisecond)
		}
		out = append(out, f)
		time.Sleep(200 * time.Millisecond) // let the status write and the client settle
	}
	return out
}

// watchRoutes subscribes a bare ADS client to one RouteConfiguration, ACKing every push, and
// returns a function giving the first push received after a time (zero when none yet), and why the
// stream ended if it did.
func watchRoutes(b *testing.B, name string) func(after time.Time) (time.Time, error) {
	conn, err := grpc.NewClient(netns.HostPort(1, xdsPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(func() { cancel(); _ = conn.Close() })
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		b.Fatal(err)
	}
	req := &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "bench-route-watch"}, TypeUrl: resourcev3.RouteType, ResourceNames: []string{name}}
	if err := stream.Send(req); err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var times []time.Time
	var ended error // why the stream ended, if it did
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				mu.Lock()
				ended = err
				mu.Unlock()
				return
			}
			mu.Lock()
			times = append(times, time.Now())
			mu.Unlock()
			_ = stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNames: []string{name}, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce})
		}
	}()
	return func(after time.Time) (time.Time, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, t := range times {
			if t.After(after) {
				return t, nil
			}
		}
		return time.Time{}, ended
	}
}

// waitForClusters opens an ADS stream and waits until a wildcard CDS response holds want
// clusters.
func waitForClusters(b *testing.B, want int) {
	conn, err := grpc.NewClient(netns.HostPort(1, xdsPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
		if err == nil {
			err = stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "bench-probe"}, TypeUrl: resourcev3.ClusterType})
		}
		for err == nil {
			var resp *discoveryv3.DiscoveryResponse
			resp, err = stream.Recv()
			if err == nil && len(resp.Resources) >= want {
				cancel()
				return
			}
			if err == nil {
				err = stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce})
			}
		}
		cancel()
		time.Sleep(20 * time.Millisecond) // not serving yet
	}
	b.Fatalf("the operator did not serve %d clusters within 5 minutes", want)
}

// operatorStarted is when the operator process under measurement was started.
var operatorStarted time.Time

type operatorProcess struct{ cmd *exec.Cmd }

func (h *harness) startOperator(b *testing.B) *operatorProcess {
	cmd := exec.Command(h.binary,
		"--backend=xds", "--access-mode=Permissive",
		"--enable-webhooks=false", "--cert-rotation=false",
		"--metrics-bind-address="+netns.HostPort(1, metricsPort), "--metrics-secure=false", "--health-probe-bind-address=0",
		// Plain text, the explicit opt-out: the benchmark's clients are proxyless, permissive and
		// need no secrets, and TLS would only add to connecting, not to what is measured.
		"--xds-address="+netns.HostPort(1, xdsPort), "--xds-insecure-plaintext", "--zap-log-level=error",
		"--pprof-bind-address="+netns.HostPort(1, pprofPort))
	cmd.Env = append(os.Environ(), "KUBECONFIG="+h.kubeconfig, "POD_NAMESPACE=smi-operator-system")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	operatorStarted = time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return &operatorProcess{cmd: cmd}
}

func (o *operatorProcess) stop() {
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	_ = o.cmd.Wait()
}

// rss is the operator's resident memory in bytes.
func (o *operatorProcess) rss(b *testing.B) uint64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", o.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb * 1024
		}
	}
	b.Fatal("no VmRSS in /proc/<pid>/status")
	return 0
}

// saveHeapProfile saves the operator's heap profile (after a GC) for `go tool pprof`.
func (o *operatorProcess) saveHeapProfile(b *testing.B, path string) {
	resp, err := http.Get("http://" + netns.HostPort(1, pprofPort) + "/debug/pprof/heap?gc=1")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		b.Fatal(err)
	}
	fmt.Printf("operator heap profile: %s\n", path)
}

func mib(bytes uint64) float64 { return float64(bytes) / (1 << 20) }

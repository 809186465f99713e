package istioe2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	networkingapi "istio.io/api/networking/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/test/testenv"
	istiotranslator "github.com/smi-operator/smi-operator/translators/istio"
)

// benchFlips is how many weight flips each path is timed on, per size.
const benchFlips = 20

// BenchmarkFlipOnIstiod times a weight flip, all of a split's traffic moving from one backend to
// the other, as a proxyless client of istiod sees it: through the operator (a TrafficSplit
// v1alpha4 write) and written directly as the routes the operator wrote for the same weights
// (in another namespace), to the same istiod, alternately, with 0, 1,000 and 10,000 unrelated Services in the mesh
// (ISTIOE2E_BENCH_SERVICES="0,1000" picks sizes). Each flip is timed from just before the write
// and from the write's answer to the first RPC answered by the new backend; min / median / max are
// printed, and the medians reported as metrics. Where the time goes is split at the moment a
// watch of VirtualServices (a client like istiod) sees the new one: before it, the operator's part
// (about nothing for a direct write), after it, istiod's and the client's; the API server's audit
// log splits the operator's part into its reaction and its own write. Run with `make bench`.
func BenchmarkFlipOnIstiod(b *testing.B) {
	m := start(b)
	sizes := []int{0, 1000, 10000}
	if env := os.Getenv("ISTIOE2E_BENCH_SERVICES"); env != "" {
		sizes = nil
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				b.Fatalf("ISTIOE2E_BENCH_SERVICES=%q: %v", env, err)
			}
			sizes = append(sizes, n)
		}
	}
	// Services are only ever added: a size smaller than one before it would be measured with more.
	if !slices.IsSorted(sizes) {
		b.Fatalf("ISTIOE2E_BENCH_SERVICES: sizes %v must go up", sizes)
	}
	unrelated := m.namespace(b, "unrelated")
	have := 0
	for _, size := range sizes {
		b.Run(fmt.Sprintf("services=%d", size), func(b *testing.B) {
			began := time.Now()
			m.unrelatedServices(b, unrelated, have, size)
			have = max(have, size)
			b.Logf("%d unrelated Services with 3-endpoint EndpointSlices created and pushed by istiod in %v", size, time.Since(began).Round(time.Millisecond))

			smiNS, vsNS := m.namespace(b, fmt.Sprintf("bench-smi-%d", size)), m.namespace(b, fmt.Sprintf("bench-vs-%d", size))
			smiClient, vsClient := m.apexAndBackends(b, smiNS), m.apexAndBackends(b, vsNS)
			split := m.split(b, "v1alpha4", smiNS, "apex", 100, 0)
			// The direct path writes the routes the operator wrote, moved to its namespace (their
			// standby route included): istiod pushes the same routes on both paths. The objects
			// differ otherwise: the operator's carries its labels and controller reference.
			routesTo := map[string][]*networkingapi.HTTPRoute{"v1": m.operatorsRoutes(b, smiNS, vsNS, "v1")}
			vs := &networkingv1.VirtualService{
				ObjectMeta: metav1.ObjectMeta{Namespace: vsNS, Name: "apex"},
				Spec:       networkingapi.VirtualService{Hosts: []string{host(vsNS, "apex")}, Http: routesTo["v1"]},
			}
			if err := m.client.Create(context.Background(), vs); err != nil {
				b.Fatal(err)
			}
			for _, c := range []grpc.ClientConnInterface{smiClient, vsClient} {
				wait(b, context.Background(), func(ctx context.Context) error { return grpcxds.WaitOnly(ctx, c, "v1", 20) })
			}

			smi := flipTimes{namespace: smiNS, routed: m.routedTo(b, smiNS)}
			direct := flipTimes{namespace: vsNS, routed: m.routedTo(b, vsNS)}
			for i := range benchFlips {
				to, w1, w2 := "v2", 0, 100
				if i%2 == 1 {
					to, w1, w2 = "v1", 100, 0
				}
				flipSMI := func() {
					smi.add(b, smiClient, to, func() { m.setWeights(b, split, w1, w2) })
					if routesTo[to] == nil {
						routesTo[to] = m.operatorsRoutes(b, smiNS, vsNS, to)
					}
				}
				flipDirect := func() {
					direct.add(b, vsClient, to, func() { m.patchSpec(b, vs, map[string]any{"http": routesTo[to]}) })
				}
				// Each path goes first in turn, so that neither always runs while istiod may still
				// be busy with the other's push. The direct path needs the operator's routes to
				// the backend, known once the first flip to it went through the operator.
				if routesTo[to] == nil || i%2 == 0 {
					flipSMI()
					flipDirect()
				} else {
					flipDirect()
					flipSMI()
				}
			}
			b.Logf("%d Services, %d flips each, first RPC on the new backend, min / median / max:", size, benchFlips)
			b.Logf("  TrafficSplit through the operator, from just before the write: %s; from its answer: %s", smi.fromStart, smi.fromAnswer)
			b.Logf("  VirtualService written directly,   from just before the write: %s; from its answer: %s", direct.fromStart, direct.fromAnswer)
			b.Logf("  the writes themselves (sent to answered): TrafficSplit %s, VirtualService %s", smi.write, direct.write)
			b.Logf("  from the write's answer to the new VirtualService's watch event: through the operator %s, directly %s", smi.toWatch, direct.toWatch)
			b.Logf("  from that watch event to the first RPC on the new backend:       through the operator %s, directly %s", smi.watchToRPC, direct.watchToRPC)
			api := m.auditedFlips(b, smiNS, vsNS)
			b.Logf("  in the API server (its audit log): the TrafficSplit write %s, then until the operator's VirtualService write arrives %s, that write %s; the VirtualService written directly %s",
				api.split, api.reaction, api.operatorWrite, api.directWrite)
			b.ReportMetric(smi.fromAnswer.median().Seconds()*1000, "smi-ms/flip")
			b.ReportMetric(direct.fromAnswer.median().Seconds()*1000, "vs-ms/flip")
		})
	}
}

// host is a Service's FQDN.
func host(namespace, service string) string {
	return fmt.Sprintf("%s.%s.svc.cluster.local", service, namespace)
}

// operatorsRoutes waits until the operator's VirtualService "apex" of namespace from sends every
// request to backend, and returns its http routes with their hosts moved to namespace to.
func (m *meshEnv) operatorsRoutes(b testing.TB, from, to, backend string) []*networkingapi.HTTPRoute {
	b.Helper()
	var routes []*networkingapi.HTTPRoute
	wait(b, context.Background(), func(ctx context.Context) error {
		for {
			vs := &networkingv1.VirtualService{}
			err := m.client.Get(ctx, client.ObjectKey{Namespace: from, Name: "apex"}, vs)
			if err == nil && routedHost(vs) == host(from, backend) {
				data, err := json.Marshal(vs.Spec.Http)
				if err != nil {
					return err
				}
				data = bytes.ReplaceAll(data, []byte("."+from+".svc."), []byte("."+to+".svc."))
				return json.Unmarshal(data, &routes)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w: the operator's VirtualService %s/apex does not send everything to %s (error %v)", ctx.Err(), from, backend, err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	return routes
}

// routedHost is the one host the VirtualService's http routes, but a standby route, send
// requests to; "" when they send them to more than one, or to none.
func routedHost(vs *networkingv1.VirtualService) string {
	hosts := map[string]bool{}
	for _, r := range vs.Spec.Http {
		if istiotranslator.IsStandby(r) {
			continue
		}
		for _, d := range r.Route {
			hosts[d.GetDestination().GetHost()] = true
		}
	}
	if len(hosts) != 1 {
		return ""
	}
	for h := range hosts {
		return h
	}
	return ""
}

// flipTimes are one path's flips, in namespace.
type flipTimes struct {
	namespace string
	// routed is routedTo(namespace).
	routed <-chan routed

	fromStart, fromAnswer, write durations
	// toWatch is from the write's answer to the watch event of the VirtualService sending every
	// call to the new backend, watchToRPC from that event to the first RPC there.
	toWatch, watchToRPC durations
}

// add runs write, which moves every call to backend to, and times the flip; then it waits until
// every call lands there, so that the next flip starts clean.
func (f *flipTimes) add(b testing.TB, c grpc.ClientConnInterface, to string, write func()) {
	began := time.Now()
	write()
	answered := time.Now()
	first := firstFrom(b, context.Background(), c, to)
	f.fromAnswer = append(f.fromAnswer, first)
	f.fromStart = append(f.fromStart, first+answered.Sub(began))
	f.write = append(f.write, answered.Sub(began))
	seen := f.seen(b, host(f.namespace, to), began)
	f.toWatch = append(f.toWatch, seen.Sub(answered))
	f.watchToRPC = append(f.watchToRPC, answered.Add(first).Sub(seen))
	wait(b, context.Background(), func(ctx context.Context) error { return grpcxds.WaitOnly(ctx, c, to, 20) })
}

// seen is when the watch first saw, after since, a VirtualService of the namespace sending
// everything to host.
func (f *flipTimes) seen(b testing.TB, host string, since time.Time) time.Time {
	timeout := time.After(time.Minute)
	for {
		select {
		case r := <-f.routed:
			if r.host == host && r.at.After(since) {
				return r.at
			}
		case <-timeout:
			b.Fatalf("no VirtualService of %s sending everything to %s was seen within a minute", f.namespace, host)
		}
	}
}

// routed is a VirtualService version as a watch saw it: when, and its routedHost.
type routed struct {
	at   time.Time
	host string
}

// routedTo watches the VirtualServices of namespace, as istiod does, and sends what it sees
// until the benchmark ends.
func (m *meshEnv) routedTo(b testing.TB, namespace string) <-chan routed {
	b.Helper()
	c, err := client.NewWithWatch(m.env.Config, client.Options{Scheme: m.client.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	w, err := c.Watch(context.Background(), &networkingv1.VirtualServiceList{}, client.InNamespace(namespace))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Stop)
	out := make(chan routed, 1000)
	go func() {
		for ev := range w.ResultChan() {
			at := time.Now()
			vs, ok := ev.Object.(*networkingv1.VirtualService)
			if !ok {
				continue
			}
			select {
			case out <- routed{at: at, host: routedHost(vs)}:
			default: // nobody reads any more
			}
		}
	}()
	return out
}

type durations []time.Duration

func (d durations) median() time.Duration {
	s := slices.Sorted(slices.Values(d))
	return s[len(s)/2]
}

func (d durations) String() string {
	s := slices.Sorted(slices.Values(d))
	ms := func(x time.Duration) string { return fmt.Sprintf("%.1f", x.Seconds()*1000) }
	return fmt.Sprintf("%s / %s / %s ms", ms(s[0]), ms(d.median()), ms(s[len(s)-1]))
}

// unrelatedServices creates Services from..to-1 in namespace, each with an EndpointSlice of 3
// endpoints no one calls, and waits until istiod has pushed a configuration holding them all.
func (m *meshEnv) unrelatedServices(b testing.TB, namespace string, from, to int) {
	b.Helper()
	if to <= from {
		return
	}
	cfg := *m.env.Config
	cfg.QPS, cfg.Burst = 2000, 4000
	c, err := client.New(&cfg, client.Options{Scheme: m.client.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	jobs := make(chan int)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				pods := make([]*corev1.Pod, 3)
				for j := range pods {
					ip := netip.AddrFrom4([4]byte{10, byte(201 + j), byte(i >> 8), byte(i)})
					pods[j] = testenv.RunningPod(namespace, fmt.Sprintf("unrelated-%d-%d", i, j), "", ip, nil)
				}
				svc, slice := testenv.GRPCService(namespace, fmt.Sprintf("unrelated-%d", i), servicePort, 8080, pods...)
				for j := range slice.Endpoints {
					slice.Endpoints[j].TargetRef = nil // no such Pods: endpoints managed by hand
				}
				for _, obj := range []client.Object{svc, slice} {
					if err := c.Create(context.Background(), obj); err != nil {
						select {
						case errs <- err:
						default:
						}
						return
					}
				}
			}
		}()
	}
	for i := from; i < to; i++ {
		select {
		case jobs <- i:
		case err := <-errs:
			close(jobs)
			wg.Wait()
			b.Fatal(err)
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	// istiod records how many Services its last push held.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		n, err := m.istiodServices()
		if err == nil && n >= to {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("istiod holds %d Services (error %v) 5 minutes after %d were created", n, err, to)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// istiodServices is istiod's pilot_services gauge: the Services of its last push.
func (m *meshEnv) istiodServices() (int, error) {
	resp, err := http.Get("http://" + netns.HostPort(1, testenv.IstiodMonitoringPort) + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "pilot_services "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return int(f), err
		}
	}
	return 0, fmt.Errorf("no pilot_services in istiod's metrics (%v)", s.Err())
}

// auditedFlips are the writes of a benchmark's flips as the API server's audit log has them, each
// from its arrival to its answer (the audit log's requestReceivedTimestamp and stageTimestamp):
// the TrafficSplit writes of namespace smi, the operator's reaction (from a TrafficSplit write's
// answer to the arrival of the operator's first VirtualService write after it) and that write, and
// the VirtualService writes of namespace direct.
type auditedFlips struct {
	split, reaction, operatorWrite, directWrite durations
}

// took is how long the API server took to answer the request an audit event logs.
func took(e *auditv1.Event) time.Duration {
	return e.StageTimestamp.Sub(e.RequestReceivedTimestamp.Time)
}

func (m *meshEnv) auditedFlips(b testing.TB, smi, direct string) auditedFlips {
	b.Helper()
	f, err := os.Open(filepath.Join(m.dir, auditLog))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var events []*auditv1.Event
	lines := bufio.NewScanner(f)
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		e := &auditv1.Event{}
		if err := json.Unmarshal(lines.Bytes(), e); err != nil {
			b.Fatalf("%s: %v", auditLog, err)
		}
		if e.ObjectRef != nil && e.ObjectRef.Subresource == "" {
			events = append(events, e)
		}
	}
	if err := lines.Err(); err != nil {
		b.Fatal(err)
	}
	slices.SortFunc(events, func(x, y *auditv1.Event) int {
		return x.RequestReceivedTimestamp.Compare(y.RequestReceivedTimestamp.Time)
	})
	var out auditedFlips
	for i, e := range events {
		switch {
		case e.ObjectRef.Namespace == direct && e.ObjectRef.Resource == "virtualservices":
			out.directWrite = append(out.directWrite, took(e))
		case e.ObjectRef.Namespace == smi && e.ObjectRef.Resource == "trafficsplits":
			out.split = append(out.split, took(e))
			for _, next := range events[i+1:] {
				if next.ObjectRef.Namespace == smi && next.ObjectRef.Resource == "trafficsplits" {
					break // no write of the operator's between this flip and the next: counted short below
				}
				if next.ObjectRef.Namespace == smi && next.ObjectRef.Resource == "virtualservices" && strings.HasPrefix(next.UserAgent, "smi-operator/") {
					out.reaction = append(out.reaction, next.RequestReceivedTimestamp.Sub(e.StageTimestamp.Time))
					out.operatorWrite = append(out.operatorWrite, took(next))
					break
				}
			}
		}
	}
	if len(out.split) != benchFlips || len(out.reaction) != benchFlips || len(out.directWrite) != benchFlips {
		b.Fatalf("%s holds %d TrafficSplit writes of %s, %d of them followed by the operator's VirtualService write, and %d VirtualService writes of %s; want %d each",
			auditLog, len(out.split), smi, len(out.reaction), len(out.directWrite), direct, benchFlips)
	}
	return out
}

// Package bench measures the operator at scale on a real API server. The figures are printed, not
// asserted: timing depends on the machine. Run with `make bench`.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers"
	"github.com/smi-operator/smi-operator/controllers/backends"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/controllers/smioperator"
	"github.com/smi-operator/smi-operator/test/testenv"
	"github.com/smi-operator/smi-operator/translators/istio"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// rounds is how many times the operator writes everything (BENCH_ROUNDS, 3 by default).
func rounds() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 3
}

const (
	namespaces      = 10
	perNamespace    = 100 // TrafficSplits and TrafficTargets per namespace
	writers         = 8   // concurrent writers, both for the direct baseline and the operator's workers
	qps, burst      = 500, 1000
	pollingInterval = time.Second
)

// fixture is the input of one namespace: what exists before SMI objects arrive, and the SMI objects.
type fixture struct {
	prerequisites []client.Object // Services, Deployments
	smi           []client.Object // HTTPRouteGroup, TrafficSplits, TrafficTargets (hub types)
	snapshot      mesh.Snapshot
}

func newFixture(ns string) fixture {
	var f fixture
	svc := func(name string) {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
		f.prerequisites = append(f.prerequisites, s)
		f.snapshot.Services = append(f.snapshot.Services, *s)
	}
	routes := &hub.HTTPRouteGroup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "routes"},
		Spec: specsv1alpha4.HTTPRouteGroupSpec{Matches: []specsv1alpha4.HTTPMatch{{Name: "read", PathRegex: "/api", Methods: []string{"GET"}}}}}
	f.smi = append(f.smi, routes)
	f.snapshot.HTTPRouteGroups = append(f.snapshot.HTTPRouteGroups, *routes.SDK())
	for j := range perNamespace {
		app := fmt.Sprintf("app-%d", j)
		svc(app)
		backends := []splitv1alpha4.TrafficSplitBackend{{Service: app + "-v1", Weight: 90}, {Service: app + "-v2", Weight: 10}}
		if j%2 == 0 {
			backends = append(backends, splitv1alpha4.TrafficSplitBackend{Service: app + "-v3", Weight: 5})
		}
		for _, b := range backends {
			svc(b.Service)
		}
		split := &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: app},
			Spec: splitv1alpha4.TrafficSplitSpec{Service: app, Backends: backends}}
		labels := map[string]string{"app": app}
		deploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: app}, Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				ServiceAccountName: app, Containers: []corev1.Container{{Name: "app", Image: "example.com/app"}}}},
		}}
		target := &hub.TrafficTarget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: app}, Spec: accessv1alpha3.TrafficTargetSpec{
			Destination: accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: app},
			Sources:     []accessv1alpha3.IdentityBindingSubject{{Kind: "ServiceAccount", Name: "client-" + app}},
			Rules:       []accessv1alpha3.TrafficTargetRule{{Kind: "HTTPRouteGroup", Name: "routes"}},
		}}
		f.prerequisites = append(f.prerequisites, deploy)
		f.smi = append(f.smi, split, target)
		f.snapshot.Deployments = append(f.snapshot.Deployments, *deploy)
		f.snapshot.TrafficSplits = append(f.snapshot.TrafficSplits, *split.SDK())
		f.snapshot.TrafficTargets = append(f.snapshot.TrafficTargets, *target.SDK())
	}
	return f
}

// generated is what the operator is expected to write for f: the translator's output, offline.
func (f fixture) generated(settings mesh.Settings) []client.Object {
	model, _ := mesh.Build(f.snapshot, settings)
	out, _ := istio.Translate(model, settings)
	return out.Objects()
}

// asWritten makes the translator's objects what the operator writes, for the direct writes: each
// gets the controller reference the operator gives it (to the SMI object it comes from, or the
// Namespace for the allow-nothing policy; their UIDs are made up, nothing checks them here). And
// it relabels them, so that the operator, running later in the same cluster, does not take them
// for its own orphans (labelled as generated from SMI objects that do not exist) and delete them
// while it is measured.
func asWritten(objs []client.Object) []client.Object {
	scheme := controllers.NewScheme()
	for _, o := range objs {
		labels := o.GetLabels()
		var owner client.Object = &corev1.Namespace{}
		switch labels[smi.LabelSourceKind] {
		case smi.TrafficSplitKind:
			owner = &hub.TrafficSplit{}
		case smi.TrafficTargetKind:
			owner = &hub.TrafficTarget{}
		}
		gvk, err := apiutil.GVKForObject(owner, scheme)
		if err != nil {
			panic(err)
		}
		source := &metav1.ObjectMeta{Name: labels[smi.LabelSourceName], UID: types.UID("made-up-" + o.GetNamespace() + "-" + labels[smi.LabelSourceName])}
		o.SetOwnerReferences([]metav1.OwnerReference{*metav1.NewControllerRef(source, gvk)})
		labels[smi.LabelManagedBy] = "benchmark-baseline"
		o.SetLabels(labels)
	}
	return objs
}

// generatedLists are the list kinds of what the operator generates (backends.IstioKinds).
func generatedLists() []schema.GroupVersionKind {
	scheme := controllers.NewScheme()
	var out []schema.GroupVersionKind
	for _, obj := range backends.IstioKinds {
		gvk, err := apiutil.GVKForObject(obj, scheme)
		if err != nil {
			panic(err)
		}
		out = append(out, gvk.GroupVersion().WithKind(gvk.Kind+"List"))
	}
	return out
}

// sameAsWritten checks that the objects written directly in namespace direct are those the
// operator wrote in namespace operator: the same names, specs, labels and controller reference
// kinds (the managed-by label, the owners' UIDs and the namespace's name aside).
func sameAsWritten(ctx context.Context, c client.Client, direct, operator string) error {
	describe := func(ns string) (map[string]string, error) {
		out := map[string]string{}
		for _, gvk := range generatedLists() {
			list := &unstructured.UnstructuredList{}
			list.SetGroupVersionKind(gvk)
			if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
				return nil, err
			}
			for _, o := range list.Items {
				spec, err := json.Marshal(o.Object["spec"])
				if err != nil {
					return nil, err
				}
				labels := maps.Clone(o.GetLabels())
				delete(labels, smi.LabelManagedBy)
				var owners []string
				for _, ref := range o.GetOwnerReferences() {
					owners = append(owners, fmt.Sprintf("%s %s %s controller=%v", ref.APIVersion, ref.Kind, ref.Name, ptr.Deref(ref.Controller, false)))
				}
				// Principals name the namespace, and the allow-nothing policy's source is the namespace.
				out[o.GetKind()+"/"+o.GetName()] = strings.ReplaceAll(fmt.Sprintf("%s %v %v", spec, labels, owners), ns, "<namespace>")
			}
		}
		return out, nil
	}
	want, err := describe(operator)
	if err != nil {
		return err
	}
	got, err := describe(direct)
	if err != nil {
		return err
	}
	if d := cmp.Diff(want, got); d != "" {
		return fmt.Errorf("the objects written directly in %s differ from the operator's in %s (-operator +direct):\n%s", direct, operator, d)
	}
	return nil
}

// writeAll writes objs with write from as many goroutines as the operator has workers.
func writeAll(ctx context.Context, objs []client.Object, write func(context.Context, client.Object) error) error {
	work := make(chan client.Object)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				if err := write(ctx, o); err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	for _, o := range objs {
		work <- o
	}
	close(work)
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	return nil
}

// countGenerated counts the Istio objects present in namespaces starting with prefix. It lists
// metadata only, so that measuring disturbs the API server as little as possible.
func countGenerated(ctx context.Context, c client.Client, prefix string) (int, error) {
	n := 0
	for _, gvk := range generatedLists() {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(gvk)
		if err := c.List(ctx, list); err != nil {
			return 0, err
		}
		for _, item := range list.Items {
			if strings.HasPrefix(item.Namespace, prefix) {
				n++
			}
		}
	}
	return n, nil
}

// creations counts the Istio objects a client creates in namespaces starting with prefix (its
// writes answered 201 Created), and closes done once there are want of them. It reads the
// operator's own responses: an object exists once the API server has answered its creation, the
// same end point as the direct writers' time, and no watch of the benchmark's loads the API server
// while the operator is measured (a list afterwards checks the count). Each 201 is a new object:
// a second creation of a name fails, and nothing deletes the objects while they are counted.
type creations struct {
	prefix string
	want   int
	done   chan struct{}

	mu    sync.Mutex
	n     int
	first time.Time // of the first creation
}

// firstAt is when the first object was created.
func (c *creations) firstAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first
}

func newCreations(prefix string, want int) *creations {
	return &creations{prefix: prefix, want: want, done: make(chan struct{})}
}

// wrap is a rest.Config transport wrapper.
func (c *creations) wrap(next http.RoundTripper) http.RoundTripper {
	return testenv.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusCreated {
			return resp, err
		}
		// /apis/<group>/<version>/namespaces/<namespace>/<resource>, where the operator creates
		// (owned.Writer creates what the cache does not show), or .../<resource>/<name> for an
		// apply that creates.
		parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
		if len(parts) < 6 || len(parts) > 7 || parts[0] != "apis" || !strings.HasSuffix(parts[1], ".istio.io") ||
			parts[3] != "namespaces" || !strings.HasPrefix(parts[4], c.prefix) {
			return resp, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.first.IsZero() {
			c.first = time.Now()
		}
		c.n++
		if c.n == c.want {
			close(c.done)
		}
		return resp, err
	})
}

// deleteGenerated deletes the Istio objects in the namespaces starting with each prefix (envtest
// runs no namespace controller, so deleting the namespaces would not) and waits until they are gone.
func deleteGenerated(ctx context.Context, c client.Client, prefixes ...string) error {
	for i := range namespaces {
		for _, prefix := range prefixes {
			for _, obj := range backends.IstioKinds {
				if err := c.DeleteAllOf(ctx, obj, client.InNamespace(fmt.Sprintf("%s%d", prefix, i))); err != nil {
					return err
				}
			}
		}
	}
	for _, prefix := range prefixes {
		for {
			n, err := countGenerated(ctx, c, prefix)
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// startOperator starts the operator as main.go sets it up for the Istio backend (its client and
// cache options), its writes counted by the returned counter and, when created is not nil, each
// Istio object it creates reported to created.
func startOperator(ctx context.Context, b *testing.B, cfg *rest.Config, settings mesh.Settings, created *creations) (stop func(), counter *testenv.WriteCounter) {
	cfg = controllers.ClientConfig(cfg, qps, burst)
	counter = &testenv.WriteCounter{}
	cfg.Wrap(counter.Wrap)
	if created != nil {
		cfg.Wrap(created.wrap)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: controllers.NewScheme(), Cache: controllers.CacheOptions(),
		Metrics: metricsserver.Options{BindAddress: "0"},
		// A second operator in the same process (the resync) reuses the controller names.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)}})
	if err != nil {
		b.Fatal(err)
	}
	if err := controllers.SetupIstio(ctx, mgr, controllers.Options{Settings: settings, MaxConcurrentReconciles: writers}); err != nil {
		b.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(mctx); err != nil {
			b.Error(err)
		}
	}()
	return func() { cancel(); <-done }, counter
}

// conversions counts the conversion webhook's calls by "Kind fromVersion -> toVersion": the API
// server keeps a watch cache per served version of a CRD, so every write to an SMI object is
// converted to each other served version (3 webhook calls per TrafficSplit write).
var conversions = &conversionCounter{byPair: map[string]int{}}

type conversionCounter struct {
	mu     sync.Mutex
	byPair map[string]int
}

func (c *conversionCounter) add(pair string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byPair[pair]++
}

// take returns the counts since the last take, and their total.
func (c *conversionCounter) take() (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out, total := c.byPair, 0
	for _, n := range out {
		total += n
	}
	c.byPair = map[string]int{}
	return out, total
}

// countingConversions counts the conversions each ConversionReview asks inner for.
func countingConversions(inner http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var review struct {
			Request struct {
				DesiredAPIVersion string            `json:"desiredAPIVersion"`
				Objects           []json.RawMessage `json:"objects"`
			} `json:"request"`
		}
		_ = json.Unmarshal(body, &review)
		for _, o := range review.Request.Objects {
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			_ = json.Unmarshal(o, &meta)
			conversions.add(meta.Kind + " " + meta.APIVersion + " -> " + review.Request.DesiredAPIVersion)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		inner.ServeHTTP(w, r)
	})
}

// serveWebhooks serves the SMI conversion and validation webhooks, which every SMI write goes
// through, for as long as ctx lives, counting the conversions.
func serveWebhooks(ctx context.Context, b testing.TB, env *testenv.Env) {
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: controllers.NewScheme(),
		Metrics: metricsserver.Options{BindAddress: "0"}, WebhookServer: env.WebhookServer()})
	if err != nil {
		b.Fatal(err)
	}
	// controllers.SetupWebhooks, with the conversions counted.
	for path, handler := range controllers.Webhooks() {
		if path == controllers.ConversionPath {
			handler = countingConversions(handler)
		}
		mgr.GetWebhookServer().Register(path, handler)
	}
	go func() { _ = mgr.Start(ctx) }()
	for mgr.GetWebhookServer().StartedChecker()(nil) != nil {
		time.Sleep(50 * time.Millisecond)
	}
}

// profileAPIServer saves a CPU profile of the API server (its /debug/pprof endpoint) to path, to
// see where the server spends the operator's writes. Set BENCH_APISERVER_PROFILE to enable it.
func profileAPIServer(ctx context.Context, b *testing.B, cfg *rest.Config, path string, d time.Duration) {
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		b.Error(err)
		return
	}
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimSuffix(cfg.Host, "/"), int(d.Seconds()))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		b.Error(err)
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}

// cpuSeconds returns the CPU time (user + system) used so far by this process and by every
// process whose command name is one of names, by name ("self" for this process).
func cpuSeconds(names ...string) map[string]float64 {
	out := map[string]float64{}
	read := func(pid string) (string, float64, bool) {
		data, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return "", 0, false
		}
		text := string(data)
		open, closing := strings.IndexByte(text, '('), strings.LastIndexByte(text, ')')
		if open < 0 || closing < open {
			return "", 0, false
		}
		fields := strings.Fields(text[closing+2:])
		if len(fields) < 13 {
			return "", 0, false
		}
		utime, _ := strconv.ParseFloat(fields[11], 64)
		stime, _ := strconv.ParseFloat(fields[12], 64)
		return text[open+1 : closing], (utime + stime) / 100, true // USER_HZ is 100 on Linux
	}
	if _, v, ok := read("self"); ok {
		out["self"] = v
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if name, v, ok := read(e.Name()); ok && slices.Contains(names, name) {
			out[name] += v
		}
	}
	return out
}

// printCPU prints the CPU each process used between two readings, over the phase's wall time.
func printCPU(phase string, wall time.Duration, before, after map[string]float64) {
	fmt.Printf("CPU during %s (%.1f s):", phase, wall.Seconds())
	for _, name := range []string{"kube-apiserver", "etcd", "self"} {
		fmt.Printf(" %s %.1f s", name, after[name]-before[name])
	}
	fmt.Println(" (self: this process — the direct writers, or the operator, and the progress polling)")
}

// requestTime is the API server's own time spent on requests of one verb and resource
// (apiserver_request_duration_seconds), summed.
type requestTime struct {
	count   int
	seconds float64
}

// apiServerRequestTimes reads the API server's request duration histograms, by "VERB resource[/subresource]".
func apiServerRequestTimes(ctx context.Context, b *testing.B, cfg *rest.Config) map[string]requestTime {
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+"/metrics", nil)
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]requestTime{}
	for _, line := range strings.Split(string(body), "\n") {
		var isCount bool
		switch {
		case strings.HasPrefix(line, "apiserver_request_duration_seconds_count{"):
			isCount = true
		case strings.HasPrefix(line, "apiserver_request_duration_seconds_sum{"):
		default:
			continue
		}
		labels := line[strings.Index(line, "{")+1 : strings.LastIndex(line, "}")]
		value, err := strconv.ParseFloat(strings.TrimSpace(line[strings.LastIndex(line, "}")+1:]), 64)
		if err != nil {
			continue
		}
		get := func(name string) string {
			for _, kv := range strings.Split(labels, ",") {
				if k, v, ok := strings.Cut(kv, "="); ok && k == name {
					return strings.Trim(v, `"`)
				}
			}
			return ""
		}
		key := get("verb") + " " + get("resource")
		if sub := get("subresource"); sub != "" {
			key += "/" + sub
		}
		t := out[key]
		if isCount {
			t.count += int(value)
		} else {
			t.seconds += value
		}
		out[key] = t
	}
	return out
}

// printRequestTimes prints, for the writes between two readings, how many there were and the
// API server's mean time on each: where the operator's writes cost more than the same writes sent
// directly, the API server, not the operator, is slower.
func printRequestTimes(phase string, before, after map[string]requestTime) {
	var keys []string
	for k, a := range after {
		if a.count-before[k].count > 0 && !strings.HasPrefix(k, "GET") && !strings.HasPrefix(k, "LIST") && !strings.HasPrefix(k, "WATCH") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	fmt.Printf("API server time per write, %s:\n", phase)
	for _, k := range keys {
		n := after[k].count - before[k].count
		fmt.Printf("  %-45s %5d requests, %6.1f ms each\n", k, n, 1000*(after[k].seconds-before[k].seconds)/float64(n))
	}
}

// BenchmarkIstioBackend creates namespaces*perNamespace TrafficSplits (2-3 backends each) and as many
// TrafficTargets, and reports how long the operator takes to write everything they generate,
// against the time the same client setup needs to write the same objects directly.
func BenchmarkIstioBackend(b *testing.B) {
	ctrl.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel)))
	flags := map[string]string{"service-cluster-ip-range": "10.96.0.0/12"}
	// BENCH_WATCH_CACHE_SIZES is passed to kube-apiserver's --watch-cache-sizes: with
	// "trafficsplits.split.smi-spec.io#0,traffictargets.access.smi-spec.io#0" the API server keeps no
	// watch cache for them, and so no longer converts every write to every served version.
	if sizes := os.Getenv("BENCH_WATCH_CACHE_SIZES"); sizes != "" {
		flags["watch-cache-sizes"] = sizes
	}
	env, err := testenv.Start(testenv.Options{APIServerFlags: flags})
	if err != nil {
		b.Fatal(err)
	}
	defer env.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serveWebhooks(ctx, b, env)
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = qps, burst
	c, err := client.New(cfg, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		b.Fatal(err)
	}
	settings := mesh.Settings{Access: mesh.AccessEnforcing}
	create := func(ctx context.Context, o client.Object) error { return c.Create(ctx, o) }

	// The same objects, generated offline, in four sets of namespaces: written directly with create,
	// written directly with server-side apply (as the operator writes) before the operator runs and
	// again after it, and left to the operator.
	var created, applied, appliedAfter []client.Object
	var operator []fixture
	for i := range namespaces {
		for _, prefix := range []string{"create-", "apply-", "after-", "op-"} {
			ns := fmt.Sprintf("%s%d", prefix, i)
			if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				b.Fatal(err)
			}
			f := newFixture(ns)
			switch prefix {
			case "create-":
				created = append(created, asWritten(f.generated(settings))...)
			case "apply-":
				applied = append(applied, asWritten(f.generated(settings))...)
			case "after-":
				appliedAfter = append(appliedAfter, asWritten(f.generated(settings))...)
			default:
				if err := writeAll(ctx, f.prerequisites, create); err != nil {
					b.Fatal(err)
				}
				operator = append(operator, f)
			}
		}
	}
	want := created
	b.Logf("per run: %d TrafficSplits, %d TrafficTargets, %d generated Istio objects", namespaces*perNamespace, namespaces*perNamespace, len(want))

	b.ResetTimer()
	start := time.Now()
	if err := writeAll(ctx, created, create); err != nil {
		b.Fatal(err)
	}
	directTime := time.Since(start)
	// applyDirectly writes objs with server-side apply, as the operator writes, and returns the time it took.
	applyDirectly := func(phase string, objs []client.Object) time.Duration {
		before := apiServerRequestTimes(ctx, b, env.Config)
		cpuBefore := cpuSeconds("kube-apiserver", "etcd")
		if path := os.Getenv("BENCH_APISERVER_PROFILE_DIRECT"); path != "" && phase == "direct server-side apply" {
			go profileAPIServer(ctx, b, env.Config, path, 5*time.Second)
		}
		start := time.Now()
		if err := writeAll(ctx, objs, func(ctx context.Context, o client.Object) error {
			u := &unstructured.Unstructured{}
			data, err := json.Marshal(o)
			if err == nil {
				err = json.Unmarshal(data, &u.Object)
			}
			if err != nil {
				return err
			}
			delete(u.Object, "status")
			return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(owned.FieldManager))
		}); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		printRequestTimes(phase, before, apiServerRequestTimes(ctx, b, env.Config))
		printCPU(phase, took, cpuBefore, cpuSeconds("kube-apiserver", "etcd"))
		return took
	}
	applyTime := applyDirectly("direct server-side apply", applied)

	// The baseline's 6,020 objects go before the operator starts: its informers would list and
	// watch them, work that has nothing to do with the objects it writes (measured: it made no
	// difference, but the comparison is cleaner without them).
	if err := deleteGenerated(ctx, c, "create-", "apply-"); err != nil {
		b.Fatal(err)
	}

	var smiObjects []client.Object
	for _, f := range operator {
		smiObjects = append(smiObjects, f.smi...)
	}
	if err := writeAll(ctx, smiObjects, create); err != nil {
		b.Fatal(err)
	}
	// An API server builds a CRD's storage and watch cache on the CRD's first request, and answers
	// that request, a watch included, only once they are ready: about a second. Nothing has asked
	// for TCPRoutes or UDPRoutes yet (the operator watches them, none exists), and that one-time
	// cost of the API server would count as the operator's first start-up (1.3-1.5 s, against
	// 0.5-0.6 s in the later rounds). A cluster in use has served them before; so does this one.
	for _, list := range []client.ObjectList{&hub.TCPRouteList{}, &hub.UDPRouteList{}} {
		if err := c.List(ctx, list, client.Limit(1)); err != nil {
			b.Fatal(err)
		}
	}
	reconcilesBefore := testenv.Reconciles("")
	beforeOperator := apiServerRequestTimes(ctx, b, env.Config)
	conversions.take()
	cpuBeforeOperator := cpuSeconds("kube-apiserver", "etcd")
	if path := os.Getenv("BENCH_OPERATOR_PROFILE"); path != "" {
		// The operator runs in this process: profile it while it works.
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer f.Close()
	}
	creationsByOperator := newCreations("op-", len(want))
	start = time.Now()
	stop, operatorWrites := startOperator(ctx, b, env.Config, settings, creationsByOperator)
	if path := os.Getenv("BENCH_APISERVER_PROFILE"); path != "" {
		go profileAPIServer(ctx, b, env.Config, path, 9*time.Second)
	}
	progress := time.NewTicker(pollingInterval)
	var operatorTime time.Duration
	for operatorTime == 0 {
		select {
		case <-creationsByOperator.done:
			operatorTime = time.Since(start)
		case <-progress.C:
			fmt.Printf("  %5.1fs: %.0f reconciles\n", time.Since(start).Seconds(), testenv.Reconciles("")-reconcilesBefore)
		}
	}
	progress.Stop()
	if n, err := countGenerated(ctx, c, "op-"); err != nil || n != len(want) {
		b.Fatalf("the operator created every generated object, a list finds %d of %d (%v)", n, len(want), err)
	}
	if os.Getenv("BENCH_OPERATOR_PROFILE") != "" {
		pprof.StopCPUProfile()
	}
	reconciles := testenv.Reconciles("") - reconcilesBefore
	afterObjects := apiServerRequestTimes(ctx, b, env.Config)
	cpuAfterObjects := cpuSeconds("kube-apiserver", "etcd")
	writesUntilObjects := operatorWrites.String()
	printRequestTimes("operator, until every generated object existed", beforeOperator, afterObjects)
	byPair, total := conversions.take()
	fmt.Printf("conversion webhook calls meanwhile: %d %v\n", total, byPair)
	printCPU("operator, until every generated object existed", operatorTime, cpuBeforeOperator, cpuAfterObjects)
	firstWrite := creationsByOperator.firstAt().Sub(start)
	fmt.Printf("operator start-up (informers listing what is there, until its first object was created): %.1f s\n", firstWrite.Seconds())
	fmt.Printf("operator until every generated object existed: %v\n", writesUntilObjects)

	// The operator programs first and reports after (status.Deferred): wait for every status.
	for {
		splits, targets := &hub.TrafficSplitList{}, &hub.TrafficTargetList{}
		if err := c.List(ctx, splits); err != nil {
			b.Fatal(err)
		}
		if err := c.List(ctx, targets); err != nil {
			b.Fatal(err)
		}
		if n := smioperator.CountObjects(splits.Items, targets.Items).Programmed; int(n) >= 2*namespaces*perNamespace {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	statusTime := time.Since(start)
	printRequestTimes("operator, then until every SMI object's status was written", afterObjects, apiServerRequestTimes(ctx, b, env.Config))
	byPair, total = conversions.take()
	fmt.Printf("conversion webhook calls meanwhile: %d %v\n", total, byPair)
	printCPU("operator, then until every SMI object's status was written", statusTime-operatorTime, cpuAfterObjects, cpuSeconds("kube-apiserver", "etcd"))
	fmt.Printf("operator until every SMI object's status was written: %v\n", operatorWrites)
	time.Sleep(2 * time.Second) // let Events settle before the resync
	stop()

	// A full resync: a new operator lists everything and reconciles every object again.
	resyncBefore := testenv.Reconciles("")
	stop, counter := startOperator(ctx, b, env.Config, settings, nil)
	for deadline := time.Now().Add(5 * time.Minute); testenv.Reconciles("")-resyncBefore < float64(len(smiObjects)-namespaces); {
		if time.Now().After(deadline) {
			b.Fatalf("a full resync: %.0f reconciles of %d SMI objects within 5 minutes", testenv.Reconciles("")-resyncBefore, len(smiObjects)-namespaces)
		}
		time.Sleep(pollingInterval)
	}
	time.Sleep(2 * time.Second) // statuses wait for quiet, Events are sent in the background
	stop()
	if n := counter.Total(); n != 0 {
		b.Fatalf("a full resync with nothing changed wrote %d times: %v", n, counter)
	}

	// The direct applies again, after the operator: the machine's speed drifts by tens of per cent
	// between phases a minute apart (the same applies took 5.4-8.0 s over runs), so the operator is
	// compared with the mean of the applies before and after it.
	applyAfterTime := applyDirectly("direct server-side apply, again after the operator", appliedAfter)
	if err := sameAsWritten(ctx, c, "after-0", "op-0"); err != nil {
		b.Fatal(err)
	}
	ratios := []float64{operatorTime.Seconds() / ((applyTime + applyAfterTime) / 2).Seconds()}
	fmt.Printf("round 1: operator %.1fs (start-up %.1fs); direct apply before %.1fs, after %.1fs: %.2fx\n",
		operatorTime.Seconds(), firstWrite.Seconds(), applyTime.Seconds(), applyAfterTime.Seconds(), ratios[0])

	// More rounds, since the operator's time varies between runs as much as the direct applies'
	// does: each deletes what the operator generated, has a new operator write it all again, and
	// applies the direct set again after it (deleted first), comparing each operator with the
	// direct applies on either side.
	previousApply := applyAfterTime
	for round := 2; round <= rounds(); round++ {
		if err := deleteGenerated(ctx, c, "op-", "after-"); err != nil {
			b.Fatal(err)
		}
		created := newCreations("op-", len(want))
		start := time.Now()
		stop, _ := startOperator(ctx, b, env.Config, settings, created)
		select {
		case <-created.done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("round %d: the operator did not create every object within 5 minutes", round)
		}
		took := time.Since(start)
		stop()
		if n, err := countGenerated(ctx, c, "op-"); err != nil || n != len(want) {
			b.Fatalf("round %d: the operator created every generated object, a list finds %d of %d (%v)", round, n, len(want), err)
		}
		applyAgain := applyDirectly(fmt.Sprintf("direct server-side apply, after round %d", round), appliedAfter)
		ratio := took.Seconds() / ((previousApply + applyAgain) / 2).Seconds()
		fmt.Printf("round %d: operator %.1fs (start-up %.1fs); direct apply before %.1fs, after %.1fs: %.2fx\n",
			round, took.Seconds(), created.firstAt().Sub(start).Seconds(), previousApply.Seconds(), applyAgain.Seconds(), ratio)
		ratios = append(ratios, ratio)
		previousApply = applyAgain
	}
	b.StopTimer()

	ratio := operatorTime.Seconds() / directTime.Seconds()
	slices.Sort(ratios)
	medianRatio := ratios[len(ratios)/2]
	b.ReportMetric(directTime.Seconds(), "create-s")
	b.ReportMetric(applyTime.Seconds(), "apply-s")
	b.ReportMetric(applyAfterTime.Seconds(), "apply-after-s")
	b.ReportMetric(operatorTime.Seconds(), "operator-s")
	b.ReportMetric(ratio, "ratio-to-create")
	b.ReportMetric(medianRatio, "ratio-to-apply")
	b.ReportMetric(ratios[0], "ratio-to-apply-min")
	b.ReportMetric(ratios[len(ratios)-1], "ratio-to-apply-max")
	b.ReportMetric(reconciles/operatorTime.Seconds(), "reconciles/s")
	b.ReportMetric(float64(counter.Total()), "resync-writes")
	b.ReportMetric(statusTime.Seconds(), "status-s")
	b.ReportMetric(firstWrite.Seconds(), "startup-s")
	fmt.Printf("istio backend: %d generated objects; round 1: written directly with create %.1fs, with server-side apply %.1fs before the operator and %.1fs after; "+
		"by the operator %.1fs, %.1fs of it start-up (%.2fx create); every SMI object's status written after %.1fs; %.0f reconciles/s; "+
		"writes on a full resync with nothing changed: %d; operator / mean of the direct applies around it over %d rounds: median %.2fx (%.2f-%.2fx)\n",
		len(want), directTime.Seconds(), applyTime.Seconds(), applyAfterTime.Seconds(), operatorTime.Seconds(), firstWrite.Seconds(), ratio,
		statusTime.Seconds(), reconciles/operatorTime.Seconds(), counter.Total(), len(ratios), medianRatio, ratios[0], ratios[len(ratios)-1])
}

// Package bench measures the operator at scale on a real API server. The figures are printed, not
// asserted: timing depends on the machine. What fails a run is a consistency check, a figure that
// would not mean what it says: both sides of a ratio must have sent the same writes, and stored
// them (counted in every namespace; compared object by object, status by status and Event by
// Event in one namespace each round). Run with `make bench`.
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
	eventsv1 "k8s.io/api/events/v1"
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
	istiobackend "github.com/smi-operator/smi-operator/controllers/backends/istio"
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
	writers         = 8   // concurrent writers: the direct writers', and the operator's reconcile and status workers
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

// generated is what the operator is expected to write for f: the translator's output, offline,
// and the diagnostics the statuses of f's SMI objects are made from (the model's and the
// translator's, as the reconcilers gather them).
func (f fixture) generated(settings mesh.Settings) ([]client.Object, []mesh.Diagnostic) {
	model, diags := mesh.Build(f.snapshot, settings)
	out, translated := istio.Translate(model, settings)
	return out.Objects(), append(diags, translated...)
}

// asWritten makes the translator's objects what the operator writes, for the direct writes: each
// gets the controller reference the operator gives it (to the SMI object it comes from, or the
// Namespace for the allow-nothing policy; their UIDs are made up, nothing checks them here). And
// it labels them as the benchmark's: no operator runs while they exist (the direct namespaces are
// emptied before each operator starts), but one left behind would otherwise be taken for the
// operator's own orphan and deleted while the operator is measured.
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

// generatedLists are the list kinds of what the operator generates (istiobackend.Kinds).
func generatedLists() []schema.GroupVersionKind {
	scheme := controllers.NewScheme()
	var out []schema.GroupVersionKind
	for _, obj := range istiobackend.Kinds {
		gvk, err := apiutil.GVKForObject(obj, scheme)
		if err != nil {
			panic(err)
		}
		out = append(out, gvk.GroupVersion().WithKind(gvk.Kind+"List"))
	}
	return out
}

// sameAsWritten checks that what was written directly in namespace direct is what the operator
// wrote in namespace operator: the same Istio objects (names, specs, labels and controller
// reference kinds; the managed-by label and the owners' UIDs aside), the same statuses (conditions
// without their transition times) and the same Events (about the same objects, of the same type,
// reason, action and note, from the same controller); the namespaces' names aside.
func sameAsWritten(ctx context.Context, c client.Client, direct, operator string) error {
	for _, compared := range []struct {
		what     string
		describe func(context.Context, client.Client, string) (map[string]string, error)
	}{{"Istio objects", describeGenerated}, {"statuses", describeStatuses}, {"Events", describeEvents}} {
		want, err := compared.describe(ctx, c, operator)
		if err != nil {
			return err
		}
		got, err := compared.describe(ctx, c, direct)
		if err != nil {
			return err
		}
		if d := cmp.Diff(want, got); d != "" {
			return fmt.Errorf("the %s written directly in %s differ from the operator's in %s (-operator +direct):\n%s", compared.what, direct, operator, d)
		}
	}
	return nil
}

// describeGenerated describes the Istio objects in ns by kind and name.
func describeGenerated(ctx context.Context, c client.Client, ns string) (map[string]string, error) {
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

// describeStatuses describes the statuses of the TrafficSplits and TrafficTargets in ns by kind and name.
func describeStatuses(ctx context.Context, c client.Client, ns string) (map[string]string, error) {
	splits, targets, err := listReported(ctx, c, ns)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	describe := func(kind string, o hub.Object) {
		st := o.GetStatus().DeepCopy()
		for i := range st.Conditions {
			st.Conditions[i].LastTransitionTime = metav1.Time{}
		}
		out[kind+"/"+o.GetName()] = strings.ReplaceAll(fmt.Sprintf("generation %d, %+v", o.GetGeneration(), *st), ns, "<namespace>")
	}
	for i := range splits {
		describe(smi.TrafficSplitKind, &splits[i])
	}
	for i := range targets {
		describe(smi.TrafficTargetKind, &targets[i])
	}
	return out, nil
}

// describeEvents counts the status writers' Events in ns by what they say.
func describeEvents(ctx context.Context, c client.Client, ns string) (map[string]string, error) {
	events, err := statusEvents(ctx, c, ns)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, e := range events {
		counts[strings.ReplaceAll(fmt.Sprintf("%s: %s %s/%s %s %s %q", e.ReportingController, e.Type, e.Regarding.Kind, e.Regarding.Name,
			e.Reason, e.Action, e.Note), ns, "<namespace>")]++
	}
	out := map[string]string{}
	for k, n := range counts {
		out[k] = strconv.Itoa(n)
	}
	return out, nil
}

// statusEvents lists the Events in ns that a status writer sent, by the name of its recorder; not
// those of the API server itself (its IP allocator reports on Services it repairs).
func statusEvents(ctx context.Context, c client.Client, ns string) ([]eventsv1.Event, error) {
	events := &eventsv1.EventList{}
	if err := c.List(ctx, events, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(events.Items, func(e eventsv1.Event) bool { return e.ReportingController != controllers.EventReporter }), nil
}

// listReported lists the objects the operator reports on in ns: its TrafficSplits and TrafficTargets.
func listReported(ctx context.Context, c client.Client, ns string) ([]hub.TrafficSplit, []hub.TrafficTarget, error) {
	splits, targets := &hub.TrafficSplitList{}, &hub.TrafficTargetList{}
	if err := c.List(ctx, splits, client.InNamespace(ns)); err != nil {
		return nil, nil, err
	}
	if err := c.List(ctx, targets, client.InNamespace(ns)); err != nil {
		return nil, nil, err
	}
	return splits.Items, targets.Items, nil
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

// countStored counts, in the namespaces starting with prefix, what the API server holds of what
// a phase wrote: the Istio objects, the TrafficSplits and TrafficTargets whose status says they
// are programmed, and the status writer's Events. It checks that the answers a phase ended on
// were not lost.
func countStored(ctx context.Context, c client.Client, prefix string) (writeCounts, error) {
	var stored writeCounts
	n, err := countGenerated(ctx, c, prefix)
	if err != nil {
		return stored, err
	}
	stored[istioCreation] = n
	for i := range namespaces {
		ns := fmt.Sprintf("%s%d", prefix, i)
		splits, targets, err := listReported(ctx, c, ns)
		if err != nil {
			return stored, err
		}
		stored[statusPatch] += int(smioperator.CountObjects(splits, targets).Programmed)
		events, err := statusEvents(ctx, c, ns)
		if err != nil {
			return stored, err
		}
		stored[eventCreation] += len(events)
	}
	return stored, nil
}

// deleteAllOf deletes every object of the kinds given in the namespaces starting with prefix.
func deleteAllOf(ctx context.Context, c client.Client, prefix string, kinds ...client.Object) error {
	for i := range namespaces {
		for _, obj := range kinds {
			if err := c.DeleteAllOf(ctx, obj, client.InNamespace(fmt.Sprintf("%s%d", prefix, i))); err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteGenerated deletes the Istio objects in the namespaces starting with each prefix (envtest
// runs no namespace controller, so deleting the namespaces would not) and waits until they are gone.
func deleteGenerated(ctx context.Context, c client.Client, prefixes ...string) error {
	for _, prefix := range prefixes {
		if err := deleteAllOf(ctx, c, prefix, istiobackend.Kinds...); err != nil {
			return err
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
// cache options), every request of its clients going through wrap.
func startOperator(ctx context.Context, b *testing.B, cfg *rest.Config, settings mesh.Settings, wrap func(http.RoundTripper) http.RoundTripper) (stop func()) {
	cfg = controllers.ClientConfig(cfg, qps, burst)
	cfg.Wrap(wrap)
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
	return func() { cancel(); <-done }
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

// cpuSeconds returns the CPU time (user + system) used so far by this process and by each of its
// child processes whose command name is one of names (the control plane envtest started), by name
// ("self" for this process). Children only: a machine running other tests has other API servers.
func cpuSeconds(names ...string) map[string]float64 {
	out := map[string]float64{}
	read := func(pid string) (name string, ppid int, cpu float64, ok bool) {
		data, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return "", 0, 0, false
		}
		text := string(data)
		open, closing := strings.IndexByte(text, '('), strings.LastIndexByte(text, ')')
		if open < 0 || closing < open {
			return "", 0, 0, false
		}
		fields := strings.Fields(text[closing+2:]) // from the state on: state, ppid, ...
		if len(fields) < 13 {
			return "", 0, 0, false
		}
		ppid, _ = strconv.Atoi(fields[1])
		utime, _ := strconv.ParseFloat(fields[11], 64)
		stime, _ := strconv.ParseFloat(fields[12], 64)
		return text[open+1 : closing], ppid, (utime + stime) / 100, true // USER_HZ is 100 on Linux
	}
	if _, _, v, ok := read("self"); ok {
		out["self"] = v
	}
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if name, ppid, v, ok := read(e.Name()); ok && ppid == self && slices.Contains(names, name) {
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

// istioRun is what the phases of BenchmarkIstioBackend share. The same SMI objects live in two
// sets of namespaces: "op-", left to the operator, and "direct-", where the operator's writes are
// sent directly (directWriter), without the operator.
type istioRun struct {
	b        *testing.B
	ctx      context.Context
	env      *testenv.Env
	c        client.Client // sets up and checks, outside the phases measured
	settings mesh.Settings
	direct   *directWriter

	// The direct namespaces' SMI objects, created afresh before each direct phase; the Istio
	// objects the operator would generate from them; the diagnostics their statuses are made from.
	directSMI     []client.Object
	directObjects []client.Object
	directDiags   []mesh.Diagnostic
	// want are the writes of the operator's work on one set of namespaces, whoever sends them:
	// one creation per generated Istio object, one status patch per TrafficSplit and TrafficTarget,
	// and one Event each (every one of them becomes Programmed, which is news; the others are not).
	want writeCounts
}

// phaseTimes are how long after its start a phase had every generated Istio object created
// (objects), and every status patch and Event written as well (statuses).
type phaseTimes struct{ objects, statuses time.Duration }

// ratioTo is p's times divided by the mean of the times of before and after.
func (p phaseTimes) ratioTo(before, after phaseTimes) (objects, statuses float64) {
	return p.objects.Seconds() / ((before.objects + after.objects) / 2).Seconds(),
		p.statuses.Seconds() / ((before.statuses + after.statuses) / 2).Seconds()
}

// create creates o with the setting-up client.
func (r *istioRun) create(ctx context.Context, o client.Object) error { return r.c.Create(ctx, o) }

// checkStored fails the run unless the namespaces starting with prefix hold everything who wrote.
func (r *istioRun) checkStored(who, prefix string) {
	stored, err := countStored(r.ctx, r.c, prefix)
	if err != nil {
		r.b.Fatal(err)
	}
	if stored != r.want {
		r.b.Fatalf("%s: the API server holds %d Istio objects, %d programmed statuses and %d of the status writer's Events; written: %v",
			who, stored[istioCreation], stored[statusPatch], stored[eventCreation], r.want)
	}
}

// writeDirectly sends in the direct namespaces the writes the operator sends, as it sends them,
// and returns when they were answered: first the generated Istio objects, created, then each
// TrafficSplit's and TrafficTarget's status patch and Event, each from as many goroutines as the
// operator has workers (for reconciles, and for statuses). Its SMI objects are created first,
// before the clock starts: the operator's exist before it starts. It leaves everything in place,
// to be compared with the operator's; clearDirect removes it.
func (r *istioRun) writeDirectly(phase string, profile bool) phaseTimes {
	b, ctx := r.b, r.ctx
	smiObjects := make([]client.Object, 0, len(r.directSMI))
	var reported []client.Object
	for _, o := range r.directSMI {
		o := o.DeepCopyObject().(client.Object) // a creation fills in what it is given
		smiObjects = append(smiObjects, o)
		if hasStatus(o) {
			reported = append(reported, o)
		}
	}
	if err := writeAll(ctx, smiObjects, r.create); err != nil {
		b.Fatal(err)
	}

	counted := newCounted("direct-", r.want)
	r.direct.phase.Store(counted)
	defer r.direct.phase.Store(nil)
	requestsBefore := apiServerRequestTimes(ctx, b, r.env.Config)
	conversions.take()
	cpuBefore := cpuSeconds("kube-apiserver", "etcd")
	if path := os.Getenv("BENCH_APISERVER_PROFILE_DIRECT"); path != "" && profile {
		go profileAPIServer(ctx, b, r.env.Config, path, 5*time.Second)
	}
	start := time.Now()
	if err := writeAll(ctx, r.directObjects, r.direct.create); err != nil {
		b.Fatal(err)
	}
	cpuObjects := cpuSeconds("kube-apiserver", "etcd")
	if err := writeAll(ctx, reported, func(ctx context.Context, o client.Object) error {
		return r.direct.report(ctx, o, r.directDiags)
	}); err != nil {
		b.Fatal(err)
	}
	// The Events are sent in the background, as the operator's are.
	took := phaseTimes{
		objects:  counted.answers.waitFor(b, phase, time.Minute, nil, istioCreation).Sub(start),
		statuses: counted.answers.waitFor(b, phase, 5*time.Minute, nil, statusPatch, eventCreation).Sub(start),
	}
	cpuAfter := cpuSeconds("kube-apiserver", "etcd")
	printRequestTimes(phase, requestsBefore, apiServerRequestTimes(ctx, b, r.env.Config))
	byPair, total := conversions.take()
	fmt.Printf("conversion webhook calls meanwhile: %d %v\n", total, byPair)
	printCPU(phase+", until every Istio object existed", took.objects, cpuBefore, cpuObjects)
	printCPU(phase+", then until every status and Event was written", took.statuses-took.objects, cpuObjects, cpuAfter)
	counted.check(b, phase)
	r.checkStored(phase, "direct-")
	return took
}

// clearDirect empties the direct namespaces: an operator must find neither their SMI objects,
// which it would program, nor their Istio objects, which its informers would list and watch.
func (r *istioRun) clearDirect() {
	if err := deleteGenerated(r.ctx, r.c, "direct-"); err != nil {
		r.b.Fatal(err)
	}
	if err := deleteAllOf(r.ctx, r.c, "direct-", &hub.TrafficSplit{}, &hub.TrafficTarget{}, &hub.HTTPRouteGroup{}, &eventsv1.Event{}); err != nil {
		r.b.Fatal(err)
	}
}

// applyDirectly writes the generated objects in the direct namespaces with server-side apply and
// returns the time it took: a second anchor, what applying the objects costs against creating
// them (the operator creates new objects, and applies changes to those it controls). It leaves
// the namespaces empty.
func (r *istioRun) applyDirectly() time.Duration {
	b, ctx := r.b, r.ctx
	phase := "direct server-side apply of the Istio objects"
	requestsBefore := apiServerRequestTimes(ctx, b, r.env.Config)
	cpuBefore := cpuSeconds("kube-apiserver", "etcd")
	start := time.Now()
	if err := writeAll(ctx, r.directObjects, r.direct.apply); err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	printRequestTimes(phase, requestsBefore, apiServerRequestTimes(ctx, b, r.env.Config))
	printCPU(phase, took, cpuBefore, cpuSeconds("kube-apiserver", "etcd"))
	if n, err := countGenerated(ctx, r.c, "direct-"); err != nil || n != len(r.directObjects) {
		b.Fatalf("%s: a list finds %d of the %d objects applied (%v)", phase, n, len(r.directObjects), err)
	}
	if err := deleteGenerated(ctx, r.c, "direct-"); err != nil {
		b.Fatal(err)
	}
	return took
}

// operatorRound is what one operator's run measured.
type operatorRound struct {
	phaseTimes
	startup    time.Duration // until its first write was answered
	reconciles float64       // until every Istio object existed
}

// runOperator starts an operator on the namespaces as they are and returns when, after its start,
// its writes were answered. The end of each phase is the answer to the operator's own last write
// of it, as for the direct writers. It stops the operator and checks that it sent exactly the
// writes wanted, and that the API server holds them.
func (r *istioRun) runOperator(round int, profile bool) operatorRound {
	b, ctx := r.b, r.ctx
	phase := fmt.Sprintf("operator, round %d", round)
	counted := newCounted("op-", r.want)
	reconcilesBefore := testenv.Reconciles("")
	requestsBefore := apiServerRequestTimes(ctx, b, r.env.Config)
	conversions.take()
	cpuBefore := cpuSeconds("kube-apiserver", "etcd")
	path := os.Getenv("BENCH_OPERATOR_PROFILE")
	if profile && path != "" {
		// The operator runs in this process: profile it while it writes the Istio objects.
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	stop := startOperator(ctx, b, r.env.Config, r.settings, counted.wrap)
	if path := os.Getenv("BENCH_APISERVER_PROFILE"); profile && path != "" {
		go profileAPIServer(ctx, b, r.env.Config, path, 9*time.Second)
	}
	progress := func() {
		fmt.Printf("  %5.1fs: %.0f reconciles; answered: %v\n", time.Since(start).Seconds(), testenv.Reconciles("")-reconcilesBefore, counted.answers.counts())
	}
	var took operatorRound
	took.objects = counted.answers.waitFor(b, phase, 5*time.Minute, progress, istioCreation).Sub(start)
	took.reconciles = testenv.Reconciles("") - reconcilesBefore
	if profile && path != "" {
		pprof.StopCPUProfile()
	}
	requestsObjects := apiServerRequestTimes(ctx, b, r.env.Config)
	byPairObjects, totalObjects := conversions.take()
	cpuObjects := cpuSeconds("kube-apiserver", "etcd")
	writesObjects := counted.writes.String()
	took.statuses = counted.answers.waitFor(b, phase, 5*time.Minute, progress, statusPatch, eventCreation).Sub(start)
	cpuAfter := cpuSeconds("kube-apiserver", "etcd")
	stop()
	took.startup = counted.answers.firstAt().Sub(start)

	printRequestTimes(phase+", until every Istio object existed", requestsBefore, requestsObjects)
	fmt.Printf("conversion webhook calls meanwhile: %d %v\n", totalObjects, byPairObjects)
	printCPU(phase+", until every Istio object existed", took.objects, cpuBefore, cpuObjects)
	printRequestTimes(phase+", then until every status and Event was written", requestsObjects, apiServerRequestTimes(ctx, b, r.env.Config))
	byPair, total := conversions.take()
	fmt.Printf("conversion webhook calls meanwhile: %d %v\n", total, byPair)
	printCPU(phase+", then until every status and Event was written", took.statuses-took.objects, cpuObjects, cpuAfter)
	fmt.Printf("%s: start-up (informers listing what is there, until its first write was answered) %.1f s\n", phase, took.startup.Seconds())
	fmt.Printf("%s: until every Istio object existed: %s\n", phase, writesObjects)
	fmt.Printf("%s: until every status and Event was written: %v\n", phase, counted.writes)
	counted.check(b, phase)
	r.checkStored(phase, "op-")
	return took
}

// resetOperator brings the operator's namespaces back to what the first operator found: no Istio
// objects, no statuses, no Events. The next operator then sends every write again.
func (r *istioRun) resetOperator() {
	b, ctx := r.b, r.ctx
	if err := deleteGenerated(ctx, r.c, "op-"); err != nil {
		b.Fatal(err)
	}
	var reported []client.Object
	for i := range namespaces {
		splits, targets, err := listReported(ctx, r.c, fmt.Sprintf("op-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		for j := range splits {
			reported = append(reported, &splits[j])
		}
		for j := range targets {
			reported = append(reported, &targets[j])
		}
	}
	noStatus := client.RawPatch(types.MergePatchType, []byte(`{"status":null}`))
	if err := writeAll(ctx, reported, func(ctx context.Context, o client.Object) error {
		return r.c.Status().Patch(ctx, o, noStatus)
	}); err != nil {
		b.Fatal(err)
	}
	if err := deleteAllOf(ctx, r.c, "op-", &eventsv1.Event{}); err != nil {
		b.Fatal(err)
	}
}

// checkResync starts a new operator on everything as the last one left it, and fails the run if
// it writes anything: a full resync with nothing changed must send no request.
func (r *istioRun) checkResync() {
	b := r.b
	// The SMI reconcilers' own: the SMIOperator and Service controllers' reconciles are no resync
	// of an SMI object.
	smiReconciles := func() float64 { return testenv.Reconciles("trafficsplit") + testenv.Reconciles("traffictarget") }
	reconcilesBefore := smiReconciles()
	writes := &testenv.WriteCounter{}
	stop := startOperator(r.ctx, b, r.env.Config, r.settings, writes.Wrap)
	reported := r.want[statusPatch]
	for deadline := time.Now().Add(5 * time.Minute); smiReconciles()-reconcilesBefore < float64(reported); {
		if time.Now().After(deadline) {
			b.Fatalf("a full resync: %.0f reconciles of %d SMI objects within 5 minutes", smiReconciles()-reconcilesBefore, reported)
		}
		time.Sleep(pollingInterval)
	}
	time.Sleep(2 * time.Second) // statuses wait for quiet, Events are sent in the background
	stop()
	if n := writes.Total(); n != 0 {
		b.Fatalf("a full resync with nothing changed wrote %d times: %v", n, writes)
	}
	fmt.Println("writes on a full resync with nothing changed: 0")
}

// BenchmarkIstioBackend creates namespaces*perNamespace TrafficSplits (2-3 backends each) and as
// many TrafficTargets, and reports how long the operator takes until every Istio object they
// generate exists, and until every status and Event is written too, against the time the same
// client setup takes to send the same writes directly, the same way.
// benchAccessLabel selects the namespaces where the benchmark's operator applies deny-by-default.
const benchAccessLabel = "bench.smi-operator.io/access"

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
	// Deny-by-default applies in the operator's namespaces only: in the direct ones it would write
	// their allow-nothing policies while it is measured. The direct writes include the policy of
	// their namespace, judged as if it were selected (the fixture's Namespace carries the label).
	settings := mesh.Settings{Access: mesh.AccessEnforcing, AccessNamespaces: benchAccessLabel + "=on"}
	r := &istioRun{b: b, ctx: ctx, env: env, c: c, settings: settings, direct: newDirectWriter(b, env.Config)}

	var operatorSMI []client.Object
	for i := range namespaces {
		for _, prefix := range []string{"direct-", "op-"} {
			ns := fmt.Sprintf("%s%d", prefix, i)
			selected := map[string]string{benchAccessLabel: "on"}
			namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
			if prefix == "op-" {
				namespace.Labels = selected
			}
			if err := c.Create(ctx, namespace); err != nil {
				b.Fatal(err)
			}
			f := newFixture(ns)
			f.snapshot.Namespaces = []corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: selected}}}
			if prefix == "direct-" {
				objects, diags := f.generated(r.settings)
				r.directSMI = append(r.directSMI, f.smi...)
				r.directObjects = append(r.directObjects, asWritten(objects)...)
				r.directDiags = append(r.directDiags, diags...)
				continue
			}
			if err := writeAll(ctx, f.prerequisites, r.create); err != nil {
				b.Fatal(err)
			}
			operatorSMI = append(operatorSMI, f.smi...)
		}
	}
	r.want[istioCreation] = len(r.directObjects)
	for _, o := range r.directSMI {
		if hasStatus(o) {
			r.want[statusPatch]++
			r.want[eventCreation]++
		}
	}
	b.Logf("per run: %d TrafficSplits, %d TrafficTargets; writes: %v", namespaces*perNamespace, namespaces*perNamespace, r.want)

	b.ResetTimer()
	before := r.writeDirectly("direct writes, before the operator", true)
	firstDirect := before
	r.clearDirect()
	applyTime := r.applyDirectly()

	if err := writeAll(ctx, operatorSMI, r.create); err != nil {
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

	// The machine's speed drifts by tens of per cent between phases a minute apart, so the
	// operator runs several rounds (BENCH_ROUNDS), each compared with the direct writes on either
	// side of it. Each round starts from what the first found: its namespaces without Istio
	// objects, statuses or Events.
	var first operatorRound
	var objectRatios, statusRatios []float64
	for round := 1; round <= rounds(); round++ {
		if round > 1 {
			r.resetOperator()
		}
		op := r.runOperator(round, round == 1)
		if round == 1 {
			first = op
			r.checkResync()
		}
		after := r.writeDirectly(fmt.Sprintf("direct writes, after round %d", round), false)
		if err := sameAsWritten(ctx, c, "direct-0", "op-0"); err != nil {
			b.Fatal(err)
		}
		r.clearDirect()
		objectRatio, statusRatio := op.ratioTo(before, after)
		objectRatios, statusRatios = append(objectRatios, objectRatio), append(statusRatios, statusRatio)
		fmt.Printf("round %d: operator %.1fs until every Istio object existed (start-up %.1fs), %.1fs until every status and Event was written; "+
			"direct writes before %.1fs / %.1fs, after %.1fs / %.1fs: %.2fx / %.2fx\n",
			round, op.objects.Seconds(), op.startup.Seconds(), op.statuses.Seconds(),
			before.objects.Seconds(), before.statuses.Seconds(), after.objects.Seconds(), after.statuses.Seconds(), objectRatio, statusRatio)
		before = after
	}
	b.StopTimer()

	slices.Sort(objectRatios)
	slices.Sort(statusRatios)
	median := func(ratios []float64) float64 { return ratios[len(ratios)/2] }
	b.ReportMetric(firstDirect.objects.Seconds(), "direct-objects-s")
	b.ReportMetric(firstDirect.statuses.Seconds(), "direct-statuses-s")
	b.ReportMetric(applyTime.Seconds(), "direct-apply-s")
	b.ReportMetric(first.objects.Seconds(), "operator-objects-s")
	b.ReportMetric(first.statuses.Seconds(), "operator-statuses-s")
	b.ReportMetric(first.startup.Seconds(), "startup-s")
	b.ReportMetric(first.reconciles/first.objects.Seconds(), "reconciles/s")
	b.ReportMetric(median(objectRatios), "ratio-objects")
	b.ReportMetric(objectRatios[0], "ratio-objects-min")
	b.ReportMetric(objectRatios[len(objectRatios)-1], "ratio-objects-max")
	b.ReportMetric(median(statusRatios), "ratio-statuses")
	b.ReportMetric(statusRatios[0], "ratio-statuses-min")
	b.ReportMetric(statusRatios[len(statusRatios)-1], "ratio-statuses-max")
	fmt.Printf("istio backend: %v per run; direct writes before the operator: every Istio object after %.1fs (%.1fs with server-side apply instead), "+
		"every status and Event after %.1fs; operator, round 1: %.1fs (%.1fs of it start-up) and %.1fs, %.0f reconciles/s; "+
		"operator / mean of the direct writes around it over %d rounds, until every Istio object existed: median %.2fx (%.2f-%.2fx), "+
		"until every status and Event was written: median %.2fx (%.2f-%.2fx)\n",
		r.want, firstDirect.objects.Seconds(), applyTime.Seconds(), firstDirect.statuses.Seconds(),
		first.objects.Seconds(), first.startup.Seconds(), first.statuses.Seconds(), first.reconciles/first.objects.Seconds(),
		len(objectRatios), median(objectRatios), objectRatios[0], objectRatios[len(objectRatios)-1],
		median(statusRatios), statusRatios[0], statusRatios[len(statusRatios)-1])
}

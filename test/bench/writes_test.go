package bench

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/controllers/status"
	"github.com/smi-operator/smi-operator/internal/objectjson"
	"github.com/smi-operator/smi-operator/test/testenv"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// writeKind is a kind of write the benchmark compares between the operator and the direct writers.
type writeKind int

const (
	istioCreation writeKind = iota // an Istio object created: a POST to its collection answered 201 Created
	statusPatch                    // a TrafficSplit's or TrafficTarget's status patched: a PATCH of …/status answered 200 OK
	eventCreation                  // an Event created: a POST to events.k8s.io answered 201 Created
	writeKinds
)

func (k writeKind) String() string {
	return [...]string{"Istio object creations", "status patches", "Events"}[k]
}

// writeCounts are numbers of writes by kind.
type writeCounts [writeKinds]int

func (w writeCounts) total() int {
	n := 0
	for _, c := range w {
		n += c
	}
	return n
}

func (w writeCounts) String() string {
	parts := make([]string, 0, writeKinds)
	for k, n := range w {
		parts = append(parts, fmt.Sprintf("%d %v", n, writeKind(k)))
	}
	return strings.Join(parts, ", ")
}

// answers counts the successful answers a client receives to the writes compared, in namespaces
// starting with prefix, and tells when each kind has been answered as often as wanted. Every
// phase, the operator's and the direct writers', ends at an answer its own writer received: the
// API server has stored a write once it has answered it, and no watch or polling of the
// benchmark's loads the API server while a phase is measured (lists afterwards check the counts).
// A creation answered 201 is a new object: a second creation of a name fails, and nothing
// deletes the objects while they are counted.
type answers struct {
	prefix string
	want   writeCounts
	done   [writeKinds]chan struct{}

	mu      sync.Mutex
	got     writeCounts
	first   time.Time // the first answer of any kind
	reached [writeKinds]time.Time
}

func newAnswers(prefix string, want writeCounts) *answers {
	a := &answers{prefix: prefix, want: want}
	for k := range a.done {
		a.done[k] = make(chan struct{})
	}
	return a
}

// wrap is a rest.Config transport wrapper.
func (a *answers) wrap(next http.RoundTripper) http.RoundTripper {
	return testenv.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		if err != nil {
			return resp, err
		}
		if kind, ok := a.kindOf(req, resp.StatusCode); ok {
			a.add(kind)
		}
		return resp, err
	})
}

// kindOf says which kind of compared write req is, answered with code; false for any other request.
func (a *answers) kindOf(req *http.Request, code int) (writeKind, bool) {
	// /apis/<group>/<version>/namespaces/<namespace>/<resource>[/<name>/<subresource>]
	p := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	if len(p) < 6 || p[0] != "apis" || p[3] != "namespaces" || !strings.HasPrefix(p[4], a.prefix) {
		return 0, false
	}
	group := p[1]
	switch {
	case req.Method == http.MethodPost && code == http.StatusCreated && len(p) == 6 && strings.HasSuffix(group, ".istio.io"):
		return istioCreation, true
	case req.Method == http.MethodPatch && code == http.StatusOK && len(p) == 8 && p[7] == "status" && strings.HasSuffix(group, ".smi-spec.io"):
		return statusPatch, true
	case req.Method == http.MethodPost && code == http.StatusCreated && len(p) == 6 && group == "events.k8s.io":
		return eventCreation, true
	}
	return 0, false
}

func (a *answers) add(kind writeKind) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.first.IsZero() {
		a.first = now
	}
	a.got[kind]++
	if a.got[kind] == a.want[kind] {
		a.reached[kind] = now
		close(a.done[kind])
	}
}

// firstAt is when the first compared write was answered.
func (a *answers) firstAt() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.first
}

// counts are the answers so far.
func (a *answers) counts() writeCounts {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got
}

// waitFor waits until every kind of write listed has been answered as often as wanted, calling
// progress (unless nil) every pollingInterval meanwhile, and returns when the last of them was
// answered. It fails b, naming who, after timeout.
func (a *answers) waitFor(b *testing.B, who string, timeout time.Duration, progress func(), kinds ...writeKind) time.Time {
	deadline := time.After(timeout)
	tick := time.NewTicker(pollingInterval)
	defer tick.Stop()
	var last time.Time
	for _, k := range kinds {
		for waiting := true; waiting; {
			select {
			case <-a.done[k]:
				waiting = false
			case <-tick.C:
				if progress != nil {
					progress()
				}
			case <-deadline:
				b.Fatalf("%s: after %v, answers to %v, of %v wanted", who, timeout, a.counts(), a.want)
			}
		}
		a.mu.Lock()
		if a.reached[k].After(last) {
			last = a.reached[k]
		}
		a.mu.Unlock()
	}
	return last
}

// counted counts the writes of one phase: those compared, by their answers, and every write
// request sent.
type counted struct {
	answers *answers
	writes  *testenv.WriteCounter
}

func newCounted(prefix string, want writeCounts) *counted {
	return &counted{answers: newAnswers(prefix, want), writes: &testenv.WriteCounter{}}
}

// wrap is a rest.Config transport wrapper.
func (c *counted) wrap(next http.RoundTripper) http.RoundTripper {
	return c.writes.Wrap(c.answers.wrap(next))
}

// check fails b unless who sent exactly the writes wanted, each answered once and nothing else:
// the operator's time divided by the direct writers' means something only if both sent the same
// writes.
func (c *counted) check(b *testing.B, who string) {
	if got := c.answers.counts(); got != c.answers.want || c.writes.Total() != got.total() {
		b.Fatalf("%s: answers to %v, of %v wanted; every write sent: %v", who, got, c.answers.want, c.writes)
	}
}

// directWriter sends the operator's writes without the operator: the requests owned.Writer and
// status.Writer send, through the client and the Event recorder of a cluster.Cluster made as the
// operator's manager is (controllers.ClientConfig, QPS 500). One serves every direct phase, each
// phase's writes counted by that phase's counters.
type directWriter struct {
	client   client.Client
	statuses status.Writer
	phase    atomic.Pointer[counted]
}

func newDirectWriter(b *testing.B, cfg *rest.Config) *directWriter {
	d := &directWriter{}
	cfg = controllers.ClientConfig(cfg, qps, burst)
	cfg.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return testenv.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			if c := d.phase.Load(); c != nil {
				return c.wrap(next).RoundTrip(req)
			}
			return next.RoundTrip(req)
		})
	})
	cl, err := cluster.New(cfg, func(o *cluster.Options) { o.Scheme = controllers.NewScheme() })
	if err != nil {
		b.Fatal(err)
	}
	d.client = cl.GetClient()
	d.statuses = status.Writer{Client: cl.GetClient(), Recorder: cl.GetEventRecorder(controllers.EventReporter)}
	return d
}

// create creates obj as owned.Writer creates an object its cache does not show.
func (d *directWriter) create(ctx context.Context, obj client.Object) error {
	u, err := objectjson.Unstructured(obj)
	if err != nil {
		return err
	}
	return d.client.Create(ctx, u, client.FieldOwner(owned.FieldManager))
}

// apply applies obj as owned.Writer applies to an object its source controls (without the UID:
// the object is new), and as it wrote new objects too until it created them (7a0ee89).
func (d *directWriter) apply(ctx context.Context, obj client.Object) error {
	u, err := objectjson.Unstructured(obj)
	if err != nil {
		return err
	}
	return d.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(owned.FieldManager), client.ForceOwnership)
}

// report writes the status of obj, a TrafficSplit or TrafficTarget as created, as the operator's
// status workers write it: its conditions made from the diagnostics about it as the reconcilers
// make them, one status patch, and an Event for each outcome that is news.
func (d *directWriter) report(ctx context.Context, obj client.Object, diags []mesh.Diagnostic) error {
	o := obj.(hub.Object)
	return d.statuses.Update(ctx, o, status.Conditions(o.GetGeneration(), status.DiagnosticsOf(diags, refOf(o))))
}

// hasStatus says whether the operator reports on obj: TrafficSplits and TrafficTargets.
func hasStatus(obj client.Object) bool {
	switch obj.(type) {
	case *hub.TrafficSplit, *hub.TrafficTarget:
		return true
	}
	return false
}

// refOf names a TrafficSplit or TrafficTarget as the reconcilers name it in diagnostics.
func refOf(obj hub.Object) mesh.ObjectRef {
	kind := smi.TrafficSplitKind
	if _, ok := obj.(*hub.TrafficTarget); ok {
		kind = smi.TrafficTargetKind
	}
	return mesh.ObjectRef{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

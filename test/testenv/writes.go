package testenv

import (
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// WriteCounter counts the write requests (anything but GET: watches are GETs too) of every client
// made from a rest.Config it wraps (config.Wrap(counter.Wrap)): in total, per namespace and per
// "<method> <resource>[/<subresource>]", with the time they took.
type WriteCounter struct {
	mu         sync.Mutex
	total      int
	busy       time.Duration
	byNS       map[string]int
	byResource map[string]int
}

// RoundTripFunc is an http.RoundTripper made of a function, for rest.Config transport wrappers.
type RoundTripFunc func(*http.Request) (*http.Response, error)

// RoundTrip implements http.RoundTripper.
func (f RoundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// Wrap is a rest.Config transport wrapper.
func (w *WriteCounter) Wrap(next http.RoundTripper) http.RoundTripper {
	return RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method == http.MethodGet {
			return next.RoundTrip(req)
		}
		start := time.Now()
		resp, err := next.RoundTrip(req)
		namespace, resource := parsePath(req.URL.Path)
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.byNS == nil {
			w.byNS, w.byResource = map[string]int{}, map[string]int{}
		}
		w.total++
		w.busy += time.Since(start)
		w.byNS[namespace]++
		w.byResource[req.Method+" "+resource]++
		return resp, err
	})
}

// Total is the number of writes so far.
func (w *WriteCounter) Total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total
}

// In is the number of writes to objects in namespace so far.
func (w *WriteCounter) In(namespace string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.byNS[namespace]
}

// String summarises the writes: count, breakdown by resource, average latency.
func (w *WriteCounter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	avg := time.Duration(0)
	if w.total > 0 {
		avg = w.busy / time.Duration(w.total)
	}
	return fmt.Sprintf("%d writes (%v), %.1f ms each on average", w.total, maps.Clone(w.byResource), float64(avg)/float64(time.Millisecond))
}

// parsePath splits an API path (/apis/g/v/namespaces/ns/resource/name/subresource) into the
// namespace and "resource[/subresource]".
func parsePath(path string) (namespace, resource string) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i, p := range parts {
		if p == "namespaces" && i+2 < len(parts) {
			rest := parts[i+2:] // resource, name, subresource
			if len(rest) == 3 {
				return parts[i+1], rest[0] + "/" + rest[2]
			}
			return parts[i+1], rest[0]
		}
	}
	return "", path
}

// Reconciles is how many reconciles controller (every controller when empty) has finished in this
// process, from controller-runtime's metrics.
func Reconciles(controller string) float64 {
	families, _ := crmetrics.Registry.Gather()
	total := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && (controller == "" || l.GetValue() == controller) {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

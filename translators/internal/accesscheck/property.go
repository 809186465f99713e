package accesscheck

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Backend is a backend as the property sees it.
type Backend struct {
	// Translate translates one model and returns the judge of requests against what it produced.
	Translate func(t testing.TB, model mesh.Model, settings mesh.Settings) func(Request) bool
	// KnownGap, when set, recognises requests the backend is known not to govern as the model
	// says, from the diagnostic the build reports about it; it returns that diagnostic. Such a
	// request that the backend allows beyond the model is counted in Stats.KnownGaps instead of
	// failing the property, so the exemption is as narrow as the report that justifies it.
	KnownGap func(diags []mesh.Diagnostic, settings mesh.Settings, req Request) (mesh.Diagnostic, bool)
	// Receives, when set, turns a probe into a request the backend can receive (a gRPC server
	// receives only HTTP/2 POSTs), before both sides judge it.
	Receives func(Request) Request
}

// Stats count the requests of the cases checked.
type Stats struct {
	Cases, Requests int
	// Governed requests are those the model claims (Verdict.Governed): the property's domain.
	Governed int
	// BackendAllowed and BothAllowed count governed requests.
	BackendAllowed, BothAllowed int
	// KnownGaps count governed requests the backend allows and the model denies, for a reason
	// the build reported (Backend.KnownGap).
	KnownGaps int
	// gap is the first known gap's diagnostic, for the log.
	gap string
}

// Add adds o to s.
func (s *Stats) Add(o Stats) {
	s.Cases += o.Cases
	s.Requests += o.Requests
	s.Governed += o.Governed
	s.BackendAllowed += o.BackendAllowed
	s.BothAllowed += o.BothAllowed
	s.KnownGaps += o.KnownGaps
	if s.gap == "" {
		s.gap = o.gap
	}
}

func (s Stats) String() string {
	out := fmt.Sprintf("%d cases, %d requests: %d governed by the model, %d allowed by the backend and the model (%.1f%% of all)",
		s.Cases, s.Requests, s.Governed, s.BothAllowed, 100*s.share())
	if s.KnownGaps > 0 {
		out += fmt.Sprintf("; %d allowed beyond the model where the build reports why, first: %s", s.KnownGaps, s.gap)
	}
	return out
}

func (s Stats) share() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.BothAllowed) / float64(s.Requests)
}

// RequireAllowedShare fails the test when fewer than min of all requests were allowed by both
// the backend and the model: a property that holds because everything is denied proves nothing.
func (s Stats) RequireAllowedShare(t testing.TB, min float64) {
	t.Helper()
	t.Log(s.String())
	if s.share() < min {
		t.Fatalf("only %.1f%% of the requests were allowed by both (want at least %.0f%%): the property is close to vacuous; %s",
			100*s.share(), 100*min, s)
	}
}

// Violation is a request the backend allows and the model does not, with the case reduced to
// what it needs.
type Violation struct {
	Snapshot mesh.Snapshot
	Settings mesh.Settings
	Request  Request
}

// Check runs the property on c with n requests drawn from r: every request the model governs and
// the backend allows, the model allows. It returns the counts and, when the property fails, the
// first violation, shrunk.
func Check(t testing.TB, c *Case, r *rand.Rand, n int, backend Backend) (Stats, *Violation) {
	t.Helper()
	return check(t, c, r, n, backend, true)
}

func check(t testing.TB, c *Case, r *rand.Rand, n int, backend Backend, shrinkViolation bool) (Stats, *Violation) {
	t.Helper()
	model, diags := mesh.Build(c.Snapshot, c.Settings)
	allows := backend.Translate(t, model, c.Settings)
	st := Stats{Cases: 1}
	for _, req := range c.Requests(r, n) {
		if backend.Receives != nil {
			req = backend.Receives(req)
		}
		st.Requests++
		v := IRVerdict(t, model, req)
		if !v.Governed {
			continue
		}
		st.Governed++
		if !allows(req) {
			continue
		}
		st.BackendAllowed++
		if !v.Allowed {
			if d, ok := knownGap(backend, diags, c.Settings, req); ok {
				st.KnownGaps++
				if st.gap == "" {
					st.gap = d.String()
				}
				continue
			}
			if !shrinkViolation {
				return st, &Violation{Snapshot: c.Snapshot, Settings: c.Settings, Request: req}
			}
			return st, shrink(t, c.Snapshot, c.Settings, req, backend)
		}
		st.BothAllowed++
	}
	return st, nil
}

// violates reports whether the backend allows req on snap while the model governs and denies it.
func violates(t testing.TB, snap mesh.Snapshot, settings mesh.Settings, req Request, backend Backend) bool {
	model, diags := mesh.Build(snap, settings)
	v := IRVerdict(t, model, req)
	if !v.Governed || v.Allowed {
		return false
	}
	if _, ok := knownGap(backend, diags, settings, req); ok {
		return false
	}
	return backend.Translate(t, model, settings)(req)
}

func knownGap(b Backend, diags []mesh.Diagnostic, settings mesh.Settings, req Request) (mesh.Diagnostic, bool) {
	if b.KnownGap == nil {
		return mesh.Diagnostic{}, false
	}
	return b.KnownGap(diags, settings, req)
}

// shrink removes objects, and parts of TrafficTargets and HTTPRouteGroups, for as long as the
// violation remains, so that the report shows only what it needs.
func shrink(t testing.TB, snap mesh.Snapshot, settings mesh.Settings, req Request, backend Backend) *Violation {
	t.Helper()
	s := cloneSnapshot(snap)
	// The request's pod must keep its Deployment: without it, the model could not know the pod.
	podExists := func() bool {
		return slices.ContainsFunc(s.Deployments, func(d appsv1.Deployment) bool {
			return d.Namespace == req.Pod.Namespace && d.Name == req.Pod.Workload
		})
	}
	still := func() bool { return podExists() && violates(t, s, settings, req, backend) }
	for changed := true; changed; {
		changed = false
		changed = removeEach(&s.TrafficTargets, still) || changed
		changed = removeEach(&s.HTTPRouteGroups, still) || changed
		changed = removeEach(&s.TCPRoutes, still) || changed
		changed = removeEach(&s.UDPRoutes, still) || changed
		changed = removeEach(&s.Deployments, still) || changed
		for i := range s.TrafficTargets {
			changed = removeEach(&s.TrafficTargets[i].Spec.Sources, still) || changed
			changed = removeEach(&s.TrafficTargets[i].Spec.Rules, still) || changed
		}
		for i := range s.HTTPRouteGroups {
			changed = removeEach(&s.HTTPRouteGroups[i].Spec.Matches, still) || changed
		}
	}
	return &Violation{Snapshot: s, Settings: settings, Request: req}
}

// removeEach removes each element of *list in turn, keeping the removal when still holds after it.
func removeEach[T any](list *[]T, still func() bool) bool {
	changed := false
	for i := len(*list) - 1; i >= 0; i-- {
		saved := *list
		*list = append(append([]T(nil), saved[:i]...), saved[i+1:]...)
		if still() {
			changed = true
		} else {
			*list = saved
		}
	}
	return changed
}

func cloneSnapshot(s mesh.Snapshot) mesh.Snapshot {
	var out mesh.Snapshot
	for _, o := range s.TrafficTargets {
		out.TrafficTargets = append(out.TrafficTargets, *o.DeepCopy())
	}
	for _, o := range s.HTTPRouteGroups {
		out.HTTPRouteGroups = append(out.HTTPRouteGroups, *o.DeepCopy())
	}
	for _, o := range s.TCPRoutes {
		out.TCPRoutes = append(out.TCPRoutes, *o.DeepCopy())
	}
	for _, o := range s.UDPRoutes {
		out.UDPRoutes = append(out.UDPRoutes, *o.DeepCopy())
	}
	for _, o := range s.Deployments {
		out.Deployments = append(out.Deployments, *o.DeepCopy())
	}
	if len(s.TrafficSplits)+len(s.Services)+len(s.StatefulSets)+len(s.DaemonSets) > 0 {
		panic("accesscheck: cloneSnapshot does not copy splits, Services, StatefulSets or DaemonSets")
	}
	return out
}

// String reports the violation: the request, the settings, the objects and the model's rules.
func (v *Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the backend allows a request the model denies:\n  request: %s\n  settings: %+v\n  model access rules:\n",
		v.Request, v.Settings)
	model, _ := mesh.Build(v.Snapshot, v.Settings)
	for _, r := range model.AccessRules {
		j, _ := json.Marshal(r)
		fmt.Fprintf(&b, "    %s\n", j)
	}
	b.WriteString("  input (shrunk):\n")
	var objs []runtime.Object
	for i := range v.Snapshot.TrafficTargets {
		objs = append(objs, &v.Snapshot.TrafficTargets[i])
	}
	for i := range v.Snapshot.HTTPRouteGroups {
		objs = append(objs, &v.Snapshot.HTTPRouteGroups[i])
	}
	for i := range v.Snapshot.TCPRoutes {
		objs = append(objs, &v.Snapshot.TCPRoutes[i])
	}
	for i := range v.Snapshot.UDPRoutes {
		objs = append(objs, &v.Snapshot.UDPRoutes[i])
	}
	for i := range v.Snapshot.Deployments {
		objs = append(objs, &v.Snapshot.Deployments[i])
	}
	for _, o := range objs {
		y, err := yaml.Marshal(o)
		if err != nil {
			y = []byte(err.Error())
		}
		fmt.Fprintf(&b, "    --- %T\n    %s\n", o, strings.ReplaceAll(strings.TrimSpace(string(y)), "\n", "\n    "))
	}
	return b.String()
}

// Property checks the property on cases random cases of requests requests each, seeded by the
// case's index so that a failure names the case to replay, and fails unless enough requests are
// allowed by both sides (see RequireAllowedShare).
//
// ACCESS_PROPERTY_CASES and ACCESS_PROPERTY_SEED, when set, replace the number of cases and the
// seed, for longer searches than go test's default run.
func Property(t *testing.T, backend Backend, cases, requests int) Stats {
	t.Helper()
	seed := uint64(propertySeed)
	if v := os.Getenv("ACCESS_PROPERTY_CASES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("ACCESS_PROPERTY_CASES=%q: %v", v, err)
		}
		cases = n
	}
	if v := os.Getenv("ACCESS_PROPERTY_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("ACCESS_PROPERTY_SEED=%q: %v", v, err)
		}
		seed = n
	}
	var total Stats
	for i := range cases {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		c := Generate(r)
		st, v := Check(t, c, r, requests, backend)
		if v != nil {
			t.Fatalf("case %d (rand.NewPCG(%d, %d)): %s", i, seed, i, v)
		}
		total.Add(st)
	}
	total.RequireAllowedShare(t, minAllowedShare)
	return total
}

// propertySeed is fixed so that every run checks the same cases; the fuzz targets explore others.
const propertySeed = 12

// minAllowedShare is the least share of requests that both sides must allow.
const minAllowedShare = 0.10

// FuzzProperty runs the property as a fuzz target: the input drives the generator's choices
// (NewByteSource), so mutations change cases piece by piece. Its seed corpus runs in go test.
func FuzzProperty(f *testing.F, backend Backend) {
	for _, seed := range []string{"", "\x00", "issue 12", "\xff\xff\xff\xff\xff\xff\xff\xff", strings.Repeat("smi", 40)} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := rand.New(NewByteSource(data))
		if _, v := Check(t, Generate(r), r, 100, backend); v != nil {
			t.Fatal(v)
		}
	})
}

// RequireCatchesWidenings checks that the property is not blind: the backend, translating models
// widened on purpose (every port, one more source, any path, any method, no header condition),
// must be caught within a few hundred cases for each widening.
func RequireCatchesWidenings(t *testing.T, backend Backend) {
	for name, widen := range widenings {
		t.Run(name, func(t *testing.T) {
			widened := backend
			widened.Translate = func(t testing.TB, model mesh.Model, settings mesh.Settings) func(Request) bool {
				model.AccessRules = cloneRules(model.AccessRules)
				for i := range model.AccessRules {
					widen(&model.AccessRules[i])
				}
				return backend.Translate(t, model, settings)
			}
			for i := range 500 {
				r := rand.New(rand.NewPCG(propertySeed+1, uint64(i)))
				if _, v := check(t, Generate(r), r, 150, widened, false); v != nil {
					return
				}
			}
			t.Fatalf("a backend that widens access to %s passed the property on 500 cases: the property cannot see it", name)
		})
	}
}

// widenings grant more than an access rule allows, each in one dimension of the request tuple.
var widenings = map[string]func(*mesh.AccessRule){
	"every port": func(r *mesh.AccessRule) {
		if !r.HTTPPorts.Empty() {
			r.HTTPPorts = mesh.PortSet{All: true}
		}
		if !r.TCP.Empty() {
			r.TCP = mesh.PortSet{All: true}
		}
	},
	// The destination itself, which the generator never makes its own source on purpose, but
	// may by chance: then another rule's widening finds it.
	"one more source": func(r *mesh.AccessRule) {
		if !slices.Contains(r.Sources, r.Destination) {
			r.Sources = append(r.Sources, r.Destination)
		}
	},
	"any path": func(r *mesh.AccessRule) {
		for i := range r.HTTP {
			r.HTTP[i].Path = mesh.PathMatch{Kind: mesh.PathAny}
		}
	},
	"any method": func(r *mesh.AccessRule) {
		for i := range r.HTTP {
			r.HTTP[i].Methods = nil
		}
	},
	"no header condition": func(r *mesh.AccessRule) {
		for i := range r.HTTP {
			r.HTTP[i].Headers = nil
		}
	},
}

// cloneRules copies rules deep enough for widenings to edit them.
func cloneRules(rules []mesh.AccessRule) []mesh.AccessRule {
	out := slices.Clone(rules)
	for i := range out {
		out[i].Sources = slices.Clone(out[i].Sources)
		out[i].HTTP = slices.Clone(out[i].HTTP)
	}
	return out
}

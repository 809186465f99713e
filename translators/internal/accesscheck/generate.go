package accesscheck

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	accessv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha1"
	accessv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha2"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Case is one generated input: the snapshot and settings the model is built from, the pods
// requests go to, and the material requests are made of.
type Case struct {
	Snapshot mesh.Snapshot
	Settings mesh.Settings
	// Pods are the pods of the Deployments, one per Deployment: the destinations of requests.
	Pods []Pod
	// Identities are the SPIFFE IDs of every ServiceAccount the case names, in the settings' trust
	// domain.
	Identities []string
	// hints are the requests each TrafficTarget was written for; probes start from them.
	hints []hint
	// pool is every port, path, method and header value the case mentions, and a few others.
	pool pool
}

// Pod is a request's destination as both kinds of backends see it: Istio by its labels, xDS by
// the identity its sidecar or gRPC server runs as.
type Pod struct {
	Namespace string
	// Workload is the Deployment the pod belongs to, for messages.
	Workload       string
	ServiceAccount string
	Labels         map[string]string
}

// hint is what one TrafficTarget was written to allow, as the generator intended it. It is only
// used to aim probes; the verdicts come from the evaluators alone.
type hint struct {
	namespace, serviceAccount string
	sources                   []string
	ports                     []int32
	matches                   []matchHint
}

type matchHint struct {
	// paths and headers' values are strings the regexes were written to match, and near misses.
	paths   []string
	methods []string
	headers []headerHint
}

type headerHint struct {
	name   string
	values []string
}

type pool struct {
	ports   []int32
	paths   []string
	methods []string
	headers []headerHint
}

// The universe cases are drawn from: small, so that objects refer to each other often.
var (
	namespaces = []string{"shop", "pay", "ops"}
	// "web" and "web-admin" make a principal that extends another one's name.
	serviceAccounts = []string{"web", "api", "db", "default", "web-admin"}
	portPool        = []int32{80, 443, 3000, 5432, 8080, 9090}
	// methodPool is SMI's method enum without "*", plus a lower-case and an unknown method that
	// requests may carry (HTTP methods are case-sensitive).
	methodPool   = []string{"GET", "HEAD", "PUT", "POST", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
	extraMethods = []string{"get", "PURGE"}
	pathWords    = []string{"api", "v1", "users", "a", "b.c", "x-y", "healthz", "pkg.Svc", "_"}
	// headerNames include one that grpc-go refuses to match on and one with upper case, which
	// SMI allows and backends lower-case.
	headerNames  = []string{"x-canary", "x-user", "user-agent", "grpc-tag", "X-Mixed-Case"}
	headerValues = []string{"1", "yes", "beta", "Mozilla/5.0", "a.b", "v-2"}
)

// Generate draws a random valid case from r.
func Generate(r *rand.Rand) *Case {
	g := &generator{r: r, c: &Case{}}
	g.generate()
	return g.c
}

type generator struct {
	r *rand.Rand
	c *Case
	// accounts are the ServiceAccounts of each namespace.
	accounts map[string][]string
	// groups, tcp and udp are the routes of each namespace, with what their matches were
	// written to match.
	groups map[string][]groupHint
	tcp    map[string][]portRouteHint
	udp    map[string][]portRouteHint
}

type groupHint struct {
	name    string
	matches []namedMatchHint
}

type namedMatchHint struct {
	name string
	matchHint
}

type portRouteHint struct {
	name, match string
	// ports nil means every port.
	ports []int32
}

func (g *generator) generate() {
	c := g.c
	c.Settings = mesh.Settings{
		TrustDomain: pick(g.r, []string{"cluster.local", "example.org"}),
		Access:      pick(g.r, []mesh.AccessMode{mesh.AccessEnforcing, mesh.AccessPermissive}),
		MTLS:        g.r.IntN(2) == 0,
	}
	g.accounts = map[string][]string{}
	for _, ns := range subset(g.r, namespaces, 1) {
		g.accounts[ns] = subset(g.r, serviceAccounts, 1)
	}
	for _, ns := range sortedKeys(g.accounts) {
		for _, sa := range g.accounts[ns] {
			c.Identities = append(c.Identities, g.spiffe(ns, sa))
		}
		g.deployments(ns)
	}
	g.overlappingDeployment()
	g.groups, g.tcp, g.udp = map[string][]groupHint{}, map[string][]portRouteHint{}, map[string][]portRouteHint{}
	for _, ns := range sortedKeys(g.accounts) {
		g.routes(ns)
	}
	for i := range 1 + g.r.IntN(4) {
		g.trafficTarget(i)
	}
	g.fillPool()
}

func (g *generator) spiffe(ns, sa string) string {
	return "spiffe://" + g.c.Settings.TrustDomain + "/ns/" + ns + "/sa/" + sa
}

// deployments adds up to two Deployments per ServiceAccount of ns, each selecting its pods by an
// "app" label of its own, as most workloads do.
func (g *generator) deployments(ns string) {
	for _, sa := range g.accounts[ns] {
		for i := range g.r.IntN(3) {
			name := fmt.Sprintf("%s-%d", sa, i)
			labels := map[string]string{"app": name}
			if g.r.IntN(3) == 0 {
				labels["tier"] = "front"
			}
			var selector *metav1.LabelSelector
			switch g.r.IntN(12) {
			case 0:
				// Selects its pods by an expression, which matchLabels-only selectors cannot say.
				selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{name}}}}
			default:
				selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
			}
			g.addDeployment(ns, name, sa, selector, labels)
		}
	}
}

// overlappingDeployment sometimes adds a Deployment whose selector ("tier: front") also selects
// the pods of other Deployments, possibly running as other ServiceAccounts: Kubernetes calls it a
// misconfiguration but allows it, and a policy attached through it would reach those pods.
func (g *generator) overlappingDeployment() {
	if g.r.IntN(6) != 0 {
		return
	}
	ns := pick(g.r, sortedKeys(g.accounts))
	sa := pick(g.r, g.accounts[ns])
	name := sa + "-overlap"
	g.addDeployment(ns, name, sa, &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "front"}},
		map[string]string{"app": name, "tier": "front"})
}

func (g *generator) addDeployment(ns, name, sa string, selector *metav1.LabelSelector, labels map[string]string) {
	d := appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: selector,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{ServiceAccountName: sa},
			},
		},
	}
	if sa == "default" && g.r.IntN(2) == 0 {
		// Pods without a ServiceAccount run as "default".
		d.Spec.Template.Spec.ServiceAccountName = ""
	}
	g.c.Snapshot.Deployments = append(g.c.Snapshot.Deployments, d)
	g.c.Pods = append(g.c.Pods, Pod{Namespace: ns, Workload: name, ServiceAccount: sa, Labels: labels})
}

// routes adds the HTTPRouteGroups, TCPRoutes and UDPRoutes of ns.
func (g *generator) routes(ns string) {
	for i := range g.r.IntN(4) {
		gh := groupHint{name: fmt.Sprintf("routes-%d", i)}
		group := specsv1alpha4.HTTPRouteGroup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: gh.name}}
		for j := range 1 + g.r.IntN(4) {
			m, hint := g.httpMatch()
			if g.r.IntN(5) != 0 {
				m.Name = fmt.Sprintf("m%d", j)
			}
			group.Spec.Matches = append(group.Spec.Matches, m)
			gh.matches = append(gh.matches, namedMatchHint{name: m.Name, matchHint: hint})
		}
		g.c.Snapshot.HTTPRouteGroups = append(g.c.Snapshot.HTTPRouteGroups, group)
		g.groups[ns] = append(g.groups[ns], gh)
	}
	for i := range g.r.IntN(3) {
		h := g.portRoute(fmt.Sprintf("tcp-%d", i))
		g.c.Snapshot.TCPRoutes = append(g.c.Snapshot.TCPRoutes, specsv1alpha4.TCPRoute{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: h.name},
			Spec:       specsv1alpha4.TCPRouteSpec{Matches: specsv1alpha4.TCPMatch{Name: h.match, Ports: ints(h.ports)}},
		})
		g.tcp[ns] = append(g.tcp[ns], h)
	}
	for i := range g.r.IntN(2) {
		h := g.portRoute(fmt.Sprintf("udp-%d", i))
		g.c.Snapshot.UDPRoutes = append(g.c.Snapshot.UDPRoutes, specsv1alpha4.UDPRoute{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: h.name},
			Spec:       specsv1alpha4.UDPRouteSpec{Matches: specsv1alpha4.UDPMatch{Name: h.match, Ports: ints(h.ports)}},
		})
		g.udp[ns] = append(g.udp[ns], h)
	}
}

func (g *generator) portRoute(name string) portRouteHint {
	h := portRouteHint{name: name}
	if g.r.IntN(3) != 0 {
		h.match = "ports"
	}
	if g.r.IntN(4) != 0 {
		h.ports = subset(g.r, portPool, 1)
	}
	return h
}

// httpMatch draws one HTTPRouteGroup match and what it was written to match.
func (g *generator) httpMatch() (specsv1alpha4.HTTPMatch, matchHint) {
	var m specsv1alpha4.HTTPMatch
	var h matchHint
	m.PathRegex, h.paths = g.pathRegex()
	switch g.r.IntN(4) {
	case 0: // no methods: any
	case 1:
		m.Methods = []string{string(specsv1alpha4.HTTPRouteMethodAll)}
	case 2:
		// "*" among others still means any method.
		m.Methods = append(subset(g.r, methodPool, 1), string(specsv1alpha4.HTTPRouteMethodAll))
	default:
		m.Methods = subset(g.r, methodPool, 1)
	}
	for _, method := range m.Methods {
		if method != string(specsv1alpha4.HTTPRouteMethodAll) {
			h.methods = append(h.methods, method)
		}
	}
	if n := g.r.IntN(4); n > 0 && n < 3 {
		headers := map[string]string{}
		for _, name := range subset(g.r, headerNames, n)[:n] {
			var hh headerHint
			headers[name], hh.values = g.headerRegex()
			hh.name = strings.ToLower(name)
			h.headers = append(h.headers, hh)
		}
		m.Headers = headers
	}
	return m, h
}

// pathRegex draws a pathRegex and paths it was written to match, with near misses. SMI anchors
// a pathRegex at the start of the path only.
func (g *generator) pathRegex() (string, []string) {
	lit := g.pathLiteral()
	q := regexp.QuoteMeta(lit)
	other := g.pathLiteral()
	switch g.r.IntN(14) {
	case 0: // a literal: a prefix
		return q, []string{lit, lit + "/x", lit[:len(lit)-1], lit + "z"}
	case 1: // an exact path
		return pick(g.r, []string{"", "^"}) + q + "$", []string{lit, lit + "/"}
	case 2: // prefix-like, "/a.*"
		return q + ".*", []string{lit, lit + "q/r", lit[:len(lit)-1]}
	case 3: // prefix-like with both anchors, "^/a.*$"
		return "^" + q + ".*$", []string{lit, lit + "/"}
	case 4: // unescaped dots are wildcards
		return lit, []string{lit, strings.ReplaceAll(lit, ".", "X"), lit + "/k"}
	case 5: // a number after a literal
		return q + "/[0-9]+", []string{lit + "/7", lit + "/x", lit + "/77/a", lit}
	case 6: // alternatives
		return "(?:" + q + "|" + regexp.QuoteMeta(other) + ")", []string{lit, other, other + "/x", "/" + lit}
	case 7: // "contains", which no exact, prefix or suffix expresses
		return ".*" + q, []string{"/x" + lit, lit, "/x" + lit + "/y"}
	case 8: // case-insensitive
		return "(?i)" + q, []string{strings.ToUpper(lit), lit, lit + "/x"}
	case 9: // a literal holding "*", which Istio paths would read as a wildcard
		return regexp.QuoteMeta(lit + "*"), []string{lit + "*", lit + "*/x", lit, lit + "x"}
	case 10: // every path
		return pick(g.r, []string{"", ".*", "/.*", "/"}), []string{lit, "/"}
	case 11: // optional trailing slash, end-anchored
		return q + "/?$", []string{lit, lit + "/", lit + "//"}
	case 12: // a regex tail, end-anchored
		return q + "/[a-z]+$", []string{lit + "/abc", lit + "/abc/d", lit + "/1"}
	default: // a start anchor before a literal
		return "^" + q, []string{lit, lit + "/x", "/" + lit}
	}
}

// pathLiteral is an absolute, normalised path: the property does not cover path normalisation.
func (g *generator) pathLiteral() string {
	var b strings.Builder
	for range 1 + g.r.IntN(3) {
		b.WriteString("/" + pick(g.r, pathWords))
	}
	return b.String()
}

// headerRegex draws a header regex (SMI: over the whole value) and values it was written to
// match, with near misses. It is never empty: an empty regex is invalid SMI input (issue 12,
// defect 3).
func (g *generator) headerRegex() (string, []string) {
	v := pick(g.r, headerValues)
	q := regexp.QuoteMeta(v)
	switch g.r.IntN(10) {
	case 0: // exact
		return q, []string{v, v + "x", ""}
	case 1: // prefix
		return q + ".*", []string{v, v + "123", v[:1]}
	case 2: // suffix
		return ".*" + q, []string{"zz" + v, v, v + "z"}
	case 3: // present, any value
		return pick(g.r, []string{".*", "^.*$"}), []string{"", "anything", v}
	case 4: // alternatives
		return "1|yes", []string{"1", "yes", "1yes", ""}
	case 5: // a character class
		return "[a-z]+", []string{"abc", "ABC", ""}
	case 6: // contains
		return ".*" + q + ".*", []string{"a" + v + "b", v, "a"}
	case 7: // a literal "*", which Istio values would read as a wildcard
		return regexp.QuoteMeta(v + "*"), []string{v + "*", v + "xyz", v}
	case 8: // case-insensitive
		return "(?i)" + q, []string{strings.ToUpper(v), v}
	default: // unescaped: dots are wildcards
		return v, []string{v, strings.ReplaceAll(v, ".", "_")}
	}
}

// trafficTarget adds TrafficTarget i in a random namespace, in a random access version.
func (g *generator) trafficTarget(i int) {
	ns := pick(g.r, sortedKeys(g.accounts))
	h := hint{namespace: ns, serviceAccount: pick(g.r, g.accounts[ns])}
	if g.r.IntN(10) == 0 {
		// A destination no workload runs as.
		h.serviceAccount = "ghost"
	}
	dest := accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: h.serviceAccount}
	if g.r.IntN(2) == 0 {
		dest.Namespace = ns
	}
	if g.r.IntN(15) == 0 {
		// In another namespace than its destination's: not accepted.
		dest.Namespace = pick(g.r, namespaces)
	}
	var sources []accessv1alpha3.IdentityBindingSubject
	for range 1 + g.r.IntN(3) {
		srcNS := pick(g.r, sortedKeys(g.accounts))
		src := accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: pick(g.r, g.accounts[srcNS]), Namespace: srcNS}
		if srcNS == ns && g.r.IntN(2) == 0 {
			src.Namespace = "" // the target's own namespace
		}
		if g.r.IntN(20) == 0 {
			src.Kind = "Group" // not an identity SMI defines: not allowed
		}
		sources = append(sources, src)
		h.sources = append(h.sources, g.spiffe(srcNS, src.Name))
	}
	var rules []accessv1alpha3.TrafficTargetRule
	for range 1 + g.r.IntN(3) {
		rules = append(rules, g.rule(ns, &h))
	}
	var destPort *int
	version := g.r.IntN(3)
	if version < 2 && g.r.IntN(2) == 0 {
		p := int(pick(g.r, portPool))
		destPort = &p
		h.ports = []int32{int32(p)}
	}
	meta := metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("tt-%d", i)}
	var obj runtime.Object
	switch version {
	case 0:
		tt := &accessv1alpha1.TrafficTarget{ObjectMeta: meta,
			Destination: accessv1alpha1.IdentityBindingSubject{Kind: dest.Kind, Name: dest.Name, Namespace: dest.Namespace}}
		if destPort != nil {
			tt.Destination.Port = *destPort
		}
		for _, s := range sources {
			tt.Sources = append(tt.Sources, accessv1alpha1.IdentityBindingSubject{Kind: s.Kind, Name: s.Name, Namespace: s.Namespace})
		}
		for _, r := range rules {
			tt.Specs = append(tt.Specs, accessv1alpha1.TrafficTargetSpec{Kind: r.Kind, Name: r.Name, Matches: r.Matches})
		}
		obj = tt
	case 1:
		tt := &accessv1alpha2.TrafficTarget{ObjectMeta: meta, Spec: accessv1alpha2.TrafficTargetSpec{
			Destination: accessv1alpha2.IdentityBindingSubject{Kind: dest.Kind, Name: dest.Name, Namespace: dest.Namespace, Port: destPort}}}
		for _, s := range sources {
			tt.Spec.Sources = append(tt.Spec.Sources, accessv1alpha2.IdentityBindingSubject{Kind: s.Kind, Name: s.Name, Namespace: s.Namespace})
		}
		for _, r := range rules {
			tt.Spec.Rules = append(tt.Spec.Rules, accessv1alpha2.TrafficTargetRule{Kind: r.Kind, Name: r.Name, Matches: r.Matches})
		}
		obj = tt
	default:
		obj = &accessv1alpha3.TrafficTarget{ObjectMeta: meta,
			Spec: accessv1alpha3.TrafficTargetSpec{Destination: dest, Sources: sources, Rules: rules}}
	}
	if err := g.c.Snapshot.Add(obj); err != nil {
		// The generator writes valid objects only: one that does not convert is its bug.
		panic(fmt.Sprintf("accesscheck: generated %T does not convert: %v", obj, err))
	}
	g.c.hints = append(g.c.hints, h)
}

// rule draws one rule of a TrafficTarget in ns, adding to h what it was written to allow.
func (g *generator) rule(ns string, h *hint) accessv1alpha3.TrafficTargetRule {
	groups, tcp, udp := g.groups[ns], g.tcp[ns], g.udp[ns]
	switch k := g.r.IntN(10); {
	case k < 6 && len(groups) > 0:
		gr := pick(g.r, groups)
		rule := accessv1alpha3.TrafficTargetRule{Kind: smi.HTTPRouteGroupKind, Name: gr.name}
		chosen := gr.matches
		if g.r.IntN(2) == 0 {
			chosen = subset(g.r, gr.matches, 1)
			for _, m := range chosen {
				rule.Matches = append(rule.Matches, m.name)
			}
			if g.r.IntN(15) == 0 {
				rule.Matches = append(rule.Matches, "missing") // names no match: matches nothing
			}
		}
		for _, m := range chosen {
			h.matches = append(h.matches, m.matchHint)
		}
		return rule
	case k < 8 && len(tcp) > 0:
		r := pick(g.r, tcp)
		h.ports = append(h.ports, r.ports...)
		rule := accessv1alpha3.TrafficTargetRule{Kind: smi.TCPRouteKind, Name: r.name}
		if r.match != "" && g.r.IntN(2) == 0 {
			rule.Matches = []string{r.match}
		}
		return rule
	case k < 9 && len(udp) > 0:
		r := pick(g.r, udp)
		// UDP grants are not TCP grants: their ports are probed with TCP requests as neighbours.
		h.ports = append(h.ports, r.ports...)
		return accessv1alpha3.TrafficTargetRule{Kind: smi.UDPRouteKind, Name: r.name}
	}
	// A route that does not exist: it matches nothing.
	return accessv1alpha3.TrafficTargetRule{Kind: pick(g.r, []string{smi.HTTPRouteGroupKind, smi.TCPRouteKind}), Name: "missing"}
}

// fillPool collects everything the case mentions, plus neighbours, for probes.
func (g *generator) fillPool() {
	p := &g.c.pool
	p.ports = slices.Clone(portPool)
	for _, port := range portPool {
		p.ports = append(p.ports, port+1)
	}
	p.methods = append(slices.Clone(methodPool), extraMethods...)
	p.paths = []string{"/", "/other", "/api", "/API/v1"}
	headers := map[string][]string{}
	for _, h := range g.c.hints {
		for _, m := range h.matches {
			p.paths = append(p.paths, m.paths...)
			for _, hh := range m.headers {
				headers[hh.name] = append(headers[hh.name], hh.values...)
			}
		}
	}
	for _, ns := range sortedKeys(g.groups) {
		for _, gr := range g.groups[ns] {
			for _, m := range gr.matches {
				p.paths = append(p.paths, m.paths...)
			}
		}
	}
	for _, name := range headerNames {
		name = strings.ToLower(name)
		p.headers = append(p.headers, headerHint{name: name, values: append(headers[name], headerValues...)})
	}
}

func ints(p []int32) []int {
	if p == nil {
		return nil
	}
	out := make([]int, len(p))
	for i, v := range p {
		out[i] = int(v)
	}
	return out
}

func pick[T any](r *rand.Rand, from []T) T {
	return from[r.IntN(len(from))]
}

// subset returns a random subset of from of at least "least" elements (all of them when from is
// shorter), without repeats, in from's order.
func subset[T any](r *rand.Rand, from []T, least int) []T {
	n := len(from)
	if n == 0 {
		return nil
	}
	k := min(least, n)
	k += r.IntN(n - k + 1)
	idx := r.Perm(n)[:k]
	slices.Sort(idx)
	out := make([]T, k)
	for i, j := range idx {
		out[i] = from[j]
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ByteSource is a rand.Source that draws from data, 8 bytes at a time, so that a fuzzer's
// mutations of data change the generated case piece by piece; once data runs out it continues
// with a PCG seeded from data, so every input generates a case (rand's bounded draws loop on a
// source that returns a constant).
type ByteSource struct {
	data []byte
	rest *rand.PCG
}

// NewByteSource returns a source drawing from data.
func NewByteSource(data []byte) *ByteSource {
	h := fnv.New64a()
	h.Write(data)
	return &ByteSource{data: data, rest: rand.NewPCG(h.Sum64(), uint64(len(data)))}
}

// Uint64 implements rand.Source.
func (s *ByteSource) Uint64() uint64 {
	if len(s.data) < 8 {
		return s.rest.Uint64()
	}
	v := binary.LittleEndian.Uint64(s.data)
	s.data = s.data[8:]
	return v
}

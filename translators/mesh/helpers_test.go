package mesh

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/conversion"
)

const ns = "shop"

// epoch makes creation timestamps fixed: tests never read the clock.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func meta(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name, CreationTimestamp: metav1.NewTime(epoch)}
}

// service builds a Service in ns with TCP ports named after their number.
func service(name string, ports ...int32) corev1.Service {
	s := corev1.Service{ObjectMeta: meta(ns, name)}
	for _, p := range ports {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: fmt.Sprintf("p%d", p), Port: p})
	}
	return s
}

// model is the IR form of service(name, ports...).
func model(name string, ports ...int32) Service {
	s := Service{Namespace: ns, Name: name, FQDN: name + "." + ns + ".svc.cluster.local"}
	for _, p := range ports {
		s.Ports = append(s.Ports, ServicePort{Name: fmt.Sprintf("p%d", p), Port: p, Protocol: corev1.ProtocolTCP})
	}
	return s
}

func backend(name string, weight int) splitv1alpha4.TrafficSplitBackend {
	return splitv1alpha4.TrafficSplitBackend{Service: name, Weight: weight}
}

// trafficSplit builds a split in ns created age seconds after epoch.
func trafficSplit(name, apex string, age int, backends ...splitv1alpha4.TrafficSplitBackend) splitv1alpha4.TrafficSplit {
	ts := splitv1alpha4.TrafficSplit{ObjectMeta: meta(ns, name)}
	ts.CreationTimestamp = metav1.NewTime(epoch.Add(time.Duration(age) * time.Second))
	ts.Spec.Service = apex
	ts.Spec.Backends = backends
	return ts
}

func withMatches(ts splitv1alpha4.TrafficSplit, refs ...corev1.TypedLocalObjectReference) splitv1alpha4.TrafficSplit {
	ts.Spec.Matches = refs
	return ts
}

func groupRef(name string) corev1.TypedLocalObjectReference {
	return corev1.TypedLocalObjectReference{Kind: smi.HTTPRouteGroupKind, Name: name}
}

func httpRouteGroup(name string, matches ...specsv1alpha4.HTTPMatch) specsv1alpha4.HTTPRouteGroup {
	return specsv1alpha4.HTTPRouteGroup{ObjectMeta: meta(ns, name), Spec: specsv1alpha4.HTTPRouteGroupSpec{Matches: matches}}
}

func tcpRoute(name string, ports ...int) specsv1alpha4.TCPRoute {
	return specsv1alpha4.TCPRoute{ObjectMeta: meta(ns, name), Spec: specsv1alpha4.TCPRouteSpec{
		Matches: specsv1alpha4.TCPMatch{Name: name, Ports: ports}}}
}

func udpRoute(name string, ports ...int) specsv1alpha4.UDPRoute {
	return specsv1alpha4.UDPRoute{ObjectMeta: meta(ns, name), Spec: specsv1alpha4.UDPRouteSpec{
		Matches: specsv1alpha4.UDPMatch{Name: name, Ports: ports}}}
}

func sa(namespace, name string) accessv1alpha3.IdentityBindingSubject {
	return accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Namespace: namespace, Name: name}
}

func rule(kind, name string, matches ...string) accessv1alpha3.TrafficTargetRule {
	return accessv1alpha3.TrafficTargetRule{Kind: kind, Name: name, Matches: matches}
}

func trafficTarget(name string, dest accessv1alpha3.IdentityBindingSubject, sources []accessv1alpha3.IdentityBindingSubject,
	rules ...accessv1alpha3.TrafficTargetRule) accessv1alpha3.TrafficTarget {
	return accessv1alpha3.TrafficTarget{ObjectMeta: meta(ns, name), Spec: accessv1alpha3.TrafficTargetSpec{
		Destination: dest, Sources: sources, Rules: rules}}
}

// withDestinationPort is tt as a v1alpha2 author who gives the destination port writes it, stored
// as the hub: the port in the conversion annotation, as the conversion webhook keeps it.
func withDestinationPort(tt accessv1alpha3.TrafficTarget, port int) accessv1alpha3.TrafficTarget {
	v1alpha2, err := conversion.TrafficTargetHubToV1alpha2(&tt)
	if err != nil {
		panic(err)
	}
	v1alpha2.Spec.Destination.Port = &port
	hub, err := conversion.TrafficTargetV1alpha2ToHub(v1alpha2)
	if err != nil {
		panic(err)
	}
	return *hub
}

func withAnnotation(tt accessv1alpha3.TrafficTarget, key, value string) accessv1alpha3.TrafficTarget {
	tt.Annotations = map[string]string{key: value}
	return tt
}

// podTemplate runs as account (the default one when empty) with labels app=<app>.
func podTemplate(app, account string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{ServiceAccountName: account},
	}
}

// deployment builds a Deployment in ns selecting app=<name>, whose pods run as account.
func deployment(name, account string) appsv1.Deployment {
	return appsv1.Deployment{ObjectMeta: meta(ns, name), Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
		Template: podTemplate(name, account)}}
}

func ref(kind, name string) ObjectRef {
	return ObjectRef{Kind: kind, Namespace: ns, Name: name}
}

func id(namespace, name string) Identity {
	return Identity{Namespace: namespace, ServiceAccount: name,
		SPIFFEID: "spiffe://cluster.local/ns/" + namespace + "/sa/" + name}
}

// diag is a diagnostic as the tables spell it; messages are checked apart (non-empty, see
// checkInvariants) so the tables stay about semantics.
func diag(obj ObjectRef, condition, reason string, sev Severity) Diagnostic {
	return Diagnostic{Object: obj, Condition: condition, Reason: reason, Severity: sev}
}

var ignoreMessage = cmpopts.IgnoreFields(Diagnostic{}, "Message")

// build runs Build and checks what must hold for every input: order independence and the
// severity contract between diagnostics and the Model.
func build(t *testing.T, snap Snapshot, settings Settings) (Model, []Diagnostic) {
	t.Helper()
	m, diags := Build(snap, settings)
	m2, diags2 := Build(reversed(snap), settings)
	if d := cmp.Diff(m, m2); d != "" {
		t.Errorf("model depends on input order (-in order +reversed):\n%s", d)
	}
	if d := cmp.Diff(diags, diags2); d != "" {
		t.Errorf("diagnostics depend on input order (-in order +reversed):\n%s", d)
	}
	checkInvariants(t, snap, m, diags)
	return m, diags
}

func reversed(s Snapshot) Snapshot {
	return Snapshot{
		TrafficSplits:   reverse(s.TrafficSplits),
		TrafficTargets:  reverse(s.TrafficTargets),
		HTTPRouteGroups: reverse(s.HTTPRouteGroups),
		TCPRoutes:       reverse(s.TCPRoutes),
		UDPRoutes:       reverse(s.UDPRoutes),
		Services:        reverse(s.Services),
		Deployments:     reverse(s.Deployments),
		StatefulSets:    reverse(s.StatefulSets),
		DaemonSets:      reverse(s.DaemonSets),
	}
}

func reverse[T any](in []T) []T {
	out := slices.Clone(in)
	slices.Reverse(out)
	return out
}

// checkInvariants: every diagnostic explains itself, and an SMI object is in the Model exactly
// when no Error diagnostic names it.
func checkInvariants(t *testing.T, snap Snapshot, m Model, diags []Diagnostic) {
	t.Helper()
	errored := map[ObjectRef]bool{}
	for _, d := range diags {
		if strings.TrimSpace(d.Message) == "" {
			t.Errorf("diagnostic without message: %v", d)
		}
		if d.Severity == SeverityError {
			errored[d.Object] = true
		}
	}
	inModel := map[ObjectRef]bool{}
	for _, s := range m.Splits {
		inModel[s.Source] = true
	}
	for _, r := range m.AccessRules {
		inModel[r.Source] = true
	}
	var objects []ObjectRef
	for _, ts := range snap.TrafficSplits {
		objects = append(objects, ObjectRef{Kind: smi.TrafficSplitKind, Namespace: ts.Namespace, Name: ts.Name})
	}
	for _, tt := range snap.TrafficTargets {
		objects = append(objects, ObjectRef{Kind: smi.TrafficTargetKind, Namespace: tt.Namespace, Name: tt.Name})
	}
	for _, o := range objects {
		if inModel[o] == errored[o] {
			t.Errorf("%v: in model=%v but has error diagnostic=%v; exactly one must hold", o, inModel[o], errored[o])
		}
	}
}

// request is an HTTP request for the reference matcher below.
type request struct {
	method, path string
	headers      map[string]string
}

// matchesRequest is the executable reading of the IR's HTTP semantics, written from the field
// comments: a request matches a list when it matches any entry (OR); an entry matches when the path,
// the method and every header match (AND).
func matchesRequest(t *testing.T, matches []HTTPMatch, r request) bool {
	t.Helper()
	full := func(re, s string) bool {
		ok, err := regexp.MatchString("^(?:"+re+")$", s)
		if err != nil {
			t.Fatalf("model holds an invalid regex %q: %v", re, err)
		}
		return ok
	}
	for _, m := range matches {
		if m.Path.Kind != PathAny && !full(m.Path.FullRegex, r.path) {
			continue
		}
		if len(m.Methods) > 0 && !slices.Contains(m.Methods, r.method) {
			continue
		}
		headersOK := true
		for _, h := range m.Headers {
			v, present := r.headers[h.Name]
			headersOK = headersOK && present && full(h.Regex, v)
		}
		if headersOK {
			return true
		}
	}
	return false
}

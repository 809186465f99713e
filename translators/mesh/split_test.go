package mesh

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"

	"github.com/smi-operator/smi-operator/apis/smi"
)

func TestSplitSemantics(t *testing.T) {
	services := []corev1.Service{
		service("web", 80, 9090), service("web-v1", 80, 9090), service("web-v2", 9090, 80, 443),
		service("web-other-port", 8080),
	}
	udp := service("web-udp", 80, 9090)
	udp.Spec.Ports[0].Protocol = corev1.ProtocolUDP

	firefox := specsv1alpha4.HTTPMatch{Name: "firefox", Headers: map[string]string{"User-Agent": ".*Firefox.*"}}
	abGroup := httpRouteGroup("ab", firefox)
	firefoxIR := HTTPMatch{Group: "ab", Name: "firefox", Path: PathMatch{Kind: PathAny},
		Headers: []HeaderMatch{{Name: "user-agent", Regex: ".*Firefox.*", Kind: HeaderRegex}}}
	brokenGroup := httpRouteGroup("broken", specsv1alpha4.HTTPMatch{Name: "bad", PathRegex: "/api/("})

	apex := model("web", 80, 9090)
	v1, v2 := model("web-v1", 80, 9090), model("web-v2", 80, 443, 9090)
	canary := trafficSplit("canary", "web", 0, backend("web-v1", 90), backend("web-v2", 10))
	splitRef := ref(smi.TrafficSplitKind, "canary")
	canaryIR := Split{Source: splitRef, Apex: apex, Backends: []Backend{{v1, 90}, {v2, 10}}}

	tests := []struct {
		name     string
		splits   []splitv1alpha4.TrafficSplit
		groups   []specsv1alpha4.HTTPRouteGroup
		services []corev1.Service
		want     []Split
		// wantUnweighted are the splits not programmed for their weights alone (Model.UnweightedSplits).
		wantUnweighted []Split
		wantDiags      []Diagnostic
	}{{
		name:   "empty matches split everything",
		splits: []splitv1alpha4.TrafficSplit{canary},
		want:   []Split{canaryIR},
	}, {
		name:   "matches split only matching requests and the rest goes to the apex",
		splits: []splitv1alpha4.TrafficSplit{withMatches(canary, groupRef("ab"))},
		groups: []specsv1alpha4.HTTPRouteGroup{abGroup},
		want: []Split{{Source: splitRef, Apex: apex, Backends: canaryIR.Backends,
			Matches: []HTTPMatch{firefoxIR}}},
	}, {
		name:   "match reference with the specs API group is accepted",
		splits: []splitv1alpha4.TrafficSplit{withMatches(canary, corev1.TypedLocalObjectReference{APIGroup: ptr.To(smi.SpecsGroup), Kind: smi.HTTPRouteGroupKind, Name: "ab"})},
		groups: []specsv1alpha4.HTTPRouteGroup{abGroup},
		want: []Split{{Source: splitRef, Apex: apex, Backends: canaryIR.Backends,
			Matches: []HTTPMatch{firefoxIR}}},
	}, {
		name:   "backend lacking an apex port is dropped with a warning",
		splits: []splitv1alpha4.TrafficSplit{trafficSplit("canary", "web", 0, backend("web-v1", 90), backend("web-other-port", 10))},
		want:   []Split{{Source: splitRef, Apex: apex, Backends: []Backend{{v1, 90}}}},
		wantDiags: []Diagnostic{
			diag(splitRef, smi.ConditionResolvedRefs, ReasonBackendPortMismatch, SeverityWarning),
		},
	}, {
		name:     "backend with the apex port number but another protocol is dropped",
		splits:   []splitv1alpha4.TrafficSplit{trafficSplit("canary", "web", 0, backend("web-v1", 90), backend("web-udp", 10))},
		services: []corev1.Service{udp},
		want:     []Split{{Source: splitRef, Apex: apex, Backends: []Backend{{v1, 90}}}},
		wantDiags: []Diagnostic{
			diag(splitRef, smi.ConditionResolvedRefs, ReasonBackendPortMismatch, SeverityWarning),
		},
	}, {
		name:   "missing backend service is dropped and refs are not resolved",
		splits: []splitv1alpha4.TrafficSplit{trafficSplit("canary", "web", 0, backend("web-v1", 90), backend("web-v9", 10))},
		want:   []Split{{Source: splitRef, Apex: apex, Backends: []Backend{{v1, 90}}}},
		wantDiags: []Diagnostic{
			diag(splitRef, smi.ConditionResolvedRefs, ReasonBackendNotFound, SeverityWarning),
		},
	}, {
		name:   "missing apex service is not programmed",
		splits: []splitv1alpha4.TrafficSplit{trafficSplit("canary", "gone", 0, backend("web-v1", 1))},
		wantDiags: []Diagnostic{
			diag(splitRef, smi.ConditionResolvedRefs, ReasonApexNotFound, SeverityError),
		},
	}, {
		// Said here, not by each backend, so that every backend reports it alike (issue 12).
		name:     "apex without ports is not programmed: there is no traffic to split",
		splits:   []splitv1alpha4.TrafficSplit{trafficSplit("canary", "portless", 0, backend("portless-v2", 1))},
		services: []corev1.Service{service("portless"), service("portless-v2")},
		wantDiags: []Diagnostic{
			diag(splitRef, smi.ConditionProgrammed, ReasonNoRoutablePorts, SeverityError),
		},
	}, {
		name:   "weight zero backend is kept with no traffic",
		splits: []splitv1alpha4.TrafficSplit{trafficSplit("canary", "web", 0, backend("web-v1", 100), backend("web-v2", 0))},
		want:   []Split{{Source: splitRef, Apex: apex, Backends: []Backend{{v1, 100}, {v2, 0}}}},
	}, {
		name:           "all weights zero is not programmed and traffic stays on the apex",
		splits:         []splitv1alpha4.TrafficSplit{trafficSplit("canary", "web", 0, backend("web-v1", 0), backend("web-v2", 0))},
		wantUnweighted: []Split{{Source: splitRef, Apex: apex, Backends: []Backend{{v1, 0}, {v2, 0}}}},
		wantDiags: []Diagnostic{
			diag(splitRef, smi.ConditionProgrammed, ReasonNoWeightedBackends, SeverityError),
		},
	}, {
		name:           "all weights zero after drops is not programmed",
		splits:         []splitv1alpha4.TrafficSplit{trafficSplit("canary", "web", 0, backend("web-v1", 0), backend("web-v9", 10))},
		wantUnweighted: []Split{{Source: splitRef, Apex: apex, Backends: []Backend{{v1, 0}}}},
		wantDiags: []Diagnostic{
			diag(splitRef, smi.ConditionProgrammed, ReasonNoWeightedBackends, SeverityError),
			diag(splitRef, smi.ConditionResolvedRefs, ReasonBackendNotFound, SeverityWarning),
		},
	}, {
		name: "oldest split on an apex wins and the others are conflicted",
		splits: []splitv1alpha4.TrafficSplit{
			trafficSplit("a-newest", "web", 20, backend("web-v2", 1)),
			trafficSplit("z-oldest", "web", 0, backend("web-v1", 1)),
			trafficSplit("b-middle", "web", 10, backend("web-v2", 1)),
		},
		want: []Split{{Source: ref(smi.TrafficSplitKind, "z-oldest"), Apex: apex, Backends: []Backend{{v1, 1}}}},
		wantDiags: []Diagnostic{
			diag(ref(smi.TrafficSplitKind, "a-newest"), smi.ConditionAccepted, ReasonConflicted, SeverityError),
			diag(ref(smi.TrafficSplitKind, "b-middle"), smi.ConditionAccepted, ReasonConflicted, SeverityError),
		},
	}, {
		name: "splits of the same age on an apex are ordered by name",
		splits: []splitv1alpha4.TrafficSplit{
			trafficSplit("b", "web", 0, backend("web-v2", 1)),
			trafficSplit("a", "web", 0, backend("web-v1", 1)),
		},
		want: []Split{{Source: ref(smi.TrafficSplitKind, "a"), Apex: apex, Backends: []Backend{{v1, 1}}}},
		wantDiags: []Diagnostic{
			diag(ref(smi.TrafficSplitKind, "b"), smi.ConditionAccepted, ReasonConflicted, SeverityError),
		},
	}, {
		name: "oldest split wins even when broken so traffic does not jump between splits",
		splits: []splitv1alpha4.TrafficSplit{
			trafficSplit("old", "web", 0, backend("web-v1", 0)),
			trafficSplit("new", "web", 10, backend("web-v2", 1)),
		},
		wantUnweighted: []Split{{Source: ref(smi.TrafficSplitKind, "old"), Apex: apex, Backends: []Backend{{v1, 0}}}},
		wantDiags: []Diagnostic{
			diag(ref(smi.TrafficSplitKind, "new"), smi.ConditionAccepted, ReasonConflicted, SeverityError),
			diag(ref(smi.TrafficSplitKind, "old"), smi.ConditionProgrammed, ReasonNoWeightedBackends, SeverityError),
		},
	}, {
		name: "spec.service as the FQDN applications use names the apex in each of SMI's forms",
		splits: []splitv1alpha4.TrafficSplit{
			trafficSplit("fqdn", "web.shop.svc.cluster.local", 0, backend("web-v1", 1)),
			trafficSplit("svc", "web.shop.svc", 10, backend("web-v2", 1)),
			trafficSplit("ns", "web.shop", 20, backend("web-v2", 1)),
			trafficSplit("name", "web", 30, backend("web-v2", 1)),
		},
		// One apex however it is spelled: the oldest wins it, the others conflict.
		want: []Split{{Source: ref(smi.TrafficSplitKind, "fqdn"), Apex: apex, Backends: []Backend{{v1, 1}}}},
		wantDiags: []Diagnostic{
			diag(ref(smi.TrafficSplitKind, "name"), smi.ConditionAccepted, ReasonConflicted, SeverityError),
			diag(ref(smi.TrafficSplitKind, "ns"), smi.ConditionAccepted, ReasonConflicted, SeverityError),
			diag(ref(smi.TrafficSplitKind, "svc"), smi.ConditionAccepted, ReasonConflicted, SeverityError),
		},
	}, {
		name: "spec.service naming another namespace, cluster domain or no Service is refused",
		splits: []splitv1alpha4.TrafficSplit{
			trafficSplit("other-namespace", "web.bank.svc.cluster.local", 0, backend("web-v1", 1)),
			trafficSplit("other-domain", "web.shop.svc.example.org", 0, backend("web-v1", 1)),
			trafficSplit("not-a-service", "web.shop.pod.cluster.local", 0, backend("web-v1", 1)),
		},
		wantDiags: []Diagnostic{
			diag(ref(smi.TrafficSplitKind, "not-a-service"), smi.ConditionAccepted, ReasonInvalidService, SeverityError),
			diag(ref(smi.TrafficSplitKind, "other-domain"), smi.ConditionAccepted, ReasonInvalidService, SeverityError),
			diag(ref(smi.TrafficSplitKind, "other-namespace"), smi.ConditionAccepted, ReasonInvalidService, SeverityError),
		},
	}, {
		// The spec says a split cannot reference itself; OSM and linkerd-smi accept it (issue 12).
		name:   "apex listed as its own backend keeps its share, with a warning",
		splits: []splitv1alpha4.TrafficSplit{trafficSplit("canary", "web", 0, backend("web", 900), backend("web-v2", 100))},
		want:   []Split{{Source: splitRef, Apex: apex, Backends: []Backend{{apex, 900}, {v2, 100}}}},
		wantDiags: []Diagnostic{
			diag(splitRef, smi.ConditionResolvedRefs, ReasonSelfReferentialSplit, SeverityWarning),
		},
	}, {
		name:   "backend listed twice gets the sum of its weights",
		splits: []splitv1alpha4.TrafficSplit{trafficSplit("canary", "web", 0, backend("web-v1", 1), backend("web-v2", 1), backend("web-v1", 2))},
		want:   []Split{{Source: splitRef, Apex: apex, Backends: []Backend{{v1, 3}, {v2, 1}}}},
	}, {
		name:   "negative weight rejects the split",
		splits: []splitv1alpha4.TrafficSplit{trafficSplit("canary", "web", 0, backend("web-v1", 1), backend("web-v2", -1))},
		wantDiags: []Diagnostic{
			diag(splitRef, smi.ConditionAccepted, ReasonInvalidWeight, SeverityError),
		},
	}, {
		name:   "missing HTTPRouteGroup next to a found one is left out",
		splits: []splitv1alpha4.TrafficSplit{withMatches(canary, groupRef("gone"), groupRef("ab"))},
		groups: []specsv1alpha4.HTTPRouteGroup{abGroup},
		want: []Split{{Source: splitRef, Apex: apex, Backends: canaryIR.Backends,
			Matches: []HTTPMatch{firefoxIR}}},
		wantDiags: []Diagnostic{
			diag(splitRef, smi.ConditionResolvedRefs, ReasonRouteNotFound, SeverityWarning),
		},
	}, {
		name:   "only missing HTTPRouteGroups: nothing is split rather than everything",
		splits: []splitv1alpha4.TrafficSplit{withMatches(canary, groupRef("gone"))},
		wantDiags: []Diagnostic{
			diag(splitRef, smi.ConditionProgrammed, ReasonNoValidMatches, SeverityError),
			diag(splitRef, smi.ConditionResolvedRefs, ReasonRouteNotFound, SeverityWarning),
		},
	}, {
		// Unweighted only when the weights are all that stops it: it may then serve as the split
		// to come, which a split that could never be programmed cannot.
		name: "all weights zero and no valid match is not unweighted",
		splits: []splitv1alpha4.TrafficSplit{withMatches(
			trafficSplit("canary", "web", 0, backend("web-v1", 0), backend("web-v2", 0)), groupRef("gone"))},
		wantDiags: []Diagnostic{
			diag(splitRef, smi.ConditionProgrammed, ReasonNoValidMatches, SeverityError),
			diag(splitRef, smi.ConditionProgrammed, ReasonNoWeightedBackends, SeverityError),
			diag(splitRef, smi.ConditionResolvedRefs, ReasonRouteNotFound, SeverityWarning),
		},
	}, {
		name:   "only invalid matches: nothing is split rather than everything",
		splits: []splitv1alpha4.TrafficSplit{withMatches(canary, groupRef("broken"))},
		groups: []specsv1alpha4.HTTPRouteGroup{brokenGroup},
		wantDiags: []Diagnostic{
			diag(ref(smi.HTTPRouteGroupKind, "broken"), smi.ConditionAccepted, ReasonInvalidMatch, SeverityWarning),
			diag(splitRef, smi.ConditionProgrammed, ReasonNoValidMatches, SeverityError),
			diag(splitRef, smi.ConditionResolvedRefs, ReasonInvalidMatch, SeverityWarning),
		},
	}, {
		name:   "match kind other than HTTPRouteGroup rejects the split",
		splits: []splitv1alpha4.TrafficSplit{withMatches(canary, corev1.TypedLocalObjectReference{Kind: smi.TCPRouteKind, Name: "db"})},
		wantDiags: []Diagnostic{
			diag(splitRef, smi.ConditionAccepted, ReasonUnsupportedRouteKind, SeverityError),
		},
	}, {
		name: "HTTPRouteGroup of another API group rejects the split",
		splits: []splitv1alpha4.TrafficSplit{withMatches(canary, corev1.TypedLocalObjectReference{
			APIGroup: ptr.To("gateway.networking.k8s.io"), Kind: smi.HTTPRouteGroupKind, Name: "ab"})},
		groups: []specsv1alpha4.HTTPRouteGroup{abGroup},
		wantDiags: []Diagnostic{
			diag(splitRef, smi.ConditionAccepted, ReasonUnsupportedRouteKind, SeverityError),
		},
	}, {
		name: "splits on different apexes are independent and sorted by apex; a split on a split's apex is warned it is not chained",
		splits: []splitv1alpha4.TrafficSplit{
			trafficSplit("z", "web-v1", 0, backend("web-v2", 1)),
			trafficSplit("y", "web", 0, backend("web-v1", 1)),
		},
		want: []Split{
			{Source: ref(smi.TrafficSplitKind, "y"), Apex: apex, Backends: []Backend{{v1, 1}}},
			{Source: ref(smi.TrafficSplitKind, "z"), Apex: v1, Backends: []Backend{{v2, 1}}},
		},
		wantDiags: []Diagnostic{
			diag(ref(smi.TrafficSplitKind, "y"), smi.ConditionResolvedRefs, ReasonSplitNotChained, SeverityWarning),
		},
	}, {
		name: "a split's weight-0 backend that is another split's apex carries nothing to chain: no warning",
		splits: []splitv1alpha4.TrafficSplit{
			trafficSplit("z", "web-v1", 0, backend("web-v2", 1)),
			trafficSplit("y", "web", 0, backend("web-v1", 0), backend("web-v2", 1)),
		},
		want: []Split{
			{Source: ref(smi.TrafficSplitKind, "y"), Apex: apex, Backends: []Backend{{v1, 0}, {v2, 1}}},
			{Source: ref(smi.TrafficSplitKind, "z"), Apex: v1, Backends: []Backend{{v2, 1}}},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := Snapshot{TrafficSplits: tc.splits, HTTPRouteGroups: tc.groups,
				Services: append(services[:len(services):len(services)], tc.services...)}
			m, diags := build(t, snap, Settings{})
			if d := cmp.Diff(tc.want, m.Splits); d != "" {
				t.Errorf("splits (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantUnweighted, m.UnweightedSplits); d != "" {
				t.Errorf("unweighted splits (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantDiags, diags, ignoreMessage); d != "" {
				t.Errorf("diagnostics (-want +got):\n%s", d)
			}
		})
	}
}

func TestSplitServiceFacts(t *testing.T) {
	web := service("web", 80)
	web.Spec.Ports[0].AppProtocol = ptr.To("http")
	snap := Snapshot{
		Services:      []corev1.Service{web, service("web-v1", 80)},
		TrafficSplits: []splitv1alpha4.TrafficSplit{trafficSplit("canary", "web", 0, backend("web-v1", 1))},
	}
	m, _ := build(t, snap, Settings{ClusterDomain: "corp.example"})
	want := Service{Namespace: ns, Name: "web", FQDN: "web.shop.svc.corp.example",
		Ports: []ServicePort{{Name: "p80", Port: 80, Protocol: corev1.ProtocolTCP, AppProtocol: "http"}}}
	if len(m.Splits) != 1 {
		t.Fatalf("want one split, got %+v", m.Splits)
	}
	if d := cmp.Diff(want, m.Splits[0].Apex); d != "" {
		t.Errorf("apex (-want +got):\n%s", d)
	}
	if got := m.Splits[0].Backends[0].FQDN; got != "web-v1.shop.svc.corp.example" {
		t.Errorf("backend FQDN = %q, want the configured cluster domain", got)
	}
}

func TestServiceClusterIPs(t *testing.T) {
	for _, tc := range []struct {
		name      string
		clusterIP string
		ips       []string
		want      []string
	}{
		{name: "dual stack, primary first", clusterIP: "10.96.0.10", ips: []string{"10.96.0.10", "fd00::a"}, want: []string{"10.96.0.10", "fd00::a"}},
		{name: "IPv6 primary", clusterIP: "fd00::a", ips: []string{"fd00::a", "10.96.0.10"}, want: []string{"fd00::a", "10.96.0.10"}},
		{name: "only clusterIP written", clusterIP: "10.96.0.10", want: []string{"10.96.0.10"}},
		{name: "headless", clusterIP: corev1.ClusterIPNone, ips: []string{corev1.ClusterIPNone}},
		{name: "not allocated yet"},
		{name: "empty entries", ips: []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := service("web", 80)
			svc.Spec.ClusterIP, svc.Spec.ClusterIPs = tc.clusterIP, tc.ips
			if d := cmp.Diff(tc.want, ServiceOf(&svc, Settings{}).ClusterIPs); d != "" {
				t.Errorf("ClusterIPs (-want +got):\n%s", d)
			}
		})
	}
}

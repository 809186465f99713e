package mesh

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	accessv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha1"
	accessv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha2"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"

	"github.com/smi-operator/smi-operator/apis/smi"
)

func TestAccessSemantics(t *testing.T) {
	metrics := specsv1alpha4.HTTPMatch{Name: "metrics", PathRegex: "/metrics", Methods: []string{"GET"}}
	api := specsv1alpha4.HTTPMatch{Name: "api", PathRegex: "/api", Methods: []string{"*"}}
	groups := []specsv1alpha4.HTTPRouteGroup{
		httpRouteGroup("routes", metrics, api),
		httpRouteGroup("broken", specsv1alpha4.HTTPMatch{Name: "bad", PathRegex: "["}, api),
	}
	tcp := []specsv1alpha4.TCPRoute{tcpRoute("port-8080", 8080), tcpRoute("all-ports"), tcpRoute("bad-ports", 0, 70000)}
	udp := []specsv1alpha4.UDPRoute{udpRoute("dns", 53, 5353)}

	metricsIR := HTTPMatch{Group: "routes", Name: "metrics", Methods: []string{"GET"},
		Path: PathMatch{Regex: "/metrics", FullRegex: "^(?:/metrics).*", Kind: PathPrefix, Literal: "/metrics"}}
	apiIR := HTTPMatch{Group: "routes", Name: "api",
		Path: PathMatch{Regex: "/api", FullRegex: "^(?:/api).*", Kind: PathPrefix, Literal: "/api"}}
	brokenAPIIR := apiIR
	brokenAPIIR.Group = "broken"

	server := sa(ns, "server")
	sources := []accessv1alpha3.IdentityBindingSubject{sa(ns, "client")}
	serverID, clientID := id(ns, "server"), id(ns, "client")
	tt := ref(smi.TrafficTargetKind, "tt")
	all := PortSet{All: true}

	tests := []struct {
		name      string
		targets   []accessv1alpha3.TrafficTarget
		want      []AccessRule
		wantDiags []Diagnostic
	}{{
		name: "deny by default: no TrafficTarget, no access rule",
	}, {
		name:    "omitted matches allow every match of the route",
		targets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", server, sources, rule(smi.HTTPRouteGroupKind, "routes"))},
		want: []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID},
			HTTP: []HTTPMatch{metricsIR, apiIR}, HTTPPorts: all}},
	}, {
		name:    "named matches allow only those",
		targets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", server, sources, rule(smi.HTTPRouteGroupKind, "routes", "metrics"))},
		want: []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID},
			HTTP: []HTTPMatch{metricsIR}, HTTPPorts: all}},
	}, {
		name:    "unknown match name allows nothing for that name",
		targets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", server, sources, rule(smi.HTTPRouteGroupKind, "routes", "metrics", "nope"))},
		want: []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID},
			HTTP: []HTTPMatch{metricsIR}, HTTPPorts: all}},
		wantDiags: []Diagnostic{diag(tt, smi.ConditionResolvedRefs, ReasonMatchNotFound, SeverityWarning)},
	}, {
		name:    "invalid HTTP match allows nothing while the valid ones still apply",
		targets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", server, sources, rule(smi.HTTPRouteGroupKind, "broken"))},
		want: []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID},
			HTTP: []HTTPMatch{brokenAPIIR}, HTTPPorts: all}},
		wantDiags: []Diagnostic{
			diag(ref(smi.HTTPRouteGroupKind, "broken"), smi.ConditionAccepted, ReasonInvalidMatch, SeverityWarning),
			diag(tt, smi.ConditionResolvedRefs, ReasonInvalidMatch, SeverityWarning),
		},
	}, {
		// Refused by the webhook in v1alpha3; optional in v1alpha1 and v1alpha2 (issue 12).
		name:      "target without rules allows nothing, with a warning",
		targets:   []accessv1alpha3.TrafficTarget{trafficTarget("tt", server, sources)},
		want:      []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID}}},
		wantDiags: []Diagnostic{diag(tt, smi.ConditionResolvedRefs, ReasonNoRules, SeverityWarning)},
	}, {
		name:    "omitted TCP ports allow every port",
		targets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", server, sources, rule(smi.TCPRouteKind, "all-ports"))},
		want:    []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID}, TCP: all}},
	}, {
		name: "listed TCP ports allow those ports, unioned across rules",
		targets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", server, sources,
			rule(smi.TCPRouteKind, "port-8080"), rule(smi.TCPRouteKind, "port-8080"))},
		want: []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID}, TCP: PortSet{Ports: []int32{8080}}}},
	}, {
		name:    "TCPRoute whose ports are all invalid allows nothing, not every port",
		targets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", server, sources, rule(smi.TCPRouteKind, "bad-ports"))},
		want:    []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID}}},
		wantDiags: []Diagnostic{
			diag(ref(smi.TCPRouteKind, "bad-ports"), smi.ConditionAccepted, ReasonInvalidPort, SeverityWarning),
			diag(ref(smi.TCPRouteKind, "bad-ports"), smi.ConditionAccepted, ReasonInvalidPort, SeverityWarning),
		},
	}, {
		name: "TCP rule match names must name the route's match",
		targets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", server, sources,
			rule(smi.TCPRouteKind, "port-8080", "other"), rule(smi.TCPRouteKind, "all-ports", "all-ports"))},
		want:      []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID}, TCP: all}},
		wantDiags: []Diagnostic{diag(tt, smi.ConditionResolvedRefs, ReasonMatchNotFound, SeverityWarning)},
	}, {
		name: "UDP route allows UDP on its ports independently of HTTP",
		targets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", server, sources,
			rule(smi.UDPRouteKind, "dns"), rule(smi.HTTPRouteGroupKind, "routes", "metrics"))},
		want: []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID},
			HTTP: []HTTPMatch{metricsIR}, HTTPPorts: all, UDP: PortSet{Ports: []int32{53, 5353}}}},
	}, {
		name: "TCPRoute next to an HTTP rule scopes HTTP to its ports and grants no raw TCP",
		targets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", server, sources,
			rule(smi.TCPRouteKind, "port-8080"), rule(smi.HTTPRouteGroupKind, "routes", "metrics"))},
		want: []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID},
			HTTP: []HTTPMatch{metricsIR}, HTTPPorts: PortSet{Ports: []int32{8080}}}},
	}, {
		name: "rule referencing a missing route allows nothing",
		targets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", server, sources,
			rule(smi.HTTPRouteGroupKind, "gone"), rule(smi.UDPRouteKind, "gone"))},
		want: []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID}}},
		wantDiags: []Diagnostic{
			diag(tt, smi.ConditionResolvedRefs, ReasonRouteNotFound, SeverityWarning),
			diag(tt, smi.ConditionResolvedRefs, ReasonRouteNotFound, SeverityWarning),
		},
	}, {
		name: "missing HTTP route next to a TCPRoute does not open raw TCP",
		targets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", server, sources,
			rule(smi.TCPRouteKind, "port-8080"), rule(smi.HTTPRouteGroupKind, "gone"))},
		want:      []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID}}},
		wantDiags: []Diagnostic{diag(tt, smi.ConditionResolvedRefs, ReasonRouteNotFound, SeverityWarning)},
	}, {
		name: "missing TCPRoute next to an HTTP rule leaves HTTP on no port",
		targets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", server, sources,
			rule(smi.TCPRouteKind, "gone"), rule(smi.HTTPRouteGroupKind, "routes", "metrics"))},
		want: []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID},
			HTTP: []HTTPMatch{metricsIR}}},
		wantDiags: []Diagnostic{diag(tt, smi.ConditionResolvedRefs, ReasonRouteNotFound, SeverityWarning)},
	}, {
		name:      "unsupported rule kind allows nothing",
		targets:   []accessv1alpha3.TrafficTarget{trafficTarget("tt", server, sources, rule("GRPCRoute", "routes"))},
		want:      []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID}}},
		wantDiags: []Diagnostic{diag(tt, smi.ConditionResolvedRefs, ReasonUnsupportedRouteKind, SeverityWarning)},
	}, {
		name: "access is additive: targets for one destination are separate adjacent rules",
		targets: []accessv1alpha3.TrafficTarget{
			trafficTarget("b-api", server, []accessv1alpha3.IdentityBindingSubject{sa(ns, "website")},
				rule(smi.HTTPRouteGroupKind, "routes", "api")),
			trafficTarget("other", sa(ns, "another"), sources, rule(smi.TCPRouteKind, "all-ports")),
			trafficTarget("a-metrics", server, []accessv1alpha3.IdentityBindingSubject{sa(ns, "prometheus")},
				rule(smi.HTTPRouteGroupKind, "routes", "metrics")),
		},
		want: []AccessRule{
			{Source: ref(smi.TrafficTargetKind, "other"), Destination: id(ns, "another"), Sources: []Identity{clientID}, TCP: all},
			{Source: ref(smi.TrafficTargetKind, "a-metrics"), Destination: serverID, Sources: []Identity{id(ns, "prometheus")},
				HTTP: []HTTPMatch{metricsIR}, HTTPPorts: all},
			{Source: ref(smi.TrafficTargetKind, "b-api"), Destination: serverID, Sources: []Identity{id(ns, "website")},
				HTTP: []HTTPMatch{apiIR}, HTTPPorts: all},
		},
	}, {
		name: "a destination port limits HTTP rules to that port",
		targets: []accessv1alpha3.TrafficTarget{withDestinationPort(
			trafficTarget("tt", server, sources, rule(smi.HTTPRouteGroupKind, "routes", "metrics")), 8080)},
		want: []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID},
			HTTP: []HTTPMatch{metricsIR}, HTTPPorts: PortSet{Ports: []int32{8080}}}},
	}, {
		name: "a destination port narrows a TCPRoute of every port to that port",
		targets: []accessv1alpha3.TrafficTarget{withDestinationPort(
			trafficTarget("tt", server, sources, rule(smi.TCPRouteKind, "all-ports")), 8080)},
		want: []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID}, TCP: PortSet{Ports: []int32{8080}}}},
	}, {
		name: "a destination port intersects the TCP ports that scope HTTP rules",
		targets: []accessv1alpha3.TrafficTarget{withDestinationPort(trafficTarget("tt", server, sources,
			rule(smi.TCPRouteKind, "port-8080"), rule(smi.TCPRouteKind, "all-ports"), rule(smi.HTTPRouteGroupKind, "routes", "metrics")), 8080)},
		want: []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID},
			HTTP: []HTTPMatch{metricsIR}, HTTPPorts: PortSet{Ports: []int32{8080}}}},
	}, {
		name: "a destination port that no TCPRoute port equals allows nothing and says so",
		targets: []accessv1alpha3.TrafficTarget{withDestinationPort(trafficTarget("tt", server, sources,
			rule(smi.TCPRouteKind, "port-8080"), rule(smi.HTTPRouteGroupKind, "routes", "metrics")), 9090)},
		want:      []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID}, HTTP: []HTTPMatch{metricsIR}}},
		wantDiags: []Diagnostic{diag(tt, smi.ConditionResolvedRefs, ReasonDestinationPortOutsideRoute, SeverityWarning)},
	}, {
		name: "a destination port intersects UDP ports too",
		targets: []accessv1alpha3.TrafficTarget{withDestinationPort(
			trafficTarget("tt", server, sources, rule(smi.UDPRouteKind, "dns")), 53)},
		want: []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID}, UDP: PortSet{Ports: []int32{53}}}},
	}, {
		name: "a destination port outside 1-65535 allows nothing",
		targets: []accessv1alpha3.TrafficTarget{withDestinationPort(
			trafficTarget("tt", server, sources, rule(smi.TCPRouteKind, "all-ports"), rule(smi.UDPRouteKind, "dns")), 0)},
		want:      []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID}}},
		wantDiags: []Diagnostic{diag(tt, smi.ConditionAccepted, ReasonInvalidPort, SeverityWarning)},
	}, {
		name: "a conversion annotation that does not decode allows nothing: it may hold a destination port",
		targets: []accessv1alpha3.TrafficTarget{withAnnotation(
			trafficTarget("tt", server, sources, rule(smi.HTTPRouteGroupKind, "routes", "metrics")), smi.ConversionDataAnnotation, "{")},
		want:      []AccessRule{{Source: tt, Destination: serverID, Sources: []Identity{clientID}, HTTP: []HTTPMatch{metricsIR}}},
		wantDiags: []Diagnostic{diag(tt, smi.ConditionAccepted, ReasonInvalidConversionData, SeverityWarning)},
	}, {
		name:    "destination in another namespace is not accepted",
		targets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", sa("bank", "server"), sources, rule(smi.TCPRouteKind, "all-ports"))},
		wantDiags: []Diagnostic{
			diag(tt, smi.ConditionAccepted, ReasonDestinationNamespaceMismatch, SeverityError),
		},
	}, {
		name: "omitted destination and source namespaces default to the target's namespace",
		targets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", sa("", "server"),
			[]accessv1alpha3.IdentityBindingSubject{sa("", "client"), sa("monitoring", "prometheus"), sa(ns, "client")},
			rule(smi.TCPRouteKind, "all-ports"))},
		want: []AccessRule{{Source: tt, Destination: serverID,
			Sources: []Identity{id("monitoring", "prometheus"), clientID}, TCP: all}},
	}, {
		name: "destination that is not a ServiceAccount is not accepted",
		targets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", accessv1alpha3.IdentityBindingSubject{Kind: "Group", Name: "admins"},
			sources, rule(smi.TCPRouteKind, "all-ports"))},
		wantDiags: []Diagnostic{diag(tt, smi.ConditionAccepted, ReasonUnsupportedIdentityKind, SeverityError)},
	}, {
		name: "source that is not a ServiceAccount is left out",
		targets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", server,
			[]accessv1alpha3.IdentityBindingSubject{{Kind: "User", Name: "alice"}}, rule(smi.TCPRouteKind, "all-ports"))},
		want:      []AccessRule{{Source: tt, Destination: serverID, TCP: all}},
		wantDiags: []Diagnostic{diag(tt, smi.ConditionResolvedRefs, ReasonUnsupportedIdentityKind, SeverityWarning)},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Every destination has a workload; which ones is TestAccessWorkloads' subject.
			snap := Snapshot{TrafficTargets: tc.targets, HTTPRouteGroups: groups, TCPRoutes: tcp, UDPRoutes: udp,
				Deployments: []appsv1.Deployment{deployment("server", "server"), deployment("another", "another")}}
			m, diags := build(t, snap, Settings{})
			if d := cmp.Diff(tc.want, m.AccessRules, cmpopts.IgnoreFields(AccessRule{}, "Workloads")); d != "" {
				t.Errorf("access rules (-want +got):\n%s", d)
			}
			// Route diagnostics unrelated to the case (the fixtures' own broken routes) are
			// reported whether referenced or not; keep only those the case is about.
			if d := cmp.Diff(tc.wantDiags, relevant(diags, tc.wantDiags), ignoreMessage); d != "" {
				t.Errorf("diagnostics (-want +got):\n%s", d)
			}
		})
	}
}

// relevant keeps the diagnostics on TrafficTargets and on objects the case expects diagnostics for.
func relevant(diags, want []Diagnostic) []Diagnostic {
	keep := map[ObjectRef]bool{}
	for _, d := range want {
		keep[d.Object] = true
	}
	var out []Diagnostic
	for _, d := range diags {
		if d.Object.Kind == smi.TrafficTargetKind || keep[d.Object] {
			out = append(out, d)
		}
	}
	return out
}

func TestAccessIdentityTrustDomain(t *testing.T) {
	snap := Snapshot{
		TrafficTargets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", sa(ns, "server"),
			[]accessv1alpha3.IdentityBindingSubject{sa("monitoring", "prometheus")}, rule(smi.TCPRouteKind, "db"))},
		TCPRoutes: []specsv1alpha4.TCPRoute{tcpRoute("db", 5432)},
	}
	for _, tc := range []struct {
		name, trustDomain, wantDest, wantSource, wantPrincipal string
	}{
		{"default trust domain is cluster.local", "",
			"spiffe://cluster.local/ns/shop/sa/server", "spiffe://cluster.local/ns/monitoring/sa/prometheus",
			"cluster.local/ns/monitoring/sa/prometheus"},
		{"configured trust domain", "corp.example",
			"spiffe://corp.example/ns/shop/sa/server", "spiffe://corp.example/ns/monitoring/sa/prometheus",
			"corp.example/ns/monitoring/sa/prometheus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := build(t, snap, Settings{TrustDomain: tc.trustDomain})
			if len(m.AccessRules) != 1 || len(m.AccessRules[0].Sources) != 1 {
				t.Fatalf("want one rule with one source, got %+v", m.AccessRules)
			}
			r := m.AccessRules[0]
			got := []string{r.Destination.SPIFFEID, r.Sources[0].SPIFFEID, r.Sources[0].Principal()}
			if d := cmp.Diff([]string{tc.wantDest, tc.wantSource, tc.wantPrincipal}, got); d != "" {
				t.Errorf("identities (-want +got):\n%s", d)
			}
		})
	}
}

func TestAccessWorkloads(t *testing.T) {
	withSelector := func(d appsv1.Deployment, sel *metav1.LabelSelector) appsv1.Deployment {
		d.Spec.Selector = sel
		return d
	}
	statefulSet := func(name, account string) appsv1.StatefulSet {
		return appsv1.StatefulSet{ObjectMeta: meta(ns, name), Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}, Template: podTemplate(name, account)}}
	}
	daemonSet := func(name, account string) appsv1.DaemonSet {
		return appsv1.DaemonSet{ObjectMeta: meta(ns, name), Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}, Template: podTemplate(name, account)}}
	}
	deprecatedAccount := deployment("legacy", "")
	deprecatedAccount.Spec.Template.Spec.DeprecatedServiceAccount = "server"
	elsewhere := deployment("server", "server")
	elsewhere.Namespace = "other"
	// "wide" selects app=shared, the label that "sidecar-job" pods (another account) carry too.
	wide := withSelector(deployment("wide", "server"), &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shared"}})
	wide.Spec.Template.Labels = map[string]string{"app": "shared", "role": "server"}
	sidecarJob := deployment("sidecar-job", "batch")
	sidecarJob.Spec.Template.Labels = map[string]string{"app": "shared", "role": "job"}
	sidecarJob.Spec.Selector.MatchLabels = sidecarJob.Spec.Template.Labels
	// "narrow" runs as server too and is selected by "wide": same identity, no harm.
	narrow := deployment("narrow", "server")
	narrow.Spec.Template.Labels = map[string]string{"app": "shared", "role": "narrow"}
	narrow.Spec.Selector.MatchLabels = map[string]string{"app": "shared", "role": "narrow"}

	expr := metav1.LabelSelectorRequirement{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"server"}}
	tt := ref(smi.TrafficTargetKind, "tt")
	workload := func(kind, name string) Workload {
		return Workload{Kind: kind, Name: name, Selector: map[string]string{"app": name}}
	}

	tests := []struct {
		name         string
		dest         string
		deployments  []appsv1.Deployment
		statefulSets []appsv1.StatefulSet
		daemonSets   []appsv1.DaemonSet
		want         []Workload
		wantDiags    []Diagnostic
	}{{
		name:         "workloads running as the destination, by kind then name",
		dest:         "server",
		deployments:  []appsv1.Deployment{deployment("web", "server"), deployment("api", "server"), deployment("client", "client")},
		statefulSets: []appsv1.StatefulSet{statefulSet("db", "server")},
		daemonSets:   []appsv1.DaemonSet{daemonSet("agent", "server"), daemonSet("logger", "logs")},
		want: []Workload{workload(DaemonSetKind, "agent"), workload(DeploymentKind, "api"), workload(DeploymentKind, "web"),
			workload(StatefulSetKind, "db")},
	}, {
		name:        "pods without serviceAccountName run as default",
		dest:        "default",
		deployments: []appsv1.Deployment{deployment("web", ""), deployment("api", "server")},
		want:        []Workload{workload(DeploymentKind, "web")},
	}, {
		name:        "the deprecated serviceAccount field still names the account",
		dest:        "server",
		deployments: []appsv1.Deployment{deprecatedAccount},
		want:        []Workload{workload(DeploymentKind, "legacy")},
	}, {
		name:        "no workload yet: reported, the rule stays",
		dest:        "server",
		deployments: []appsv1.Deployment{elsewhere, deployment("web", "client")},
		wantDiags:   []Diagnostic{diag(tt, smi.ConditionProgrammed, ReasonNoWorkloads, SeverityWarning)},
	}, {
		name: "matchExpressions cannot be matchLabels: the workload is skipped, the others kept",
		dest: "server",
		deployments: []appsv1.Deployment{
			withSelector(deployment("exprs", "server"), &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{expr}}),
			withSelector(deployment("mixed", "server"), &metav1.LabelSelector{MatchLabels: map[string]string{"app": "mixed"},
				MatchExpressions: []metav1.LabelSelectorRequirement{expr}}),
			deployment("web", "server"),
		},
		want: []Workload{workload(DeploymentKind, "web")},
		wantDiags: []Diagnostic{
			diag(tt, smi.ConditionProgrammed, ReasonUnsupportedSelector, SeverityWarning),
			diag(tt, smi.ConditionProgrammed, ReasonUnsupportedSelector, SeverityWarning),
		},
	}, {
		name:        "an empty selector would select the whole namespace: skipped",
		dest:        "server",
		deployments: []appsv1.Deployment{withSelector(deployment("web", "server"), nil), withSelector(deployment("api", "server"), &metav1.LabelSelector{})},
		wantDiags: []Diagnostic{
			diag(tt, smi.ConditionProgrammed, ReasonUnsupportedSelector, SeverityWarning),
			diag(tt, smi.ConditionProgrammed, ReasonUnsupportedSelector, SeverityWarning),
		},
	}, {
		name:        "a selector that also selects pods of another account is skipped, one selecting the same account is kept",
		dest:        "server",
		deployments: []appsv1.Deployment{wide, sidecarJob, narrow},
		want:        []Workload{{Kind: DeploymentKind, Name: "narrow", Selector: map[string]string{"app": "shared", "role": "narrow"}}},
		wantDiags:   []Diagnostic{diag(tt, smi.ConditionProgrammed, ReasonOverlappingSelector, SeverityWarning)},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := Snapshot{
				TrafficTargets: []accessv1alpha3.TrafficTarget{
					trafficTarget("tt", sa(ns, tc.dest), nil, rule(smi.TCPRouteKind, "db")),
				},
				TCPRoutes:   []specsv1alpha4.TCPRoute{tcpRoute("db", 5432)},
				Deployments: tc.deployments, StatefulSets: tc.statefulSets, DaemonSets: tc.daemonSets,
			}
			m, diags := build(t, snap, Settings{})
			if len(m.AccessRules) != 1 {
				t.Fatalf("want one access rule, got %+v", m.AccessRules)
			}
			if d := cmp.Diff(tc.want, m.AccessRules[0].Workloads); d != "" {
				t.Errorf("workloads (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantDiags, diags, ignoreMessage); d != "" {
				t.Errorf("diagnostics (-want +got):\n%s", d)
			}
		})
	}
}

func TestAccessWorkloadsAreSharedByTheRulesOfOneDestination(t *testing.T) {
	snap := Snapshot{
		TrafficTargets: []accessv1alpha3.TrafficTarget{
			trafficTarget("a", sa(ns, "server"), nil, rule(smi.TCPRouteKind, "db")),
			trafficTarget("b", sa(ns, "server"), nil, rule(smi.TCPRouteKind, "db")),
		},
		TCPRoutes:   []specsv1alpha4.TCPRoute{tcpRoute("db", 5432)},
		Deployments: []appsv1.Deployment{deployment("web", "server")},
	}
	m, _ := build(t, snap, Settings{})
	want := []Workload{{Kind: DeploymentKind, Name: "web", Selector: map[string]string{"app": "web"}}}
	for _, r := range m.AccessRules {
		if d := cmp.Diff(want, r.Workloads); d != "" {
			t.Errorf("%v workloads (-want +got):\n%s", r.Source, d)
		}
	}
	// Each rule owns its selector: a backend editing one must not change the other.
	m.AccessRules[0].Workloads[0].Selector["app"] = "changed"
	if got := m.AccessRules[1].Workloads[0].Selector["app"]; got != "web" {
		t.Errorf("rules share a selector map: second rule now selects app=%q", got)
	}
}

// Models gives each backend the model of its own settings, building once per distinct settings
// (defaults included), each narrowed.
func TestModelsPerSettings(t *testing.T) {
	snap := Snapshot{
		TrafficTargets: []accessv1alpha3.TrafficTarget{trafficTarget("tt", sa(ns, "server"),
			[]accessv1alpha3.IdentityBindingSubject{sa("monitoring", "prometheus")}, rule(smi.TCPRouteKind, "db"))},
		TCPRoutes: []specsv1alpha4.TCPRoute{tcpRoute("db", 5432)},
	}
	narrowed := 0
	models := NewModels(snap, func(*Model) { narrowed++ })
	principal := func(s Settings) string {
		m, _ := models.BuiltWith(s)
		if len(m.AccessRules) != 1 || len(m.AccessRules[0].Sources) != 1 {
			t.Fatalf("want one rule with one source, got %+v", m.AccessRules)
		}
		return m.AccessRules[0].Sources[0].Principal()
	}
	got := []string{principal(Settings{}), principal(Settings{TrustDomain: "corp.example"}), principal(Settings{TrustDomain: "cluster.local"})}
	want := []string{"cluster.local/ns/monitoring/sa/prometheus", "corp.example/ns/monitoring/sa/prometheus", "cluster.local/ns/monitoring/sa/prometheus"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("principals by settings (-want +got):\n%s", d)
	}
	if narrowed != 2 {
		t.Errorf("%d models built, want 2: the defaults and cluster.local are the same settings", narrowed)
	}
}

// TestAccessDestinationPortOfEveryVersion writes one TrafficTarget in each access version, as its
// author would, and checks that the destination port of v1alpha1 and v1alpha2, which only the
// hub's conversion annotation holds, limits what the access rule allows, and that v1alpha3 (no
// port) allows every port.
func TestAccessDestinationPortOfEveryVersion(t *testing.T) {
	port := 8080
	tests := []struct {
		version string
		target  runtime.Object
		want    PortSet
	}{{
		version: "v1alpha1",
		target: &accessv1alpha1.TrafficTarget{ObjectMeta: meta(ns, "tt"),
			Destination: accessv1alpha1.IdentityBindingSubject{Kind: "ServiceAccount", Name: "server", Port: port},
			Sources:     []accessv1alpha1.IdentityBindingSubject{{Kind: "ServiceAccount", Name: "client"}},
			Specs:       []accessv1alpha1.TrafficTargetSpec{{Kind: smi.HTTPRouteGroupKind, Name: "routes"}}},
		want: PortSet{Ports: []int32{8080}},
	}, {
		version: "v1alpha2",
		target: &accessv1alpha2.TrafficTarget{ObjectMeta: meta(ns, "tt"), Spec: accessv1alpha2.TrafficTargetSpec{
			Destination: accessv1alpha2.IdentityBindingSubject{Kind: "ServiceAccount", Name: "server", Port: &port},
			Sources:     []accessv1alpha2.IdentityBindingSubject{{Kind: "ServiceAccount", Name: "client"}},
			Rules:       []accessv1alpha2.TrafficTargetRule{{Kind: smi.HTTPRouteGroupKind, Name: "routes"}}}},
		want: PortSet{Ports: []int32{8080}},
	}, {
		version: "v1alpha3",
		target: &accessv1alpha3.TrafficTarget{ObjectMeta: meta(ns, "tt"), Spec: accessv1alpha3.TrafficTargetSpec{
			Destination: sa("", "server"),
			Sources:     []accessv1alpha3.IdentityBindingSubject{sa("", "client")},
			Rules:       []accessv1alpha3.TrafficTargetRule{rule(smi.HTTPRouteGroupKind, "routes")}}},
		want: PortSet{All: true},
	}}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			snap := Snapshot{
				HTTPRouteGroups: []specsv1alpha4.HTTPRouteGroup{httpRouteGroup("routes", specsv1alpha4.HTTPMatch{Name: "any"})},
				Deployments:     []appsv1.Deployment{deployment("server", "server")},
			}
			if err := snap.Add(tc.target); err != nil {
				t.Fatal(err)
			}
			m, diags := build(t, snap, Settings{})
			if len(diags) != 0 || len(m.AccessRules) != 1 {
				t.Fatalf("access rules %+v, diagnostics %v; want one rule, no diagnostic", m.AccessRules, diags)
			}
			if d := cmp.Diff(tc.want, m.AccessRules[0].HTTPPorts); d != "" {
				t.Errorf("HTTP ports (-want +got):\n%s", d)
			}
		})
	}
}

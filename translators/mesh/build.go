package mesh

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// Build turns a snapshot into the mesh model and reports every problem it finds. It never fails:
// whatever cannot be used is left out and explained by a Diagnostic.
func Build(snap Snapshot, settings Settings) (Model, []Diagnostic) {
	b := newBuilder(snap, settings.withDefaults())
	splits, unweighted := b.splits(snap.TrafficSplits)
	model := Model{
		Splits:           splits,
		UnweightedSplits: unweighted,
		AccessRules:      b.accessRules(snap.TrafficTargets),
		AccessNamespaces: accessNamespaces(snap, b.settings),
		Policies:         b.policies(snap.TrafficPolicies),
	}
	return model, b.diags.Sorted()
}

// builder holds the snapshot indexed for lookups, and the diagnostics found so far.
type builder struct {
	settings   Settings
	services   map[types.NamespacedName]Service
	httpGroups map[types.NamespacedName]httpGroup
	tcpRoutes  map[types.NamespacedName]portRoute
	udpRoutes  map[types.NamespacedName]portRoute
	// workloads are grouped by namespace.
	workloads map[string][]podController
	diags     Diagnostics
}

func newBuilder(snap Snapshot, settings Settings) *builder {
	b := &builder{
		settings:   settings,
		services:   make(map[types.NamespacedName]Service, len(snap.Services)),
		httpGroups: make(map[types.NamespacedName]httpGroup, len(snap.HTTPRouteGroups)),
		tcpRoutes:  make(map[types.NamespacedName]portRoute, len(snap.TCPRoutes)),
		udpRoutes:  make(map[types.NamespacedName]portRoute, len(snap.UDPRoutes)),
		workloads:  indexWorkloads(snap),
	}
	for i := range snap.Services {
		svc := &snap.Services[i]
		b.services[nameOf(svc.Namespace, svc.Name)] = b.service(svc)
	}
	// Routes are compiled once, whether referenced or not, so their own diagnostics are reported
	// exactly once and every referrer sees the same result.
	for i := range snap.HTTPRouteGroups {
		g := &snap.HTTPRouteGroups[i]
		b.httpGroups[nameOf(g.Namespace, g.Name)] = b.compileHTTPGroup(g)
	}
	for i := range snap.TCPRoutes {
		r := &snap.TCPRoutes[i]
		ref := ObjectRef{Kind: smi.TCPRouteKind, Namespace: r.Namespace, Name: r.Name}
		b.tcpRoutes[nameOf(r.Namespace, r.Name)] = b.compilePortRoute(ref, r.Spec.Matches.Name, r.Spec.Matches.Ports)
	}
	for i := range snap.UDPRoutes {
		r := &snap.UDPRoutes[i]
		ref := ObjectRef{Kind: smi.UDPRouteKind, Namespace: r.Namespace, Name: r.Name}
		b.udpRoutes[nameOf(r.Namespace, r.Name)] = b.compilePortRoute(ref, r.Spec.Matches.Name, r.Spec.Matches.Ports)
	}
	return b
}

func nameOf(namespace, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: name}
}

// service converts a Kubernetes Service, defaulting the protocol as the API server does.
func (b *builder) service(svc *corev1.Service) Service {
	return serviceOf(svc, b.settings.ClusterDomain)
}

// ServiceOf converts one Kubernetes Service on its own, for backends that program every Service
// (the xDS backend serves each one to proxyless clients), not only those SMI objects reference.
func ServiceOf(svc *corev1.Service, settings Settings) Service {
	return serviceOf(svc, settings.withDefaults().ClusterDomain)
}

func serviceOf(svc *corev1.Service, clusterDomain string) Service {
	out := Service{
		Namespace:  svc.Namespace,
		Name:       svc.Name,
		FQDN:       svc.Name + "." + svc.Namespace + ".svc." + clusterDomain,
		ClusterIPs: clusterIPs(&svc.Spec),
	}
	for _, p := range svc.Spec.Ports {
		sp := ServicePort{Name: p.Name, Port: p.Port, Protocol: cmp.Or(p.Protocol, corev1.ProtocolTCP)}
		if p.AppProtocol != nil {
			sp.AppProtocol = *p.AppProtocol
		}
		out.Ports = append(out.Ports, sp)
	}
	slices.SortFunc(out.Ports, func(a, b ServicePort) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Protocol, b.Protocol))
	})
	return out
}

// clusterIPs returns the Service's virtual IPs, primary family first. spec.clusterIPs is
// authoritative; spec.clusterIP, which the API server mirrors into clusterIPs[0], only fills in for
// objects written without it (hand-made fixtures). "None" (headless) and empty entries are no IPs.
func clusterIPs(spec *corev1.ServiceSpec) []string {
	ips := spec.ClusterIPs
	if len(ips) == 0 && spec.ClusterIP != "" {
		ips = []string{spec.ClusterIP}
	}
	var out []string
	for _, ip := range ips {
		if ip != "" && ip != corev1.ClusterIPNone {
			out = append(out, ip)
		}
	}
	return out
}

const spiffeScheme = "spiffe://"

func (b *builder) identity(namespace, serviceAccount string) Identity {
	return b.settings.Identity(namespace, serviceAccount)
}

// Models builds one snapshot's model with whichever settings a backend programs with, once for
// each distinct settings. While one backend replaces another, the two can run with different
// settings (a trust domain changed along with the backend, or a new backend that cannot start
// while the old one keeps running as it was), and each must program the model of its own. Not
// safe for concurrent use: a reconcile makes one.
type Models struct {
	snap   Snapshot
	narrow func(*Model)
	built  map[Settings]builtModel
}

type builtModel struct {
	model Model
	diags []Diagnostic
}

// NewModels returns the models of snap; narrow, when not nil, trims each model built (such as to
// the one split being reconciled).
func NewModels(snap Snapshot, narrow func(*Model)) *Models {
	return &Models{snap: snap, narrow: narrow, built: map[Settings]builtModel{}}
}

// BuiltWith returns the model built with settings and the diagnostics of building it.
func (m *Models) BuiltWith(settings Settings) (Model, []Diagnostic) {
	key := settings.withDefaults()
	if b, ok := m.built[key]; ok {
		return b.model, b.diags
	}
	model, diags := Build(m.snap, key)
	if m.narrow != nil {
		m.narrow(&model)
	}
	m.built[key] = builtModel{model, diags}
	return model, diags
}

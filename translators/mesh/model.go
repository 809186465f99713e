package mesh

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Model is the mesh as SMI describes it, ready for a backend to translate.
type Model struct {
	// Splits holds one entry per programmed TrafficSplit, sorted by apex namespace and name. At
	// most one split exists per apex.
	Splits []Split
	// UnweightedSplits holds, in the same order, the TrafficSplits that would be programmed but
	// that no backend has a positive weight in (Programmed=False, NoWeightedBackends): all their
	// traffic stays on the apex, as if they did not exist. A backend may still use them to keep
	// their backends ready for the weights coming back; the xDS and Istio backends do, so that
	// proxyless clients go on holding the backends' clusters (their Backends all weigh 0).
	UnweightedSplits []Split
	// AccessRules holds one entry per accepted TrafficTarget, sorted by destination identity, then
	// by the TrafficTarget's namespace and name, so the rules of one destination are adjacent.
	// Access is additive: a request to a destination is allowed when any of its rules allows it,
	// and denied when none does.
	AccessRules []AccessRule
	// AccessNamespaces are the snapshot's namespaces where deny-by-default applies, sorted: in
	// enforcing mode, those Settings.AccessNamespaces selects, whether or not a TrafficTarget
	// names them. Empty in permissive mode.
	AccessNamespaces []string
	// Policies holds one entry per programmed TrafficPolicy, sorted by namespace, Service and
	// port. A Service port is covered by at most one.
	Policies []Policy
}

// ObjectRef names an object of the snapshot.
type ObjectRef struct {
	// Kind is the SMI kind, one of the kind constants of package apis/smi.
	Kind      string
	Namespace string
	Name      string
}

func (r ObjectRef) String() string {
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

func (r ObjectRef) compare(o ObjectRef) int {
	return cmp.Or(cmp.Compare(r.Kind, o.Kind), cmp.Compare(r.Namespace, o.Namespace), cmp.Compare(r.Name, o.Name))
}

// Service is a Kubernetes Service as routing needs it.
type Service struct {
	Namespace string
	Name      string
	// FQDN is <name>.<namespace>.svc.<cluster domain>.
	FQDN string
	// ClusterIPs are the Service's virtual IPs (spec.clusterIPs, the primary family first), what
	// a client without a DNS view of the mesh, such as a sidecar intercepting connections, sees
	// as the destination. Empty for a headless Service ("None") and for one without an IP yet.
	ClusterIPs []string
	// Ports are the Service's ports, sorted by number then protocol.
	Ports []ServicePort
}

// ServicePort is one port of a Service. Backends map it to endpoints by Name, as EndpointSlices do.
type ServicePort struct {
	Name string
	Port int32
	// Protocol is TCP when the Service left it empty.
	Protocol corev1.Protocol
	// AppProtocol is the Service's appProtocol, empty when unset; backends use it (or the name
	// prefix, Istio style) to tell HTTP from opaque TCP.
	AppProtocol string
}

// Split is an accepted and programmable TrafficSplit.
type Split struct {
	// Source is the TrafficSplit this came from.
	Source ObjectRef
	// Apex is the root service clients address.
	Apex Service
	// Backends share the split traffic in proportion to Weight, sorted by service name. A weight
	// may be 0 (no traffic), but at least one is positive. The apex may be one of them.
	Backends []Backend
	// Matches select the HTTP requests that are split; a request matching any of them is split.
	// Empty means every request and connection to the apex is split. When non-empty, only HTTP
	// requests can match: other connections (opaque TCP ports) stay on the apex.
	Matches []HTTPMatch
}

// CatchAllToApex says whether requests matching none of the split's matches keep going to the
// apex Service unchanged, which backends must program explicitly after the matches: whenever it
// has matches.
func (s *Split) CatchAllToApex() bool { return len(s.Matches) > 0 }

// Backend is one weighted destination of a split.
type Backend struct {
	Service
	Weight int
}

// HTTPMatch is one resolved match of an HTTPRouteGroup. A request matches when its path, method
// and every header match.
type HTTPMatch struct {
	// Group is the name of the HTTPRouteGroup, in the namespace of the object that references it.
	Group string
	// Name is the match's name inside the group; it may be empty.
	Name string
	Path PathMatch
	// Methods are upper-case and sorted; empty means any method.
	Methods []string
	// Headers must all match (AND), sorted by name then regex.
	Headers []HeaderMatch
}

// PathKind tells how a path regex can be expressed without regex support.
type PathKind string

// Path kinds.
const (
	// PathAny matches every path (no pathRegex, or one such as ".*").
	PathAny PathKind = "Any"
	// PathExact matches exactly Literal.
	PathExact PathKind = "Exact"
	// PathPrefix matches paths starting with Literal (a string prefix, not a segment prefix).
	PathPrefix PathKind = "Prefix"
	// PathRegex needs a regex engine: use FullRegex.
	PathRegex PathKind = "Regex"
)

// PathMatch is an HTTPRouteGroup pathRegex, which SMI anchors at the start of the path only.
type PathMatch struct {
	// Regex is the pathRegex as written.
	Regex string
	// FullRegex matches a whole path exactly when Regex matches at its start: "^(?:Regex).*".
	// Empty when Kind is PathAny.
	FullRegex string
	Kind      PathKind
	// Literal is the exact path or the prefix for PathExact and PathPrefix, empty otherwise.
	Literal string
}

// HeaderMatch requires a request header to be present with a value matching a regex.
type HeaderMatch struct {
	// Name is lower case, an HTTP token.
	Name string
	// Regex is RE2 and must match the whole header value.
	Regex string
	// Kind tells how Regex can be expressed without regex support, with Literal.
	Kind HeaderKind
	// Literal is the value, prefix or suffix for HeaderExact, HeaderPrefix and HeaderSuffix, empty
	// otherwise.
	Literal string
}

// HeaderKind tells how a header regex can be expressed without regex support.
type HeaderKind string

// Header kinds.
const (
	// HeaderPresent matches any value (".*"): the header only has to be present.
	HeaderPresent HeaderKind = "Present"
	// HeaderExact matches exactly Literal.
	HeaderExact HeaderKind = "Exact"
	// HeaderPrefix matches values starting with Literal ("lit.*").
	HeaderPrefix HeaderKind = "Prefix"
	// HeaderSuffix matches values ending with Literal (".*lit").
	HeaderSuffix HeaderKind = "Suffix"
	// HeaderRegex needs a regex engine: use Regex.
	HeaderRegex HeaderKind = "Regex"
)

// Identity is a workload identity: a Kubernetes ServiceAccount.
type Identity struct {
	Namespace      string
	ServiceAccount string
	// SPIFFEID is spiffe://<trust domain>/ns/<namespace>/sa/<service account>.
	SPIFFEID string
}

// Nobody is the identity no workload has: what a backend allows, or accepts, where a list that
// must not be empty has nobody to name (an allow-nothing policy, a cluster none of whose
// endpoints' identities is known), since an empty list means "anyone" to Istio, Envoy and every
// gRPC library. Istio's CA and the operator's issue spiffe://<trust domain>/ns/<namespace>/sa/<name>
// only, and ".invalid" is reserved (RFC 2606), so it can be no trust domain.
var Nobody = Identity{SPIFFEID: spiffeScheme + "smi-operator.invalid/nobody"}

// Principal is the SPIFFE ID without its scheme, as Istio writes principals.
func (i Identity) Principal() string {
	return strings.TrimPrefix(i.SPIFFEID, spiffeScheme)
}

func (i Identity) compare(o Identity) int {
	return cmp.Or(cmp.Compare(i.Namespace, o.Namespace), cmp.Compare(i.ServiceAccount, o.ServiceAccount))
}

// AccessRule is an accepted TrafficTarget: Sources may reach Destination with the traffic listed.
// Whatever it does not list is denied. A rule allowing nothing is kept on purpose: its destination
// is still under SMI access control and must deny everything rather than be left open.
type AccessRule struct {
	// Source is the TrafficTarget this came from.
	Source      ObjectRef
	Destination Identity
	// Sources are sorted and unique; they may be empty (nobody is allowed).
	Sources []Identity
	// HTTP lists the allowed HTTP requests (any one matching allows), on HTTPPorts only.
	HTTP []HTTPMatch
	// HTTPPorts are the destination ports the HTTP matches apply on: every port unless the
	// TrafficTarget also has TCPRoute rules, which then scope HTTP to their ports. Like TCP and
	// UDP, they never go beyond the destination port that a v1alpha1 or v1alpha2 TrafficTarget
	// may give (that port alone when the routes leave every port open).
	HTTPPorts PortSet
	// TCP are the ports on which any TCP connection is allowed. Always empty when HTTP rules exist,
	// since TCPRoutes then only scope HTTP.
	TCP PortSet
	// UDP are the ports on which UDP traffic is allowed.
	UDP PortSet
	// Workloads are the controllers in Destination's namespace whose pods run as Destination,
	// sorted by kind and name: what backends that select pods by labels attach the rule to. Empty
	// when none exists yet (or none can be selected); the rule still governs the identity.
	Workloads []Workload
}

// Workload kinds.
const (
	DeploymentKind  = "Deployment"
	StatefulSetKind = "StatefulSet"
	DaemonSetKind   = "DaemonSet"
)

// Workload is a controller whose pods run as an AccessRule's destination.
type Workload struct {
	// Kind is DeploymentKind, StatefulSetKind or DaemonSetKind.
	Kind string
	Name string
	// Selector is the controller's spec.selector.matchLabels, never empty. It selects the
	// controller's pods and, Build has checked, no pod template of another known workload running
	// as a different ServiceAccount.
	Selector map[string]string
	// Ports are the TCP ports its pod template's containers declare, sorted; nil when none. Its
	// pods may listen on others.
	Ports []int32
}

// PortSet is a set of destination ports. The zero value is the empty set, so an unresolved rule
// that leaves it untouched allows nothing.
type PortSet struct {
	// All means every port; Ports is then empty.
	All bool
	// Ports are sorted and unique.
	Ports []int32
}

// String describes the ports for diagnostics: "every port", "port 80", "ports 80, 443".
func (p PortSet) String() string {
	if p.All {
		return "every port"
	}
	s := make([]string, len(p.Ports))
	for i, port := range p.Ports {
		s[i] = strconv.Itoa(int(port))
	}
	if len(s) == 1 {
		return "port " + s[0]
	}
	return "ports " + strings.Join(s, ", ")
}

// Describe names the match for diagnostics, with its HTTPRouteGroup.
func (m HTTPMatch) Describe() string {
	if m.Name == "" {
		return fmt.Sprintf("HTTPRouteGroup %q unnamed match", m.Group)
	}
	return fmt.Sprintf("HTTPRouteGroup %q match %q", m.Group, m.Name)
}

// Empty reports whether the set holds no port.
func (p PortSet) Empty() bool {
	return !p.All && len(p.Ports) == 0
}

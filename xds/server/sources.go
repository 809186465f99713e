package server

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
)

// The sources build the resources the caches serve, when a client asks, from the store. Each
// Version is a lookup (no building); Resolve builds through package xds and keeps what it built
// by name and version (memo), so many clients asking for one resource build it once. The caches
// call them with their own lock held; they take the store's read lock.

// versioned is a resource with its version.
type versioned struct {
	resource types.Resource
	version  string
}

// memo keeps the resources built for clients, by name, with the version they were built at.
type memo struct {
	mu    sync.Mutex
	built map[string]versioned
}

func (m *memo) get(name, version string, build func() types.Resource) types.Resource {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.built[name]; ok && v.version == version {
		return v.resource
	}
	if m.built == nil {
		m.built = map[string]versioned{}
	}
	res := build()
	m.built[name] = versioned{resource: res, version: version}
	return res
}

// drop forgets what was built for names that no longer exist.
func (m *memo) drop(names ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, name := range names {
		delete(m.built, name)
	}
}

// sources are the per-Service sources, whose memos forget deleted Services.
type sources struct {
	grpcListeners               *grpcListenerSource
	grpcRoutes, envoyRoutes     *routeSource
	grpcClusters, envoyClusters *clusterSource
	endpoints                   *endpointSource
}

func (s sources) forget(listeners, clusters []string) {
	if len(listeners) == 0 && len(clusters) == 0 {
		return
	}
	s.grpcListeners.memo.drop(listeners...)
	s.grpcRoutes.memo.drop(listeners...)
	s.envoyRoutes.memo.drop(listeners...)
	s.grpcClusters.memo.drop(clusters...)
	s.envoyClusters.memo.drop(clusters...)
	s.endpoints.memo.drop(clusters...)
}

// onePort is the Service with only the given port, to build that port's resources alone.
func onePort(svc mesh.Service, port int32) mesh.Service {
	for _, p := range svc.Ports {
		if p.Port == port {
			svc.Ports = []mesh.ServicePort{p}
			return svc
		}
	}
	svc.Ports = nil
	return svc
}

// listenerPort is the port at the end of a listener or route name ("<fqdn>:<port>").
func listenerPort(name string) int32 {
	p, _ := strconv.ParseInt(name[strings.LastIndexByte(name, ':')+1:], 10, 32)
	return int32(p)
}

// clusterPort is the port of a cluster name ("outbound|<port>||<fqdn>").
func clusterPort(name string) int32 {
	rest := strings.TrimPrefix(name, "outbound|")
	p, _ := strconv.ParseInt(rest[:max(strings.IndexByte(rest, '|'), 0)], 10, 32)
	return int32(p)
}

func versionOf(prefix string, v uint64) string { return prefix + strconv.FormatUint(v, 10) }

// accessListenerVersion is the version of an identity's listeners: its rules' version, and
// whether its namespace is enforced. The caller holds the store's read lock.
func (s *Server) accessListenerVersion(scope string) string {
	_, suffix := s.accessSettings(scope)
	return versionOf("access-", s.accessVersion[scope]) + suffix
}

// grpcListenerSource serves proxyless gRPC nodes their listeners: client listeners, one per
// Service port, and server listeners built for the asking node's identity.
type grpcListenerSource struct {
	s    *Server
	memo memo
}

// clientListenerVersion is a client listener's version: its content depends on its name, and on
// whether the policy served on its port has a fault (xds.ApplyPolicy then puts the fault filter in
// the listener, and puts nothing else there). The caller holds the store's read lock.
func (s *Server) clientListenerVersion(entry *serviceEntry, name string) string {
	if _, p := s.servedPolicy(serviceKey(entry.service), listenerPort(name)); p != nil && p.Fault != nil {
		return "client-fault"
	}
	return "client"
}

func (src *grpcListenerSource) Version(scope, name string) (string, bool) {
	s := src.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if entry, ok := s.byListener[name]; ok {
		return s.clientListenerVersion(entry, name), true
	}
	if strings.HasPrefix(name, xds.ServerListenerNamePrefix) {
		// A server listener is a function of the name, the identity's rules and the settings.
		return s.accessListenerVersion(scope), true
	}
	return "", false
}

func (src *grpcListenerSource) Resolve(scope, name string) (types.Resource, bool) {
	s := src.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if entry, ok := s.byListener[name]; ok {
		res := src.memo.get(name, s.clientListenerVersion(entry, name), func() types.Resource {
			port := listenerPort(name)
			res := xds.ServiceResources(onePort(entry.service, port), nil, s.opts.Settings)
			s.applyPolicy(&res, entry, port, true)
			return res.Listeners[0]
		})
		return res, true
	}
	settings, _ := s.accessSettings(scope)
	l, err := xds.ServerListener(name, s.rulesOf(scope), settings)
	if err != nil {
		// A malformed server listener name: the client gets no listener (grpc-go reports the
		// resource missing) and the operator's log says why.
		s.opts.Log.Info("cannot serve a gRPC server listener", "name", name, "scope", scope, "error", err.Error())
		return nil, false
	}
	return l, true
}

func (src *grpcListenerSource) Wildcard(string) []string {
	s := src.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Collect(maps.Keys(s.byListener))
}

// routeSource serves RouteConfigurations to one kind of client: a split's when a split programs
// the name, else the Service port's default; with the policy served on the Service port.
type routeSource struct {
	s     *Server
	envoy bool
	memo  memo
}

// routeVersion is the version of the RouteConfiguration name: the split's or the Service's, and
// its Service's policies'. The caller holds the store's read lock.
func (s *Server) routeVersion(name string) (string, bool) {
	entry, isService := s.byListener[name]
	policies := ""
	if isService {
		policies = s.policyVersionOf(entry)
	}
	if v, ok := s.splitRoute(name); ok {
		return v.version + policies, true
	}
	if isService {
		return versionOf("service-", entry.specVersion) + policies, true
	}
	return "", false
}

func (src *routeSource) Version(_, name string) (string, bool) {
	s := src.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.routeVersion(name)
}

func (src *routeSource) Resolve(_, name string) (types.Resource, bool) {
	s := src.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, isService := s.byListener[name]; !isService {
		// The split of an apex the server does not know (yet): no policy of it can apply, and
		// nothing is built to keep.
		if v, ok := s.splitRoute(name); ok {
			return src.splitRouteOf(v), true
		}
		return nil, false
	}
	version, _ := s.routeVersion(name)
	return src.memo.get(name, version, func() types.Resource { return src.build(name) }), true
}

// splitRouteOf is the split route configuration of this source's kind of client.
func (src *routeSource) splitRouteOf(v splitRoute) *routev3.RouteConfiguration {
	if src.envoy {
		return v.envoy
	}
	return v.grpc
}

// build makes the RouteConfiguration of a Service port: its split's, else its default, with the
// policy served on the port. The caller holds the store's read lock.
func (src *routeSource) build(name string) *routev3.RouteConfiguration {
	s := src.s
	entry, port := s.byListener[name], listenerPort(name)
	var rc *routev3.RouteConfiguration
	if v, ok := s.splitRoute(name); ok {
		rc = src.splitRouteOf(v)
	} else {
		rc = xds.ServiceResources(onePort(entry.service, port), nil, s.opts.Settings).RouteConfigurations[0]
	}
	policy := s.servedPolicyOn(entry, port)
	if policy == nil {
		return rc
	}
	// On a copy: a split's route configuration is the store's.
	rc = proto.Clone(rc).(*routev3.RouteConfiguration)
	xds.PolicyRoutes(rc, policy)
	return rc
}

func (src *routeSource) Wildcard(string) []string { return nil }

// clusterSource serves Clusters, by client kind: proxyless ones (certificate providers) or
// Envoy's (SDS, HTTP/2 options), and Envoy's passthrough clusters.
type clusterSource struct {
	s     *Server
	envoy bool
	memo  memo
}

func (src *clusterSource) Version(_, name string) (string, bool) {
	s := src.s
	if src.envoy && slices.Contains(passthroughNames, name) {
		return "passthrough", true
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if entry, ok := s.byCluster[name]; ok {
		return s.clusterVersion(entry), true
	}
	return "", false
}

// clusterVersion is the version of the entry's clusters: the Service's and its endpoints'
// identities' (clusterVersion), and its policies'. The caller holds the store's read lock.
func (s *Server) clusterVersion(entry *serviceEntry) string {
	return versionOf("cluster-", entry.clusterVersion) + s.policyVersionOf(entry)
}

var passthrough = xds.PassthroughClusters()

var passthroughNames = func() []string {
	var names []string
	for _, c := range passthrough {
		names = append(names, c.Name)
	}
	return names
}()

func (src *clusterSource) Resolve(_, name string) (types.Resource, bool) {
	s := src.s
	if i := slices.Index(passthroughNames, name); src.envoy && i >= 0 {
		return passthrough[i], true
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	entry, ok := s.byCluster[name]
	if !ok {
		return nil, false
	}
	return src.memo.get(name, s.clusterVersion(entry), func() types.Resource {
		port := clusterPort(name)
		svc := onePort(entry.service, port)
		var res xds.Output
		if src.envoy {
			res.Clusters = xds.EnvoyClusters(svc, entry.endpointsOf(port), s.opts.Settings)
		} else {
			res = xds.ServiceResources(svc, entry.endpointsOf(port), s.opts.Settings)
		}
		s.applyPolicy(&res, entry, port, !src.envoy)
		return res.Clusters[0]
	}), true
}

func (src *clusterSource) Wildcard(string) []string {
	s := src.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := slices.Collect(maps.Keys(s.byCluster))
	if src.envoy {
		names = append(names, passthroughNames...)
	}
	return names
}

// endpointSource serves ClusterLoadAssignments, the same to both kinds of client.
type endpointSource struct {
	s    *Server
	memo memo
}

func (src *endpointSource) Version(_, name string) (string, bool) {
	s := src.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if entry, ok := s.byCluster[name]; ok {
		return versionOf("endpoints-", entry.endpointsVersion), true
	}
	return "", false
}

func (src *endpointSource) Resolve(_, name string) (types.Resource, bool) {
	s := src.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	entry, ok := s.byCluster[name]
	if !ok {
		return nil, false
	}
	return src.memo.get(name, versionOf("endpoints-", entry.endpointsVersion), func() types.Resource {
		port := clusterPort(name)
		return xds.ServiceResources(onePort(entry.service, port), entry.endpointsOf(port), s.opts.Settings).ClusterLoadAssignments[0]
	}), true
}

func (src *endpointSource) Wildcard(string) []string { return nil }

// envoyListenerSource serves Envoy sidecars their two listeners: the outbound one, shared, and
// the inbound one of their identity.
type envoyListenerSource struct {
	s *Server
	// outbound is the outbound listener, built when asked for at outboundVersion.
	mu       sync.Mutex
	outbound versioned
}

func (src *envoyListenerSource) Version(scope, name string) (string, bool) {
	s := src.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch name {
	case xds.OutboundListenerName:
		return versionOf("outbound-", s.outboundVersion), true
	case xds.InboundListenerName:
		return s.accessListenerVersion(scope), true
	}
	return "", false
}

func (src *envoyListenerSource) Resolve(scope, name string) (types.Resource, bool) {
	s := src.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch name {
	case xds.OutboundListenerName:
		return src.outboundListener(), true
	case xds.InboundListenerName:
		settings, _ := s.accessSettings(scope)
		l, err := xds.InboundListener(s.rulesOf(scope), settings)
		if err != nil {
			s.opts.Log.Error(err, "cannot build an Envoy inbound listener", "scope", scope)
			return nil, false
		}
		return l, true
	}
	return nil, false
}

func (src *envoyListenerSource) Wildcard(string) []string {
	return []string{xds.InboundListenerName, xds.OutboundListenerName}
}

// outboundListener builds the outbound listener from every Service's chains, once per change
// however many sidecars ask. The caller holds the store's read lock.
func (src *envoyListenerSource) outboundListener() types.Resource {
	s := src.s
	src.mu.Lock()
	defer src.mu.Unlock()
	version := versionOf("outbound-", s.outboundVersion)
	if src.outbound.resource == nil || src.outbound.version != version {
		keys := slices.SortedFunc(maps.Keys(s.services), func(a, b k8stypes.NamespacedName) int {
			return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
		})
		var chains []*listenerv3.FilterChain
		for _, k := range keys {
			chains = append(chains, s.outboundChains(k)...)
		}
		src.outbound = versioned{resource: xds.OutboundListener(chains), version: version}
	}
	return src.outbound.resource
}

// outboundChains are the chains of the Service key on the Envoy outbound listener, with its split
// and the policy served on each of its ports; none when the Service is not known. The caller
// holds the store's lock.
func (s *Server) outboundChains(key k8stypes.NamespacedName) []*listenerv3.FilterChain {
	entry, ok := s.services[key]
	if !ok {
		return nil
	}
	chains := xds.OutboundFilterChains(entry.service, s.splitOf(key))
	for _, port := range entry.tcpPorts() {
		if p := s.servedPolicyOn(entry, port); p != nil {
			// Only on this port: another policy may be served on the others.
			xds.PolicyOutboundChains(chains, p)
		}
	}
	return chains
}

// policyVersionOf is what the version of a resource of the entry's Service that its policies
// change (routes, clusters) ends with: nothing while no policy names the Service. The caller
// holds the store's read lock.
func (s *Server) policyVersionOf(entry *serviceEntry) string {
	v, ok := s.policyVersion[serviceKey(entry.service)]
	if !ok {
		return ""
	}
	return versionOf("-policy-", v)
}

// applyPolicy puts the policy served on port of the entry's Service on res, resources of that port
// alone, for proxyless clients or Envoy sidecars (their clusters), as xds.Translate and
// xds.TranslateEnvoy do. The caller holds the store's read lock.
func (s *Server) applyPolicy(res *xds.Output, entry *serviceEntry, port int32, proxyless bool) {
	if p := s.servedPolicyOn(entry, port); p != nil {
		xds.ApplyPolicy(res, p, proxyless)
	}
}

package server

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
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

// clientListenerVersion is every client listener's version: its content depends on its name only.
const clientListenerVersion = "client"

func (src *grpcListenerSource) Version(scope, name string) (string, bool) {
	s := src.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.byListener[name]; ok {
		return clientListenerVersion, true
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
		res := src.memo.get(name, clientListenerVersion, func() types.Resource {
			return xds.ServiceResources(onePort(entry.service, listenerPort(name)), nil, s.opts.Settings).Listeners[0]
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
// the name, else the Service port's default.
type routeSource struct {
	s     *Server
	envoy bool
	memo  memo
}

func (src *routeSource) Version(_, name string) (string, bool) {
	s := src.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if v, ok := s.splitRoute(name); ok {
		return v.version, true
	}
	if entry, ok := s.byListener[name]; ok {
		return versionOf("service-", entry.specVersion), true
	}
	return "", false
}

func (src *routeSource) Resolve(_, name string) (types.Resource, bool) {
	s := src.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if v, ok := s.splitRoute(name); ok {
		if src.envoy {
			return v.envoy, true
		}
		return v.grpc, true
	}
	entry, ok := s.byListener[name]
	if !ok {
		return nil, false
	}
	return src.memo.get(name, versionOf("service-", entry.specVersion), func() types.Resource {
		return xds.ServiceResources(onePort(entry.service, listenerPort(name)), nil, s.opts.Settings).RouteConfigurations[0]
	}), true
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
		return versionOf("cluster-", entry.clusterVersion), true
	}
	return "", false
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
	return src.memo.get(name, versionOf("cluster-", entry.clusterVersion), func() types.Resource {
		port := clusterPort(name)
		svc := onePort(entry.service, port)
		if src.envoy {
			return xds.EnvoyClusters(svc, entry.endpointsOf(port), s.opts.Settings)[0]
		}
		return xds.ServiceResources(svc, entry.endpointsOf(port), s.opts.Settings).Clusters[0]
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
			chains = append(chains, xds.OutboundFilterChains(s.services[k].service, s.splitOf(k))...)
		}
		src.outbound = versioned{resource: xds.OutboundListener(chains), version: version}
	}
	return src.outbound.resource
}

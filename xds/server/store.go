package server

import (
	"cmp"
	"maps"
	"slices"
	"strconv"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
)

// The store is the server's desired state, fed piece by piece by the reconcilers: what each
// Service contributes, the routes of each split, the access rules of each TrafficTarget. Every
// setter compares what it is given with what is served and touches only what differs, so a
// reconcile that changes nothing pushes nothing, and a change costs work proportional to what
// changed, not to the mesh.

// linear is a LinearCache with the resources it serves, to skip updates that change nothing.
type linear struct {
	cache   *cache.LinearCache
	current map[string]types.Resource
}

func newLinear(typeURL string) *linear {
	return &linear{cache: cache.NewLinearCache(typeURL), current: map[string]types.Resource{}}
}

func (l *linear) set(name string, res types.Resource) {
	if old, ok := l.current[name]; ok && proto.Equal(old, res) {
		return
	}
	l.current[name] = res
	// UpdateResource only fails on a nil resource.
	_ = l.cache.UpdateResource(name, res)
}

func (l *linear) delete(name string) {
	if _, ok := l.current[name]; !ok {
		return
	}
	delete(l.current, name)
	_ = l.cache.DeleteResource(name)
}

// versioned is a resource with the version the scoped caches compare.
type versioned struct {
	resource types.Resource
	version  string
}

// serviceEntry remembers what a Service was last served as, to remove the names it no longer
// has and to rebuild its Envoy outbound chains when its split changes.
type serviceEntry struct {
	service                     mesh.Service
	listeners, routes, clusters []string
	// chains are the Service's chains of the Envoy outbound listener.
	chains []*listenerv3.FilterChain
}

// SetService serves one Service with its ready endpoints: its proxyless listeners, default
// routes, clusters and load assignments, its Envoy clusters and outbound chains.
func (s *Server) SetService(key k8stypes.NamespacedName, svc mesh.Service, endpoints xds.Endpoints) {
	res := xds.ServiceResources(svc, endpoints, s.opts.Settings)
	s.mu.Lock()
	defer s.unlockAndNotify()
	old, existed := s.services[key]
	next := &serviceEntry{service: svc}
	for _, l := range res.Listeners {
		next.listeners = append(next.listeners, l.Name)
		s.setClientListener(l)
	}
	for _, rc := range res.RouteConfigurations {
		next.routes = append(next.routes, rc.Name)
		s.defaultRoutes[rc.Name] = rc
		s.refreshRoute(rc.Name)
	}
	for _, c := range res.Clusters {
		next.clusters = append(next.clusters, c.Name)
		s.grpcClusters.set(c.Name, c)
	}
	for _, c := range xds.EnvoyClusters(svc, s.opts.Settings) {
		s.envoyClusters.set(c.Name, c)
	}
	for _, cla := range res.ClusterLoadAssignments {
		s.endpoints.set(cla.ClusterName, cla)
	}
	if existed {
		next.chains = old.chains
		s.forget(old, next)
	}
	s.services[key] = next
	s.refreshChains(key)
}

// DeleteService stops serving a Service that no longer exists.
func (s *Server) DeleteService(key k8stypes.NamespacedName) {
	s.mu.Lock()
	defer s.unlockAndNotify()
	old, ok := s.services[key]
	if !ok {
		return
	}
	s.forget(old, &serviceEntry{})
	delete(s.services, key)
	if len(old.chains) > 0 {
		s.outboundChanged()
	}
}

// forget removes the resources old had and next does not.
func (s *Server) forget(old, next *serviceEntry) {
	for _, name := range old.listeners {
		if !slices.Contains(next.listeners, name) {
			delete(s.clientListeners, name)
			s.notifyAllScopes = true
		}
	}
	for _, name := range old.routes {
		if !slices.Contains(next.routes, name) {
			delete(s.defaultRoutes, name)
			s.refreshRoute(name)
		}
	}
	for _, name := range old.clusters {
		if !slices.Contains(next.clusters, name) {
			s.grpcClusters.delete(name)
			s.envoyClusters.delete(name)
			s.endpoints.delete(name)
		}
	}
}

// refreshChains rebuilds a Service's Envoy outbound chains from the Service and the split whose
// apex it is; the outbound listener changes only when they do (a TCP split, a new ClusterIP or
// port), not on an HTTP weight change, which only touches a RouteConfiguration.
func (s *Server) refreshChains(key k8stypes.NamespacedName) {
	entry, ok := s.services[key]
	if !ok {
		return
	}
	chains := xds.OutboundFilterChains(entry.service, s.splitOf(key))
	if slices.EqualFunc(chains, entry.chains, func(a, b *listenerv3.FilterChain) bool { return proto.Equal(a, b) }) {
		return
	}
	entry.chains = chains
	s.outboundChanged()
}

func (s *Server) outboundChanged() {
	s.counter++
	s.outboundVersion = s.counter
	s.notifyEnvoyListeners = true
}

// splitOf is the split programmed on the apex key (the first by source, as refreshRoute picks).
func (s *Server) splitOf(key k8stypes.NamespacedName) *mesh.Split {
	bySource := s.splits[key]
	if len(bySource) == 0 {
		return nil
	}
	return bySource[slices.MinFunc(slices.Collect(maps.Keys(bySource)), compareRefs)]
}

func (s *Server) setClientListener(l *listenerv3.Listener) {
	if old, ok := s.clientListeners[l.Name]; ok && proto.Equal(old.resource, l) {
		return
	}
	s.counter++
	s.clientListeners[l.Name] = versioned{resource: l, version: strconv.FormatUint(s.counter, 10)}
	// Client listeners are shared by every scope.
	s.notifyAllScopes = true
}

// SetSplit serves one TrafficSplit's routes (xds.SplitRoutes) in place of its apex's default
// routes, and its TCP weights on the Envoy outbound chains of the apex; nil forgets the split
// (deleted, or no longer the apex's winner). It returns what the split's routes cannot express.
func (s *Server) SetSplit(source mesh.ObjectRef, split *mesh.Split) []mesh.Diagnostic {
	var routes []*routev3.RouteConfiguration
	var diags []mesh.Diagnostic
	if split != nil {
		routes, diags = xds.SplitRoutes(*split)
	}
	s.mu.Lock()
	defer s.unlockAndNotify()
	var names []string
	for _, rc := range routes {
		names = append(names, rc.Name)
		if s.splitRoutes[rc.Name] == nil {
			s.splitRoutes[rc.Name] = map[mesh.ObjectRef]*routev3.RouteConfiguration{}
		}
		s.splitRoutes[rc.Name][source] = rc
		s.refreshRoute(rc.Name)
	}
	for _, name := range s.splitNames[source] {
		if !slices.Contains(names, name) {
			delete(s.splitRoutes[name], source)
			if len(s.splitRoutes[name]) == 0 {
				delete(s.splitRoutes, name)
			}
			s.refreshRoute(name)
		}
	}
	if len(names) == 0 {
		delete(s.splitNames, source)
	} else {
		s.splitNames[source] = names
	}

	// The apex a split programs, for the Envoy outbound chains.
	oldApex, hadApex := s.splitApex[source]
	if hadApex {
		delete(s.splits[oldApex], source)
		if len(s.splits[oldApex]) == 0 {
			delete(s.splits, oldApex)
		}
		delete(s.splitApex, source)
	}
	if split != nil {
		apex := k8stypes.NamespacedName{Namespace: split.Apex.Namespace, Name: split.Apex.Name}
		if s.splits[apex] == nil {
			s.splits[apex] = map[mesh.ObjectRef]*mesh.Split{}
		}
		s.splits[apex][source] = split
		s.splitApex[source] = apex
		s.refreshChains(apex)
	}
	if hadApex {
		s.refreshChains(oldApex)
	}
	return diags
}

// refreshRoute serves the route configuration name should have now: a split's routes when a
// split programs it (the model lets one split win an apex; while the controller hands an apex
// over, the oldest-named one is served), else the Service's default, else nothing.
func (s *Server) refreshRoute(name string) {
	if bySplit := s.splitRoutes[name]; len(bySplit) > 0 {
		first := slices.MinFunc(slices.Collect(maps.Keys(bySplit)), compareRefs)
		s.routes.set(name, bySplit[first])
		return
	}
	if rc, ok := s.defaultRoutes[name]; ok {
		s.routes.set(name, rc)
		return
	}
	s.routes.delete(name)
}

func compareRefs(a, b mesh.ObjectRef) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// SetAccess serves the access rules of one TrafficTarget (the model's rules whose Source it is);
// no rules forgets the target. Only the scopes of the destinations involved are re-evaluated.
func (s *Server) SetAccess(source mesh.ObjectRef, rules []mesh.AccessRule) {
	s.mu.Lock()
	defer s.unlockAndNotify()
	touched := map[string]bool{}
	for _, scope := range s.accessScopes[source] {
		delete(s.access[scope], source)
		if len(s.access[scope]) == 0 {
			delete(s.access, scope)
		}
		touched[scope] = true
	}
	delete(s.accessScopes, source)
	for _, rule := range rules {
		scope := scopeKey(Identity{Namespace: rule.Destination.Namespace, ServiceAccount: rule.Destination.ServiceAccount})
		if s.access[scope] == nil {
			s.access[scope] = map[mesh.ObjectRef][]mesh.AccessRule{}
		}
		s.access[scope][source] = append(s.access[scope][source], rule)
		if !slices.Contains(s.accessScopes[source], scope) {
			s.accessScopes[source] = append(s.accessScopes[source], scope)
		}
		touched[scope] = true
	}
	for scope := range touched {
		s.counter++
		s.accessVersion[scope] = s.counter
		s.notifyScopes[scope] = true
	}
}

// unlockAndNotify releases the store and then tells the scoped caches which scopes changed.
// Notifying under the lock would deadlock: the caches resolve resources through the store.
func (s *Server) unlockAndNotify() {
	all, envoy, scopes := s.notifyAllScopes, s.notifyEnvoyListeners, slices.Collect(maps.Keys(s.notifyScopes))
	s.notifyAllScopes, s.notifyEnvoyListeners = false, false
	clear(s.notifyScopes)
	s.mu.Unlock()
	switch {
	case all:
		s.grpcListeners.Notify()
	case len(scopes) > 0:
		s.grpcListeners.Notify(scopes...)
	}
	switch {
	case envoy:
		// The outbound listener is everybody's.
		s.envoyListeners.Notify()
	case len(scopes) > 0:
		s.envoyListeners.Notify(scopes...)
	}
}

// rulesOf returns the access rules whose destination is the scope's identity, in the model's
// order (by TrafficTarget).
func (s *Server) rulesOf(scope string) []mesh.AccessRule {
	bySource := s.access[scope]
	sources := slices.SortedFunc(maps.Keys(bySource), compareRefs)
	var out []mesh.AccessRule
	for _, src := range sources {
		out = append(out, bySource[src]...)
	}
	return out
}

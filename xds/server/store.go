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

// serviceEntry remembers the names a Service's resources were served under, to remove those it
// no longer has.
type serviceEntry struct {
	listeners, routes, clusters []string
}

// SetService serves what one Service contributes on its own (xds.ServiceResources).
func (s *Server) SetService(key k8stypes.NamespacedName, res xds.Output) {
	s.mu.Lock()
	defer s.unlockAndNotify()
	old := s.services[key]
	next := serviceEntry{}
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
	for _, cla := range res.ClusterLoadAssignments {
		s.endpoints.set(cla.ClusterName, cla)
	}
	s.services[key] = next
	s.forget(old, next)
}

// DeleteService stops serving a Service that no longer exists.
func (s *Server) DeleteService(key k8stypes.NamespacedName) {
	s.mu.Lock()
	defer s.unlockAndNotify()
	s.forget(s.services[key], serviceEntry{})
	delete(s.services, key)
}

// forget removes the resources old had and next does not.
func (s *Server) forget(old, next serviceEntry) {
	changed := false
	for _, name := range old.listeners {
		if !slices.Contains(next.listeners, name) {
			delete(s.clientListeners, name)
			changed = true
		}
	}
	if changed {
		s.notifyAllScopes = true
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
			s.endpoints.delete(name)
		}
	}
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

// SetSplit serves the routes of one TrafficSplit (xds.SplitRoutes) in place of its apex's
// default routes; no routes forgets the split (deleted, or no longer the apex's winner).
func (s *Server) SetSplit(source mesh.ObjectRef, routes []*routev3.RouteConfiguration) {
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
	all, scopes := s.notifyAllScopes, slices.Collect(maps.Keys(s.notifyScopes))
	s.notifyAllScopes = false
	clear(s.notifyScopes)
	s.mu.Unlock()
	switch {
	case all:
		s.grpcListeners.Notify()
	case len(scopes) > 0:
		s.grpcListeners.Notify(scopes...)
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

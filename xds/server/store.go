package server

import (
	"cmp"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
)

// The store is the server's desired state, fed piece by piece by the reconcilers: each Service
// with its endpoints (and the ServiceAccounts they run as, the only server identities its
// clusters accept: xds.ServerIdentities), the routes of each split, the TrafficPolicy of each
// Service port, the access rules of each TrafficTarget. It keeps the model, not xDS resources:
// the sources (sources.go) build a resource when a client asks for it, at the version the store
// gives it, so memory follows what clients use. Every setter
// compares what it is given with what it holds and only bumps the versions of, and notifies the
// watches on, what differs: a reconcile that changes nothing pushes nothing, and a change costs
// work proportional to what changed, not to the mesh.

// serviceEntry is what the store holds of one Service.
type serviceEntry struct {
	service mesh.Service
	// endpoints are the Service's own ready endpoints, by port: a slice, not xds.Endpoints' map,
	// since there are as many of these as Services.
	endpoints []portEndpoints
	// specVersion changes with the Service, endpointsVersion with its endpoints, clusterVersion
	// with either the Service or the identities its endpoints run as (the server identities its
	// clusters accept: xds.ServerIdentities).
	specVersion, endpointsVersion, clusterVersion uint64
}

// portEndpoints are the ready endpoints of one Service port.
type portEndpoints struct {
	port      int32
	endpoints []xds.Endpoint
}

// compactEndpoints keeps the endpoints of the Service's TCP ports.
func compactEndpoints(svc mesh.Service, all xds.Endpoints) []portEndpoints {
	var out []portEndpoints
	for _, p := range svc.Ports {
		key := xds.ServiceKey{Namespace: svc.Namespace, Name: svc.Name, Port: p.Port}
		if eps := all[key]; len(eps) > 0 && p.Protocol == corev1.ProtocolTCP {
			out = append(out, portEndpoints{port: p.Port, endpoints: eps})
		}
	}
	return out
}

// endpointsOf returns the endpoints of one port, as the translator takes them.
func (e *serviceEntry) endpointsOf(port int32) xds.Endpoints {
	for _, pe := range e.endpoints {
		if pe.port == port {
			return xds.Endpoints{{Namespace: e.service.Namespace, Name: e.service.Name, Port: port}: pe.endpoints}
		}
	}
	return nil
}

// serviceAccounts are the known identities of each port's endpoints, what its clusters depend on
// besides the Service.
func serviceAccounts(endpoints []portEndpoints) map[int32][]string {
	out := map[int32][]string{}
	for _, pe := range endpoints {
		out[pe.port] = xds.ServiceAccounts(pe.endpoints)
	}
	return out
}

// tcpPorts are the Service ports xDS resources exist for.
func (e *serviceEntry) tcpPorts() []int32 {
	var out []int32
	for _, p := range e.service.Ports {
		if p.Protocol == corev1.ProtocolTCP {
			out = append(out, p.Port)
		}
	}
	return out
}

// names are the resource names of the Service's TCP ports: listeners and routes (one name),
// clusters and load assignments (another).
func (e *serviceEntry) names() (listeners, clusters []string) {
	for _, port := range e.tcpPorts() {
		listeners = append(listeners, xds.ListenerName(e.service, port))
		clusters = append(clusters, xds.ClusterName(e.service, port))
	}
	return listeners, clusters
}

// pending collects, under mu, what unlockAndNotify tells the caches once mu is released.
type pending struct {
	listenerNames, routeNames, clusterNames, endpointNames []string
	// deletedListeners and deletedClusters are names that no longer exist: what was built
	// for them is forgotten.
	deletedListeners, deletedClusters []string
	scopes                            map[string]bool
	outbound                          bool
	// everyScope: the identities' listeners of every scope may have changed.
	everyScope bool
}

// SetService serves one Service with its ready endpoints.
func (s *Server) SetService(key k8stypes.NamespacedName, svc mesh.Service, endpoints xds.Endpoints) {
	s.mu.Lock()
	defer s.unlockAndNotify()
	entry, existed := s.services[key]
	if !existed {
		entry = &serviceEntry{}
		s.services[key] = entry
		s.metrics.services.Set(float64(len(s.services)))
	}
	specChanged := !existed || !reflect.DeepEqual(entry.service, svc)
	if specChanged {
		oldListeners, oldClusters := entry.names()
		entry.service = svc
		entry.specVersion = s.next()
		entry.clusterVersion = entry.specVersion
		s.reindex(entry, oldListeners, oldClusters)
	}
	compact := compactEndpoints(svc, endpoints)
	if !existed || !reflect.DeepEqual(entry.endpoints, compact) {
		identitiesChanged := !reflect.DeepEqual(serviceAccounts(entry.endpoints), serviceAccounts(compact))
		entry.endpoints = compact
		entry.endpointsVersion = s.next()
		_, clusters := entry.names()
		s.pending.endpointNames = append(s.pending.endpointNames, clusters...)
		if identitiesChanged && !specChanged {
			// reindex, above, notifies the clusters of a changed Service.
			entry.clusterVersion = s.next()
			s.pending.clusterNames = append(s.pending.clusterNames, clusters...)
		}
	}
}

// DeleteService stops serving a Service that no longer exists.
func (s *Server) DeleteService(key k8stypes.NamespacedName) {
	s.mu.Lock()
	defer s.unlockAndNotify()
	entry, ok := s.services[key]
	if !ok {
		return
	}
	delete(s.services, key)
	s.metrics.services.Set(float64(len(s.services)))
	listeners, clusters := entry.names()
	entry.service = mesh.Service{}
	s.reindex(entry, listeners, clusters)
	s.pending.endpointNames = append(s.pending.endpointNames, clusters...)
	s.pending.deletedListeners = append(s.pending.deletedListeners, listeners...)
	s.pending.deletedClusters = append(s.pending.deletedClusters, clusters...)
}

// reindex moves the entry's listener and cluster names from the old ones to its current ones
// and notifies every resource of both.
func (s *Server) reindex(entry *serviceEntry, oldListeners, oldClusters []string) {
	for _, name := range oldListeners {
		delete(s.byListener, name)
	}
	for _, name := range oldClusters {
		delete(s.byCluster, name)
	}
	listeners, clusters := entry.names()
	for _, name := range listeners {
		s.byListener[name] = entry
	}
	for _, name := range clusters {
		s.byCluster[name] = entry
	}
	listeners, clusters = append(listeners, oldListeners...), append(clusters, oldClusters...)
	s.pending.listenerNames = append(s.pending.listenerNames, listeners...)
	s.pending.routeNames = append(s.pending.routeNames, listeners...)
	s.pending.clusterNames = append(s.pending.clusterNames, clusters...)
	s.pending.outbound = true
	s.outboundVersion = s.next()
}

// next returns a new version number.
func (s *Server) next() uint64 {
	s.counter++
	return s.counter
}

// SetSplit serves one TrafficSplit's routes (xds.SplitRoutes) in place of its apex's default
// routes, and its TCP weights on the Envoy outbound chains of the apex; nil forgets the split
// (deleted, or no longer the apex's winner). It returns what the split's routes cannot express.
func (s *Server) SetSplit(source mesh.ObjectRef, split *mesh.Split) []mesh.Diagnostic {
	var envoyRoutes, grpcRoutes []*routev3.RouteConfiguration
	var diags []mesh.Diagnostic
	if split != nil {
		envoyRoutes, grpcRoutes, diags = xds.SplitRoutes(*split)
	}
	s.mu.Lock()
	defer s.unlockAndNotify()
	var names []string
	for i, rc := range grpcRoutes {
		names = append(names, rc.Name)
		bySource := s.splitRoutes[rc.Name]
		if bySource == nil {
			bySource = map[mesh.ObjectRef]splitRoute{}
			s.splitRoutes[rc.Name] = bySource
		}
		if old, ok := bySource[source]; !ok || !proto.Equal(old.grpc, rc) || !proto.Equal(old.envoy, envoyRoutes[i]) {
			bySource[source] = splitRoute{grpc: rc, envoy: envoyRoutes[i], version: "split-" + strconv.FormatUint(s.next(), 10)}
			s.pending.routeNames = append(s.pending.routeNames, rc.Name)
		}
	}
	for _, name := range s.splitNames[source] {
		if !slices.Contains(names, name) {
			delete(s.splitRoutes[name], source)
			if len(s.splitRoutes[name]) == 0 {
				delete(s.splitRoutes, name)
			}
			s.pending.routeNames = append(s.pending.routeNames, name)
		}
	}
	if len(names) == 0 {
		delete(s.splitNames, source)
	} else {
		s.splitNames[source] = names
	}

	// The split by apex, for the Envoy outbound chains (TCP ports are split there). A reconcile
	// that changes nothing must not rebuild and re-push every sidecar's outbound listener, nor
	// re-index what the split programs.
	old, had := s.splitApex[source]
	if had && split != nil && reflect.DeepEqual(s.splits[old][source], split) {
		return diags
	}
	s.indexSplitResources(source, split)
	if had {
		remove(s.splits, old, source)
		delete(s.splitApex, source)
	}
	if split != nil {
		apex := k8stypes.NamespacedName{Namespace: split.Apex.Namespace, Name: split.Apex.Name}
		if s.splits[apex] == nil {
			s.splits[apex] = map[mesh.ObjectRef]*mesh.Split{}
		}
		s.splits[apex][source] = split
		s.splitApex[source] = apex
	}
	if had || split != nil {
		s.pending.outbound = true
		s.outboundVersion = s.next()
	}
	return diags
}

func remove[K comparable, V any](m map[k8stypes.NamespacedName]map[K]V, key k8stypes.NamespacedName, inner K) {
	delete(m[key], inner)
	if len(m[key]) == 0 {
		delete(m, key)
	}
}

// splitRoute is a split's route configuration of one name, for each kind of client.
type splitRoute struct {
	grpc, envoy *routev3.RouteConfiguration
	version     string
}

// splitRoute is the split route configuration served under name, if a split programs it: the
// model lets one split win an apex; while the controller hands an apex over, the first by source
// is served.
func (s *Server) splitRoute(name string) (splitRoute, bool) {
	bySource := s.splitRoutes[name]
	if len(bySource) == 0 {
		return splitRoute{}, false
	}
	return bySource[slices.MinFunc(slices.Collect(maps.Keys(bySource)), compareRefs)], true
}

// splitOf is the split programmed on the apex key, the first by source as splitRoute picks.
func (s *Server) splitOf(key k8stypes.NamespacedName) *mesh.Split {
	return s.splits[key][s.servedSplit(key)]
}

// servedSplit is the source of the split programmed on the apex key (splitOf); the zero ref when
// there is none.
func (s *Server) servedSplit(key k8stypes.NamespacedName) mesh.ObjectRef {
	bySource := s.splits[key]
	if len(bySource) == 0 {
		return mesh.ObjectRef{}
	}
	return slices.MinFunc(slices.Collect(maps.Keys(bySource)), compareRefs)
}

func compareRefs(a, b mesh.ObjectRef) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// SetPolicy serves one TrafficPolicy on the resources of its Service (xds.ApplyPolicy): the
// routes and clusters of the ports it covers, and the gRPC clients' listeners and Envoy outbound
// chains of those ports where it puts a fault filter or an idle timeout; nil forgets the policy
// (deleted, or no longer programmed). Only the resources of its Service, and of the Service it
// leaves when it moves, are rebuilt and pushed. It returns what the xDS backend cannot honour of
// the policy (xds.PolicyDiagnostics). The model lets one policy govern a port (the oldest) and
// reports the others; while the reconciler hands a port over, the first by source is served, as
// for splits (servedSplit), and that is not reported: the policy the model gives the port to
// would keep saying so once the other lets go, since nothing reconciles it again.
func (s *Server) SetPolicy(source mesh.ObjectRef, policy *mesh.Policy) []mesh.Diagnostic {
	var diags []mesh.Diagnostic
	if policy != nil {
		diags = xds.PolicyDiagnostics(policy)
		// The server keeps its own copy of the value (the caller's model, and the slice element it
		// points into, may be reused); what the value points to is shared, since a model is
		// never changed once built. A change to what the server holds must come with a version bump.
		// Of its Service it keeps the name: the ports the policy covers are the Service's as the
		// server has it now (SetService), so that a port added is served with the policy at once,
		// and the policy set again with the Service as it now is changes nothing.
		held := *policy
		held.Service = mesh.Service{Namespace: policy.Service.Namespace, Name: policy.Service.Name}
		policy = &held
	}
	s.mu.Lock()
	defer s.unlockAndNotify()
	s.replacePolicy(source, policy)
	return diags
}

// replacePolicy stores the policy of source in place of the one it had, if they differ, and bumps
// the versions of what that changes on the Services concerned. The caller holds s.mu for writing.
func (s *Server) replacePolicy(source mesh.ObjectRef, policy *mesh.Policy) {
	old, had := s.policyService[source]
	if !had && policy == nil || had && policy != nil && reflect.DeepEqual(s.policies[old][source], policy) {
		return
	}
	var touched []k8stypes.NamespacedName
	if had {
		touched = append(touched, old)
	}
	if policy != nil && (!had || serviceKey(policy.Service) != old) {
		touched = append(touched, serviceKey(policy.Service))
	}
	chainsBefore := make([][]*listenerv3.FilterChain, len(touched))
	for i, key := range touched {
		chainsBefore[i] = s.outboundChains(key)
	}
	if had {
		remove(s.policies, old, source)
		delete(s.policyService, source)
	}
	if policy != nil {
		key := serviceKey(policy.Service)
		if s.policies[key] == nil {
			s.policies[key] = map[mesh.ObjectRef]*mesh.Policy{}
		}
		s.policies[key][source] = policy
		s.policyService[source] = key
	}
	for i, key := range touched {
		s.policiesChanged(key, chainsBefore[i])
	}
}

func serviceKey(svc mesh.Service) k8stypes.NamespacedName {
	return k8stypes.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
}

// servedPolicy is the policy served on port (a TCP port of the Service key), and its source: of
// the policies covering the port, the first by source; nil when none does. The caller holds s.mu.
func (s *Server) servedPolicy(key k8stypes.NamespacedName, port int32) (mesh.ObjectRef, *mesh.Policy) {
	var source mesh.ObjectRef
	var served *mesh.Policy
	for src, p := range s.policies[key] {
		if (served == nil || compareRefs(src, source) < 0) && p.Covers(port) {
			source, served = src, p
		}
	}
	return source, served
}

// servedPolicyOn is the policy served on port of the entry's Service (servedPolicy) as the
// translator's functions take it, for that port alone: on the Service as the server has it (the
// policy held keeps only its Service's name), with that one port. nil when none is served.
func (s *Server) servedPolicyOn(entry *serviceEntry, port int32) *mesh.Policy {
	_, p := s.servedPolicy(serviceKey(entry.service), port)
	if p == nil {
		return nil
	}
	onPort := *p
	onPort.Service = onePort(entry.service, port)
	return &onPort
}

// policiesChanged bumps the versions of the Service key's resources after a change of its policies
// (replacePolicy changes nothing else): its routes and clusters (and gRPC client listeners, whose
// versions tell whether they changed), even for a change on a port the Service lacks (it may gain
// it back, under a split route kept since); the Envoy outbound listener when its chains differ
// from chainsBefore. While a policy names the Service, its resources' versions end with the policy
// version: those built without it are those without any policy.
func (s *Server) policiesChanged(key k8stypes.NamespacedName, chainsBefore []*listenerv3.FilterChain) {
	if len(s.policies[key]) == 0 {
		// Without a policy the resources are what they were before any: their versions too.
		delete(s.policyVersion, key)
	} else {
		s.policyVersion[key] = s.next()
	}
	if entry, ok := s.services[key]; ok {
		listeners, clusters := entry.names()
		s.pending.listenerNames = append(s.pending.listenerNames, listeners...)
		s.pending.routeNames = append(s.pending.routeNames, listeners...)
		s.pending.clusterNames = append(s.pending.clusterNames, clusters...)
	}
	if !slices.EqualFunc(chainsBefore, s.outboundChains(key), func(a, b *listenerv3.FilterChain) bool { return proto.Equal(a, b) }) {
		s.pending.outbound = true
		s.outboundVersion = s.next()
	}
}

// SetAccess serves the access rules of one TrafficTarget (the model's rules whose Source it is);
// no rules forgets the target. Only the scopes of the destinations involved are re-evaluated.
func (s *Server) SetAccess(source mesh.ObjectRef, rules []mesh.AccessRule) {
	s.mu.Lock()
	defer s.unlockAndNotify()
	touched := map[string]bool{}
	before := map[string][]mesh.AccessRule{}
	for _, scope := range s.accessScopes[source] {
		before[scope] = s.access[scope][source]
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
		// Unchanged rules leave the scope's listeners as they are: no rebuild, no push.
		if reflect.DeepEqual(before[scope], s.access[scope][source]) {
			continue
		}
		s.accessVersion[scope] = s.next()
		s.pending.scopes[scope] = true
	}
}

// SetNamespace records a namespace's labels, which say whether access is enforced there
// (mesh.Settings.EnforcesIn): the listeners of its identities follow. A namespace never set is
// enforced whenever the settings enforce anywhere: unknown, it fails closed.
func (s *Server) SetNamespace(name string, labels map[string]string) {
	s.mu.Lock()
	defer s.unlockAndNotify()
	s.setUnenforced(name, !s.opts.Settings.EnforcesIn(labels))
}

// DeleteNamespace forgets a namespace: it is enforced again, should identities of it still ask.
func (s *Server) DeleteNamespace(name string) {
	s.mu.Lock()
	defer s.unlockAndNotify()
	s.setUnenforced(name, false)
}

func (s *Server) setUnenforced(namespace string, unenforced bool) {
	if s.unenforced[namespace] == unenforced {
		return
	}
	if unenforced {
		s.unenforced[namespace] = true
	} else {
		delete(s.unenforced, namespace)
	}
	// Namespaces change rarely; the scopes of its identities are not tracked apart from their
	// watches, so every open listener watch is looked at again (only this namespace's change).
	s.pending.everyScope = true
}

// accessSettings are the settings an identity's listeners are built with: the server's, or, for
// an identity no TrafficTarget names in a namespace where access is not enforced, the unenforced
// ones. An identity with rules keeps them enforced wherever it runs, as the Istio backend's ALLOW
// policy and STRICT PeerAuthentication restrict a destination outside the selection too. The
// caller holds the lock.
func (s *Server) accessSettings(scope string) (mesh.Settings, string) {
	namespace, _, _ := strings.Cut(scope, "/")
	if s.unenforced[namespace] && len(s.access[scope]) == 0 {
		return s.opts.Settings.Unenforced(), "-unenforced"
	}
	return s.opts.Settings, ""
}

// rulesOf returns the access rules whose destination is the scope's identity, in the model's
// order (by TrafficTarget).
func (s *Server) rulesOf(scope string) []mesh.AccessRule {
	bySource := s.access[scope]
	var out []mesh.AccessRule
	for _, src := range slices.SortedFunc(maps.Keys(bySource), compareRefs) {
		out = append(out, bySource[src]...)
	}
	return out
}

// unlockAndNotify releases the store and then tells the caches what changed. Notifying under the
// lock would deadlock: the caches resolve resources through the store.
func (s *Server) unlockAndNotify() {
	p := s.pending
	s.pending = pending{scopes: map[string]bool{}}
	s.mu.Unlock()
	s.sources.forget(p.deletedListeners, p.deletedClusters)
	scopes := slices.Collect(maps.Keys(p.scopes))
	if len(p.listenerNames) > 0 {
		s.grpcListeners.NotifyNames(p.listenerNames...)
	}
	if p.everyScope {
		s.grpcListeners.Notify()
		s.envoyListeners.Notify()
	} else if len(scopes) > 0 {
		s.grpcListeners.Notify(scopes...)
		s.envoyListeners.Notify(scopes...)
	}
	if p.outbound {
		s.envoyListeners.NotifyNames(xds.OutboundListenerName)
	}
	if len(p.routeNames) > 0 {
		s.grpcRoutes.NotifyNames(p.routeNames...)
		s.envoyRoutes.NotifyNames(p.routeNames...)
	}
	if len(p.clusterNames) > 0 {
		s.grpcClusters.NotifyNames(p.clusterNames...)
		s.envoyClusters.NotifyNames(p.clusterNames...)
	}
	if len(p.endpointNames) > 0 {
		s.endpoints.NotifyNames(p.endpointNames...)
	}
}

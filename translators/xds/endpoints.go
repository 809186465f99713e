package xds

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

// ServiceKey names one port of a Service: what a cluster, and so a set of endpoints, stands for.
type ServiceKey struct {
	Namespace string
	Name      string
	// Port is the Service's port number, not the endpoints' (target) port.
	Port int32
}

// Endpoint is one address serving a Service port.
type Endpoint struct {
	Address string
	// Port is the port the endpoint listens on (the Service's target port).
	Port uint32
	// Ready is the EndpointSlice's ready condition. BuildEndpoints keeps ready endpoints only, and
	// Translate skips any other, so callers building Endpoints by hand cannot send traffic to a
	// pod that is not ready.
	Ready bool
	// Zone is the endpoint's topology zone, empty when unknown.
	Zone string
	// ServiceAccount is the ServiceAccount the endpoint's Pod runs as, in the Service's
	// namespace: the identity its server certificate must carry (secure naming, see
	// [ServerIdentities]). Empty when unknown, and then no identity is accepted for it.
	ServiceAccount string
}

func (e Endpoint) compare(o Endpoint) int {
	return cmp.Or(cmp.Compare(e.Zone, o.Zone), cmp.Compare(e.Address, o.Address), cmp.Compare(e.Port, o.Port),
		cmp.Compare(e.ServiceAccount, o.ServiceAccount))
}

// Endpoints are the endpoints of each Service port, each list sorted by zone, address and port.
type Endpoints map[ServiceKey][]Endpoint

// BuildEndpoints gathers the ready endpoints of every Service port from the EndpointSlices. A
// slice belongs to the Service its kubernetes.io/service-name label names, in its own namespace,
// and a slice port serves the Service port of the same name, as kube-proxy maps them (the name is
// empty for a Service with a single unnamed port). An address listed twice (in two slices, during a
// slice rebalance) is kept once. A Service port without ready endpoints is absent from the map.
//
// Each endpoint's ServiceAccount is that of the Pod its targetRef names, among pods (those
// [PodKeys] lists); an endpoint without a Pod reference, or whose Pod is not among them, gets none.
func BuildEndpoints(services []corev1.Service, endpointSlices []discoveryv1.EndpointSlice, pods []corev1.Pod) Endpoints {
	accounts := newPodAccounts(pods)
	type serviceName struct{ namespace, name string }
	// portsByName maps each Service's port names to their numbers.
	portsByName := make(map[serviceName]map[string]int32, len(services))
	for i := range services {
		svc := &services[i]
		ports := make(map[string]int32, len(svc.Spec.Ports))
		for _, p := range svc.Spec.Ports {
			// Endpoints of non-TCP ports are of no use to a gRPC client, and a UDP and a TCP port
			// may share a name-less number; keep TCP (the default) only.
			if cmp.Or(p.Protocol, corev1.ProtocolTCP) == corev1.ProtocolTCP {
				ports[p.Name] = p.Port
			}
		}
		portsByName[serviceName{svc.Namespace, svc.Name}] = ports
	}

	found := map[ServiceKey][]Endpoint{}
	for i := range endpointSlices {
		slice := &endpointSlices[i]
		// FQDN slices name hosts, not addresses a gRPC client can dial without a resolver.
		if slice.AddressType != discoveryv1.AddressTypeIPv4 && slice.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		ports := portsByName[serviceName{slice.Namespace, slice.Labels[discoveryv1.LabelServiceName]}]
		for _, sp := range slice.Ports {
			if sp.Port == nil || *sp.Port <= 0 || (sp.Protocol != nil && *sp.Protocol != corev1.ProtocolTCP) {
				continue
			}
			number, ok := ports[derefOr(sp.Name, "")]
			if !ok {
				continue
			}
			key := ServiceKey{Namespace: slice.Namespace, Name: slice.Labels[discoveryv1.LabelServiceName], Port: number}
			for _, ep := range slice.Endpoints {
				// The API says a nil ready condition means ready; a terminating endpoint is never
				// ready, whatever serving says, so it gets no new requests.
				if !derefOr(ep.Conditions.Ready, true) || len(ep.Addresses) == 0 {
					continue
				}
				// Addresses are fungible and consumers use the first (EndpointSlice API).
				e := Endpoint{Address: ep.Addresses[0], Port: uint32(*sp.Port), Ready: true, Zone: derefOr(ep.Zone, ""),
					ServiceAccount: accounts.of(slice.Namespace, ep.TargetRef)}
				found[key] = append(found[key], e)
			}
		}
	}

	out := make(Endpoints, len(found))
	for key, list := range found {
		out[key] = normalize(list)
	}
	return out
}

// Secure naming needs the identity behind each endpoint. It is taken from the endpoint's Pod
// (targetRef), as Istio takes it: that covers every Pod, bare ones and those of Jobs or of any
// controller, where matching the Service's selector against the Deployments, StatefulSets and
// DaemonSets of the model (mesh.Snapshot's workloads) would miss Pods of other controllers and
// could not tell which of several matching workloads actually has Pods behind this Service. The
// operator caches Pods trimmed to their ServiceAccount (controllers.CacheOptions) and reconciles
// a Service again when a Pod its slices name appears (package controllers/service).

// podAccounts maps "<namespace>/<name>" to the Pod, for looking up endpoints' targetRefs.
type podAccounts map[string]*corev1.Pod

func newPodAccounts(pods []corev1.Pod) podAccounts {
	out := make(podAccounts, len(pods))
	for i := range pods {
		out[pods[i].Namespace+"/"+pods[i].Name] = &pods[i]
	}
	return out
}

// of returns the ServiceAccount of the Pod ref names, in the slice's namespace: empty when ref is
// not a Pod's, names another namespace, or names a Pod not known, or known with another UID (a
// Pod of the same name recreated, whose new self the cache has not seen yet).
func (a podAccounts) of(namespace string, ref *corev1.ObjectReference) string {
	if !isPodOf(namespace, ref) {
		return ""
	}
	pod := a[namespace+"/"+ref.Name]
	if pod == nil || (ref.UID != "" && ref.UID != pod.UID) {
		return ""
	}
	return mesh.ServiceAccountOf(pod.Spec)
}

// isPodOf reports whether an endpoint's targetRef names a Pod of the slice's namespace, the only
// Pods an endpoint of it can have.
func isPodOf(namespace string, ref *corev1.ObjectReference) bool {
	return ref != nil && ref.Kind == "Pod" && (ref.Namespace == "" || ref.Namespace == namespace)
}

// PodKeys are the Pods the EndpointSlices' endpoints name, as (namespace, name): the ones
// BuildEndpoints needs to know.
func PodKeys(endpointSlices []discoveryv1.EndpointSlice) []types.NamespacedName {
	var out []types.NamespacedName
	for i := range endpointSlices {
		slice := &endpointSlices[i]
		for _, ep := range slice.Endpoints {
			if isPodOf(slice.Namespace, ep.TargetRef) {
				out = append(out, types.NamespacedName{Namespace: slice.Namespace, Name: ep.TargetRef.Name})
			}
		}
	}
	slices.SortFunc(out, func(a, b types.NamespacedName) int { return cmp.Compare(a.String(), b.String()) })
	return slices.Compact(out)
}

// normalize returns the ready endpoints, each address and port once, sorted by zone, address and
// port. grpc-go rejects a whole ClusterLoadAssignment that lists an address twice, even in two
// localities, which two slices can briefly do while an endpoint moves between them; the smallest
// zone (then ServiceAccount) wins so that the outcome does not depend on the order of the slices.
func normalize(list []Endpoint) []Endpoint {
	out := slices.DeleteFunc(slices.Clone(list), func(e Endpoint) bool { return !e.Ready })
	slices.SortFunc(out, func(a, b Endpoint) int {
		return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Zone, b.Zone),
			cmp.Compare(a.ServiceAccount, b.ServiceAccount))
	})
	out = slices.CompactFunc(out, func(a, b Endpoint) bool { return a.Address == b.Address && a.Port == b.Port })
	slices.SortFunc(out, Endpoint.compare)
	return out
}

func derefOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

package xds

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
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
}

func (e Endpoint) compare(o Endpoint) int {
	return cmp.Or(cmp.Compare(e.Zone, o.Zone), cmp.Compare(e.Address, o.Address), cmp.Compare(e.Port, o.Port))
}

// Endpoints are the endpoints of each Service port, each list sorted by zone, address and port.
type Endpoints map[ServiceKey][]Endpoint

// BuildEndpoints gathers the ready endpoints of every Service port from the EndpointSlices. A
// slice belongs to the Service its kubernetes.io/service-name label names, in its own namespace,
// and a slice port serves the Service port of the same name, as kube-proxy maps them (the name is
// empty for a Service with a single unnamed port). An address listed twice (in two slices, during a
// slice rebalance) is kept once. A Service port without ready endpoints is absent from the map.
func BuildEndpoints(services []corev1.Service, endpointSlices []discoveryv1.EndpointSlice) Endpoints {
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
				e := Endpoint{Address: ep.Addresses[0], Port: uint32(*sp.Port), Ready: true, Zone: derefOr(ep.Zone, "")}
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

// normalize returns the ready endpoints, each address and port once, sorted by zone, address and
// port. grpc-go rejects a whole ClusterLoadAssignment that lists an address twice, even in two
// localities, which two slices can briefly do while an endpoint moves between them; the smallest
// zone wins so that the outcome does not depend on the order of the slices.
func normalize(list []Endpoint) []Endpoint {
	out := slices.DeleteFunc(slices.Clone(list), func(e Endpoint) bool { return !e.Ready })
	slices.SortFunc(out, func(a, b Endpoint) int {
		return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Zone, b.Zone))
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

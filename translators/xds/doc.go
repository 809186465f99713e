// Package xds translates the mesh model, together with the endpoints of its Services, into the xDS
// resources that the operator's own control plane serves. For now it serves proxyless gRPC clients
// only (grpc-go's xds resolver); Envoy sidecar resources come later.
//
// [Translate] is a pure function of a [mesh.Model] and [Endpoints]: no client, no clock, no
// package state, and sorted output. [BuildEndpoints] is the pure function that turns Services and
// EndpointSlices into [Endpoints]. Like package istio, it decides nothing about SMI semantics
// (package mesh did), only how xDS expresses them.
//
// # Resources for proxyless gRPC
//
// Every Service gets, for each TCP port ([ServiceResources]):
//
//   - a Listener named "<svc>.<ns>.svc.<cluster domain>:<port>", the name a gRPC client dials as
//     "xds:///<name>", holding an ApiListener HttpConnectionManager that fetches its routes over
//     RDS (route configuration name = listener name) and ends with the router filter;
//   - a RouteConfiguration of that name with one VirtualHost whose only domain is the listener
//     name, and one catch-all route to the Service's own cluster;
//   - a Cluster "outbound|<port>||<fqdn>" (Istio's naming, so logs and tools read the same on
//     both backends), of type EDS over ADS with ROUND_ROBIN, and a ClusterLoadAssignment of the
//     same name.
//
// A split apex's RouteConfigurations are replaced by [SplitRoutes]: one route per HTTP match with
// weighted_clusters, then a catch-all to the apex when the split has matches, or one weighted
// catch-all route when it has none. The pieces are independent so that the xDS server redoes only
// what a change touches: a weight change rebuilds one RouteConfiguration, an endpoint change one
// ClusterLoadAssignment. [Translate] assembles them all at once.
//
// # Decisions
//
//   - Weighted clusters keep the split's weights as written, minus the zero ones (grpc-go and
//     Envoy accept zero weights, but they only add noise). When the sum would not fit the uint32
//     that xDS weights and their total are, the weights are scaled down proportionally, and a
//     positive weight never becomes 0, so the total is always > 0 (grpc-go NACKs a 0 total).
//   - A match becomes one route: path as prefix, exact path or safe_regex (mesh.PathMatch's
//     FullRegex, since Envoy and grpc-go match regexes against the whole path), each header as a
//     safe_regex string matcher (SMI header values are whole-value regexes), and methods as one
//     ":method" header matcher. Routes keep the order of the model's matches; a request matching
//     several is split the same way whichever route wins.
//   - Only TCP ports are translated: proxyless gRPC has no UDP or SCTP. A split apex port of
//     another protocol is reported as a warning on the TrafficSplit.
//   - ClusterLoadAssignments have one LocalityLbEndpoints per zone (the empty zone included),
//     each with a locality and a load_balancing_weight, because grpc-go silently drops localities
//     lacking either. The weight is the number of endpoints in the zone: grpc-go first picks a
//     locality by weight and then round-robins inside it, so this spreads requests evenly over
//     endpoints, as kube-proxy would, rather than evenly over zones.
package xds

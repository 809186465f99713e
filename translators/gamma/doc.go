// Package gamma translates the mesh model into Gateway API routes for service meshes (GAMMA:
// routes whose parentRefs name a Service), which Linkerd, Istio (ambient included), Cilium, Kuma
// and Consul read: HTTPRoutes, GRPCRoutes and TCPRoutes of sigs.k8s.io/gateway-api v1.6, all of
// the standard channel (TCPRoute is v1 and standard there).
//
// [Translate] is a pure function of a [mesh.Model] and [mesh.Settings]: no client, no clock, no
// package state, and sorted output. It decides nothing about SMI semantics (package mesh did); it
// only decides how the Gateway API expresses them, and reports, as [mesh.Diagnostic]s (condition
// Programmed), what it cannot express or leaves to each mesh. A SeverityError diagnostic means the
// object produced nothing here; SeverityWarning means part of it was left out or depends on the
// mesh. The controller merges these with mesh.Build's.
//
// # Generated objects
//
// Every route carries the label [smi.LabelManagedBy] set to [smi.ManagedByValue], and
// [smi.LabelSourceKind] and [smi.LabelSourceName] naming the TrafficSplit it comes from. It lives in
// the split's namespace, has no owner reference (the controller adds those) and is named
// <split>-<apex port>, cut to 63 characters with a hash when longer; the port holds no "-", so no
// two (split, port) pairs share a name. A port's HTTPRoute, GRPCRoute and TCPRoute share it.
//
// # TrafficSplit → one route per apex port and kind
//
//   - parentRefs: the apex Service (group "", kind Service) and the port number; one parent per
//     route, since a backendRef to a Service needs a port and the backends' port is the apex's (package
//     mesh checked that every backend exposes the apex's ports).
//   - backendRefs: the backends with a positive weight, as Service ports of the same number, with
//     their weights (relative, as SMI's: no rounding to percentages). Weight 0 is left out (no
//     traffic either way); all-zero splits never get here (mesh: NoWeightedBackends, traffic stays on
//     the apex, no route is written). Weights whose sum exceeds 1,000,000 (a weight's maximum) are
//     scaled down in proportion, a positive weight staying at least 1 (mesh.ScaleWeights).
//   - A backendRef names a Service's endpoints, never the routes attached to it (GEP-1294: a Service
//     is a frontend as a parentRef, a backend as a backendRef). So the apex as its own backend keeps
//     its share on its own endpoints, and a backend that is another split's apex gets its share on
//     its own endpoints, not split again: the meaning the other backends give both (mesh warns
//     SelfReferentialSplit and SplitNotChained).
//   - The kind follows the port's declared protocol (mesh.ServicePort.DeclaredProtocol: appProtocol,
//     else the name before the first "-", as the xDS backend reads it): grpc → GRPCRoute; http,
//     http2, h2c, kubernetes.io/h2c, kubernetes.io/ws → HTTPRoute; tcp, tls, https,
//     kubernetes.io/wss → TCPRoute. Any other or no declaration leaves the protocol to the mesh's
//     detection: the port gets an HTTPRoute and a TCPRoute that split alike, so whichever the mesh
//     applies, the split holds. UDP and SCTP ports are not routed (UnsupportedProtocol).
//   - No matches: one rule without matches (every request or connection) to the weighted backends.
//   - Matches: the weighted rule(s) with one route match per HTTPRouteGroup match and method (the
//     Gateway API has one method per match), then a rule without matches (the Gateway API's default,
//     PathPrefix "/") to the apex. Every match the split has is more specific than that catch-all
//     in the Gateway API's precedence (an exact or longer prefix path, a method, a header), and ties
//     go to the first rule, so the catch-all only takes what no match takes; without it a mesh would
//     answer those requests 404. Opaque TCP cannot match an HTTP match: with matches no TCPRoute is
//     written and connections stay on the apex, the mesh's default for a Service without routes.
//   - A standby rule ends each HTTPRoute and GRPCRoute: the Services the split may route to
//     that no other rule names with a weight (zero-weight backends, the apex unless the catch-all
//     goes there), at weight 1, for the gRPC method smioperator.standby.v1.Standby/Never (its HTTP
//     path) that no client calls. grpc-go applies new routes before its balancer has a cluster it
//     did not hold, failing the calls picked in between; a mesh handing its proxyless clients the
//     rule keeps those clusters held, so a weight change or the split's removal moves calls onto
//     clusters they already have. It is left out where it does not fit (more than 16 Services, or
//     no match left in the route): it must not cost the split its matches.
//   - Paths: none for any path, Exact for an exact literal (when the CRD's rules take it), and
//     otherwise RegularExpression with mesh's whole-path regex ("^(?:re).*", the same to an
//     engine that matches the whole path and to one that searches). A literal prefix is a regex
//     too, but for "/": the Gateway API's PathPrefix matches whole segments ("/api" matches "/api/x",
//     not "/apix"), SMI's pathRegex a string prefix, and PathPrefix would change which requests
//     are split. Headers: Exact for an exact value, else RegularExpression anchored at both ends.
//     RegularExpression is implementation-specific in the Gateway API (support, dialect, and for
//     paths the precedence against the catch-all): each split using it is warned
//     (ImplementationSpecificMatch), the route is still written.
//   - GRPCRoute matches: a path of any, exact "/<service>/<method>" or prefix "/<service>/" is a
//     method match (Exact: none, service and method, service alone); methods are dropped when they
//     admit POST, and a match excluding POST is left out (no gRPC call can take it), as the xDS
//     backend does for proxyless clients (mesh.HTTPMatch.ForGRPC). When any other path is matched
//     on a gRPC port, which a GRPCRoute cannot express, the port gets an HTTPRoute instead: gRPC
//     calls are HTTP/2 POSTs to /<service>/<method>, which it matches.
//   - Limits the CRDs enforce (16 backendRefs, 16 headers per match, fewer than 128 matches per
//     route): a split beyond them gets no route at all (RouteLimitExceeded), never a part of it.
//   - A split with no route at all (every port UDP, or a gRPC port whose every match excludes
//     POST) is not programmed (NoRoutablePorts).
//
// # What the meshes say of the routes
//
// [RouteStatus] is the other way round, as pure as Translate: it reads a route as the cluster has
// it and reports on its split each mesh controller's verdict in status.parents[] for the apex
// Service (the route's Service parent, and its port when the entry names one): Accepted=False is
// RouteNotAccepted (Programmed=False, an error), ResolvedRefs=False is RouteRefsNotResolved
// (ResolvedRefs=False, a warning: the Gateway API keeps the rest of the route in effect). A verdict
// observed at an older generation than the route's is left out; no entry reports nothing.
//
// # TrafficTarget and TrafficPolicy
//
// The Gateway API has no authorization standard, so this translator writes no access policy:
// every TrafficTarget is reported Programmed=False AccessNotEnforced, never silently accepted, and
// so is deny-by-default in enforcing mode. That is the gamma backend's access policy `none`
// (spec.gamma.accessPolicy); with `istio` the backend programs TrafficTargets with
// translators/istio instead (AuthorizationPolicies and PeerAuthentications), and these
// diagnostics of targets are not used. TrafficPolicies are not programmed either
// (PolicyNotSupported).
package gamma

// Package gamma is the Gateway API (GAMMA) backend: it writes the routes translators/gamma
// generates from each TrafficSplit (HTTPRoutes, GRPCRoutes, TCPRoutes whose parent is the apex
// Service), with server-side apply, controlled by the split, for whichever mesh reads them
// (Linkerd, Istio, Cilium, Kuma, Consul). It runs only where the cluster serves HTTPRoute and
// GRPCRoute (the Gateway API's standard channel, v1.6 or later, holds all three); otherwise Start
// says why and the SMIOperator reports BackendUnavailable until they appear. Where TCPRoute v1
// is not served (before v1.6 it is experimental, v1alpha2), it runs without TCPRoutes: each split
// that needs one reports TCPRouteNotServed, and the instance is replaced by one writing them
// once the cluster serves TCPRoute (tcproutes.go).
//
// What the meshes say of the routes shows on their split: Splits.Program reads each route it
// controls from the cache and reports a mesh controller's Accepted=False (RouteNotAccepted) or
// ResolvedRefs=False (RouteRefsNotResolved) on the route's parent entry for the apex Service
// (translators/gamma.RouteStatus). The watch of the routes passes status-only updates, so a
// mesh's verdict reconciles the split; the operator never writes a route's status.
//
// The Gateway API has no authorization standard, so TrafficTargets are enforced as the
// SMIOperator's spec.gamma.accessPolicy says:
//
//   - none (the default): nothing is written and each target is reported Programmed=False
//     AccessNotEnforced (the translator's diagnostic); namespaces need nothing.
//   - istio: the Istio backend's Targets program targets and namespaces, writing the same
//     AuthorizationPolicies, PeerAuthentications and allow-nothing baselines. Both backends
//     share one istio.Access, so that neither's Clean deletes the policy the other still writes
//     (a swap between them rewrites nothing); the gamma backend's Clean deletes it otherwise.
//     Istio's security CRDs must be served, else Start says why (BackendUnavailable).
//   - linkerd: LinkerdTargets writes translators/linkerd's Servers, MeshTLSAuthentications,
//     AuthorizationPolicies and policy HTTPRoutes, controlled by each target; a Server another
//     target controls is shared, not a conflict. Linkerd's CRDs must be served, else Start says
//     why (BackendUnavailable). Namespaces get nothing: Linkerd's namespace-wide default is an
//     annotation, which the translator reports in enforcing mode. Only this backend writes these
//     objects: its Clean, and the Start of any other policy, delete all of them.
//
// Another access policy is another instance (Instance.Fits): from istio to none, the new
// instance deletes the policy target by target and namespace by namespace, once no backend
// writes it; from linkerd to another, the Linkerd objects are deleted at once, and target by target
// for what the instance replaced may still write.
package gamma

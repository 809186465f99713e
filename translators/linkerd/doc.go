// Package linkerd translates the mesh model's access rules (TrafficTargets) into Linkerd's policy
// resources (group policy.linkerd.io, package apis/linkerd): what the gamma backend writes with
// spec.gamma.accessPolicy linkerd, for Linkerd reading the Gateway API routes.
//
// [Translate] is a pure function of a [mesh.Model] and [mesh.Settings], like the other
// translators: no client, no clock, sorted output, and what Linkerd cannot express reported as
// [mesh.Diagnostic]s (condition Programmed) rather than approximated by more access.
//
// # How Linkerd's resources fit together
//
// A Server selects pods (podSelector) and one port; Linkerd then denies every connection and
// request on that pod port that no AuthorizationPolicy targeting the Server, or one of its
// HTTPRoutes, allows (whatever the default inbound policy). An AuthorizationPolicy allows the
// clients that pass every authentication it requires (requiredAuthenticationRefs); a
// MeshTLSAuthentication authenticates the clients whose mutual-TLS identity it lists, here as
// ServiceAccount references (identityRefs), which Linkerd turns into identities of its own trust
// domain (<sa>.<ns>.serviceaccount.identity.linkerd.<domain>). A policy.linkerd.io HTTPRoute whose
// parentRef is a Server narrows authorization to requests: a request that no route of the Server
// matches gets 404, one whose routes no policy allows the client gets 403.
//
// # TrafficTarget → objects, for each destination workload (mesh.AccessRule.Workloads)
//
//   - Server <kind>-<workload>-<port> per port the rule opens, selecting the workload's pods
//     (matchLabels: its selector), proxyProtocol unknown (detected: a port may carry one target's
//     HTTP and another's TCP). Linkerd uses one Server per pod port, so every target of the
//     destination names the same Server: the first one written controls it, the others reference it
//     (the backend does not report that as a conflict).
//   - MeshTLSAuthentication <target>: the sources. None, and no AuthorizationPolicy, when the target
//     has no source: its Servers then accept nothing, as SMI says.
//   - TCP (TCPRoute rules): AuthorizationPolicy <target>-<kind>-<workload>-<port> targeting the
//     Server.
//   - HTTP (HTTPRouteGroup rules, on the TCPRoutes' ports or else every port): HTTPRoute
//     <target>-<kind>-<workload>-<port>, parent the Server, with the matches (one per method, the
//     path and header matches as package gamma writes them: Exact, or an anchored
//     RegularExpression, which Linkerd supports), and an AuthorizationPolicy of the same name
//     targeting it.
//
// Every object carries the smi.Label* labels naming the TrafficTarget and lives in its namespace.
//
// # What Linkerd does not enforce (diagnostics)
//
//   - Every port (a rule whose routes name no port): a Server names one port, so the ports the
//     workload's pod template declares are used, and the rest are reported (PortsNotDeclared).
//   - UDP: Linkerd proxies TCP only (UDPNotEnforced).
//   - SMI's deny-by-default in enforcing mode, for the workloads and ports no TrafficTarget names:
//     that is Linkerd's default inbound policy (config.linkerd.io/default-inbound-policy: deny, an
//     annotation read when a pod is injected), which no policy resource sets; the ports a target
//     names deny by themselves. Reported on each target in enforcing mode (DefaultDenyNotWritten).
//   - More matches than an HTTPRoute holds (RouteLimitExceeded): no HTTP is allowed rather than some.
//   - A Server of someone else selecting the same pod port makes Linkerd use one of the two: the
//     translator cannot see it.
//   - Between two targets of one destination on one port, one of TCP and one of HTTP, the HTTP
//     target's routes also apply to the TCP target's clients (Linkerd answers their requests that
//     match no route with 404).
package linkerd

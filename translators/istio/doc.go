// Package istio translates the mesh model into Istio objects: VirtualServices and DestinationRules
// for TrafficSplits, AuthorizationPolicies and PeerAuthentications for TrafficTargets.
//
// [Translate] is a pure function of a [mesh.Model] and [mesh.Settings]: no client, no clock, no
// package state, and sorted output. It decides nothing about SMI semantics (package mesh did); it
// only decides how Istio expresses them, and reports, as [mesh.Diagnostic]s, what Istio cannot
// express. A SeverityError diagnostic means the object produced nothing here; SeverityWarning means
// part of it was left out. The controller merges these with mesh.Build's.
//
// Built with the tag smi_e2e_invert_weights (a test build only, never the operator's), the
// translator is deliberately wrong: every split's weights go to its backends in reverse order
// (weights_inverted.go). The Istio end-to-end suite runs such an operator to show that its checks
// of where RPCs land fail on a wrong translation. In every other build that hook is the identity.
//
// # Generated objects
//
// Every object carries the label [smi.LabelManagedBy] set to [smi.ManagedByValue], and [smi.LabelSourceKind]
// and [smi.LabelSourceName] naming the SMI object it comes from ([smi.NamespaceSourceKind] and the
// namespace for the namespace-wide deny). It lives in its source's namespace and has no owner reference: the
// controller adds those, it knows the UIDs. Names are built from the source's name and are at
// most 63 characters; a longer name is cut and ends with a hash of the whole, and two sources
// whose names would collide (split "a" with backend "b-c", split "a-b" with backend "c") both get
// a hash of their unambiguous origin, so no two sources ever fight over one object. The same
// shortening applies to the source-name label value, which therefore identifies the source only
// when the name fits a label (63 characters).
//
// # TrafficSplit → VirtualService (named after the split) and DestinationRules
//
//   - hosts: [apex FQDN]. Routes are per apex port, each with a port match and destinations on
//     the same port number (package mesh checked that every backend exposes the apex's ports), so
//     a multi-port Service needs no guess from Istio about the destination port.
//   - An apex port is HTTP or opaque TCP as Istio decides it: appProtocol first, then the port
//     name's prefix before the first "-". http, http2, http_proxy, grpc, grpc-web, h2c,
//     kubernetes.io/h2c and kubernetes.io/ws are HTTP; tcp, tls, https, mongo, mysql, redis and
//     kubernetes.io/wss are TCP. Any other or no declaration leaves Istio to sniff the protocol,
//     so such a port gets both an http and a tcp route: whichever Istio detects applies.
//   - No matches: one http route per HTTP (or sniffed) port splitting every request, one tcp route
//     per TCP (or sniffed) port splitting every connection.
//   - Matches: per HTTP (or sniffed) port, one http route per match (uri prefix/exact when the path
//     regex is a plain literal, else regex; one HTTPMatchRequest per method, since Istio ORs them;
//     header regexes), then a catch-all http route on that port to the apex. No tcp route: opaque
//     connections cannot match an HTTP match and stay on the apex, which is Istio's default for a
//     port the VirtualService does not route.
//   - Weights become integer percentages summing to exactly 100 by largest remainder (ties go to
//     the backend that sorts first); a zero weight never receives a remainder. Backends at 0% are
//     left out of the split's routes: Istio gives all traffic to a route's only destination
//     whatever its weight, and istiod drops zero-weight destinations. A positive weight too small
//     to reach 1% is reported (WeightRoundedToZero).
//   - A standby route (named StandbyRouteName, the only named route) comes first on each HTTP (or
//     sniffed) port: it names the Services the split may route to that its other routes send
//     nothing (backends at 0%, the apex unless requests go there), weights summing to 100, for the
//     path mesh.StandbyPath that no client calls, so that
//     proxyless gRPC clients of istiod hold their clusters before a weight change or the split's
//     removal moves calls there (see mesh.StandbyPath). First, because istiod hands proxyless
//     clients no route after a catch-all. None when every such Service already gets requests. No
//     TrafficPolicy setting goes on it.
//   - A split with all-zero weights (mesh.Model.UnweightedSplits), not programmed, still gets its
//     VirtualService and DestinationRules when its apex has an HTTP port: every request to the
//     apex, its backends on standby, for the weights coming back. No tcp route: Istio's default
//     sends connections to the apex. Without an HTTP port it gets nothing.
//   - UDP and SCTP apex ports are not routed by Istio: reported, their traffic is left alone. A
//     split with no port left to route (or, with matches, no HTTP port) produces nothing and is
//     not programmed (NoRoutablePorts; an apex without any port never gets here, package mesh
//     refuses it for every backend).
//   - With Settings.MTLS, one DestinationRule per backend (weight 0 included, all-zero splits too,
//     so mTLS is in place before traffic shifts) named <split>-<backend>, host the backend FQDN, tls ISTIO_MUTUAL.
//
// # TrafficTarget → AuthorizationPolicies (and PeerAuthentications)
//
//   - One ALLOW AuthorizationPolicy per destination workload (mesh.AccessRule.Workloads), named
//     <traffictarget>-<kind>-<workload>, selector the workload's matchLabels. ALLOW is the
//     default action and therefore does not appear in the serialized spec.
//   - Its rules: from principals <trust domain>/ns/<ns>/sa/<sa>. One rule per HTTP match, with to
//     paths (exact, or "<prefix>*", none for any path), methods, the HTTP ports (none for all),
//     and when conditions request.headers[<name>] for its headers (exact, "<prefix>*",
//     "*<suffix>", "*" for any value). A match whose operation would otherwise hold no HTTP-only
//     field gets paths ["*"] (any path): Istio applies a rule without HTTP fields to raw TCP too,
//     which would turn an HTTP grant into a TCP one. One rule for the TCP grant (ports, or no to
//     for all ports). Ports are the destination workload's own (container) ports, which is what
//     Istio's authorization sees: TCPRoute ports, and the destination port of a v1alpha1 or
//     v1alpha2 TrafficTarget that package mesh intersects them with, are read as such.
//   - Istio has no regex in authorization policies. A path or header regex that is not one of
//     the forms above, or a literal holding "*" (Istio would read it as a wildcard), cannot be
//     expressed: the match is left out, so it allows nothing, and reported
//     (UnsupportedPathRegex, UnsupportedHeaderRegex). Access is never widened to compensate.
//   - A rule that allows nothing (no source, no usable traffic) still yields the policy, with no
//     rules: an ALLOW policy without rules allows nothing for its workloads, where no policy could
//     leave them open.
//   - UDP grants are reported as not enforced (UDPNotEnforced): Istio authorization does not see
//     UDP, so UDP traffic is neither allowed nor denied.
//
// # TrafficPolicy → the host's VirtualService and DestinationRule
//
// Istio reads one VirtualService and one DestinationRule per host (it does not merge a second
// one), so a policy never writes a second of either:
//
//   - timeout, retries (attempts, perTryTimeout, retryOn joined with commas, backoff from
//     baseInterval) and fault (delay fixedDelay, abort httpStatus or grpcStatus, percentages) go
//     on every http route of the ports it covers: into the split's VirtualService when the
//     Service is a split's apex (match routes and the catch-all to the apex included), else into
//     a VirtualService of its own with one http route per covered port Istio may see HTTP on, to
//     the Service itself. Istio has no maximum backoff (retries.backoff.maxInterval is reported,
//     not programmed) and no route settings on opaque TCP ports (reported);
//   - connectionPool (tcp.maxConnections, http.http1MaxPendingRequests, http2MaxRequests,
//     maxRetries, idleTimeout on both), outlierDetection and loadBalancer (simple ROUND_ROBIN or
//     LEAST_REQUEST, consistentHash with ringHash or maglev, tableSize Envoy's default 65537, by
//     header, cookie or source IP) go into the trafficPolicy of the host's DestinationRule: the
//     ISTIO_MUTUAL one the mtls setting writes when the Service is a split backend (one per split
//     it is a backend of, each carrying them: Istio reads one of them), else one of its own. A policy of every port sets the top-level fields, a policy of one port a
//     portLevelSettings entry (Istio falls back to the top level, TLS included, for what it
//     leaves out). Istio reads maxEjectionPercent 0 as its default, 10% (reported).
//   - objects of its own are named <policy>-trafficpolicy (PolicyNameSuffix: never a split's
//     name, as both are reconciled apart) and labelled after the policy (the first of its
//     Service's by port, when policies on different ports share them); merged ones keep the
//     split as their source. [Carriers] are the objects, whoever's, that carry a policy's
//     settings.
//
// # Access modes (mesh.Settings.Access)
//
//   - Enforcing (default): SMI's deny-by-default. Every namespace holding a TrafficTarget
//     destination gets an allow-nothing AuthorizationPolicy named smi-default-deny (no selector,
//     so it covers the whole namespace, and one ALLOW rule for a principal nobody has: istiod
//     ignores a policy without rules for proxyless gRPC servers), so whatever no TrafficTarget
//     allows is denied there, including for workloads no TrafficTarget names. Each destination
//     workload gets a STRICT PeerAuthentication named like its policy, so that every request
//     carries a proven source principal.
//   - Permissive: only the destinations' own policies. Their workloads still accept only what
//     their TrafficTargets allow (a plain-text request has no principal and matches no rule);
//     other workloads and the mesh's mTLS mode are left as they are.
package istio

// Package mesh builds the version-independent model ("IR") of a service mesh from SMI objects and
// Services. Every backend (Istio, the bundled xDS server) translates this model and nothing else, so
// SMI semantics are decided here once, and a backend never re-reads an SMI object.
//
// [Build] is a pure function of a [Snapshot] and [Settings]: no Kubernetes client, no clock, no
// package state. [Settings] is the operator's one configuration type; Build reads the trust and
// cluster domains, the backends read the access mode and mTLS. Its output is sorted so that the same input always gives the same model and the
// same diagnostics, whatever order the cache listed the objects in; a reconcile that changes nothing
// then writes nothing.
//
// # Diagnostics
//
// Every problem found becomes a [Diagnostic] on the SMI object it concerns, naming the condition it
// turns False. A Diagnostic with [SeverityError] means the object has no effect at all: it is absent
// from the [Model] (a split whose weights are all zero is held apart, in Model.UnweightedSplits: its
// traffic stays on the apex, and backends may keep its backends on standby for it).
// [SeverityWarning] means part of the object was ignored and the rest is in effect.
// So a controller sets a condition False (with the first diagnostic's reason) when a diagnostic
// names it, True otherwise, and Programmed=False for any object absent from the Model. Backend
// translators report with the same type ([Diagnostics] collects, [SortDiagnostics] merges), but
// only what their backend cannot express: whatever is about what the SMI objects mean is reported
// here, once, so that every backend (and translate with any of them) says the same of it.
//
// # Decisions where SMI is silent or ambiguous
//
// TrafficSplit:
//   - Conflicts are settled before anything else is validated: of the splits naming one apex, the
//     oldest (creationTimestamp, then name) wins even when it turns out broken. Letting validity pick
//     the winner would make traffic jump between splits whenever a backend Service comes and goes.
//   - The apex and the backends are Services in the split's namespace. A backend must expose every
//     port of the apex (same number and protocol, empty protocol meaning TCP); SMI maps ports by
//     number and a backend lacking one would black-hole that port's share.
//   - A backend listed twice gets the sum of its weights. Negative weights reject the split.
//   - The apex listed as its own backend keeps that share on the apex's own endpoints. The spec
//     says a split cannot reference itself, but OSM and linkerd-smi accept it, so it is accepted
//     with a warning (ResolvedRefs=False SelfReferentialSplit) rather than refused.
//   - A backend that is the apex of another split gets its share on its own endpoints: no backend
//     chains splits (Istio does not apply a VirtualService to another's destination, and the xDS
//     routes name the backends' own clusters), so the split is warned (ResolvedRefs=False
//     SplitNotChained) rather than silently doing less than its author most likely meant.
//   - An apex without any port (a headless Service without ports) carries no traffic to split: the
//     split is not programmed (NoRoutablePorts), whatever the backend.
//   - A match reference that is not a specs.smi-spec.io HTTPRouteGroup rejects the whole split
//     (Accepted=False, UnsupportedRouteKind): dropping it would change which requests are split in a
//     way the author did not write. A missing HTTPRouteGroup, or an invalid match in one, is only
//     left out; if that leaves no match at all the split is not programmed, because an empty match
//     list would mean "split everything", a much wider effect than the author asked for.
//
// TrafficTarget (one [AccessRule] each; rules for one destination are ORed by the backends):
//   - destination.namespace defaults to the target's namespace and must equal it; sources'
//     namespaces default to the target's namespace. Only kind ServiceAccount is understood.
//   - HTTP and TCP rules in one target combine as SMI's own example intends ("only Prometheus may
//     GET /metrics", written as a TCPRoute on 8080 plus an HTTPRouteGroup): when the target has any
//     HTTPRouteGroup rule, its TCPRoutes only say on which ports those HTTP requests are allowed and
//     grant no raw TCP; without HTTPRouteGroup rules they grant TCP connections. UDPRoutes always
//     grant UDP on their ports. This is decided on the rules as written, not as resolved, so a missing
//     HTTPRouteGroup never turns a port scope into a raw TCP grant.
//   - A v1alpha1 or v1alpha2 destination port ("the port traffic should be allowed on") limits
//     every grant of the target to that port: HTTP rules allow their matches on that port only,
//     TCPRoute and UDPRoute ports are intersected with it (a route of every port allows that
//     one), and a rule whose route leaves it out allows nothing (DestinationPortOutsideRoute).
//     The hub (v1alpha3) has no port: it is read from the conversion annotation
//     (apis/smi/conversion.TrafficTargetDestinationPort), whatever version the target was
//     written in, as reading it in v1alpha2 would show it. A port that cannot be known (an
//     annotation that does not decode) or used (outside 1-65535) makes the target allow nothing.
//     Sources' ports are not read: a client's port says nothing about what it may reach.
//   - A target without rules (v1alpha1 and v1alpha2 allowed leaving them out; v1alpha3 requires
//     one) allows nothing, and says so (ResolvedRefs=False NoRules, a warning).
//   - A rule that cannot be resolved (missing route, unknown kind, unknown match name, invalid
//     match, invalid port) grants nothing; access is never widened to compensate. A target whose
//     rules all failed stays in the Model with nothing allowed, so that backends still treat its
//     destination as governed (deny) rather than as untouched.
//
// Workloads (the pods an AccessRule governs, for backends that attach policies by pod labels):
//   - a Deployment, StatefulSet or DaemonSet in the destination's namespace whose pod template
//     runs as the destination ServiceAccount (serviceAccountName, else the deprecated
//     serviceAccount, else "default"), identified by its spec.selector.matchLabels.
//   - a workload is left out, with a warning on the TrafficTarget, when those labels cannot stand
//     for its pods alone: a selector with matchExpressions (dropping them would select more), an
//     empty selector (the whole namespace), or one that also matches the pod template of a workload
//     running as another ServiceAccount (a policy would hand the destination's access to it). Left
//     out means no policy from that TrafficTarget: under enforcing access its pods fall under the
//     namespace's deny-all, so the failure is closed.
//   - no workload at all is a warning too (NoWorkloads): the rule stays in the Model, and its
//     policies appear once a workload does. Bare Pods, Jobs and CronJobs are not looked at.
//
// TrafficPolicy (the operator's own API, apis/policy/v1alpha1; one [Policy] each):
//   - Conflicts are settled first, as for splits: of the policies whose targets overlap (the same
//     Service, and the same port or one of them without a port), the oldest (creationTimestamp,
//     then name) wins even when it turns out broken; each later one has no effect at all
//     (Accepted=False Conflicted, naming the winner), rather than a part of it applying to the
//     ports the winner leaves free, which would make its effect depend on another object.
//   - A target that is not a Service (kind Service, core group) is refused
//     (UnsupportedTargetKind); a missing Service or port makes the policy absent from the Model
//     (ResolvedRefs=False ServiceNotFound or PortNotFound) until it appears.
//   - Every field is checked again as the CRD checks it (InvalidPolicy, naming the fields), since
//     objects translated offline or stored before the CRD had its rules never went through it.
//     A fault's percentage left out is policyv1alpha1.DefaultFaultPercentage.
//   - The policy applies to every client of the Service port, whatever route a split gives the
//     request: backends put its route settings (timeout, retries, fault) on every route of the
//     port, the split's match routes and catch-all included, and its cluster settings
//     (connection limits, outlier detection, load balancing) on the Service's own cluster. A
//     split's backends are other Services, governed by their own policies.
//
// HTTPRouteGroup:
//   - pathRegex is RE2, anchored at the start of the path only. [PathMatch] keeps it as written,
//     gives FullRegex "^(?:re).*" for engines that match the whole path (Envoy, Istio), and classifies
//     it as any / exact / prefix when it is a plain literal, for APIs without regex (Istio's
//     AuthorizationPolicy paths).
//   - methods are upper-cased, de-duplicated and sorted; "*" anywhere, or no methods, means any
//     method and is normalised to an empty list.
//   - header names are lower-cased (HTTP/2 and Envoy use lower case) and must be HTTP tokens;
//     header values are RE2 regexes matched against the whole value, as the SMI examples
//     (".*Android.*") are written. [HeaderMatch] also classifies a value regex as exact / prefix /
//     suffix / presence when it is one, for APIs without regex (Istio's authorization conditions).
//   - a match with an invalid regex or an empty method or header name is left out wherever it is
//     referenced, with a diagnostic on the HTTPRouteGroup and on each referrer.
package mesh

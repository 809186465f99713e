// Package xds translates the mesh model, together with the endpoints of its Services, into the xDS
// resources that the operator's own control plane serves to proxyless gRPC clients and servers
// (grpc-go's xds resolver and xDS-enabled servers) and to Envoy sidecars. The server tells them
// apart by node metadata; the pieces here are built per Service, per split, per policy, per
// identity, so that it redoes only what a change touches.
//
// Every function is pure: [Translate] (proxyless) and [TranslateEnvoy] (what all Envoy sidecars
// share) take a [mesh.Model], the Services, their [Endpoints] and [mesh.Settings]; the per-identity
// pieces ([ServerListener], [InboundListener]) take that identity's access rules ([RulesFor]).
// No client, no clock, no package state, and sorted output. [BuildEndpoints] is the pure function
// that turns Services and EndpointSlices into [Endpoints]. Like package istio, it decides nothing
// about SMI semantics (package mesh did), only how xDS expresses them.
//
// # Resources for proxyless gRPC
//
// Every Service gets, for each TCP port ([ServiceResources]):
//
//   - a Listener named "<svc>.<ns>.svc.<cluster domain>:<port>", the name a gRPC client dials as
//     "xds:///<name>", holding an ApiListener HttpConnectionManager that fetches its routes over
//     RDS (route configuration name = listener name) and ends with the router filter;
//   - a RouteConfiguration of that name with one VirtualHost whose first domain is the listener
//     name, and one catch-all route to the Service's own cluster;
//   - a Cluster "outbound|<port>||<fqdn>" (Istio's naming, so logs and tools read the same on
//     both backends), of type EDS over ADS with ROUND_ROBIN, with mutual TLS when it applies (see
//     below), and a ClusterLoadAssignment of the same name.
//
// A split apex's RouteConfigurations are replaced by [SplitRoutes]: one route per HTTP match with
// weighted_clusters, then a catch-all to the apex when the split has matches, or one weighted
// catch-all route when it has none; then, for proxyless clients, a standby route naming every
// other cluster the split may route to (see Decisions). A split unprogrammed for its all-zero
// weights alone (mesh.Model.UnweightedSplits) gets them too, everything to the apex. The pieces
// are independent so that the xDS server redoes only what a change touches: a weight change
// rebuilds one RouteConfiguration, an endpoint change one ClusterLoadAssignment. [Translate]
// assembles them all at once.
//
// # Resources for Envoy sidecars
//
// Envoy sidecars share the RouteConfigurations and ClusterLoadAssignments of proxyless clients
// (same names, same contents: one EDS cache serves both). Besides, they get:
//
//   - the outbound listener "outbound" on 0.0.0.0:15001 ([OutboundListener]), where the traffic
//     capture redirects outgoing connections. The original_dst listener filter restores each
//     connection's destination (use_original_dst is not set: there are no per-address listeners
//     to hand over to), and one filter chain per Service ClusterIP:port
//     ([OutboundFilterChains]) matches it with prefix_ranges (/32 or /128, every ClusterIP of a
//     dual-stack Service) and destination_port. HTTP ports run an HttpConnectionManager (router
//     only, no RBAC: access is decided at the destination) with RDS to the Service port's
//     RouteConfiguration, so splits and their HTTP matches apply as for proxyless clients; other
//     TCP ports run a tcp_proxy to the port's cluster, or weighted_clusters when a split without
//     HTTP matches has the Service as apex (a split with matches only splits HTTP requests, as
//     the model says). Headless Services have no ClusterIP and get no chain: connections to
//     their pods' own addresses take the default chain, a tcp_proxy to the "passthrough"
//     ORIGINAL_DST cluster that carries whatever is not a Service, in plain text. When mutual
//     TLS is required (enforcing mode), the destination's inbound listener refuses them: per-pod
//     chains for headless Services are not built (yet);
//   - a port is HTTP when its appProtocol, or else its name up to the first "-" (Istio's
//     convention), is http (HTTP/1.1 upstream) or http2, grpc, h2c or kubernetes.io/h2c (HTTP/2
//     upstream, through HttpProtocolOptions on the cluster). Anything else is carried as opaque
//     TCP: Envoy sidecars here do not sniff outbound protocols, and HTTP carried as TCP keeps
//     working, only without HTTP routes and HTTP access rules, where TCP parsed as HTTP breaks;
//   - RouteConfigurations list, after the name proxyless clients dial, every name a request may
//     carry as Host or :authority: short name, name.namespace, name.namespace.svc, FQDN and each
//     ClusterIP (IPv6 in brackets), each without and with ":<port>". The chain, not the name,
//     picks the RouteConfiguration; the names only have to be found in it;
//   - clusters ([EnvoyClusters]) named and fed like the proxyless ones, with, under mutual TLS,
//     an UpstreamTlsContext taking the workload certificate and trust bundle over SDS (secrets
//     "default" and "ROOTCA", [WorkloadSecret] and [TrustBundleSecret]) from the static cluster
//     [SDSCluster] of the sidecar's bootstrap, the pod agent that holds the workload's key (never
//     from the operator, which has no key), and offering ALPN
//     "h2" (HTTP/2 ports), "http/1.1" (HTTP ports) or none (TCP ports), and accepting only the
//     server identities of the port's endpoints (secure naming, below) in a combined validation
//     context beside the SDS trust bundle. [PassthroughClusters] are the two ORIGINAL_DST clusters;
//     "inbound-passthrough" keeps the downstream HTTP version towards the application;
//   - the inbound listener "inbound" on 0.0.0.0:15006 for the sidecar's identity
//     ([InboundListener]). With mutual TLS, connections are TLS-terminated (tls_inspector,
//     DownstreamTlsContext over SDS, client certificate required): those offering ALPN "h2" or
//     "http/1.1" go to an HttpConnectionManager with the HTTP RBAC then the router, the rest to
//     the network RBAC (TCP grants only: an HTTP grant never opens raw TCP) then tcp_proxy, both
//     towards "inbound-passthrough". Inside TLS nothing can be sniffed, so the ALPN, which the
//     client sidecar sets from the Service port's protocol (and proxyless gRPC clients always set
//     to "h2"), is what tells HTTP from TCP; HTTP rules on a port that clients carry as opaque TCP
//     therefore allow nothing there. Enforcing mode accepts nothing else: a plain-text
//     connection matches no chain and is closed. In permissive mode plain text is accepted as
//     well (http_inspector: HTTP to the HTTP chain, the rest to the TCP chain). In permissive mode
//     with mTLS, a TLS connection that an application outside the mesh opens itself is taken for
//     mutual TLS and fails; Istio avoids this with its own ALPN values, which grpc-go clients
//     cannot send.
//
// The RBAC of the inbound listener covers every port, with destination_port conditions: the
// original_dst filter makes the application's port the connection's destination.
//
// # Proxyless gRPC servers
//
// An xDS-enabled grpc-go server asks LDS for "grpc/server?xds.resource.listening_address=<host>:<port>"
// ([ServerListenerNameTemplate] is the bootstrap's server_listener_resource_name_template), the
// address being its net.Listener's. [ParseServerListenerName] reads it back (client input: strict,
// fuzzed) and [ServerListener] answers with the Listener for the server's identity's access rules
// ([RulesFor]):
//
//   - its address is the host and port of the name, exactly as written: grpc-go refuses to serve
//     when the Listener's address is not string-equal to its own;
//   - one filter chain without filter_chain_match (grpc-go drops chains matching on destination
//     port, server names, transport or application protocols) holding an HttpConnectionManager
//     with an inline route configuration: one virtual host "*" and one route with a
//     non_forwarding_action, which grpc-go requires on servers; HTTP filters RBAC then router;
//   - with mutual TLS, a DownstreamTlsContext requiring a client certificate, whose certificate
//     and trust bundle come from the certificate provider instance [CertificateProviderInstance]
//     ("default", which the server's bootstrap must define, e.g. with grpc-go's file_watcher
//     plugin): grpc-go NACKs SDS secrets and inline certificates.
//
// A server Listener belongs to one port, so its RBAC holds only the grants for that port, without
// port conditions: a rule whose HTTPPorts or TCP ports leave the port out grants nothing there.
//
// # Access control (TrafficTargets)
//
// All access rules of one destination identity become one RBAC configuration
// (envoy.extensions.filters.http.rbac.v3.RBAC; the network filter's for Envoy's opaque TCP), with
// action ALLOW and one policy per rule (TrafficTarget), named "<namespace>/<name>" after it:
//
//   - principals: each source's SPIFFE ID as authenticated.principal_name, exact (Envoy and
//     grpc-go compare it with the client certificate's URI SAN; a prefix would let "sa/web" admit
//     "sa/web-admin");
//   - permissions, ORed: one per HTTP match (on the rule's HTTPPorts), all of url_path (exact,
//     prefix, or safe_regex with mesh.PathMatch.FullRegex, which makes the regex's whole-path
//     match exactly SMI's anchored-at-start meaning), ":method" (exact for one method, an
//     alternation of quoted names for several), each header's regex as safe_regex over the whole
//     value, and destination_port for the HTTP ports unless they are all; one per TCP grant,
//     destination_port (or any for every port). A TCP grant also allows HTTP on its ports (HTTP
//     runs on TCP), an HTTP grant never allows raw TCP. A permission allowing anything makes the
//     rule's other permissions redundant; they are dropped. The ports are the model's, which
//     already hold a v1alpha1 or v1alpha2 TrafficTarget's destination port: its HTTP matches
//     carry destination_port for that port alone, and a proxyless server listening on another
//     port gets no policy from it.
//   - Rules are additive: Envoy and grpc-go allow a request when any policy matches. A rule with
//     no source or no usable traffic yields no policy, and an ALLOW without policies denies
//     everything: the rule's destination is still under control, never left open.
//   - Nothing is widened: every regex is passed as written (path via FullRegex), what cannot be
//     enforced allows nothing. UDP grants are not enforced at all (the xDS backend only sees TCP:
//     UDPNotEnforced, neither allowed nor denied) and matches on "grpc-" headers allow nothing on proxyless servers (grpc-go NACKs RBAC with
//     such header matchers, gRFC A41); [AccessDiagnostics] reports both.
//   - grpc-go evaluates ":method" as POST for every RPC and url_path against "/<service>/<method>",
//     so HTTPRouteGroups written for gRPC read naturally: methods [POST] or ["*"], pathRegex
//     "/pkg.Service/".
//
// # Access modes (mesh.Settings.Access)
//
//   - Enforcing (the default, and any unknown mode): the policies go into "rules". A workload
//     with rules allows exactly what they allow; a workload without rules gets an ALLOW without
//     policies and denies everything: SMI's deny-by-default for every workload, not only in the
//     namespaces holding destinations.
//   - Permissive: everything is allowed, as the issue asks of the xDS backend. "rules" is left
//     unset and the same policies go into "shadow_rules": Envoy evaluates them and reports what
//     they would deny (shadow stats and dynamic metadata) without applying them. grpc-go treats
//     an RBAC without "rules" as no RBAC at all and never reads shadow_rules (checked in grpc-go
//     v1.84.0, internal/xds/httpfilter/rbac: a nil Rules, or action LOG, builds no engine, and
//     only Rules' policies are validated), so a proxyless server allows everything as well, and
//     one output serves both kinds of clients. The RBAC filter stays in place in both modes, so
//     the Listener has one shape and a mode switch changes only the filter's configuration.
//   - Difference from the Istio backend: there, permissive mode keeps the ALLOW policies of the
//     TrafficTargets' destinations (only other workloads stay open), because Istio has no shadow
//     mode for AuthorizationPolicies. Here permissive restricts nobody; the shadow rules show
//     what enforcing mode would do, destinations and other workloads alike.
//
// # Mutual TLS
//
// Mutual TLS applies when enforcing (RBAC principals are only proven by client certificates) or
// when mesh.Settings.MTLS asks for it. Proxyless clusters then get an UpstreamTlsContext and
// server Listeners a DownstreamTlsContext, both with tls_certificate_provider_instance and
// validation_context.ca_certificate_provider_instance named [CertificateProviderInstance]
// (never SDS: grpc-go NACKs it); Envoy sidecars use SDS, as described above. Workload
// certificates must carry both the serverAuth and clientAuth extended key usages: grpc-go checks
// each side's.
//
// # Secure naming
//
// A certificate of the mesh CA only proves that its holder is some workload of the mesh. A client
// that accepted any would hand its requests (and its own identity's access) to whichever workload
// got the traffic: an address reused by another Pod before the EndpointSlice caught up, a
// hijacked IP. So every mutual-TLS cluster accepts only the identities that run its Service's
// endpoints, as Istio does ("secure naming"): [ServerIdentities] gives the SPIFFE ID of the
// ServiceAccount of each endpoint's Pod (its EndpointSlice targetRef; [BuildEndpoints] takes the
// Pods), matched exactly against the server certificate's SANs. A Service's Pods may run as
// several ServiceAccounts; each is accepted, for every endpoint of the port.
//
//   - The matchers go in match_subject_alt_names, the only field grpc-go (v1.84: its cluster
//     parsing reads no other), grpc-js-xds (1.14.1) and gRPC C-core read. Envoy reads it as well, as a matcher
//     of every SAN type, a URI SAN included; it deprecated it in 1.21.0 for
//     match_typed_subject_alt_names, which Envoy 1.19 and 1.20 do not know and 1.21.0 to 1.21.3
//     refuse alongside it, so the deprecated field alone serves every client (Envoy counts a
//     deprecation warning).
//   - An empty list means "any certificate of the mesh" to Envoy and to every gRPC library, so a
//     cluster never gets one: when no endpoint's identity is known (no endpoints, an endpoint
//     without a Pod reference, a Pod the operator has not seen yet, or seen under another UID)
//     it accepts [NobodySPIFFEID] alone, the principal no certificate carries that the Istio
//     backend's allow-nothing policy names. It fails closed: connections to such endpoints are
//     refused at the handshake until their Pods are known, which the operator sees within the
//     time its informers take (it reconciles a Service again when a Pod its slices name appears).
//   - Servers' listeners match no SAN (grpc-go NACKs SAN matchers on servers): who may call is
//     the RBAC's decision, on the client certificate's SPIFFE ID.
//
// # Resilience policies (TrafficPolicies)
//
// [ApplyPolicy] puts a policy on its Service's resources, for every TCP port it covers; [Translate]
// and [TranslateEnvoy] apply every policy of the model ([PolicyClusters] and
// [PolicyOutboundChains] for Envoy's clusters and outbound chains), and the xDS server the one it
// serves on each Service port to the resources of that port as it builds them. One route serves
// both kinds of clients, since each ignores the fields the other reads:
//
//   - routes (every route of the port's RouteConfiguration, a split's match routes, catch-all and
//     standby routes included): timeout as Envoy's timeout and as max_stream_duration, which is
//     what grpc-go reads; idle_timeout; retry_policy (retry_on joined with commas, the API's
//     DefaultRetryOn when left out; num_retries; per_try_timeout; retry_back_off, base 25ms when
//     only a maximum is given), none for 0 attempts (grpc-go refuses num_retries 0); hash_policy
//     under ring hash or Maglev: a header, a cookie, or for source IP both Envoy's connection
//     source IP and grpc-go's channel ID filter state (one client, one endpoint, which is what
//     source-IP affinity gives a client); the fault as typed_per_filter_config of
//     envoy.filters.http.fault (fixed delay, abort by HTTP status or gRPC status code,
//     percentages out of a hundred);
//   - the fault filter, with an empty configuration, before the router of the port's
//     HttpConnectionManager (the proxyless Listener and the Envoy outbound chain), only on ports
//     whose policy has a fault, so other Listeners stay as they are; on opaque TCP ports, the
//     idle timeout on the outbound chain's tcp_proxy;
//   - clusters: circuit_breakers (one DEFAULT-priority threshold), outlier_detection
//     (consecutive_5xx; consecutive_gateway_failure enforced at 100%, Envoy's default being 0%;
//     consecutive 5xx ejection turned off when only gateway errors are asked for), lb_policy
//     ROUND_ROBIN, LEAST_REQUEST, RING_HASH or MAGLEV.
//
// grpc-go (v1.84) implements less, so proxyless clusters get what it has instead, and
// [PolicyDiagnostics] says so on the policy (Programmed=False UnsupportedPolicyField, a warning)
// for ports a gRPC client can call (not declared HTTP/1.1): no Maglev (a ring hash of the same
// key), no consecutive-error ejection (failure-percentage ejection with the smaller consecutive
// count as the request volume and one host minimum, at a 99% threshold since grpc-go ejects only
// above it: an endpoint whose every call failed in an interval), no cookie hashing, a timeout
// that starts after a fault's delay (grpc-go runs the fault filter before it applies
// max_stream_duration, so only the caller's deadline cuts a delay short), no per-try timeout, no idle timeout, at most 4
// retries, retries on gRPC status codes only, circuit breaking on max requests only. Route
// settings (but the idle timeout) on a port Envoy carries as opaque TCP are reported too.
//
// # Decisions
//
//   - Weighted clusters keep the split's weights as written, minus the zero ones (grpc-go drops
//     them anyway). When the sum would not fit the uint32 that xDS weights and their total are,
//     the weights are scaled down proportionally, and a positive weight never becomes 0, so the
//     total is always > 0 (grpc-go NACKs a 0 total). A split whose weights are all 0 routes to
//     the apex's cluster instead.
//   - Every cluster a split may route to over its life, its backends (at weight 0 too) and, for
//     proxyless clients, its apex (where all-zero weights and the split's deletion send
//     traffic), is named in every RouteConfiguration of the split: those no route before names
//     are on a "standby" route after the catch-all, which no request takes, each at weight 1.
//     grpc-go (v1.84) holds exactly the clusters the routes of its virtual host name with a
//     positive weight (unreachable routes included), and drops a cluster once no route names it
//     and no RPC picked for it is uncommitted. It applies new routes before its cluster_manager
//     has their new clusters, and fails the RPCs picked in between with Unavailable "unknown
//     cluster selected for RPC" (see the README); so a weight move onto a cluster it does not
//     hold loses RPCs, however the server orders its updates, and one onto a cluster it holds
//     is a picker change that loses none, without new subscriptions or connections. What
//     remains exposed: a split's first routes, and a backend added to a split. Envoy holds every
//     cluster anyway: its standby route names only the zero-weight backends.
//   - A match becomes one route: path as prefix, exact path or safe_regex (mesh.PathMatch's
//     FullRegex, since Envoy and grpc-go match regexes against the whole path), each header as a
//     safe_regex string matcher (SMI header values are whole-value regexes), and methods as one
//     ":method" header matcher. Routes keep the order of the model's matches; a request matching
//     several is split the same way whichever route wins.
//   - Routes have timeout 0s (none): Envoy's default of 15 s would cut every gRPC stream and long
//     request; grpc-go ignores the field.
//   - Only TCP ports are translated: proxyless gRPC has no UDP or SCTP. A split apex port of
//     another protocol is reported as a warning on the TrafficSplit; a split whose apex has no
//     TCP port at all is not programmed (NoRoutablePorts), as on Istio.
//   - ClusterLoadAssignments have one LocalityLbEndpoints per zone (the empty zone included),
//     each with a locality and a load_balancing_weight, because grpc-go silently drops localities
//     lacking either. The weight is the number of endpoints in the zone: grpc-go first picks a
//     locality by weight and then round-robins inside it, so this spreads requests evenly over
//     endpoints, as kube-proxy would, rather than evenly over zones.
package xds

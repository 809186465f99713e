package accesscheck

import (
	"slices"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// ListenerKind says which client runs a Listener: the evaluation differs in how a connection finds
// its filter chain and what a request looks like to the RBAC filter.
type ListenerKind int

const (
	// EnvoyInbound is an Envoy sidecar's inbound listener: filter chains are chosen by
	// filter_chain_match on what the listener filters detect (tls_inspector: TLS and its ALPN;
	// http_inspector: plain-text HTTP), and the RBAC sees the request as sent.
	EnvoyInbound ListenerKind = iota
	// GRPCServer is a proxyless gRPC server's Listener (grpc-go): requests are gRPC, so HTTP/2
	// POSTs ("the :method header is always POST", gRFC A41), a chain is used only when its
	// security matches the client's (a TLS chain refuses plain text and the other way round), and
	// RBAC header matchers on "grpc-" headers are refused by grpc-go (NACK).
	GRPCServer
)

// Listener judges requests against an Envoy inbound or proxyless gRPC server Listener: it picks the
// filter chain a connection would take, runs its network filters (network RBAC then tcp_proxy, or
// an HttpConnectionManager whose HTTP filters are the RBAC then the router, and whose inline routes
// must route the request) and reports whether the request reaches the application.
//
// The RBAC semantics are Envoy's (envoy/config/rbac/v3, which grpc-go follows per gRFC A41): an
// ALLOW action lets through what any policy matches, a policy matching when any permission and any
// principal do; DENY the opposite; an RBAC filter without "rules" enforces nothing, and
// "shadow_rules" are only reported, never enforced. Permissions and principals are walked as
// trees (and/or/not, any, header, url_path, destination_port(_range), authenticated); string
// matchers are exact, prefix, suffix, contains (with ignore_case) and safe_regex (RE2, matching
// the whole string). The authenticated principal exists only on a chain that terminates TLS
// requiring a client certificate checked against a trust bundle; it is the certificate's URI SAN,
// the request's Principal. Anything else in the Listener fails the test.
type Listener struct {
	kind                        ListenerKind
	tlsInspector, httpInspector bool
	chains                      []*chain
	defaultChain                *chain
	shadowAsEnforced            bool
}

type chain struct {
	name string
	// transport and alpn are the filter_chain_match's transport_protocol and
	// application_protocols ("" and empty: any).
	transport string
	alpn      []string
	// mtls is set when the chain terminates TLS and requires a verified client certificate.
	mtls bool
	// Exactly one of http and tcp is set.
	http *httpChain
	tcp  *tcpChain
}

type httpChain struct {
	rbac   *rbachttpv3.RBAC // nil: no RBAC filter
	routes []*routev3.Route
}

type tcpChain struct {
	rbac *rbacnetworkv3.RBAC // nil: no RBAC filter
}

// ListenerOption changes how a Listener is evaluated.
type ListenerOption func(*Listener)

// ShadowAsEnforced evaluates an RBAC filter that enforces nothing (no "rules") by its
// "shadow_rules", as if they were enforced: what a permissive backend reports it would deny is
// then checked like an enforced policy. Filters that do enforce are still judged by their rules.
func ShadowAsEnforced() ListenerOption {
	return func(l *Listener) { l.shadowAsEnforced = true }
}

// NewListener decodes l and checks that it uses only what the evaluator understands.
func NewListener(t testing.TB, l *listenerv3.Listener, kind ListenerKind, opts ...ListenerOption) *Listener {
	t.Helper()
	out := &Listener{kind: kind}
	for _, o := range opts {
		o(out)
	}
	onlyFields(t, l, "name", "address", "listener_filters", "filter_chains", "traffic_direction", "default_filter_chain")
	for _, lf := range l.ListenerFilters {
		onlyFields(t, lf, "name", "typed_config")
		config := unpack(t, lf.GetTypedConfig())
		onlyFields(t, config)
		switch config.(type) {
		case *originaldstv3.OriginalDst:
			// Restores the destination port the RBAC's destination_port sees: Request.Port.
		case *tlsinspectorv3.TlsInspector:
			out.tlsInspector = true
		case *httpinspectorv3.HttpInspector:
			out.httpInspector = true
		default:
			t.Fatalf("accesscheck: listener %q has listener filter %T, which this evaluator does not understand", l.Name, config)
		}
	}
	if kind == GRPCServer && len(l.ListenerFilters) > 0 {
		t.Fatalf("accesscheck: gRPC server listener %q has listener filters, which grpc-go does not run", l.Name)
	}
	for _, fc := range l.FilterChains {
		out.chains = append(out.chains, out.newChain(t, fc))
	}
	if l.DefaultFilterChain != nil {
		out.defaultChain = out.newChain(t, l.DefaultFilterChain)
	}
	return out
}

func (l *Listener) newChain(t testing.TB, fc *listenerv3.FilterChain) *chain {
	t.Helper()
	onlyFields(t, fc, "name", "filter_chain_match", "transport_socket", "filters")
	c := &chain{name: fc.Name}
	if m := fc.FilterChainMatch; m != nil {
		if l.kind == GRPCServer {
			t.Fatalf("accesscheck: gRPC server chain %q has a filter_chain_match, which grpc-go matches differently", fc.Name)
		}
		onlyFields(t, m, "transport_protocol", "application_protocols")
		c.transport, c.alpn = m.TransportProtocol, m.ApplicationProtocols
	}
	if ts := fc.TransportSocket; ts != nil {
		onlyFields(t, ts, "name", "typed_config")
		tls, ok := unpack(t, ts.GetTypedConfig()).(*tlsv3.DownstreamTlsContext)
		if !ok {
			t.Fatalf("accesscheck: chain %q has transport socket %q, which this evaluator does not understand", fc.Name, ts.Name)
		}
		onlyFields(t, tls, "common_tls_context", "require_client_certificate")
		if !tls.GetRequireClientCertificate().GetValue() {
			t.Fatalf("accesscheck: chain %q terminates TLS without requiring a client certificate; its principals would not be proven", fc.Name)
		}
		common := tls.GetCommonTlsContext()
		// Certificates and ALPN do not decide access; what the client certificate is verified
		// against does, and must be there.
		onlyFields(t, common, "tls_certificate_sds_secret_configs", "tls_certificate_provider_instance",
			"validation_context_sds_secret_config", "validation_context", "alpn_protocols")
		if common.GetValidationContextSdsSecretConfig() == nil && common.GetValidationContext().GetCaCertificateProviderInstance() == nil {
			t.Fatalf("accesscheck: chain %q requires a client certificate but verifies it against nothing: %v", fc.Name, common)
		}
		if vc := common.GetValidationContext(); vc != nil {
			onlyFields(t, vc, "ca_certificate_provider_instance")
		}
		c.mtls = true
	}
	var configs []proto.Message
	for _, f := range fc.Filters {
		onlyFields(t, f, "name", "typed_config")
		configs = append(configs, unpack(t, f.GetTypedConfig()))
	}
	switch {
	case len(configs) == 1:
		hcm, ok := configs[0].(*hcmv3.HttpConnectionManager)
		if !ok {
			break
		}
		c.http = l.newHTTPChain(t, fc.Name, hcm)
		return c
	case len(configs) == 2:
		rbac, ok1 := configs[0].(*rbacnetworkv3.RBAC)
		proxy, ok2 := configs[1].(*tcpproxyv3.TcpProxy)
		if !ok1 || !ok2 {
			break
		}
		onlyFields(t, rbac, "rules", "shadow_rules", "stat_prefix")
		onlyFields(t, proxy, "stat_prefix", "cluster")
		l.checkRBAC(t, fc.Name, rbac.Rules, rbac.ShadowRules)
		c.tcp = &tcpChain{rbac: rbac}
		return c
	}
	t.Fatalf("accesscheck: chain %q has filters %v; this evaluator understands [HttpConnectionManager] or [network RBAC, tcp_proxy]", fc.Name, typeNames(configs))
	return nil
}

func (l *Listener) newHTTPChain(t testing.TB, chainName string, hcm *hcmv3.HttpConnectionManager) *httpChain {
	t.Helper()
	onlyFields(t, hcm, "stat_prefix", "route_config", "http_filters")
	var configs []proto.Message
	for _, f := range hcm.HttpFilters {
		onlyFields(t, f, "name", "typed_config")
		configs = append(configs, unpack(t, f.GetTypedConfig()))
	}
	h := &httpChain{}
	switch {
	case len(configs) == 2:
		rbac, ok := configs[0].(*rbachttpv3.RBAC)
		if !ok {
			break
		}
		onlyFields(t, rbac, "rules", "shadow_rules")
		l.checkRBAC(t, chainName, rbac.Rules, rbac.ShadowRules)
		h.rbac = rbac
		configs = configs[1:]
		fallthrough
	case len(configs) == 1:
		if router, ok := configs[0].(*routerv3.Router); ok {
			onlyFields(t, router)
			h.routes = l.routes(t, chainName, hcm.GetRouteConfig())
			return h
		}
	}
	t.Fatalf("accesscheck: chain %q has HTTP filters %v; this evaluator understands [RBAC, router]", chainName, typeNames(configs))
	return nil
}

// routes returns the routes of rc's only virtual host, which must take every host.
func (l *Listener) routes(t testing.TB, chainName string, rc *routev3.RouteConfiguration) []*routev3.Route {
	t.Helper()
	if rc == nil {
		t.Fatalf("accesscheck: chain %q has no inline route_config", chainName)
	}
	onlyFields(t, rc, "name", "virtual_hosts")
	if len(rc.VirtualHosts) != 1 || !slices.Equal(rc.VirtualHosts[0].Domains, []string{"*"}) {
		t.Fatalf("accesscheck: chain %q routes by host, which this evaluator does not model: %v", chainName, rc)
	}
	vh := rc.VirtualHosts[0]
	onlyFields(t, vh, "name", "domains", "routes")
	for _, r := range vh.Routes {
		onlyFields(t, r, "name", "match", "route", "non_forwarding_action")
		onlyFields(t, r.Match, "prefix", "path")
		if a := r.GetRoute(); a != nil {
			// A route to a cluster delivers the request; which cluster and when it times out do not
			// decide access.
			onlyFields(t, a, "cluster", "timeout")
		} else if r.GetNonForwardingAction() == nil {
			t.Fatalf("accesscheck: chain %q route %q has no action this evaluator understands", chainName, r.Name)
		}
	}
	return vh.Routes
}

// checkRBAC checks the RBAC configurations a filter enforces or reports.
func (l *Listener) checkRBAC(t testing.TB, chainName string, rules, shadow *rbacv3.RBAC) {
	t.Helper()
	for _, r := range []*rbacv3.RBAC{rules, shadow} {
		if r == nil {
			continue
		}
		onlyFields(t, r, "action", "policies")
		if r.Action != rbacv3.RBAC_ALLOW && r.Action != rbacv3.RBAC_DENY {
			t.Fatalf("accesscheck: chain %q has RBAC action %v; ALLOW and DENY are understood", chainName, r.Action)
		}
		for name, p := range r.Policies {
			onlyFields(t, p, "permissions", "principals")
			for _, perm := range p.Permissions {
				l.checkPermission(t, name, perm)
			}
			for _, pr := range p.Principals {
				l.checkPrincipal(t, name, pr)
			}
		}
	}
}

func (l *Listener) checkPermission(t testing.TB, policy string, p *rbacv3.Permission) {
	t.Helper()
	switch r := p.Rule.(type) {
	case *rbacv3.Permission_Any, *rbacv3.Permission_DestinationPort:
	case *rbacv3.Permission_DestinationPortRange:
		onlyFields(t, r.DestinationPortRange, "start", "end")
	case *rbacv3.Permission_AndRules:
		for _, sub := range r.AndRules.Rules {
			l.checkPermission(t, policy, sub)
		}
	case *rbacv3.Permission_OrRules:
		for _, sub := range r.OrRules.Rules {
			l.checkPermission(t, policy, sub)
		}
	case *rbacv3.Permission_NotRule:
		l.checkPermission(t, policy, r.NotRule)
	case *rbacv3.Permission_Header:
		l.checkHeaderMatcher(t, policy, r.Header)
	case *rbacv3.Permission_UrlPath:
		onlyFields(t, r.UrlPath, "path")
		checkStringMatcher(t, policy, r.UrlPath.GetPath())
	default:
		t.Fatalf("accesscheck: policy %q has permission %T, which this evaluator does not understand: %v", policy, p.Rule, p)
	}
}

func (l *Listener) checkPrincipal(t testing.TB, policy string, p *rbacv3.Principal) {
	t.Helper()
	switch id := p.Identifier.(type) {
	case *rbacv3.Principal_Any:
	case *rbacv3.Principal_AndIds:
		for _, sub := range id.AndIds.Ids {
			l.checkPrincipal(t, policy, sub)
		}
	case *rbacv3.Principal_OrIds:
		for _, sub := range id.OrIds.Ids {
			l.checkPrincipal(t, policy, sub)
		}
	case *rbacv3.Principal_NotId:
		l.checkPrincipal(t, policy, id.NotId)
	case *rbacv3.Principal_Authenticated_:
		onlyFields(t, id.Authenticated, "principal_name")
		if m := id.Authenticated.PrincipalName; m != nil {
			checkStringMatcher(t, policy, m)
		}
	case *rbacv3.Principal_Header:
		l.checkHeaderMatcher(t, policy, id.Header)
	case *rbacv3.Principal_UrlPath:
		onlyFields(t, id.UrlPath, "path")
		checkStringMatcher(t, policy, id.UrlPath.GetPath())
	default:
		t.Fatalf("accesscheck: policy %q has principal %T, which this evaluator does not understand: %v", policy, p.Identifier, p)
	}
}

func (l *Listener) checkHeaderMatcher(t testing.TB, policy string, h *routev3.HeaderMatcher) {
	t.Helper()
	// invert_match and treat_missing_header_as_empty change what an absent header means; the
	// translators do not write them, so they are refused rather than modelled.
	onlyFields(t, h, "name", "string_match", "present_match", "exact_match", "safe_regex_match")
	name := strings.ToLower(h.Name)
	if l.kind == GRPCServer && strings.HasPrefix(name, "grpc-") {
		t.Fatalf("accesscheck: policy %q matches header %q on a gRPC server; grpc-go refuses (NACKs) RBAC header matchers on grpc- headers", policy, h.Name)
	}
	if strings.HasPrefix(name, ":") && name != ":method" {
		t.Fatalf("accesscheck: policy %q matches pseudo-header %q, which this evaluator does not model", policy, h.Name)
	}
	if name == "host" {
		t.Fatalf("accesscheck: policy %q matches header host, which this evaluator does not model", policy)
	}
	if m := h.GetStringMatch(); m != nil {
		checkStringMatcher(t, policy, m)
	}
	if re := h.GetSafeRegexMatch(); re != nil {
		onlyFields(t, re, "regex")
		compile(t, "^(?:"+re.Regex+")$")
	}
}

func checkStringMatcher(t testing.TB, policy string, m *matcherv3.StringMatcher) {
	t.Helper()
	onlyFields(t, m, "exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case")
	if re := m.GetSafeRegex(); re != nil {
		onlyFields(t, re, "regex")
		compile(t, "^(?:"+re.Regex+")$")
	}
}

func unpack(t testing.TB, a *anypb.Any) proto.Message {
	t.Helper()
	if a == nil {
		t.Fatalf("accesscheck: a filter has no typed_config")
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		t.Fatalf("accesscheck: typed_config %s: %v", a.GetTypeUrl(), err)
	}
	return m
}

func typeNames(ms []proto.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.ProtoReflect().Descriptor().Name())
	}
	return out
}

// connection is one way a client may present a request.
type connection struct {
	// tls: the client speaks TLS with a certificate for principal.
	tls       bool
	principal string
	alpn      []string
}

// Allows reports whether req reaches the application by any connection the client may open: over
// mutual TLS with a certificate for its principal (offering, for HTTP, ALPN h2 or http/1.1, what
// Envoy sidecars and proxyless clients offer), or in plain text (without a verified identity).
// The client picks, so the request is allowed when any of them gets through.
func (l *Listener) Allows(t testing.TB, req Request) bool {
	if l.kind == GRPCServer && (!req.HTTP || req.Method != "POST") {
		// A gRPC server's transport takes HTTP/2 POSTs only; its RBAC sees nothing else.
		return false
	}
	var conns []connection
	if req.Principal != "" {
		if !req.HTTP {
			conns = append(conns, connection{tls: true, principal: req.Principal})
		} else {
			for _, alpn := range []string{"h2", "http/1.1"} {
				conns = append(conns, connection{tls: true, principal: req.Principal, alpn: []string{alpn}})
			}
			// An HTTP request may also travel as opaque bytes, as a sidecar carries a port it
			// does not know as HTTP.
			conns = append(conns, connection{tls: true, principal: req.Principal})
		}
	}
	conns = append(conns, connection{})
	return slices.ContainsFunc(conns, func(c connection) bool { return l.allowsOver(t, req, c) })
}

func (l *Listener) allowsOver(t testing.TB, req Request, conn connection) bool {
	c := l.chainFor(t, req, conn)
	if c == nil || c.mtls != conn.tls {
		// No chain, or TLS against a chain without it (Envoy: a chain without a TLS transport
		// socket passes the TLS bytes on unverified: no principal; modelled as not delivered
		// only for the HTTP chains, which cannot parse them).
		if c == nil || c.mtls || c.http != nil || l.kind == GRPCServer {
			return false
		}
		conn = connection{} // opaque bytes through a TCP chain, no identity proven
	}
	ctx := rbacContext{req: req, principal: conn.principal, http: false}
	if c.tcp != nil {
		return l.rbacAllows(t, c.tcp.rbac.GetRules(), c.tcp.rbac.GetShadowRules(), ctx)
	}
	if !req.HTTP {
		return false // opaque bytes do not parse as HTTP
	}
	ctx.http = true
	var rules, shadow *rbacv3.RBAC
	if c.http.rbac != nil {
		rules, shadow = c.http.rbac.Rules, c.http.rbac.ShadowRules
	}
	if !l.rbacAllows(t, rules, shadow, ctx) {
		return false
	}
	return slices.ContainsFunc(c.http.routes, func(r *routev3.Route) bool {
		switch {
		case r.Match.GetPath() != "":
			return req.Path == r.Match.GetPath()
		default:
			return strings.HasPrefix(req.Path, r.Match.GetPrefix())
		}
	})
}

// chainFor picks the chain as Envoy does for the listener filters present: the most specific
// transport_protocol ("tls" when tls_inspector sees TLS, else "raw_buffer"), then the most specific
// application_protocols (from TLS, or "http/1.1" from http_inspector for plain-text HTTP), falling
// back to default_filter_chain. A gRPC server has one chain without a match.
func (l *Listener) chainFor(t testing.TB, req Request, conn connection) *chain {
	if l.kind == GRPCServer {
		if len(l.chains) != 1 {
			t.Fatalf("accesscheck: gRPC server listener has %d filter chains; this evaluator understands one", len(l.chains))
		}
		return l.chains[0]
	}
	transport := "raw_buffer"
	var alpn []string
	switch {
	case conn.tls && l.tlsInspector:
		transport, alpn = "tls", conn.alpn
	case !conn.tls && req.HTTP && l.httpInspector:
		alpn = []string{"http/1.1"}
	}
	candidates := filterChains(l.chains, func(c *chain) bool { return c.transport == transport })
	if len(candidates) == 0 {
		candidates = filterChains(l.chains, func(c *chain) bool { return c.transport == "" })
	}
	byALPN := filterChains(candidates, func(c *chain) bool {
		return slices.ContainsFunc(c.alpn, func(p string) bool { return slices.Contains(alpn, p) })
	})
	if len(byALPN) == 0 {
		byALPN = filterChains(candidates, func(c *chain) bool { return len(c.alpn) == 0 })
	}
	switch len(byALPN) {
	case 0:
		return l.defaultChain
	case 1:
		return byALPN[0]
	}
	t.Fatalf("accesscheck: chains %q and %q match the same connection, which Envoy refuses", byALPN[0].name, byALPN[1].name)
	return nil
}

func filterChains(chains []*chain, keep func(*chain) bool) []*chain {
	var out []*chain
	for _, c := range chains {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// rbacContext is what an RBAC filter sees of a request.
type rbacContext struct {
	req Request
	// principal is the verified client identity, "" without one.
	principal string
	// http is set for the HTTP filter; the network filter sees no headers and no path.
	http bool
}

func (l *Listener) rbacAllows(t testing.TB, rules, shadow *rbacv3.RBAC, ctx rbacContext) bool {
	if l.shadowAsEnforced && rules == nil {
		rules = shadow
	}
	if rules == nil {
		return true // no "rules": the filter enforces nothing
	}
	matched := false
	for _, p := range rules.Policies {
		if slices.ContainsFunc(p.Permissions, func(perm *rbacv3.Permission) bool { return permits(t, perm, ctx) }) &&
			slices.ContainsFunc(p.Principals, func(pr *rbacv3.Principal) bool { return identifies(t, pr, ctx) }) {
			matched = true
			break
		}
	}
	return matched == (rules.Action == rbacv3.RBAC_ALLOW)
}

func permits(t testing.TB, p *rbacv3.Permission, ctx rbacContext) bool {
	switch r := p.Rule.(type) {
	case *rbacv3.Permission_Any:
		return r.Any
	case *rbacv3.Permission_AndRules:
		for _, sub := range r.AndRules.Rules {
			if !permits(t, sub, ctx) {
				return false
			}
		}
		return true
	case *rbacv3.Permission_OrRules:
		return slices.ContainsFunc(r.OrRules.Rules, func(sub *rbacv3.Permission) bool { return permits(t, sub, ctx) })
	case *rbacv3.Permission_NotRule:
		return !permits(t, r.NotRule, ctx)
	case *rbacv3.Permission_DestinationPort:
		return r.DestinationPort == uint32(ctx.req.Port)
	case *rbacv3.Permission_DestinationPortRange:
		port := int64(ctx.req.Port)
		return int64(r.DestinationPortRange.Start) <= port && port < int64(r.DestinationPortRange.End)
	case *rbacv3.Permission_Header:
		return headerMatches(t, r.Header, ctx)
	case *rbacv3.Permission_UrlPath:
		return ctx.http && stringMatches(t, r.UrlPath.GetPath(), ctx.req.Path)
	}
	t.Fatalf("accesscheck: permission %T is not understood", p.Rule)
	return false
}

func identifies(t testing.TB, p *rbacv3.Principal, ctx rbacContext) bool {
	switch id := p.Identifier.(type) {
	case *rbacv3.Principal_Any:
		return id.Any
	case *rbacv3.Principal_AndIds:
		for _, sub := range id.AndIds.Ids {
			if !identifies(t, sub, ctx) {
				return false
			}
		}
		return true
	case *rbacv3.Principal_OrIds:
		return slices.ContainsFunc(id.OrIds.Ids, func(sub *rbacv3.Principal) bool { return identifies(t, sub, ctx) })
	case *rbacv3.Principal_NotId:
		return !identifies(t, id.NotId, ctx)
	case *rbacv3.Principal_Authenticated_:
		if ctx.principal == "" {
			return false // no verified peer certificate
		}
		m := id.Authenticated.PrincipalName
		return m == nil || stringMatches(t, m, ctx.principal)
	case *rbacv3.Principal_Header:
		return headerMatches(t, id.Header, ctx)
	case *rbacv3.Principal_UrlPath:
		return ctx.http && stringMatches(t, id.UrlPath.GetPath(), ctx.req.Path)
	}
	t.Fatalf("accesscheck: principal %T is not understood", p.Identifier)
	return false
}

// headerMatches is Envoy's HeaderMatcher without inversion: present_match compares presence,
// string_match and the older exact_match and safe_regex_match (what the translators write, for
// clients older than gRFC A63) need the header present. The network filter sees no header at all.
func headerMatches(t testing.TB, h *routev3.HeaderMatcher, ctx rbacContext) bool {
	name := strings.ToLower(h.Name)
	var value string
	present := false
	if ctx.http {
		if name == ":method" {
			value, present = ctx.req.Method, true
		} else {
			value, present = ctx.req.Headers[name]
		}
	}
	switch s := h.HeaderMatchSpecifier.(type) {
	case *routev3.HeaderMatcher_PresentMatch:
		return present == s.PresentMatch
	case *routev3.HeaderMatcher_StringMatch:
		return present && stringMatches(t, s.StringMatch, value)
	case *routev3.HeaderMatcher_ExactMatch:
		return present && value == s.ExactMatch
	case *routev3.HeaderMatcher_SafeRegexMatch:
		return present && fullMatch(t, s.SafeRegexMatch.GetRegex(), value)
	}
	t.Fatalf("accesscheck: header matcher %v is not understood", h)
	return false
}

func stringMatches(t testing.TB, m *matcherv3.StringMatcher, s string) bool {
	fold := func(v string) string {
		if m.IgnoreCase {
			return strings.ToLower(v)
		}
		return v
	}
	switch p := m.MatchPattern.(type) {
	case *matcherv3.StringMatcher_Exact:
		return fold(s) == fold(p.Exact)
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(fold(s), fold(p.Prefix))
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(fold(s), fold(p.Suffix))
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(fold(s), fold(p.Contains))
	case *matcherv3.StringMatcher_SafeRegex:
		return fullMatch(t, p.SafeRegex.GetRegex(), s)
	}
	t.Fatalf("accesscheck: string matcher %v is not understood", m)
	return false
}

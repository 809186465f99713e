package xds

import (
	"fmt"
	"net/netip"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	httpoptionsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	corev1 "k8s.io/api/core/v1"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Names and ports of the Envoy sidecar resources; the sidecar's traffic capture (iptables) must
// redirect outbound connections to OutboundListenerPort and inbound ones to InboundListenerPort,
// as Istio's does.
const (
	OutboundListenerName = "outbound"
	OutboundListenerPort = 15001
	InboundListenerName  = "inbound"
	InboundListenerPort  = 15006
	// PassthroughClusterName sends outbound connections that no Service chain matches to their
	// original destination.
	PassthroughClusterName = "passthrough"
	// InboundPassthroughClusterName sends inbound connections, once allowed, to the application
	// at their original destination.
	InboundPassthroughClusterName = "inbound-passthrough"
)

// httpProtocolOptions is the extension name of Envoy's upstream HTTP protocol options.
const httpProtocolOptions = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// portProtocol is how Envoy sidecars carry a Service port.
type portProtocol int

const (
	protocolTCP   portProtocol = iota // opaque bytes: tcp_proxy
	protocolHTTP                      // HTTP/1.1 upstream
	protocolHTTP2                     // HTTP/2 upstream (gRPC, h2c)
)

// protocolOf tells HTTP from opaque TCP as Istio does for explicit declarations: the port's
// appProtocol, else the port name up to its first "-". An undeclared port is opaque TCP: Envoy
// sidecars here do not sniff outbound traffic, and carrying HTTP as TCP still works (without
// HTTP routes or HTTP access rules), while parsing TCP as HTTP would break it.
func protocolOf(p mesh.ServicePort) portProtocol {
	switch p.DeclaredProtocol() {
	case "http":
		return protocolHTTP
	case "http2", "grpc", "h2c", "kubernetes.io/h2c":
		return protocolHTTP2
	}
	return protocolTCP
}

// HasOutboundChains says whether the Envoy outbound listener has chains of svc: it matches a
// Service's connections by its cluster IPs, so a Service without one (headless, or not given one
// yet) has none.
func HasOutboundChains(svc mesh.Service) bool {
	return slices.ContainsFunc(svc.ClusterIPs, func(ip string) bool {
		_, err := netip.ParseAddr(ip)
		return err == nil
	})
}

// OutboundFilterChains are a Service's chains of the outbound listener, one per TCP port,
// matching connections to any of its ClusterIPs on that port (none for a headless Service):
// HTTP ports run an HttpConnectionManager with the Service port's RouteConfiguration over RDS
// (the one proxyless clients use, [ServiceResources] and [SplitRoutes]), other TCP ports a
// tcp_proxy to the Service port's cluster. split, when not nil, is the split whose apex the
// Service is: when it has no HTTP matches, its TCP ports are shared by weighted_clusters; with
// matches it only splits HTTP requests, on the RouteConfigurations.
func OutboundFilterChains(svc mesh.Service, split *mesh.Split) []*listenerv3.FilterChain {
	if !HasOutboundChains(svc) {
		return nil
	}
	var prefixes []*corev3.CidrRange
	for _, ip := range svc.ClusterIPs {
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			continue // the API server validates ClusterIPs; nothing to match on otherwise
		}
		prefixes = append(prefixes, &corev3.CidrRange{AddressPrefix: addr.String(), PrefixLen: wrapperspb.UInt32(uint32(addr.BitLen()))})
	}
	if split != nil && (len(split.Matches) > 0 || split.Apex.Namespace != svc.Namespace || split.Apex.Name != svc.Name) {
		split = nil
	}
	var out []*listenerv3.FilterChain
	for _, port := range svc.Ports {
		if port.Protocol != corev1.ProtocolTCP {
			continue
		}
		name := ListenerName(svc, port.Port)
		var filter *listenerv3.Filter
		if opaqueTCP(port) {
			filter = tcpProxy(name, tcpDestination(svc, port.Port, split))
		} else {
			filter = hcmFilter(rdsConnectionManager(name))
		}
		out = append(out, &listenerv3.FilterChain{
			Name: name,
			FilterChainMatch: &listenerv3.FilterChainMatch{
				DestinationPort: wrapperspb.UInt32(uint32(port.Port)),
				PrefixRanges:    cloneAll(prefixes),
			},
			Filters: []*listenerv3.Filter{filter},
		})
	}
	return out
}

// WeighsOnOutboundListener reports whether the Envoy outbound listener carries split's weights: a
// split without HTTP matches whose apex has an opaque TCP port (OutboundFilterChains); its HTTP
// ports are split on their RouteConfigurations.
func WeighsOnOutboundListener(split mesh.Split) bool {
	if len(split.Matches) > 0 {
		return false
	}
	return slices.ContainsFunc(split.Apex.Ports, func(p mesh.ServicePort) bool {
		return p.Protocol == corev1.ProtocolTCP && opaqueTCP(p)
	})
}

// opaqueTCP says whether a TCP port's connections go through a tcp_proxy on the outbound listener
// (where a split's weights are) rather than an HTTP connection manager over RDS.
func opaqueTCP(p mesh.ServicePort) bool { return protocolOf(p) == protocolTCP }

// tcpDestination is where a TCP port's connections go: the Service port's cluster, or the split's
// backends on the same port number (mesh checked that each exposes it).
func tcpDestination(svc mesh.Service, port int32, split *mesh.Split) *tcpproxyv3.TcpProxy {
	own := &tcpproxyv3.TcpProxy{ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: ClusterName(svc, port)}}
	if split == nil {
		return own
	}
	raw := make([]int, len(split.Backends))
	for i, b := range split.Backends {
		raw[i] = b.Weight
	}
	var clusters []*tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight
	for i, w := range clusterWeights(raw) {
		if w > 0 {
			clusters = append(clusters, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{Name: ClusterName(split.Backends[i].Service, port), Weight: w})
		}
	}
	if len(clusters) == 0 {
		return own // an unweighted split (mesh.Model.UnweightedSplits), as in weightedAction
	}
	return &tcpproxyv3.TcpProxy{ClusterSpecifier: &tcpproxyv3.TcpProxy_WeightedClusters{
		WeightedClusters: &tcpproxyv3.TcpProxy_WeightedCluster{Clusters: clusters},
	}}
}

func tcpProxy(statPrefix string, p *tcpproxyv3.TcpProxy) *listenerv3.Filter {
	p.StatPrefix = statPrefix
	return networkFilter(wellknown.TCPProxy, p)
}

// OutboundListener is the Envoy sidecars' outbound listener on 0.0.0.0:15001, shared by all of
// them: the original_dst listener filter restores each redirected connection's destination, the
// chains (from [OutboundFilterChains] of every Service) match it, and the default chain passes
// whatever matches none through to its original destination. The chains are sorted by name; a
// chain matching a destination an earlier chain already matches is left out (Envoy would reject
// the whole listener), which only malformed input can cause, ClusterIPs being unique.
func OutboundListener(chains []*listenerv3.FilterChain) *listenerv3.Listener {
	chains = slices.Clone(chains)
	sortByName(chains)
	seen := map[string]bool{}
	chains = slices.DeleteFunc(chains, func(c *listenerv3.FilterChain) bool {
		m := c.GetFilterChainMatch()
		keys := make([]string, len(m.GetPrefixRanges()))
		for i, p := range m.GetPrefixRanges() {
			keys[i] = fmt.Sprintf("%s/%d:%d", p.GetAddressPrefix(), p.GetPrefixLen().GetValue(), m.GetDestinationPort().GetValue())
		}
		if slices.ContainsFunc(keys, func(k string) bool { return seen[k] }) {
			return true
		}
		for _, k := range keys {
			seen[k] = true
		}
		return false
	})
	return &listenerv3.Listener{
		Name:            OutboundListenerName,
		Address:         socketAddress("0.0.0.0", OutboundListenerPort),
		ListenerFilters: []*listenerv3.ListenerFilter{listenerFilter(wellknown.OriginalDestination, &originaldstv3.OriginalDst{})},
		FilterChains:    chains,
		DefaultFilterChain: &listenerv3.FilterChain{
			Name:    PassthroughClusterName,
			Filters: []*listenerv3.Filter{tcpProxy(PassthroughClusterName, &tcpproxyv3.TcpProxy{ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: PassthroughClusterName}})},
		},
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
	}
}

// InboundListener is an Envoy sidecar's inbound listener on 0.0.0.0:15006 for the workload
// identity whose access rules are given (none is fine). The original_dst listener filter
// restores the destination, which the RBAC's destination_port conditions and the
// inbound-passthrough cluster use. Its chains:
//
//   - with mutual TLS, TLS connections (tls_inspector) are terminated with a client certificate
//     required; those offering ALPN "h2" or "http/1.1" (what Envoy sidecars offer for HTTP ports,
//     and proxyless gRPC clients always) run an HttpConnectionManager with the HTTP RBAC then
//     the router, the others the network RBAC then tcp_proxy;
//   - unless enforcing, plain-text connections are accepted too: HTTP (http_inspector) through
//     the same HTTP chain without TLS, the rest through the TCP one.
//
// Enforcing mode thus accepts mutual TLS only, so that every request has a proven principal; a
// plain-text connection matches no chain and is closed. It fails when the rules have several
// destinations.
func InboundListener(rules []mesh.AccessRule, settings mesh.Settings) (*listenerv3.Listener, error) {
	if err := checkOneDestination(rules); err != nil {
		return nil, err
	}
	listenerFilters := []*listenerv3.ListenerFilter{listenerFilter(wellknown.OriginalDestination, &originaldstv3.OriginalDst{})}
	var chains []*listenerv3.FilterChain
	if mtls(settings) {
		listenerFilters = append(listenerFilters, listenerFilter(wellknown.TLSInspector, &tlsinspectorv3.TlsInspector{}))
		chains = append(chains,
			&listenerv3.FilterChain{
				Name:             "inbound-mtls-http",
				FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "tls", ApplicationProtocols: alpnInboundHTTP},
				TransportSocket:  downstreamTLS(sdsContext(alpnInboundHTTP, nil)),
				Filters:          []*listenerv3.Filter{inboundHTTP(rules, settings)},
			},
			&listenerv3.FilterChain{
				Name:             "inbound-mtls-tcp",
				FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "tls"},
				TransportSocket:  downstreamTLS(sdsContext(nil, nil)),
				Filters:          inboundTCP(rules, settings),
			})
	}
	if !settings.Enforcing() {
		listenerFilters = append(listenerFilters, listenerFilter(wellknown.HTTPInspector, &httpinspectorv3.HttpInspector{}))
		chains = append(chains,
			&listenerv3.FilterChain{
				Name:             "inbound-http",
				FilterChainMatch: &listenerv3.FilterChainMatch{ApplicationProtocols: []string{"http/1.0", "http/1.1", "h2c"}},
				Filters:          []*listenerv3.Filter{inboundHTTP(rules, settings)},
			},
			&listenerv3.FilterChain{
				Name:    "inbound-tcp",
				Filters: inboundTCP(rules, settings),
			})
	}
	return &listenerv3.Listener{
		Name:             InboundListenerName,
		Address:          socketAddress("0.0.0.0", InboundListenerPort),
		ListenerFilters:  listenerFilters,
		FilterChains:     chains,
		TrafficDirection: corev3.TrafficDirection_INBOUND,
	}, nil
}

// inboundHTTP checks each request with the HTTP RBAC, then forwards it to the application.
func inboundHTTP(rules []mesh.AccessRule, settings mesh.Settings) *listenerv3.Filter {
	return hcmFilter(&hcmv3.HttpConnectionManager{
		StatPrefix: "inbound_http",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: InboundListenerName,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    InboundListenerName,
				Domains: []string{"*"},
				Routes:  []*routev3.Route{catchAll("default", clusterAction(InboundPassthroughClusterName))},
			}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{
			httpFilter(wellknown.HTTPRoleBasedAccessControl, httpRBAC(rules, accessView{}, settings)),
			routerHTTPFilter(),
		},
	})
}

// inboundTCP checks each connection with the network RBAC (TCP grants), then forwards it to the
// application.
func inboundTCP(rules []mesh.AccessRule, settings mesh.Settings) []*listenerv3.Filter {
	return []*listenerv3.Filter{
		networkFilter(wellknown.RoleBasedAccessControl, networkRBAC(rules, "inbound_tcp", settings)),
		tcpProxy("inbound_tcp", &tcpproxyv3.TcpProxy{ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: InboundPassthroughClusterName}}),
	}
}

func listenerFilter(name string, config proto.Message) *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{Name: name, ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(config)}}
}

// EnvoyClusters are a Service's clusters for Envoy sidecars, one per TCP port, named and fed
// (EDS) like the proxyless ones ([ServiceResources], whose ClusterLoadAssignments they share).
// HTTP/2 ports (grpc, http2, h2c) speak HTTP/2 upstream; with mutual TLS, the workload
// certificate and trust bundle come over SDS, the server must present one of the identities of
// the port's endpoints ([ServerIdentities]), and the ALPN offered tells the destination's
// inbound sidecar whether the connection carries HTTP.
func EnvoyClusters(svc mesh.Service, endpoints Endpoints, settings mesh.Settings) []*clusterv3.Cluster {
	var out []*clusterv3.Cluster
	for _, port := range svc.Ports {
		if port.Protocol != corev1.ProtocolTCP {
			continue
		}
		c := edsCluster(ClusterName(svc, port.Port))
		var alpn []string
		switch protocolOf(port) {
		case protocolHTTP2:
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptions: mustAny(&httpoptionsv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &httpoptionsv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpoptionsv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpoptionsv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
				}},
			})}
			alpn = alpnHTTP2
		case protocolHTTP:
			alpn = alpnHTTP1
		}
		if mtls(settings) {
			key := ServiceKey{Namespace: svc.Namespace, Name: svc.Name, Port: port.Port}
			c.TransportSocket = upstreamTLS(sdsContext(alpn, ServerIdentities(svc.Namespace, endpoints[key], settings)))
		}
		out = append(out, c)
	}
	return out
}

// PassthroughClusters are the ORIGINAL_DST clusters every Envoy sidecar needs: "passthrough"
// for outbound connections to no known Service, "inbound-passthrough" for allowed inbound
// traffic, which keeps the downstream's HTTP version towards the application.
func PassthroughClusters() []*clusterv3.Cluster {
	originalDst := func(name string) *clusterv3.Cluster {
		return &clusterv3.Cluster{
			Name:                 name,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
			LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		}
	}
	inbound := originalDst(InboundPassthroughClusterName)
	inbound.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptions: mustAny(&httpoptionsv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpoptionsv3.HttpProtocolOptions_UseDownstreamProtocolConfig{UseDownstreamProtocolConfig: &httpoptionsv3.HttpProtocolOptions_UseDownstreamHttpConfig{
			HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
			Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
		}},
	})}
	return []*clusterv3.Cluster{inbound, originalDst(PassthroughClusterName)}
}

// TranslateEnvoy is what every Envoy sidecar shares, in one call for tests and the offline
// translate command: the outbound listener, the RouteConfigurations and ClusterLoadAssignments
// (the same as [Translate]'s), the clusters of every Service ([EnvoyClusters]) and the
// passthrough clusters. The inbound listener ([InboundListener]) and the secrets
// ([WorkloadSecret], [TrustBundleSecret]) are per identity.
func TranslateEnvoy(model mesh.Model, services []mesh.Service, endpoints Endpoints, settings mesh.Settings) (Output, []mesh.Diagnostic) {
	shared, diags := translate(model, services, endpoints, settings, false)
	splits := map[[2]string]*mesh.Split{}
	for i := range model.Splits {
		s := &model.Splits[i]
		splits[[2]string{s.Apex.Namespace, s.Apex.Name}] = s
	}
	out := Output{
		RouteConfigurations:    shared.RouteConfigurations,
		ClusterLoadAssignments: shared.ClusterLoadAssignments,
		Clusters:               PassthroughClusters(),
	}
	var chains []*listenerv3.FilterChain
	for _, svc := range services {
		svcChains, clusters := OutboundFilterChains(svc, splits[[2]string{svc.Namespace, svc.Name}]), EnvoyClusters(svc, endpoints, settings)
		for _, p := range policiesOf(&model, svc) {
			PolicyOutboundChains(svcChains, p)
			PolicyClusters(clusters, p, false)
		}
		chains = append(chains, svcChains...)
		out.Clusters = append(out.Clusters, clusters...)
	}
	out.Listeners = []*listenerv3.Listener{OutboundListener(chains)}
	sortOutput(&out)
	return out, diags
}

func cloneAll[T proto.Message](list []T) []T {
	out := make([]T, len(list))
	for i, m := range list {
		out[i] = proto.Clone(m).(T)
	}
	return out
}

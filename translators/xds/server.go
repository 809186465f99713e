package xds

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Names of the Listeners that proxyless gRPC servers ask for.
const (
	// ServerListenerNamePrefix starts the name of every proxyless gRPC server Listener; the
	// listening address follows it.
	ServerListenerNamePrefix = "grpc/server?xds.resource.listening_address="
	// ServerListenerNameTemplate is the value of "server_listener_resource_name_template" in a
	// proxyless gRPC server's bootstrap: grpc-go replaces %s with its listener's address,
	// net.Listener.Addr().String(), such as "0.0.0.0:50051" or "[::]:50051".
	ServerListenerNameTemplate = ServerListenerNamePrefix + "%s"
)

// ServerListenerName is the Listener name a proxyless gRPC server listening on host:port asks for.
func ServerListenerName(host string, port uint32) string {
	return ServerListenerNamePrefix + net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
}

// ParseServerListenerName returns the listening address a proxyless gRPC server Listener name
// holds. The host comes back exactly as written, without brackets, since grpc-go refuses to serve
// unless the Listener's address is string-equal to the host it split from its own listener's
// address. The name is client input: anything but an IP address (IPv6 in brackets, with or without
// a zone of printable ASCII) and a port from 1 to 65535 without leading zeros is an error.
func ParseServerListenerName(name string) (host string, port uint32, err error) {
	addr, ok := strings.CutPrefix(name, ServerListenerNamePrefix)
	if !ok {
		return "", 0, fmt.Errorf("listener name %q does not start with %q", name, ServerListenerNamePrefix)
	}
	// grpc-go writes an IP address and a port: printable ASCII. Anything else (a zone is the only
	// free-form part) is refused before it reaches a protobuf string, which must be UTF-8.
	if i := strings.IndexFunc(addr, func(r rune) bool { return r <= ' ' || r > '~' }); i >= 0 {
		return "", 0, fmt.Errorf("listener name %q: listening address holds %q, not printable ASCII", name, addr[i:i+1])
	}
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("listener name %q: listening address: %w", name, err)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return "", 0, fmt.Errorf("listener name %q: listening address host %q is not an IP address", name, host)
	}
	n, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != portText {
		return "", 0, fmt.Errorf("listener name %q: listening address port %q is not a number from 1 to 65535", name, portText)
	}
	return host, uint32(n), nil
}

// ServerListener is the Listener of a proxyless gRPC server: name is the one it asked for (see
// [ServerListenerNameTemplate]), rules the access rules whose destination is the server's own
// identity (none is fine: see the package comment for what that means in each mode). Its only
// filter chain holds an HttpConnectionManager with an inline route configuration whose one route
// has a non_forwarding_action (grpc-go requires it on servers), and the HTTP filters RBAC then
// router. The RBAC covers only the listening port: a grant for other ports allows nothing here.
// With mutual TLS, the chain requires a client certificate, taken through certificate provider
// instances. It fails when the name is not a server Listener name or the rules have several
// destinations.
func ServerListener(name string, rules []mesh.AccessRule, settings mesh.Settings) (*listenerv3.Listener, error) {
	host, port, err := ParseServerListenerName(name)
	if err != nil {
		return nil, err
	}
	if err := checkOneDestination(rules); err != nil {
		return nil, err
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "grpc_server",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: name,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    "grpc-server",
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Name:   "default",
					Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_NonForwardingAction{NonForwardingAction: &routev3.NonForwardingAction{}},
				}},
			}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{
			httpFilter(wellknown.HTTPRoleBasedAccessControl, httpRBAC(rules, accessView{port: int32(port), proxyless: true}, settings)),
			routerHTTPFilter(),
		},
	}
	chain := &listenerv3.FilterChain{Name: "grpc-server", Filters: []*listenerv3.Filter{hcmFilter(hcm)}}
	if mtls(settings) {
		chain.TransportSocket = downstreamTLS(providerContext(nil))
	}
	return &listenerv3.Listener{
		Name:             name,
		Address:          socketAddress(host, port),
		FilterChains:     []*listenerv3.FilterChain{chain},
		TrafficDirection: corev3.TrafficDirection_INBOUND,
	}, nil
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

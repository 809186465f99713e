package xds

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

func TestParseServerListenerName(t *testing.T) {
	tests := []struct {
		name     string
		wantHost string
		wantPort uint32
		wantErr  string
	}{
		{name: "grpc/server?xds.resource.listening_address=0.0.0.0:8080", wantHost: "0.0.0.0", wantPort: 8080},
		{name: "grpc/server?xds.resource.listening_address=10.0.0.7:1", wantHost: "10.0.0.7", wantPort: 1},
		{name: "grpc/server?xds.resource.listening_address=[::]:50051", wantHost: "::", wantPort: 50051},
		{name: "grpc/server?xds.resource.listening_address=[fd00::7]:65535", wantHost: "fd00::7", wantPort: 65535},
		{name: "grpc/server?xds.resource.listening_address=[fe80::1%eth0]:50051", wantHost: "fe80::1%eth0", wantPort: 50051},
		// The host comes back as written: grpc-go compares strings.
		{name: "grpc/server?xds.resource.listening_address=[0:0::0]:50051", wantHost: "0:0::0", wantPort: 50051},

		{name: "", wantErr: "does not start with"},
		{name: "web.shop.svc.cluster.local:80", wantErr: "does not start with"},
		{name: "xdstp://authority/envoy.config.listener.v3.Listener/grpc/server?listening_address=0.0.0.0:80", wantErr: "does not start with"},
		{name: "grpc/server?xds.resource.listening_address=", wantErr: "missing port"},
		{name: "grpc/server?xds.resource.listening_address=0.0.0.0", wantErr: "missing port"},
		{name: "grpc/server?xds.resource.listening_address=:::50051", wantErr: "too many colons"},
		{name: "grpc/server?xds.resource.listening_address=:50051", wantErr: "not an IP address"},
		{name: "grpc/server?xds.resource.listening_address=localhost:50051", wantErr: "not an IP address"},
		{name: "grpc/server?xds.resource.listening_address=010.0.0.1:50051", wantErr: "not an IP address"},
		{name: "grpc/server?xds.resource.listening_address=%5B%3A%3A%5D:50051", wantErr: "not an IP address"},
		{name: "grpc/server?xds.resource.listening_address=0.0.0.0:0", wantErr: "not a number from 1 to 65535"},
		{name: "grpc/server?xds.resource.listening_address=0.0.0.0:65536", wantErr: "not a number from 1 to 65535"},
		{name: "grpc/server?xds.resource.listening_address=0.0.0.0:08080", wantErr: "not a number from 1 to 65535"},
		{name: "grpc/server?xds.resource.listening_address=0.0.0.0:+80", wantErr: "not a number from 1 to 65535"},
		{name: "grpc/server?xds.resource.listening_address=0.0.0.0:http", wantErr: "not a number from 1 to 65535"},
		{name: "grpc/server?xds.resource.listening_address=0.0.0.0:80&x=y", wantErr: "not a number from 1 to 65535"},
		{name: "grpc/server?xds.resource.listening_address=[::%\x80]:1", wantErr: "not printable ASCII"},
		{name: "grpc/server?xds.resource.listening_address=[::%eth 0]:1", wantErr: "not printable ASCII"},
		{name: "grpc/server?xds.resource.listening_address=0.0.0.0:80\n", wantErr: "not printable ASCII"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			host, port, err := ParseServerListenerName(tc.name)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseServerListenerName(%q) = %q, %d, %v; want an error containing %q", tc.name, host, port, err, tc.wantErr)
				}
				if _, err := ServerListener(tc.name, nil, mesh.Settings{}); err == nil {
					t.Errorf("ServerListener(%q) accepted the name", tc.name)
				}
				return
			}
			if err != nil || host != tc.wantHost || port != tc.wantPort {
				t.Fatalf("ParseServerListenerName(%q) = %q, %d, %v; want %q, %d", tc.name, host, port, err, tc.wantHost, tc.wantPort)
			}
		})
	}
}

// TestServerListenerNameMatchesGRPC checks that the names grpc-go asks for parse, and give back the
// host and port it compares the Listener's address with: grpc-go fills the template with
// net.Listener.Addr().String() and splits that with net.SplitHostPort.
func TestServerListenerNameMatchesGRPC(t *testing.T) {
	for _, addr := range []net.Addr{
		&net.TCPAddr{IP: net.IPv4zero, Port: 50051},
		&net.TCPAddr{IP: net.IPv6zero, Port: 50051},
		&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 8080},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 8080, Zone: "eth0"},
	} {
		name := fmt.Sprintf(ServerListenerNameTemplate, addr.String())
		wantHost, wantPort, _ := net.SplitHostPort(addr.String())
		host, port, err := ParseServerListenerName(name)
		if err != nil || host != wantHost || strconv.Itoa(int(port)) != wantPort {
			t.Errorf("ParseServerListenerName(%q) = %q, %d, %v; want %q, %s", name, host, port, err, wantHost, wantPort)
		}
		if got := ServerListenerName(host, port); got != name {
			t.Errorf("ServerListenerName(%q, %d) = %q, want %q", host, port, got, name)
		}
	}
}

func FuzzParseServerListenerName(f *testing.F) {
	for _, seed := range []string{
		ServerListenerNamePrefix + "0.0.0.0:8080",
		ServerListenerNamePrefix + "[::]:50051",
		ServerListenerNamePrefix + "[fe80::1%eth0]:1",
		ServerListenerNamePrefix + "[1.2.3.4]:80",
		ServerListenerNamePrefix + "0.0.0.0:08080",
		"web.shop.svc.cluster.local:80",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		host, port, err := ParseServerListenerName(name)
		if err != nil {
			if host != "" || port != 0 {
				t.Fatalf("error %v with host %q port %d", err, host, port)
			}
			return
		}
		if port == 0 || port > 65535 {
			t.Fatalf("port %d", port)
		}
		// What parsed must survive the round trip and make a valid Listener with that address.
		again, againPort, err := ParseServerListenerName(ServerListenerName(host, port))
		if err != nil || again != host || againPort != port {
			t.Fatalf("round trip of %q: %q, %d, %v", name, again, againPort, err)
		}
		l, err := ServerListener(name, nil, mesh.Settings{})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.ValidateAll(); err != nil {
			t.Fatal(err)
		}
		if sa := l.GetAddress().GetSocketAddress(); sa.GetAddress() != host || sa.GetPortValue() != port || l.Name != name {
			t.Fatalf("listener %q at %v, want %q port %d", l.Name, sa, host, port)
		}
	})
}

func TestServerListener(t *testing.T) {
	name := ServerListenerName("::", 50051)
	tcpRule := rule("tt", []mesh.Identity{webID}, func(r *mesh.AccessRule) { r.TCP = ports(50051) })
	for _, tc := range []struct {
		name       string
		settings   mesh.Settings
		wantTLS    bool
		wantShadow bool
	}{
		{name: "enforcing: mTLS, rules enforced", wantTLS: true},
		{name: "permissive: no TLS, shadow rules", settings: mesh.Settings{Access: mesh.AccessPermissive}, wantShadow: true},
		{name: "permissive with mTLS", settings: mesh.Settings{Access: mesh.AccessPermissive, MTLS: true}, wantTLS: true, wantShadow: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ServerListener(name, []mesh.AccessRule{tcpRule}, tc.settings)
			if err != nil {
				t.Fatal(err)
			}
			validateDeep(t, l)
			if sa := l.GetAddress().GetSocketAddress(); sa.GetAddress() != "::" || sa.GetPortValue() != 50051 {
				t.Errorf("address %v, want :: port 50051", sa)
			}
			// grpc-go refuses these on server listeners.
			if len(l.ListenerFilters) != 0 || l.GetUseOriginalDst().GetValue() || len(l.FilterChains) != 1 {
				t.Fatalf("want one filter chain and no listener filters: %v", l)
			}
			chain := l.FilterChains[0]
			if chain.FilterChainMatch != nil {
				t.Errorf("filter chain match %v: grpc-go drops chains matching on destination port, server names, transport or application protocols", chain.FilterChainMatch)
			}
			if got := chain.TransportSocket != nil; got != tc.wantTLS {
				t.Fatalf("transport socket %v, want TLS %v", chain.TransportSocket, tc.wantTLS)
			}
			if tc.wantTLS {
				var dtc tlsv3.DownstreamTlsContext
				if err := chain.TransportSocket.GetTypedConfig().UnmarshalTo(&dtc); err != nil {
					t.Fatal(err)
				}
				common := dtc.GetCommonTlsContext()
				if !dtc.GetRequireClientCertificate().GetValue() ||
					common.GetTlsCertificateProviderInstance().GetInstanceName() != CertificateProviderInstance ||
					common.GetValidationContext().GetCaCertificateProviderInstance().GetInstanceName() != CertificateProviderInstance ||
					len(common.GetTlsCertificateSdsSecretConfigs()) != 0 {
					t.Errorf("DownstreamTlsContext %v: want client certificates required, certificate provider instances only", &dtc)
				}
			}
			var hcm hcmv3.HttpConnectionManager
			if err := chain.Filters[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
				t.Fatal(err)
			}
			routes := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
			if len(routes) != 1 || routes[0].GetNonForwardingAction() == nil {
				t.Errorf("routes %v: want one with a non_forwarding_action", routes)
			}
			filters := hcm.GetHttpFilters()
			if len(filters) != 2 || filters[0].Name != wellknown.HTTPRoleBasedAccessControl || filters[1].Name != wellknown.Router {
				t.Fatalf("HTTP filters %v: want RBAC then router", filters)
			}
			var rbac rbachttpv3.RBAC
			if err := filters[0].GetTypedConfig().UnmarshalTo(&rbac); err != nil {
				t.Fatal(err)
			}
			if got := rbac.Rules == nil; got != tc.wantShadow {
				t.Errorf("rules %v, want unset %v", rbac.Rules, tc.wantShadow)
			}
			if got := rbac.ShadowRules != nil; got != tc.wantShadow {
				t.Errorf("shadow rules %v, want set %v", rbac.ShadowRules, tc.wantShadow)
			}
		})
	}
}

func TestServerListenerRefusesRulesOfTwoDestinations(t *testing.T) {
	a := rule("a", []mesh.Identity{webID}, func(r *mesh.AccessRule) { r.TCP = allPorts })
	b := rule("b", []mesh.Identity{promID}, func(r *mesh.AccessRule) { r.TCP = allPorts; r.Destination = webID })
	_, err := ServerListener(ServerListenerName("0.0.0.0", 8080), []mesh.AccessRule{a, b}, mesh.Settings{})
	if err == nil || !strings.Contains(err.Error(), "two destinations") {
		t.Errorf("err = %v, want one about two destinations", err)
	}
}

package xds

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

func TestProtocolOf(t *testing.T) {
	for _, tc := range []struct {
		port mesh.ServicePort
		want portProtocol
	}{
		{mesh.ServicePort{Name: "http"}, protocolHTTP},
		{mesh.ServicePort{Name: "http-web"}, protocolHTTP},
		{mesh.ServicePort{Name: "HTTP-web"}, protocolHTTP},
		{mesh.ServicePort{Name: "http2-web"}, protocolHTTP2},
		{mesh.ServicePort{Name: "grpc"}, protocolHTTP2},
		{mesh.ServicePort{Name: "grpc-web"}, protocolHTTP2},
		{mesh.ServicePort{Name: "h2c-x"}, protocolHTTP2},
		{mesh.ServicePort{Name: "web"}, protocolTCP},
		{mesh.ServicePort{Name: "httpx"}, protocolTCP},
		{mesh.ServicePort{Name: "https"}, protocolTCP},
		{mesh.ServicePort{Name: "tcp-http"}, protocolTCP},
		{mesh.ServicePort{}, protocolTCP},
		// appProtocol wins over the name.
		{mesh.ServicePort{Name: "web", AppProtocol: "http"}, protocolHTTP},
		{mesh.ServicePort{Name: "web", AppProtocol: "kubernetes.io/h2c"}, protocolHTTP2},
		{mesh.ServicePort{Name: "http-web", AppProtocol: "tcp"}, protocolTCP},
		{mesh.ServicePort{Name: "grpc", AppProtocol: "https"}, protocolTCP},
	} {
		if got := protocolOf(tc.port); got != tc.want {
			t.Errorf("protocolOf(%+v) = %v, want %v", tc.port, got, tc.want)
		}
	}
}

func TestHostDomains(t *testing.T) {
	svc := mesh.Service{Namespace: "shop", Name: "web", FQDN: "web.shop.svc.corp.example", ClusterIPs: []string{"10.96.0.10", "fd00::a"}}
	want := []string{
		"web.shop.svc.corp.example:80",
		"web", "web:80", "web.shop", "web.shop:80", "web.shop.svc", "web.shop.svc:80", "web.shop.svc.corp.example",
		"10.96.0.10", "10.96.0.10:80", "[fd00::a]", "[fd00::a]:80",
	}
	if d := cmp.Diff(want, hostDomains(svc, 80)); d != "" {
		t.Errorf("hostDomains (-want +got):\n%s", d)
	}
}

func TestOutboundFilterChains(t *testing.T) {
	svc := mesh.Service{Namespace: "shop", Name: "db", FQDN: "db.shop.svc.cluster.local", ClusterIPs: []string{"not-an-ip", "10.96.0.5"},
		Ports: []mesh.ServicePort{
			{Name: "tcp", Port: 5432, Protocol: corev1.ProtocolTCP},
			{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
			{Name: "sctp", Port: 99, Protocol: corev1.ProtocolSCTP},
		}}
	tcpCluster := func(chains []*listenerv3.FilterChain) *tcpproxyv3.TcpProxy {
		t.Helper()
		if len(chains) != 1 {
			t.Fatalf("want one chain (TCP port only), got %d", len(chains))
		}
		var p tcpproxyv3.TcpProxy
		if err := chains[0].Filters[0].GetTypedConfig().UnmarshalTo(&p); err != nil {
			t.Fatal(err)
		}
		if r := chains[0].FilterChainMatch.PrefixRanges; len(r) != 1 || r[0].AddressPrefix != "10.96.0.5" || r[0].PrefixLen.GetValue() != 32 {
			t.Errorf("prefix ranges %v: want the valid ClusterIP only", r)
		}
		return &p
	}
	backends := []mesh.Backend{{Service: mesh.Service{FQDN: "db-v2.shop.svc.cluster.local"}, Weight: 3}, {Service: mesh.Service{FQDN: "db-v3.shop.svc.cluster.local"}, Weight: 0}}
	split := &mesh.Split{Apex: svc, Backends: backends}
	if got := tcpCluster(OutboundFilterChains(svc, nil)).GetCluster(); got != ClusterName(svc, 5432) {
		t.Errorf("without split: cluster %q", got)
	}
	w := tcpCluster(OutboundFilterChains(svc, split)).GetWeightedClusters().GetClusters()
	if len(w) != 1 || w[0].Name != "outbound|5432||db-v2.shop.svc.cluster.local" || w[0].Weight != 3 {
		t.Errorf("split without matches: weighted clusters %v, want db-v2 only (zero weights left out)", w)
	}
	withMatches := &mesh.Split{Apex: svc, Backends: backends, Matches: []mesh.HTTPMatch{matchAny}}
	if got := tcpCluster(OutboundFilterChains(svc, withMatches)).GetCluster(); got != ClusterName(svc, 5432) {
		t.Errorf("split with matches: cluster %q, want the apex's own", got)
	}
	other := &mesh.Split{Apex: mesh.Service{Namespace: "shop", Name: "other"}, Backends: backends}
	if got := tcpCluster(OutboundFilterChains(svc, other)).GetCluster(); got != ClusterName(svc, 5432) {
		t.Errorf("another apex's split: cluster %q, want the Service's own", got)
	}
	allZero := &mesh.Split{Apex: svc, Backends: []mesh.Backend{{Service: mesh.Service{FQDN: "x"}}}}
	if got := tcpCluster(OutboundFilterChains(svc, allZero)).GetCluster(); got != ClusterName(svc, 5432) {
		t.Errorf("all weights zero: cluster %q, want the apex's own", got)
	}
	svc.ClusterIPs = nil
	if got := OutboundFilterChains(svc, nil); got != nil {
		t.Errorf("headless Service: chains %v", got)
	}
}

func TestOutboundListenerLeavesOutOverlappingChains(t *testing.T) {
	a := mesh.Service{Namespace: "shop", Name: "a", FQDN: "a.shop.svc.cluster.local", ClusterIPs: []string{"10.96.0.5"},
		Ports: []mesh.ServicePort{{Name: "tcp", Port: 80, Protocol: corev1.ProtocolTCP}}}
	b := a
	b.Name, b.FQDN = "b", "b.shop.svc.cluster.local"
	c := a
	c.Name, c.FQDN, c.ClusterIPs = "c", "c.shop.svc.cluster.local", []string{"10.96.0.6"}
	var chains []*listenerv3.FilterChain
	for _, s := range []mesh.Service{c, b, a} {
		chains = append(chains, OutboundFilterChains(s, nil)...)
	}
	l := OutboundListener(chains)
	validateDeep(t, l)
	var names []string
	for _, ch := range l.FilterChains {
		names = append(names, ch.Name)
	}
	if d := cmp.Diff([]string{"a.shop.svc.cluster.local:80", "c.shop.svc.cluster.local:80"}, names); d != "" {
		t.Errorf("chains (-want +got):\n%s", d)
	}
	if len(chains) != 3 {
		t.Errorf("the caller's slice changed: %d chains", len(chains))
	}
}

func TestInboundListener(t *testing.T) {
	rules := []mesh.AccessRule{rule("tt", []mesh.Identity{webID}, func(r *mesh.AccessRule) { r.TCP = ports(5432) })}
	for _, tc := range []struct {
		name     string
		settings mesh.Settings
		want     []string
	}{
		{name: "enforcing: mutual TLS only", want: []string{"inbound-mtls-http", "inbound-mtls-tcp"}},
		{name: "enforcing with MTLS set", settings: mesh.Settings{MTLS: true}, want: []string{"inbound-mtls-http", "inbound-mtls-tcp"}},
		{name: "permissive: plain text only", settings: mesh.Settings{Access: mesh.AccessPermissive}, want: []string{"inbound-http", "inbound-tcp"}},
		{name: "permissive with mTLS: both", settings: mesh.Settings{Access: mesh.AccessPermissive, MTLS: true},
			want: []string{"inbound-mtls-http", "inbound-mtls-tcp", "inbound-http", "inbound-tcp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := InboundListener(rules, tc.settings)
			if err != nil {
				t.Fatal(err)
			}
			validateDeep(t, l)
			var names []string
			for _, c := range l.FilterChains {
				names = append(names, c.Name)
				if tls := c.TransportSocket != nil; tls != strings.HasPrefix(c.Name, "inbound-mtls-") {
					t.Errorf("chain %s: TLS %v", c.Name, tls)
				}
				if c.TransportSocket != nil {
					var dtc tlsv3.DownstreamTlsContext
					if err := c.TransportSocket.GetTypedConfig().UnmarshalTo(&dtc); err != nil {
						t.Fatal(err)
					}
					common := dtc.GetCommonTlsContext()
					if !dtc.GetRequireClientCertificate().GetValue() ||
						common.GetTlsCertificateSdsSecretConfigs()[0].GetName() != WorkloadSecretName ||
						common.GetValidationContextSdsSecretConfig().GetName() != TrustBundleSecretName {
						t.Errorf("chain %s: DownstreamTlsContext %v", c.Name, &dtc)
					}
					// The secrets come from the pod agent, which holds the key, not from the operator.
					for _, sds := range []*tlsv3.SdsSecretConfig{common.GetTlsCertificateSdsSecretConfigs()[0], common.GetValidationContextSdsSecretConfig()} {
						if got := sds.GetSdsConfig().GetApiConfigSource().GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName(); got != SDSCluster {
							t.Errorf("chain %s: secret %s from %v, want the static cluster %s", c.Name, sds.GetName(), sds.GetSdsConfig(), SDSCluster)
						}
					}
				}
			}
			if d := cmp.Diff(tc.want, names); d != "" {
				t.Errorf("chains (-want +got):\n%s", d)
			}
			if l.GetAddress().GetSocketAddress().GetPortValue() != InboundListenerPort || l.ListenerFilters[0].Name != wellknown.OriginalDestination {
				t.Errorf("listener %v: want port %d and original_dst first", l.GetAddress(), InboundListenerPort)
			}
		})
	}
	b := rule("b", nil, func(r *mesh.AccessRule) { r.Destination = webID })
	if _, err := InboundListener(append(rules, b), mesh.Settings{}); err == nil {
		t.Error("InboundListener accepted rules of two destinations")
	}
}

func TestSecrets(t *testing.T) {
	w := WorkloadSecret([]byte("CERT"), []byte("KEY"))
	if w.Name != WorkloadSecretName || string(w.GetTlsCertificate().GetCertificateChain().GetInlineBytes()) != "CERT" ||
		string(w.GetTlsCertificate().GetPrivateKey().GetInlineBytes()) != "KEY" {
		t.Errorf("WorkloadSecret = %v", w)
	}
	b := TrustBundleSecret([]byte("CA"))
	if b.Name != TrustBundleSecretName || string(b.GetValidationContext().GetTrustedCa().GetInlineBytes()) != "CA" {
		t.Errorf("TrustBundleSecret = %v", b)
	}
	validateDeep(t, w)
	validateDeep(t, b)
}

func TestPassthroughClusters(t *testing.T) {
	cs := PassthroughClusters()
	if len(cs) != 2 || cs[0].Name != InboundPassthroughClusterName || cs[1].Name != PassthroughClusterName {
		t.Fatalf("clusters %v", cs)
	}
	for _, c := range cs {
		validateDeep(t, c)
	}
}

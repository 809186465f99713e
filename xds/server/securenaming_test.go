package server_test

import (
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/server"
)

// TestClustersAcceptTheIdentitiesOfTheirEndpoints (secure naming): a Service's cluster accepts,
// for proxyless clients and Envoy sidecars alike, no server identity while its endpoints' Pods
// are unknown (the match-nothing SPIFFE ID, never an empty list, which would accept any), then
// exactly the identity of its endpoints once their Pod is known, pushed to the clients already
// subscribed; the same endpoints again push nothing.
func TestClustersAcceptTheIdentitiesOfTheirEndpoints(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessEnforcing}})
	key := types.NamespacedName{Namespace: "shop", Name: "vault"}
	vault := mesh.Service{Namespace: "shop", Name: "vault", FQDN: "vault.shop.svc.cluster.local", ClusterIPs: []string{"10.96.0.11"},
		Ports: []mesh.ServicePort{{Name: "grpc", Port: 80, Protocol: corev1.ProtocolTCP, AppProtocol: "grpc"}}}
	endpoints := func(sa string) xds.Endpoints {
		return xds.Endpoints{{Namespace: "shop", Name: "vault", Port: 80}: {{Address: "10.0.0.1", Port: 8080, Ready: true, ServiceAccount: sa}}}
	}
	const cluster = "outbound|80||vault.shop.svc.cluster.local"
	f.srv.SetService(key, vault, endpoints(""))

	streams := map[string]discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient{}
	for _, proxy := range []string{server.ProxyGRPC, server.ProxyEnvoy} {
		stream, resp := f.subscribe(t, proxy, "shop", "teller", resourcev3.ClusterType)
		streams[proxy] = stream
		if got, want := acceptedServers(t, clusterOf(t, resp, cluster)), []string{xds.NobodySPIFFEID}; !slices.Equal(got, want) {
			t.Errorf("%s: the cluster of endpoints of unknown Pods accepts %v, want %v", proxy, got, want)
		}
	}

	f.srv.SetService(key, vault, endpoints("vault"))
	for proxy, stream := range streams {
		resp := recvAndACK(t, stream)
		if got, want := acceptedServers(t, clusterOf(t, resp, cluster)), []string{"spiffe://cluster.local/ns/shop/sa/vault"}; !slices.Equal(got, want) {
			t.Errorf("%s: once its endpoint's Pod is known, the cluster accepts %v, want %v", proxy, got, want)
		}
	}

	f.srv.SetService(key, vault, endpoints("vault"))
	received := make(chan error, 1)
	go func() { _, err := streams[server.ProxyGRPC].Recv(); received <- err }()
	select {
	case err := <-received:
		t.Errorf("the same endpoints again pushed the clusters (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
}

func clusterOf(t *testing.T, resp *discoveryv3.DiscoveryResponse, name string) *clusterv3.Cluster {
	t.Helper()
	c, ok := resourcesByName(t, resp)[name].(*clusterv3.Cluster)
	if !ok {
		t.Fatalf("no cluster %s in the response", name)
	}
	return c
}

// acceptedServers are the SANs a cluster's upstream TLS accepts, each an exact match: in its
// validation context (proxyless) or its combined validation context's default (Envoy).
func acceptedServers(t *testing.T, c *clusterv3.Cluster) []string {
	t.Helper()
	tlsContext := &tlsv3.UpstreamTlsContext{}
	if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(tlsContext); err != nil {
		t.Fatalf("cluster %s: no upstream TLS: %v", c.Name, err)
	}
	common := tlsContext.GetCommonTlsContext()
	validation := common.GetValidationContext()
	if combined := common.GetCombinedValidationContext(); combined != nil {
		validation = combined.GetDefaultValidationContext()
	}
	var out []string
	for _, m := range validation.GetMatchSubjectAltNames() {
		if m.GetExact() == "" {
			t.Errorf("cluster %s: SAN matcher %v is not an exact one", c.Name, m)
		}
		out = append(out, m.GetExact())
	}
	return out
}

package grpcxds_test

// The harness's own proof: a tiny go-control-plane server (test code only; the operator's xDS
// server is tested with the same helpers elsewhere) feeds grpc-go clients and servers running in
// a network namespace of their own.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
)

func TestMain(m *testing.M) { netns.Main(m) }

// timeout bounds every wait on xDS: a few seconds is plenty on an idle namespace.
const timeout = 20 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// controlPlane is a minimal xDS management server: one snapshot per node ID, in a SnapshotCache
// with ads=false (grpc-go names every resource it wants, so an ADS-mode cache, which waits for
// requests naming every resource of a type, would never answer it).
type controlPlane struct {
	addr  string
	cache cachev3.SnapshotCache

	mu      sync.Mutex
	version int
	auth    []string // the authorization metadata of every ADS stream, in order
}

func startControlPlane(t *testing.T, opts ...grpc.ServerOption) *controlPlane {
	t.Helper()
	cp := &controlPlane{cache: cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)}
	opts = append(opts, grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		md, _ := metadata.FromIncomingContext(ss.Context())
		cp.mu.Lock()
		cp.auth = append(cp.auth, md.Get("authorization")...)
		if len(md.Get("authorization")) == 0 {
			cp.auth = append(cp.auth, "")
		}
		cp.mu.Unlock()
		return handler(srv, ss)
	}))
	s := grpc.NewServer(opts...)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(s, serverv3.NewServer(context.Background(), cp.cache, nil))
	lis, err := net.Listen("tcp", netns.HostPort(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	cp.addr = lis.Addr().String()
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return cp
}

// set replaces node's resources with these (a new version of every type).
func (cp *controlPlane) set(t *testing.T, node string, resources ...proto.Message) {
	t.Helper()
	byType := map[resourcev3.Type][]types.Resource{}
	for _, r := range resources {
		var typ resourcev3.Type
		switch r.(type) {
		case *listenerv3.Listener:
			typ = resourcev3.ListenerType
		case *routev3.RouteConfiguration:
			typ = resourcev3.RouteType
		case *clusterv3.Cluster:
			typ = resourcev3.ClusterType
		case *endpointv3.ClusterLoadAssignment:
			typ = resourcev3.EndpointType
		default:
			t.Fatalf("no xDS type for %T", r)
		}
		byType[typ] = append(byType[typ], r)
	}
	cp.mu.Lock()
	cp.version++
	version := strconv.Itoa(cp.version)
	cp.mu.Unlock()
	snap, err := cachev3.NewSnapshot(version, byType)
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.cache.SetSnapshot(context.Background(), node, snap); err != nil {
		t.Fatal(err)
	}
}

func (cp *controlPlane) authorizations() []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]string(nil), cp.auth...)
}

// bootstrap is a client or server bootstrap for node pointing at cp.
func (cp *controlPlane) bootstrap(node string) grpcxds.Bootstrap {
	return grpcxds.Bootstrap{ServerURI: cp.addr, NodeID: node, NodeMetadata: map[string]any{"TEST": "grpcxds"}}
}

// dial makes a client for node on target and closes it when the test ends.
func dial(t *testing.T, target string, b grpcxds.Bootstrap) *grpc.ClientConn {
	t.Helper()
	conn, err := grpcxds.Dial(target, b.MustJSON())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func backend(t *testing.T, name, addr string) *grpcxds.Backend {
	t.Helper()
	b, err := grpcxds.StartBackend(name, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

func xdsBackend(t *testing.T, name, addr string, bootstrap grpcxds.Bootstrap) *grpcxds.Backend {
	t.Helper()
	b, err := grpcxds.StartXDSBackend(name, addr, bootstrap.MustJSON())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

// --- xDS resources for proxyless gRPC ---

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func router() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}}
}

// apiListener is a client Listener: its name is the target, its routes come over RDS.
func apiListener(target, routeConfig string) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: routeConfig}},
		HttpFilters:    []*hcmv3.HttpFilter{router()},
	}
	return &listenerv3.Listener{Name: target, ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(hcm)}}
}

func routeConfig(name, domain string, routes ...*routev3.Route) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name:         name,
		VirtualHosts: []*routev3.VirtualHost{{Name: name, Domains: []string{domain}, Routes: routes}},
	}
}

type weighted struct {
	cluster string
	weight  uint32
}

// route sends what match matches to clusters, split by weight.
func route(match *routev3.RouteMatch, clusters ...weighted) *routev3.Route {
	wc := &routev3.WeightedCluster{}
	for _, c := range clusters {
		wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{Name: c.cluster, Weight: wrapperspb.UInt32(c.weight)})
	}
	return &routev3.Route{
		Match:  match,
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}}},
	}
}

func prefix(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

// edsCluster is an EDS cluster whose endpoints come as the ClusterLoadAssignment of the same name;
// tls, when set, is its transport socket.
func edsCluster(name string, tls *tlsv3.UpstreamTlsContext) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()},
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
	}
	if tls != nil {
		c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(tls)}}
	}
	return c
}

// endpoints is cluster's load assignment: one locality (grpc-go drops a locality without a
// locality field or a load_balancing_weight) with addrs ("ip:port").
func endpoints(t *testing.T, cluster string, addrs ...string) *endpointv3.ClusterLoadAssignment {
	t.Helper()
	var lbs []*endpointv3.LbEndpoint
	for _, a := range addrs {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			t.Fatal(err)
		}
		lbs = append(lbs, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(ap)}},
			HealthStatus:   corev3.HealthStatus_HEALTHY,
		})
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: cluster,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			Locality:            &corev3.Locality{Region: "test", Zone: "netns"},
			LoadBalancingWeight: wrapperspb.UInt32(1),
			LbEndpoints:         lbs,
		}},
	}
}

func socketAddress(ap netip.AddrPort) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       ap.Addr().String(),
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(ap.Port())},
	}}}
}

// serverListener is the Listener an xDS-enabled server on addr asks for: one filter chain with an
// HTTP connection manager running filters, then the router, over an inline route configuration
// whose one route has a non_forwarding_action (the only action a server accepts); tls, when set,
// is the chain's transport socket.
func serverListener(t *testing.T, addr string, tls *tlsv3.DownstreamTlsContext, filters ...*hcmv3.HttpFilter) *listenerv3.Listener {
	t.Helper()
	return inboundListener(t, addr, tls, []*routev3.Route{{
		Match:  prefix("/"),
		Action: &routev3.Route_NonForwardingAction{NonForwardingAction: &routev3.NonForwardingAction{}},
	}}, filters...)
}

// inboundListener is serverListener with these routes.
func inboundListener(t *testing.T, addr string, tls *tlsv3.DownstreamTlsContext, routes []*routev3.Route, filters ...*hcmv3.HttpFilter) *listenerv3.Listener {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	hcm := &hcmv3.HttpConnectionManager{
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: "inbound",
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    "inbound",
				Domains: []string{"*"},
				Routes:  routes,
			}},
		}},
		HttpFilters: append(filters, router()),
	}
	chain := &listenerv3.FilterChain{
		Name: "inbound",
		Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
		}},
	}
	if tls != nil {
		chain.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(tls)}}
	}
	return &listenerv3.Listener{
		Name:         grpcxds.ServerListenerName(addr),
		Address:      socketAddress(ap),
		FilterChains: []*listenerv3.FilterChain{chain},
	}
}

// --- certificates ---

// testCA issues short-lived certificates from a throw-away root, written as PEM files.
type testCA struct {
	dir    string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	caFile string
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "grpcxds test root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{dir: t.TempDir(), cert: cert, key: key}
	ca.caFile = ca.write(t, "ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(t *testing.T, name, block string, der []byte) string {
	t.Helper()
	path := filepath.Join(ca.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: block, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var serial atomic.Int64

// issue makes a certificate (client and server usage) with a URI SAN spiffeID (when not "") and
// IP SANs ips, and returns its files with the CA as roots.
func (ca *testCA) issue(t *testing.T, name, spiffeID string, ips ...netip.Addr) grpcxds.PEMFiles {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1) + 1),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if spiffeID != "" {
		u, err := url.Parse(spiffeID)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = []*url.URL{u}
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return grpcxds.PEMFiles{
		CertificateFile:   ca.write(t, name+".pem", "CERTIFICATE", der),
		PrivateKeyFile:    ca.write(t, name+"-key.pem", "PRIVATE KEY", keyDER),
		CACertificateFile: ca.caFile,
	}
}

// portOf is the port of "ip:port".
func portOf(t *testing.T, addr string) uint16 {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return ap.Port()
}

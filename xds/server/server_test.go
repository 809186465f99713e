package server_test

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/auth"
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

// tokens is an Authenticator that knows a fixed set of tokens.
type tokens = grpcxds.Tokens

type fixture struct {
	// tls: the server is startServer's, over TLS, where a node's identity must be proven.
	tls  bool
	addr string
	srv  *server.Server
	reg  *prometheus.Registry
	conn *grpc.ClientConn
	// caFile is the PEM file of the certificate the server presents, for bootstraps.
	caFile string
}

// The package's grpc-go clients send their bootstrap's token (call_creds), as injected
// workloads do: over TLS, a node's identity is only served to a stream whose token proves it.
func TestMain(m *testing.M) { os.Exit(grpcxds.RunWithCallCreds(m.Run)) }

// startServer serves opts over TLS, as the operator does unless told otherwise, on a loopback
// port until the test ends, with a client trusting it. Its authenticator takes tokenOf's tokens
// too, besides those of opts.Authenticator.
func startServer(t *testing.T, opts server.Options) *fixture {
	t.Helper()
	cert, pool := selfSigned(t)
	opts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	opts.Authenticator = identityTokens{Next: opts.Authenticator}
	f := serve(t, opts)
	f.caFile = filepath.Join(t.TempDir(), "xds-server.pem")
	if err := os.WriteFile(f.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	f.conn = dialServer(t, f.addr, credentials.NewTLS(&tls.Config{RootCAs: pool}))
	f.tls = true
	return f
}

// startPlainTextServer serves opts in plain text (the operator's explicit opt-out) on a loopback
// port until the test ends, with a plain-text client.
func startPlainTextServer(t *testing.T, opts server.Options) *fixture {
	t.Helper()
	f := serve(t, opts)
	f.conn = dialServer(t, f.addr, insecure.NewCredentials())
	return f
}

func dialServer(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// serve serves opts on a loopback port until the test ends, with its own metrics registry.
func serve(t *testing.T, opts server.Options) *fixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	opts.Log = logr.Discard()
	srv := server.New(opts)
	return &fixture{addr: grpcxds.ServeLoopback(t, srv), srv: srv, reg: reg}
}

// tokenOf is a token proving ServiceAccount namespace/serviceAccount to a server of startServer.
func tokenOf(namespace, serviceAccount string) string {
	return identityToken(auth.Identity{Namespace: namespace, ServiceAccount: serviceAccount})
}

// tokenFileOf writes tokenOf(namespace, serviceAccount) to a file, for a bootstrap's JWTTokenFile.
func tokenFileOf(t *testing.T, namespace, serviceAccount string) string {
	t.Helper()
	path, err := identityTokenFile(t.TempDir(), auth.Identity{Namespace: namespace, ServiceAccount: serviceAccount})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// adsAs opens a stream for a node of ServiceAccount namespace/serviceAccount ("": none): with the
// token proving it over TLS, without one in plain text, where tokens are refused.
func (f *fixture) adsAs(t *testing.T, namespace, serviceAccount string) discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
	t.Helper()
	if !f.tls || namespace == "" {
		return f.ads(t, "")
	}
	return f.ads(t, tokenOf(namespace, serviceAccount))
}

// ads opens a stream, with "authorization: Bearer token" when token is not empty.
func (f *fixture) ads(t *testing.T, token string) discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(f.conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

// shopService is Service name of namespace shop with one gRPC port, 80.
func shopService(name string) mesh.Service {
	return mesh.Service{Namespace: "shop", Name: name, FQDN: name + ".shop.svc.cluster.local",
		Ports: []mesh.ServicePort{{Name: "grpc", Port: 80, Protocol: corev1.ProtocolTCP}}}
}

func node(proxy, namespace, serviceAccount string) *corev3.Node {
	meta, _ := structpb.NewStruct(map[string]any{
		server.MetadataProxy: proxy, server.MetadataNamespace: namespace, server.MetadataServiceAccount: serviceAccount,
	})
	return &corev3.Node{Id: namespace + "/" + serviceAccount, Metadata: meta}
}

func newAuthority(t *testing.T) *ca.Authority {
	t.Helper()
	a, err := ca.New(context.Background(), fake.NewSimpleClientset(), ca.Options{
		Secret: types.NamespacedName{Namespace: "smi-operator-system", Name: "xds-ca"}, TrustDomain: "cluster.local",
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestNoSecretsOverADS: the server serves no secrets, not even to a stream whose token proves the
// identity it claims, over TLS: the workload's key is made in its pod, and the pod agent serves
// the certificate. (It used to serve the workload's certificate and key here.)
func TestNoSecretsOverADS(t *testing.T) {
	f := startServer(t, server.Options{
		Settings:      mesh.Settings{Access: mesh.AccessEnforcing},
		Authenticator: tokens{"token-of-a": {Namespace: "shop", ServiceAccount: "a"}},
		CA:            newAuthority(t),
	})
	// Without a token a node may claim no identity over TLS (TestUnprovenIdentityIsRefusedOverTLS).
	for token, nd := range map[string]*corev3.Node{"token-of-a": node(server.ProxyEnvoy, "shop", "a"), "": node(server.ProxyEnvoy, "", "")} {
		stream := f.ads(t, token)
		_ = stream.Send(&discoveryv3.DiscoveryRequest{Node: nd, TypeUrl: resourcev3.SecretType,
			ResourceNames: []string{xds.WorkloadSecretName, xds.TrustBundleSecretName}})
		resp, err := stream.Recv()
		if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "pod agent") {
			t.Errorf("token %q: got %d secrets, error %v; want Unimplemented naming the pod agent", token, len(resp.GetResources()), err)
		}
	}
}

// TestNACKIsCountedAndNotResent: a proxy that rejects a RouteConfiguration is not sent it again,
// and the NACK is counted; a new version is pushed once the content changes.
func TestNACKIsCountedAndNotResent(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive}})
	// The split sends everything to one backend; each version names another one.
	routes := func(backend string) *mesh.Split {
		return &mesh.Split{Source: mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "web"}, Apex: shopService("web"),
			Backends: []mesh.Backend{{Service: shopService(backend), Weight: 1}}}
	}
	split := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "web"}
	f.srv.SetSplit(split, routes("v1"))

	stream := f.adsAs(t, "shop", "client")
	req := &discoveryv3.DiscoveryRequest{Node: node(server.ProxyGRPC, "shop", "client"), TypeUrl: resourcev3.RouteType, ResourceNames: []string{"web.shop.svc.cluster.local:80"}}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	ack := &discoveryv3.DiscoveryRequest{TypeUrl: req.TypeUrl, ResourceNames: req.ResourceNames, VersionInfo: first.VersionInfo, ResponseNonce: first.Nonce}
	if err := stream.Send(ack); err != nil {
		t.Fatal(err)
	}
	f.srv.SetSplit(split, routes("v2"))
	second, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	nack := &discoveryv3.DiscoveryRequest{TypeUrl: req.TypeUrl, ResourceNames: req.ResourceNames, VersionInfo: first.VersionInfo,
		ResponseNonce: second.Nonce, ErrorDetail: &rpcstatus.Status{Message: "cluster v2 is unknown"}}
	if err := stream.Send(nack); err != nil {
		t.Fatal(err)
	}
	// Setting the same content again changes nothing: nothing is pushed.
	f.srv.SetSplit(split, routes("v2"))
	f.srv.SetSplit(split, routes("v3"))
	third, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	rc := &routev3.RouteConfiguration{}
	if err := third.Resources[0].UnmarshalTo(rc); err != nil {
		t.Fatal(err)
	}
	if got := rc.VirtualHosts[0].Routes[0].GetRoute().GetWeightedClusters().GetClusters()[0].GetName(); got != "outbound|80||v3.shop.svc.cluster.local" {
		t.Errorf("after the NACK the next push routes to %q, want v3 (v2 must not be re-sent)", got)
	}
	if got := sum(t, f.reg, "smi_operator_xds_nacks_total"); got != 1 {
		t.Errorf("NACKs counted: %v, want 1", got)
	}
	if got := sum(t, f.reg, "smi_operator_xds_acks_total"); got != 1 {
		t.Errorf("ACKs counted: %v, want 1", got)
	}
}

// sum adds up every series of a metric.
func sum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	total := 0.0
	for _, v := range series(t, reg, name) {
		total += v
	}
	return total
}

// labelled is the value of the series of name whose label values, joined with commas, are values.
func labelled(t *testing.T, reg *prometheus.Registry, name, values string) float64 {
	t.Helper()
	return series(t, reg, name)[values]
}

// series are the values of the counter or gauge name, by its label values joined with commas.
func series(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var values []string
			for _, l := range m.GetLabel() {
				values = append(values, l.GetValue())
			}
			out[strings.Join(values, ",")] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return out
}

// TestEnvoySidecarGetsItsListenersAndClusters: an Envoy sidecar subscribing to everything gets
// the shared outbound listener (a chain per Service ClusterIP:port) and its own identity's
// inbound listener, and Envoy's clusters; a TrafficTarget on its identity re-pushes its inbound
// listener, while a sidecar of another identity is not sent anything.
func TestEnvoySidecarGetsItsListenersAndClusters(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessEnforcing}})
	web := mesh.Service{Namespace: "shop", Name: "web", FQDN: "web.shop.svc.cluster.local", ClusterIPs: []string{"10.96.0.10"},
		Ports: []mesh.ServicePort{{Name: "grpc", Port: 80, Protocol: corev1.ProtocolTCP, AppProtocol: "grpc"}}}
	f.srv.SetService(types.NamespacedName{Namespace: "shop", Name: "web"}, web, xds.Endpoints{})

	webLDS, lds := f.subscribeEnvoy(t, "shop", "web", resourcev3.ListenerType)
	listeners := resourcesByName(t, lds)
	outbound, ok := listeners[xds.OutboundListenerName].(*listenerv3.Listener)
	if !ok || listeners[xds.InboundListenerName] == nil || len(listeners) != 2 {
		t.Fatalf("Envoy got listeners %v, want inbound and outbound", slices.Collect(maps.Keys(listeners)))
	}
	var vips []string
	for _, c := range outbound.FilterChains {
		for _, r := range c.GetFilterChainMatch().GetPrefixRanges() {
			vips = append(vips, fmt.Sprintf("%s:%d", r.AddressPrefix, c.GetFilterChainMatch().GetDestinationPort().GetValue()))
		}
	}
	if !slices.Equal(vips, []string{"10.96.0.10:80"}) {
		t.Errorf("outbound chains match %v, want 10.96.0.10:80", vips)
	}
	_, cds := f.subscribeEnvoy(t, "shop", "web", resourcev3.ClusterType)
	clusters := resourcesByName(t, cds)
	for _, want := range []string{"outbound|80||web.shop.svc.cluster.local", xds.PassthroughClusterName, xds.InboundPassthroughClusterName} {
		if clusters[want] == nil {
			t.Errorf("Envoy clusters %v lack %s", slices.Collect(maps.Keys(clusters)), want)
		}
	}

	otherLDS, _ := f.subscribeEnvoy(t, "shop", "other", resourcev3.ListenerType)
	f.srv.SetAccess(mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "to-web"}, []mesh.AccessRule{{
		Source:      mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "to-web"},
		Destination: mesh.Identity{Namespace: "shop", ServiceAccount: "web", SPIFFEID: "spiffe://cluster.local/ns/shop/sa/web"},
		Sources:     []mesh.Identity{{Namespace: "shop", ServiceAccount: "client", SPIFFEID: "spiffe://cluster.local/ns/shop/sa/client"}},
		TCP:         mesh.PortSet{All: true},
	}})
	pushed, err := webLDS.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := resourcesByName(t, pushed)[xds.InboundListenerName]; got == nil || proto.Equal(got, listeners[xds.InboundListenerName]) {
		t.Errorf("the web sidecar's inbound listener was not rebuilt for the TrafficTarget")
	}
	received := make(chan error, 1)
	go func() { _, err := otherLDS.Recv(); received <- err }()
	select {
	case err := <-received:
		t.Errorf("a sidecar of another identity got a push (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
}

// subscribeEnvoy opens a stream as the Envoy sidecar of namespace/sa, subscribes to typeURL and
// ACKs the first response, which it returns with the stream.
func (f *fixture) subscribeEnvoy(t *testing.T, namespace, sa, typeURL string) (discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, *discoveryv3.DiscoveryResponse) {
	t.Helper()
	return f.subscribe(t, server.ProxyEnvoy, namespace, sa, typeURL)
}

// subscribe is subscribeEnvoy for a node of any kind of proxy, to the resources named (all of the
// type, wildcard, when none is).
func (f *fixture) subscribe(t *testing.T, proxy, namespace, sa, typeURL string, names ...string) (discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, *discoveryv3.DiscoveryResponse) {
	t.Helper()
	stream := f.adsAs(t, namespace, sa)
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node(proxy, namespace, sa), TypeUrl: typeURL, ResourceNames: names}); err != nil {
		t.Fatal(err)
	}
	return stream, recvAndACK(t, stream, names...)
}

// recvAndACK receives the stream's next response and ACKs it, still subscribed to the names (the
// stream's subscription by name; none for a wildcard one).
func recvAndACK(t *testing.T, stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, names ...string) *discoveryv3.DiscoveryResponse {
	t.Helper()
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	ack := &discoveryv3.DiscoveryRequest{TypeUrl: resp.TypeUrl, ResourceNames: names, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}
	if err := stream.Send(ack); err != nil {
		t.Fatal(err)
	}
	return resp
}

// resourcesByName decodes a response's resources by their names (a load assignment's is its
// cluster_name).
func resourcesByName(t *testing.T, resp *discoveryv3.DiscoveryResponse) map[string]proto.Message {
	t.Helper()
	out := map[string]proto.Message{}
	for _, a := range resp.Resources {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		name := cachev3.GetResourceName(m)
		if name == "" {
			t.Fatalf("a %T without a name", m)
		}
		out[name] = m
	}
	return out
}

// TestAccessAppliesInSelectedNamespaces: deny-by-default holds where the settings' namespace
// selector selects, and in a namespace the server does not know (it fails closed); in a namespace
// left out, identities no TrafficTarget names get the listeners of permissive mode (plain text
// accepted, RBAC only shadowed) while a TrafficTarget's destination stays enforced, and only the
// sidecars concerned are told.
func TestAccessAppliesInSelectedNamespaces(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessEnforcing, AccessNamespaces: "smi=on"}})
	inbound := func(resp *discoveryv3.DiscoveryResponse) (chains []string, enforced bool) {
		t.Helper()
		l, ok := resourcesByName(t, resp)[xds.InboundListenerName].(*listenerv3.Listener)
		if !ok {
			t.Fatalf("no inbound listener in %v", resp.Resources)
		}
		for _, c := range l.FilterChains {
			chains = append(chains, c.Name)
		}
		// Only an enforced listener accepts nothing but mutual TLS.
		return chains, !slices.Contains(chains, "inbound-tcp")
	}

	legacy, first := f.subscribeEnvoy(t, "legacy", "db", resourcev3.ListenerType)
	if chains, enforced := inbound(first); !enforced {
		t.Fatalf("a namespace the server knows nothing of is not enforced: chains %v", chains)
	}
	orders, _ := f.subscribeEnvoy(t, "orders", "api", resourcev3.ListenerType)
	f.srv.SetNamespace("orders", map[string]string{"smi": "on"})
	f.srv.SetNamespace("legacy", map[string]string{"kubernetes.io/metadata.name": "legacy"})
	if chains, enforced := inbound(recvAndACK(t, legacy)); enforced {
		t.Errorf("the unselected namespace's sidecar still enforces: chains %v", chains)
	}
	received := make(chan error, 1)
	go func() { _, err := orders.Recv(); received <- err }()
	select {
	case err := <-received:
		t.Errorf("the sidecar of a selected namespace got a push (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}

	// Selected again by its labels, then forgotten: enforced both times.
	f.srv.SetNamespace("legacy", map[string]string{"smi": "on"})
	if chains, enforced := inbound(recvAndACK(t, legacy)); !enforced {
		t.Errorf("relabelled into the selection, the namespace is not enforced: chains %v", chains)
	}
	f.srv.SetNamespace("legacy", nil)
	if _, enforced := inbound(recvAndACK(t, legacy)); enforced {
		t.Fatal("left out again, the namespace is still enforced")
	}
	// A destination of a TrafficTarget is enforced outside the selection too (Istio restricts it
	// there with its ALLOW policy), and unenforced again once no target names it.
	target := mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "legacy", Name: "to-db"}
	f.srv.SetAccess(target, []mesh.AccessRule{{
		Source:      target,
		Destination: mesh.Identity{Namespace: "legacy", ServiceAccount: "db", SPIFFEID: "spiffe://cluster.local/ns/legacy/sa/db"},
		Sources:     []mesh.Identity{{Namespace: "orders", ServiceAccount: "api", SPIFFEID: "spiffe://cluster.local/ns/orders/sa/api"}},
		TCP:         mesh.PortSet{All: true},
	}})
	if chains, enforced := inbound(recvAndACK(t, legacy)); !enforced {
		t.Errorf("a TrafficTarget's destination outside the selection is not enforced: chains %v", chains)
	}
	f.srv.SetAccess(target, nil)
	if _, enforced := inbound(recvAndACK(t, legacy)); enforced {
		t.Fatal("without its TrafficTarget, the identity outside the selection is still enforced")
	}
	f.srv.DeleteNamespace("legacy")
	if chains, enforced := inbound(recvAndACK(t, legacy)); !enforced {
		t.Errorf("a deleted namespace is not enforced: chains %v", chains)
	}
}

// TestPermissiveModeAllowsEverybody: with real grpc-go xDS servers and clients speaking mutual
// TLS, permissive mode lets every identity through, even to a destination whose TrafficTarget
// names only one source, while enforcing mode (same rules) lets only that source through.
func TestPermissiveModeAllowsEverybody(t *testing.T) {
	for _, tc := range []struct {
		access       mesh.AccessMode
		strangerCode codes.Code
	}{
		{mesh.AccessPermissive, codes.OK},
		{mesh.AccessEnforcing, codes.PermissionDenied},
	} {
		t.Run(string(tc.access), func(t *testing.T) {
			authority := newAuthority(t)
			// With mutual TLS in both modes, so that every caller proves an identity: permissive
			// mode must let through identities the TrafficTarget does not name, not merely callers
			// that have none.
			f := startServer(t, server.Options{Settings: mesh.Settings{Access: tc.access, MTLS: true}})
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			backendAddr := lis.Addr().(*net.TCPAddr)
			_ = lis.Close()
			svc := mesh.Service{Namespace: "shop", Name: "vault", FQDN: "vault.shop.svc.cluster.local",
				Ports: []mesh.ServicePort{{Name: "grpc", Port: 80, Protocol: corev1.ProtocolTCP}}}
			f.srv.SetService(types.NamespacedName{Namespace: "shop", Name: "vault"}, svc, xds.Endpoints{
				{Namespace: "shop", Name: "vault", Port: 80}: {{Address: "127.0.0.1", Port: uint32(backendAddr.Port), Ready: true, ServiceAccount: "vault"}},
			})
			f.srv.SetAccess(mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "tellers"}, []mesh.AccessRule{{
				Source:      mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "tellers"},
				Destination: mesh.Identity{Namespace: "shop", ServiceAccount: "vault", SPIFFEID: "spiffe://cluster.local/ns/shop/sa/vault"},
				Sources:     []mesh.Identity{{Namespace: "shop", ServiceAccount: "teller", SPIFFEID: "spiffe://cluster.local/ns/shop/sa/teller"}},
				TCP:         mesh.PortSet{All: true},
			}})

			bootstrap := func(sa string) []byte {
				return grpcxds.Bootstrap{
					ServerURI: f.addr, ServerTLS: &grpcxds.PEMFiles{CACertificateFile: f.caFile}, NodeID: sa,
					NodeMetadata:         map[string]any{server.MetadataNamespace: "shop", server.MetadataServiceAccount: sa},
					CertificateProviders: map[string]grpcxds.PEMFiles{"default": writeIdentity(t, authority, "shop", sa)},
					JWTTokenFile:         tokenFileOf(t, "shop", sa),
				}.MustJSON()
			}
			backend, err := grpcxds.StartXDSBackend("vault", backendAddr.String(), bootstrap("vault"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(backend.Stop)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := backend.WaitServing(ctx); err != nil {
				t.Fatal(err)
			}
			for sa, want := range map[string]codes.Code{"teller": codes.OK, "stranger": tc.strangerCode} {
				conn, err := grpcxds.Dial("vault.shop.svc.cluster.local:80", bootstrap(sa))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = conn.Close() })
				err = grpcxds.WaitFor(ctx, conn, func(r grpcxds.Reply, err error) error {
					if status.Code(err) != want {
						return fmt.Errorf("got %v, want %v", err, want)
					}
					if id := "spiffe://cluster.local/ns/shop/sa/" + sa; err == nil && r.ClientIdentity != id {
						return fmt.Errorf("the backend saw the caller as %q, want %s", r.ClientIdentity, id)
					}
					return nil
				})
				if err != nil {
					t.Errorf("%s: %v", sa, err)
				}
			}
		})
	}
}

// writeIdentity writes a certificate of the identity, its key and the trust bundle to files.
func writeIdentity(t *testing.T, authority *ca.Authority, namespace, serviceAccount string) grpcxds.PEMFiles {
	t.Helper()
	files, err := grpcxds.IssuePEMFiles(t.TempDir(), authority, ca.SPIFFEID("cluster.local", namespace, serviceAccount))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestDeletedServiceIsRemovedFromClients: a proxyless client watching a Service's listener is
// told it is gone when the Service is deleted (listeners are full state), and gets it back when
// the Service returns.
func TestDeletedServiceIsRemovedFromClients(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive}})
	key := types.NamespacedName{Namespace: "shop", Name: "web"}
	web := shopService("web")
	f.srv.SetService(key, web, nil)

	stream := f.adsAs(t, "shop", "client")
	names := []string{"web.shop.svc.cluster.local:80"}
	recv := func() *discoveryv3.DiscoveryResponse {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ListenerType, ResourceNames: names,
			VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node(server.ProxyGRPC, "shop", "client"), TypeUrl: resourcev3.ListenerType, ResourceNames: names}); err != nil {
		t.Fatal(err)
	}
	if got := len(recv().Resources); got != 1 {
		t.Fatalf("got %d listeners, want 1", got)
	}
	f.srv.DeleteService(key)
	if got := len(recv().Resources); got != 0 {
		t.Fatalf("after the delete: %d listeners, want none", got)
	}
	f.srv.SetService(key, web, nil)
	if got := len(recv().Resources); got != 1 {
		t.Fatalf("after the Service returned: %d listeners, want 1", got)
	}
	if got := sum(t, f.reg, "smi_operator_xds_services"); got != 1 {
		t.Errorf("services gauge = %v, want 1", got)
	}
}

// TestUnchangedSplitsAndRulesPushNothingToEnvoy: a reconcile that sets a split or access rules
// again unchanged neither rebuilds nor re-pushes an Envoy sidecar's listeners; a change does.
func TestUnchangedSplitsAndRulesPushNothingToEnvoy(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessEnforcing}})
	service := func(name string) mesh.Service {
		return mesh.Service{Namespace: "shop", Name: name, FQDN: name + ".shop.svc.cluster.local", ClusterIPs: []string{"10.96.0.1"},
			Ports: []mesh.ServicePort{{Name: "tcp", Port: 5432, Protocol: corev1.ProtocolTCP}}}
	}
	source := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "db"}
	split := func(backend string) *mesh.Split {
		return &mesh.Split{Source: source, Apex: service("db"), Backends: []mesh.Backend{{Service: service(backend), Weight: 1}}}
	}
	target := mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "db"}
	rules := []mesh.AccessRule{{Source: target, Destination: mesh.Identity{Namespace: "shop", ServiceAccount: "sidecar"},
		Sources: []mesh.Identity{{Namespace: "shop", ServiceAccount: "app"}}}}
	f.srv.SetSplit(source, split("db-v1"))
	f.srv.SetAccess(target, rules)

	stream := f.adsAs(t, "shop", "sidecar")
	req := &discoveryv3.DiscoveryRequest{Node: node(server.ProxyEnvoy, "shop", "sidecar"), TypeUrl: resourcev3.ListenerType}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	ack := &discoveryv3.DiscoveryRequest{TypeUrl: req.TypeUrl, VersionInfo: first.VersionInfo, ResponseNonce: first.Nonce}
	if err := stream.Send(ack); err != nil {
		t.Fatal(err)
	}
	replies := make(chan *discoveryv3.DiscoveryResponse, 1)
	go func() {
		if r, err := stream.Recv(); err == nil {
			replies <- r
		}
	}()
	f.srv.SetSplit(source, split("db-v1"))
	f.srv.SetAccess(target, rules)
	select {
	case r := <-replies:
		t.Fatalf("setting the same split and rules again pushed %d listeners", len(r.Resources))
	case <-time.After(300 * time.Millisecond):
	}
	f.srv.SetSplit(source, split("db-v2"))
	select {
	case <-replies:
	case <-time.After(5 * time.Second):
		t.Fatal("a changed split pushed nothing")
	}
}

// TestReplacementServerKeepsTheMetrics: the operator replaces its xDS server when its settings
// change; the new one registers with the same registry without a panic and carries the series on.
func TestReplacementServerKeepsTheMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	first := server.New(server.Options{Registerer: reg, Log: logr.Discard()})
	first.SetService(types.NamespacedName{Namespace: "shop", Name: "web"},
		mesh.Service{Namespace: "shop", Name: "web", FQDN: "web.shop.svc.cluster.local"}, nil)
	second := server.New(server.Options{Registerer: reg, Log: logr.Discard()})
	for _, name := range []string{"web", "db"} {
		second.SetService(types.NamespacedName{Namespace: "shop", Name: name},
			mesh.Service{Namespace: "shop", Name: name, FQDN: name + ".shop.svc.cluster.local"}, nil)
	}
	if got := sum(t, reg, "smi_operator_xds_services"); got != 2 {
		t.Errorf("smi_operator_xds_services = %v, want the replacement's 2", got)
	}
}

// TestMetricLabelsAreTheServedTypes: the type label of the ACK and NACK counters is one of the
// types the server serves, or "other": the type URL is the client's to choose, and a series per
// made-up type would let any client grow the metrics without bound.
func TestMetricLabelsAreTheServedTypes(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive}})
	stream := f.adsAs(t, "shop", "client")
	for i := range 3 {
		err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node(server.ProxyGRPC, "shop", "client"),
			TypeUrl: fmt.Sprintf("type.googleapis.com/made.up.Type%d", i), ResponseNonce: "1"})
		if errors.Is(err, io.EOF) {
			break // the server ended the stream on the first: Recv below has its status
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// The server ends the stream on an unknown type, after the callbacks have counted it.
	_, _ = stream.Recv()
	families, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, family := range families {
		if family.GetName() != "smi_operator_xds_acks_total" && family.GetName() != "smi_operator_xds_nacks_total" {
			continue
		}
		for _, m := range family.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "type" && l.GetValue() != "other" {
					t.Errorf("%s has a series labelled type=%q", family.GetName(), l.GetValue())
				}
			}
		}
	}
	if got := sum(t, f.reg, "smi_operator_xds_acks_total"); got < 1 {
		t.Errorf("ACKs of made-up types counted %v times, want them under type=other", got)
	}
}

// TestReplyToAResponseNeverSentLeavesTheServerServing: a proxy whose token proved its identity
// (so the server books what it refuses) answering a nonce of a type it was never sent anything
// of is its own mistake: its stream carries on, and every other stream is still served. (It used
// to panic with the streams' lock held; unwinding, the stream's close waited on that lock for
// ever, and so did every other stream.)
func TestReplyToAResponseNeverSentLeavesTheServerServing(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive}})
	f.srv.SetService(types.NamespacedName{Namespace: "shop", Name: "web"}, shopService("web"), nil)
	odd := f.adsAs(t, "shop", "client")
	if err := odd.Send(&discoveryv3.DiscoveryRequest{Node: node(server.ProxyGRPC, "shop", "client"),
		TypeUrl: resourcev3.ListenerType, ResponseNonce: "7", ErrorDetail: &rpcstatus.Status{Message: "refused"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := odd.Recv(); err != nil {
		t.Errorf("the stream that answered a nonce never sent: %v, want its listeners", err)
	}
	f.subscribe(t, server.ProxyGRPC, "shop", "other", resourcev3.ListenerType) // fails the test unless answered
}

// TestDeltaStreamsAreRefused: the server speaks state-of-the-world ADS only. A delta stream, which
// anyone reaching the port can open, without a token, is refused Unimplemented, and the server
// goes on serving. (Its first request used to panic in the cache, and took the process down.)
func TestDeltaStreamsAreRefused(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	delta, err := discoveryv3.NewAggregatedDiscoveryServiceClient(f.conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := delta.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node(server.ProxyEnvoy, "", ""), TypeUrl: resourcev3.ClusterType}); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if _, err := delta.Recv(); status.Code(err) != codes.Unimplemented {
		t.Errorf("a delta stream: %v, want Unimplemented", err)
	}
	f.subscribe(t, server.ProxyGRPC, "shop", "client", resourcev3.ListenerType) // fails the test unless answered
}

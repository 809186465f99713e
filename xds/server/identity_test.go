package server_test

import (
	"crypto/tls"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/auth"
	"github.com/smi-operator/smi-operator/xds/server"
)

// accessTo is a TrafficTarget letting source reach destination (ServiceAccounts of namespace
// shop) on every port.
func accessTo(destination, source string) []mesh.AccessRule {
	ref := mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "to-" + destination}
	return []mesh.AccessRule{{
		Source:      ref,
		Destination: mesh.Identity{Namespace: "shop", ServiceAccount: destination, SPIFFEID: "spiffe://cluster.local/ns/shop/sa/" + destination},
		Sources:     []mesh.Identity{{Namespace: "shop", ServiceAccount: source, SPIFFEID: "spiffe://cluster.local/ns/shop/sa/" + source}},
		TCP:         mesh.PortSet{All: true},
	}}
}

// TestStreamsActForTheirFirstNodeOnly: the identity a stream acts for is fixed by its first
// request, and proven by its token (TestUnprovenIdentityIsRefusedOverTLS). A later request on the same stream naming
// another node — an ACK, or a re-subscription with the last nonce and no version — ends the stream
// with PermissionDenied before anything of the other identity is sent: none of its per-identity
// listeners (a gRPC server's RBAC, an Envoy inbound listener). go-control-plane adopts the node of
// every request that carries one, so without this an authenticated stream could read every
// identity's configuration.
func TestStreamsActForTheirFirstNodeOnly(t *testing.T) {
	serverListener := xds.ServerListenerNamePrefix + "0.0.0.0:8080"
	for _, tc := range []struct {
		name    string
		token   string
		proxy   string
		typeURL string
		names   []string
	}{
		{"gRPC server listener, authenticated", "token-of-a", server.ProxyGRPC, resourcev3.ListenerType, []string{serverListener}},
		{"Envoy inbound listener", "token-of-a", server.ProxyEnvoy, resourcev3.ListenerType, nil},
	} {
		for _, next := range []string{"ACK", "re-subscription"} {
			t.Run(tc.name+"/"+next, func(t *testing.T) {
				f := startServer(t, server.Options{
					Settings:      mesh.Settings{Access: mesh.AccessEnforcing},
					Authenticator: tokens{"token-of-a": {Namespace: "shop", ServiceAccount: "a"}},
					CA:            newAuthority(t),
				})
				// a and b have different RBAC, so their listeners differ.
				f.srv.SetAccess(mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "to-a"}, accessTo("a", "x"))
				f.srv.SetAccess(mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "to-b"}, accessTo("b", "y"))

				stream := f.ads(t, tc.token)
				if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node(tc.proxy, "shop", "a"), TypeUrl: tc.typeURL, ResourceNames: tc.names}); err != nil {
					t.Fatal(err)
				}
				first, err := stream.Recv()
				if err != nil {
					t.Fatal(err)
				}
				if len(first.Resources) == 0 {
					t.Fatalf("a's first response holds nothing")
				}

				other := &discoveryv3.DiscoveryRequest{Node: node(tc.proxy, "shop", "b"), TypeUrl: tc.typeURL, ResourceNames: tc.names, ResponseNonce: first.Nonce}
				if next == "ACK" {
					other.VersionInfo = first.VersionInfo
				}
				if err := stream.Send(other); err != nil {
					t.Fatal(err)
				}
				resp, err := stream.Recv()
				if status.Code(err) != codes.PermissionDenied {
					t.Fatalf("a stream of shop/a naming shop/b in its %s got %d resources (error %v), want PermissionDenied",
						next, len(resp.GetResources()), err)
				}
				if got := sum(t, f.reg, "smi_operator_xds_rejected_streams_total"); got != 1 {
					t.Errorf("rejected streams metric = %v, want 1", got)
				}
			})
		}
	}
}

// TestStreamsMayRepeatTheirNode: a client that sends its node with every request (Envoy does,
// unless set_node_on_first_message_only) keeps its stream and its pushes.
func TestStreamsMayRepeatTheirNode(t *testing.T) {
	f := startServer(t, server.Options{
		Settings:      mesh.Settings{Access: mesh.AccessEnforcing},
		Authenticator: tokens{"token-of-a": auth.Identity{Namespace: "shop", ServiceAccount: "a"}},
	})
	f.srv.SetAccess(mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "to-a"}, accessTo("a", "x"))
	stream := f.ads(t, "token-of-a")
	request := func(resp *discoveryv3.DiscoveryResponse) *discoveryv3.DiscoveryRequest {
		return &discoveryv3.DiscoveryRequest{Node: node(server.ProxyEnvoy, "shop", "a"), TypeUrl: resourcev3.ListenerType,
			VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}
	}
	if err := stream.Send(request(nil)); err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(request(first)); err != nil {
		t.Fatal(err)
	}
	f.srv.SetAccess(mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "to-a"}, accessTo("a", "z"))
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("after an ACK repeating its node, the stream got %v instead of the next push", err)
	}
}

// TestTokensOnlyOverTLS: on a plain-text connection a stream presenting a token is refused (the
// token was readable on the way), while the same token over TLS is accepted.
func TestTokensOnlyOverTLS(t *testing.T) {
	opts := server.Options{
		Settings:      mesh.Settings{Access: mesh.AccessEnforcing},
		Authenticator: tokens{"token-of-a": {Namespace: "shop", ServiceAccount: "a"}},
		CA:            newAuthority(t),
	}
	lds := &discoveryv3.DiscoveryRequest{Node: node(server.ProxyEnvoy, "shop", "a"), TypeUrl: resourcev3.ListenerType}
	ask := func(f *fixture, token string) (*discoveryv3.DiscoveryResponse, error) {
		stream := f.ads(t, token)
		// A stream the server ends at once may fail the Send with io.EOF: its status is Recv's.
		if err := stream.Send(lds); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return stream.Recv()
	}

	plain := startPlainTextServer(t, opts)
	if resp, err := ask(plain, "token-of-a"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("a token in plain text: got %d listeners, error %v; want Unauthenticated", len(resp.GetResources()), err)
	}
	if got := sum(t, plain.reg, "smi_operator_xds_rejected_streams_total"); got != 1 {
		t.Errorf("rejected streams metric = %v, want 1", got)
	}

	secure := startServer(t, opts)
	if resp, err := ask(secure, "token-of-a"); err != nil || len(resp.GetResources()) == 0 {
		t.Fatalf("over TLS: %d listeners, error %v", len(resp.GetResources()), err)
	}
}

// TestHeldServerAnswersOnceSynced: a server built to hold answers nobody until Synced, then
// answers the proxies that asked meanwhile from everything it was fed.
func TestHeldServerAnswersOnceSynced(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessEnforcing}, HoldUntilSynced: true})
	f.srv.SetAccess(mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "to-a"}, accessTo("a", "x"))
	stream := f.adsAs(t, "shop", "a")
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node(server.ProxyEnvoy, "shop", "a"), TypeUrl: resourcev3.ListenerType}); err != nil {
		t.Fatal(err)
	}
	answered := make(chan *discoveryv3.DiscoveryResponse, 1)
	go func() {
		resp, _ := stream.Recv()
		answered <- resp
	}()
	select {
	case resp := <-answered:
		t.Fatalf("a held server answered with %d listeners before it was synced", len(resp.GetResources()))
	case <-time.After(300 * time.Millisecond):
	}
	f.srv.Synced()
	select {
	case resp := <-answered:
		if len(resp.GetResources()) != 2 {
			t.Errorf("once synced, the server answered with %d listeners, want the inbound and outbound ones", len(resp.GetResources()))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not answer once synced")
	}
}

// TestStreamWithoutANodeCannotNameOneLater: a stream whose first request names no node acts for
// no identity; naming one later ends it rather than giving it that identity's listeners.
func TestStreamWithoutANodeCannotNameOneLater(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessEnforcing}})
	f.srv.SetAccess(mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "to-a"}, accessTo("a", "x"))
	stream := f.ads(t, "")
	if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ListenerType}); err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node(server.ProxyEnvoy, "shop", "a"), TypeUrl: resourcev3.ListenerType,
		VersionInfo: first.VersionInfo, ResponseNonce: first.Nonce}); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("naming a node after a first request without one: got %d listeners (error %v), want PermissionDenied", len(resp.GetResources()), err)
	}
}

// TestNodesClaimOnlyKubernetesNames: the identity a node claims must be one Kubernetes could
// have, a namespace name and a ServiceAccount name; on a plain-text server the claim is believed
// and named in SMI objects' status (a refusal's namespace), so any other text is refused with the
// stream, before anything is served.
func TestNodesClaimOnlyKubernetesNames(t *testing.T) {
	f := startPlainTextServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive}})
	for _, tc := range []struct {
		name, namespace, serviceAccount string
	}{
		{"a namespace with spaces", "apply https://example.com/fix.yaml", "client"},
		{"a namespace too long", strings.Repeat("a", 64), "client"},
		{"a ServiceAccount with a slash", "shop", "client/admin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := f.ads(t, "")
			if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node(server.ProxyGRPC, tc.namespace, tc.serviceAccount),
				TypeUrl: resourcev3.ListenerType}); err != nil {
				t.Fatal(err)
			}
			if resp, err := stream.Recv(); status.Code(err) != codes.InvalidArgument {
				t.Errorf("a node claiming %q/%q: got %d listeners (error %v), want InvalidArgument", tc.namespace, tc.serviceAccount, len(resp.GetResources()), err)
			}
		})
	}
	// Kubernetes names are taken: subscribe fails the test unless the node is answered.
	f.subscribe(t, server.ProxyGRPC, "shop", "client.v2", resourcev3.ListenerType)
}

// TestUnprovenIdentityIsRefusedOverTLS: on a TLS server a node's identity is a claim its token
// must prove. A stream without a token whose node names an identity is ended (Unauthenticated,
// saying how to send the token) before anything of that identity is sent: its listeners carry
// the identity's RBAC rules, which are not the stream's to read. A stream without a token that
// names no identity is still served what every workload may see.
func TestUnprovenIdentityIsRefusedOverTLS(t *testing.T) {
	f := startServer(t, server.Options{
		Settings:      mesh.Settings{Access: mesh.AccessEnforcing},
		Authenticator: tokens{"token-of-a": {Namespace: "shop", ServiceAccount: "a"}},
	})
	f.srv.SetAccess(mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "to-a"}, accessTo("a", "x"))
	serverListener := xds.ServerListenerNamePrefix + "0.0.0.0:8080"
	for _, proxy := range []string{server.ProxyGRPC, server.ProxyEnvoy} {
		stream := f.ads(t, "")
		req := &discoveryv3.DiscoveryRequest{Node: node(proxy, "shop", "a"), TypeUrl: resourcev3.ListenerType}
		if proxy == server.ProxyGRPC {
			req.ResourceNames = []string{serverListener}
		}
		if err := stream.Send(req); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "call_creds") {
			t.Errorf("%s node claiming shop/a without a token: %d listeners, error %v; want Unauthenticated saying how to send the token",
				proxy, len(resp.GetResources()), err)
		}
	}
	if got := labelled(t, f.reg, "smi_operator_xds_rejected_streams_total", "identity-unproven"); got != 2 {
		t.Errorf("rejected streams identity-unproven = %v, want 2", got)
	}

	anonymous := f.ads(t, "")
	if err := anonymous.Send(&discoveryv3.DiscoveryRequest{Node: node(server.ProxyEnvoy, "", ""), TypeUrl: resourcev3.ListenerType}); err != nil {
		t.Fatal(err)
	}
	if resp, err := anonymous.Recv(); err != nil {
		t.Errorf("a node naming no identity, without a token: %v (%d listeners); want it served", err, len(resp.GetResources()))
	}
}

// TestTLSServerWithoutAuthenticatorServesNoIdentity: a TLS server that checks no tokens can take
// an identity from no stream, so a node claiming one is refused, and told the server checks none.
func TestTLSServerWithoutAuthenticatorServesNoIdentity(t *testing.T) {
	cert, pool := selfSigned(t)
	f := serve(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessEnforcing},
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	f.conn = dialServer(t, f.addr, credentials.NewTLS(&tls.Config{RootCAs: pool}))
	stream := f.ads(t, "")
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node(server.ProxyEnvoy, "shop", "a"), TypeUrl: resourcev3.ListenerType}); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "checks no tokens") {
		t.Errorf("a node claiming shop/a: %d listeners, error %v; want Unauthenticated saying the server checks no tokens", len(resp.GetResources()), err)
	}
}

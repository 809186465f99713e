package server_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/auth"
	"github.com/smi-operator/smi-operator/xds/ca"
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
// request (and proven by its token, when it has one). A later request on the same stream naming
// another node — an ACK, or a re-subscription with the last nonce and no version — ends the stream
// with PermissionDenied before anything of the other identity is sent: neither its certificate
// and key (SDS) nor its per-identity listeners (a gRPC server's RBAC, an Envoy inbound listener).
// go-control-plane adopts the node of every request that carries one, so without this an
// authenticated stream could read every identity's key.
func TestStreamsActForTheirFirstNodeOnly(t *testing.T) {
	serverListener := xds.ServerListenerNamePrefix + "0.0.0.0:8080"
	for _, tc := range []struct {
		name    string
		token   string
		proxy   string
		typeURL string
		names   []string
	}{
		{"SDS secrets", "token-of-a", server.ProxyEnvoy, resourcev3.SecretType, []string{xds.WorkloadSecretName, xds.TrustBundleSecretName}},
		{"gRPC server listener, authenticated", "token-of-a", server.ProxyGRPC, resourcev3.ListenerType, []string{serverListener}},
		{"gRPC server listener, no token", "", server.ProxyGRPC, resourcev3.ListenerType, []string{serverListener}},
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
				if tc.typeURL == resourcev3.SecretType {
					if sans, err := grpcxds.CertificateURIs(first.Resources); err != nil || len(sans) != 1 || sans[0] != "spiffe://cluster.local/ns/shop/sa/a" {
						t.Fatalf("a's certificate names %v (%v)", sans, err)
					}
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
					leaked := ""
					if resp != nil && tc.typeURL == resourcev3.SecretType {
						sans, _ := grpcxds.CertificateURIs(resp.Resources)
						leaked = " naming " + strings.Join(sans, ", ")
					}
					t.Fatalf("a stream of shop/a naming shop/b in its %s got %d resources%s (error %v), want PermissionDenied",
						next, len(resp.GetResources()), leaked, err)
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

// TestSecretVersionsFollowTheirContent: two certificates issued in the same second are two
// versions: a proxy whose certificate was replaced is sent the new one.
func TestSecretVersionsFollowTheirContent(t *testing.T) {
	// A stopped clock: every certificate is issued in the same second.
	now := time.Now()
	root, err := ca.New(context.Background(), fake.NewSimpleClientset(), ca.Options{
		Secret: types.NamespacedName{Namespace: "smi-operator-system", Name: "xds-ca"}, TrustDomain: "cluster.local",
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	authority := &replaceableCA{Authority: root}
	authority.replace(t)
	f := startServer(t, server.Options{
		Settings:      mesh.Settings{Access: mesh.AccessEnforcing},
		Authenticator: tokens{"token-of-a": auth.Identity{Namespace: "shop", ServiceAccount: "a"}},
		CA:            authority,
		SecretRefresh: 20 * time.Millisecond,
	})
	stream := f.ads(t, "token-of-a")
	first := subscribeWorkloadSecret(t, stream)
	replaced := authority.replace(t)
	if !replaced.NotBefore.Equal(authority.issued[0].NotBefore) {
		t.Fatalf("the test needs two certificates with the same NotBefore, got %v and %v", authority.issued[0].NotBefore, replaced.NotBefore)
	}
	pushed, err := stream.Recv()
	if err != nil {
		t.Fatalf("the replaced certificate was not pushed: %v", err)
	}
	if len(pushed.Resources) != 1 || string(pushed.Resources[0].Value) == string(first.Resources[0].Value) {
		t.Fatalf("pushed %d secrets, the same as before: %v", len(pushed.Resources), len(pushed.Resources) == 1)
	}
}

// replaceableCA serves, for every identity, the certificate its test last issued.
type replaceableCA struct {
	*ca.Authority
	mu     sync.Mutex
	issued []*ca.Certificate
}

// replace issues a new certificate for shop/a and serves it from now on.
func (r *replaceableCA) replace(t *testing.T) *ca.Certificate {
	t.Helper()
	cert, err := r.Issue(ca.SPIFFEID("cluster.local", "shop", "a"))
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.issued = append(r.issued, cert)
	return cert
}

func (r *replaceableCA) ForIdentity(string) (*ca.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.issued[len(r.issued)-1], nil
}

// TestTokensAndSecretsOnlyOverTLS: on a plain-text connection a stream presenting a token is
// refused (the token was readable on the way), and secrets are never served, while the same
// token over TLS gets its certificate.
func TestTokensAndSecretsOnlyOverTLS(t *testing.T) {
	opts := server.Options{
		Settings:      mesh.Settings{Access: mesh.AccessEnforcing},
		Authenticator: tokens{"token-of-a": {Namespace: "shop", ServiceAccount: "a"}},
		CA:            newAuthority(t),
	}
	sds := &discoveryv3.DiscoveryRequest{Node: node(server.ProxyEnvoy, "shop", "a"), TypeUrl: resourcev3.SecretType,
		ResourceNames: []string{xds.WorkloadSecretName, xds.TrustBundleSecretName}}
	ask := func(f *fixture, token string) (*discoveryv3.DiscoveryResponse, error) {
		stream := f.ads(t, token)
		// A stream the server ends at once may fail the Send with io.EOF: its status is Recv's.
		if err := stream.Send(sds); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return stream.Recv()
	}

	plain := startPlainTextServer(t, opts)
	if resp, err := ask(plain, "token-of-a"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("a token in plain text: got %d secrets, error %v; want Unauthenticated", len(resp.GetResources()), err)
	}
	if resp, err := ask(plain, ""); status.Code(err) != codes.PermissionDenied {
		t.Errorf("secrets in plain text without a token: got %d secrets, error %v; want PermissionDenied", len(resp.GetResources()), err)
	}
	if got := sum(t, plain.reg, "smi_operator_xds_rejected_streams_total"); got != 2 {
		t.Errorf("rejected streams metric = %v, want 2", got)
	}

	secure := startServer(t, opts)
	resp, err := ask(secure, "token-of-a")
	if err != nil {
		t.Fatalf("over TLS: %v", err)
	}
	if sans, err := grpcxds.CertificateURIs(resp.Resources); err != nil || len(sans) != 1 || sans[0] != "spiffe://cluster.local/ns/shop/sa/a" {
		t.Errorf("over TLS: certificate names %v (%v)", sans, err)
	}
}

// TestHeldServerAnswersOnceSynced: a server built to hold answers nobody until Synced, then
// answers the proxies that asked meanwhile from everything it was fed.
func TestHeldServerAnswersOnceSynced(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessEnforcing}, HoldUntilSynced: true})
	f.srv.SetAccess(mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "to-a"}, accessTo("a", "x"))
	stream := f.ads(t, "")
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

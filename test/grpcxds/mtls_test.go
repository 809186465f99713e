package grpcxds_test

import (
	"strings"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
)

const (
	serverID = "spiffe://cluster.local/ns/x/sa/server"
	allowed  = "spiffe://cluster.local/ns/x/sa/y"
	other    = "spiffe://cluster.local/ns/x/sa/z"
)

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func provider(instance string) *tlsv3.CertificateProviderPluginInstance {
	return &tlsv3.CertificateProviderPluginInstance{InstanceName: instance}
}

// upstreamTLS is a client's side of mTLS: its identity and the roots it trusts from the bootstrap's
// certificate provider instance, and SANs the server's certificate must carry (none: any
// certificate the roots verify).
func upstreamTLS(instance string, sans ...string) *tlsv3.UpstreamTlsContext {
	vc := &tlsv3.CertificateValidationContext{CaCertificateProviderInstance: provider(instance)}
	for _, san := range sans {
		vc.MatchSubjectAltNames = append(vc.MatchSubjectAltNames, exact(san))
	}
	return &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateProviderInstance: provider(instance),
		ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc},
	}}
}

// TestMutualTLSAndPrincipals: what grpc-go needs for mTLS from certificate_provider_instance on
// both sides, and that RBAC's authenticated.principal_name matches the client certificate's URI SAN.
//
// Needed: both bootstraps define the certificate provider instance the resources name (here
// "default", plugin file_watcher: certificate, key, CA files); the client uses xDS client
// credentials and the server xDS server credentials (grpcxds does both); the Cluster's
// transport_socket is named "envoy.transport_sockets.tls" with an UpstreamTlsContext whose
// common_tls_context has tls_certificate_provider_instance (the client's identity) and
// validation_context.ca_certificate_provider_instance (required on the client: without roots the
// Cluster is NACKed); the server Listener's filter chain has a DownstreamTlsContext with
// tls_certificate_provider_instance (required on the server), require_client_certificate and a
// validation_context.ca_certificate_provider_instance (required once client certificates are).
// Server certificates need no DNS or IP SAN for the dialled address: xDS credentials check the
// chain and, when the Cluster lists match_subject_alt_names, the SANs, never the hostname.
func TestMutualTLSAndPrincipals(t *testing.T) {
	netns.Require(t)
	ca := newCA(t)
	serverFiles := ca.issue(t, "server", serverID) // a URI SAN only
	cp := startControlPlane(t)

	serverBootstrap := cp.bootstrap("secure-server")
	serverBootstrap.CertificateProviders = map[string]grpcxds.PEMFiles{"default": serverFiles}
	server := xdsBackend(t, "secure", netns.HostPort(9, 0), serverBootstrap)
	downstream := &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateProviderInstance: provider("default"),
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				CaCertificateProviderInstance: provider("default"),
			}},
		},
	}
	onlyY := &rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: policy(anyPermission, &rbacv3.Principal{
		Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: exact(allowed)}},
	})}}
	cp.set(t, "secure-server", serverListener(t, server.Addr, downstream, rbacFilter(t, onlyY)))
	if err := server.WaitServing(testContext(t)); err != nil {
		t.Fatal(err)
	}

	// Every client node gets the same targets, one per Cluster flavour, all on the one server.
	targets := map[string]*tlsv3.UpstreamTlsContext{
		"secure":          upstreamTLS("default"),
		"secure-san-ok":   upstreamTLS("default", serverID),
		"secure-san-bad":  upstreamTLS("default", "spiffe://cluster.local/ns/x/sa/impostor"),
		"secure-missing":  upstreamTLS("missing"),
		"secure-sds-only": {CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}}}},
		"secure-sds-identity": {CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				CaCertificateProviderInstance: provider("default"),
			}},
		}},
		"secure-no-roots": {CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificateProviderInstance: provider("default")}},
	}
	var resources []proto.Message
	for name, tls := range targets {
		target := name + ".x.svc.cluster.local:80"
		resources = append(resources,
			apiListener(target, name),
			routeConfig(name, "*", route(prefix("/"), weighted{name, 1})),
			edsCluster(name, tls), endpoints(t, name, server.Addr))
	}
	client := func(t *testing.T, node string, files grpcxds.PEMFiles, opts ...grpc.DialOption) func(name string, callOpts ...grpc.CallOption) (grpcxds.Reply, error) {
		b := cp.bootstrap(node)
		b.CertificateProviders = map[string]grpcxds.PEMFiles{"default": files}
		cp.set(t, node, resources...)
		conns := map[string]*grpc.ClientConn{}
		return func(name string, callOpts ...grpc.CallOption) (grpcxds.Reply, error) {
			if conns[name] == nil {
				conn, err := grpcxds.Dial(name+".x.svc.cluster.local:80", b.MustJSON(), opts...)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { conn.Close() })
				conns[name] = conn
			}
			return grpcxds.Call(testContext(t), conns[name], callOpts...)
		}
	}

	t.Run("client y is allowed, over mTLS both ways", func(t *testing.T) {
		call := client(t, "y", ca.issue(t, "y", allowed))
		var p peer.Peer
		reply, err := call("secure", grpc.Peer(&p))
		if err != nil {
			t.Fatal(err)
		}
		if reply.ClientIdentity != allowed {
			t.Errorf("the server saw client %q, want %s", reply.ClientIdentity, allowed)
		}
		info, ok := p.AuthInfo.(credentials.TLSInfo)
		if !ok || len(info.State.PeerCertificates) == 0 || info.State.PeerCertificates[0].URIs[0].String() != serverID {
			t.Errorf("the client saw server %+v, want a TLS peer %s", p.AuthInfo, serverID)
		}
		if _, err := call("secure-san-ok"); err != nil {
			t.Errorf("with the server's SPIFFE ID in match_subject_alt_names: %v", err)
		}
	})

	t.Run("client z is denied by RBAC", func(t *testing.T) {
		call := client(t, "z", ca.issue(t, "z", other))
		_, err := call("secure")
		t.Logf("client z: %v", err)
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("call: %v, want PermissionDenied", err)
		}
	})

	t.Run("handshakes that fail", func(t *testing.T) {
		rogue := newCA(t).issue(t, "rogue", allowed) // the right name from the wrong CA
		call := client(t, "rogue", grpcxds.PEMFiles{CertificateFile: rogue.CertificateFile, PrivateKeyFile: rogue.PrivateKeyFile, CACertificateFile: ca.caFile})
		_, err := call("secure")
		t.Logf("a client certificate from another CA: %v", err)
		if status.Code(err) != codes.Unavailable {
			t.Errorf("a client certificate from another CA: %v, want Unavailable", err)
		}
		call = client(t, "y-san", ca.issue(t, "y-san", allowed))
		_, err = call("secure-san-bad")
		t.Logf("a server certificate without the SAN the Cluster asks for: %v", err)
		if status.Code(err) != codes.Unavailable {
			t.Errorf("a server certificate without the SAN the Cluster asks for: %v, want Unavailable", err)
		}
		call = client(t, "y-insecure", ca.issue(t, "y-insecure", allowed), grpc.WithTransportCredentials(insecure.NewCredentials()))
		_, err = call("secure")
		t.Logf("a plaintext client: %v", err)
		if status.Code(err) != codes.Unavailable {
			t.Errorf("a plaintext client (insecure instead of xDS credentials): %v, want Unavailable", err)
		}
	})

	t.Run("Clusters grpc-go cannot use", func(t *testing.T) {
		call := client(t, "y-bad-clusters", ca.issue(t, "y-bad-clusters", allowed))
		for name, want := range map[string]string{
			"secure-missing":      `certificate provider instance name "missing" missing in bootstrap configuration`,
			"secure-sds-only":     "does not contain root certificate provider instance name",
			"secure-sds-identity": "unsupported field tls_certificate_sds_secret_configs is set",
			"secure-no-roots":     "does not contain root certificate provider instance name",
		} {
			_, err := call(name)
			t.Logf("Cluster %s: %v", name, err)
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), want) {
				t.Errorf("Cluster %s: %v, want Unavailable … %s", name, err, want)
			}
		}
	})

	t.Run("server Listeners grpc-go refuses", func(t *testing.T) {
		for name, tc := range map[string]struct {
			tls  *tlsv3.DownstreamTlsContext
			want string
		}{
			"client certificates without roots": {
				&tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificateProviderInstance: provider("default")}},
				"does not contain root certificate provider instance name, but require_client_cert field is set",
			},
			"no identity": {
				&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
					ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{CaCertificateProviderInstance: provider("default")}},
				}},
				"does not contain identity certificate provider instance name",
			},
			"an instance the bootstrap lacks": {
				&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificateProviderInstance: provider("missing")}},
				`identity certificate provider instance name "missing" missing in bootstrap configuration`,
			},
		} {
			node := "refused-" + strings.ReplaceAll(name, " ", "-")
			b := xdsBackend(t, "refused", netns.HostPort(10, 0), withNode(serverBootstrap, node))
			cp.set(t, node, serverListener(t, b.Addr, tc.tls))
			if err := b.WaitMode(testContext(t), connectivity.ServingModeNotServing); err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			_, err := b.Mode()
			t.Logf("%s: %v", name, err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: not serving because %v, want … %s", name, err, tc.want)
			}
		}
	})
}

func withNode(b grpcxds.Bootstrap, node string) grpcxds.Bootstrap {
	b.NodeID = node
	return b
}

package xds

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

// The tests of this file run grpc-go's own xDS client and server against a go-control-plane
// management server on loopback, serving what this package builds: proof that grpc-go accepts the
// server Listener (address, non_forwarding_action, RBAC with and without rules, certificate
// provider TLS) and the client resources with mTLS, and enforces the RBAC as SMI means it.

// pki is a throw-away CA issuing SPIFFE certificates into files for grpc-go's file_watcher
// certificate provider.
type pki struct {
	dir    string
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
	caPEM  []byte
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{dir: t.TempDir(), caKey: key, caCert: must(x509.ParseCertificate(der))(t), caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	writeFile(t, filepath.Join(p.dir, "ca.pem"), p.caPEM)
	return p
}

// issue writes cert/key files for a SPIFFE ID and returns the file names.
func (p *pki) issue(t *testing.T, name, spiffeID string) (certFile, keyFile string) {
	t.Helper()
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))(t)
	u := must(url.Parse(spiffeID))(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{u}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd := must(x509.MarshalECPrivateKey(key))(t)
	certFile, keyFile = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}))
	return certFile, keyFile
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// must returns v, failing the test it is given on err: must(f())(t).
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// bootstrap is a grpc-go bootstrap for a node of the management server mgmt, with the
// certificate provider instance this package's TLS contexts name.
func bootstrap(mgmt, node, certFile, keyFile, caFile string) []byte {
	return []byte(fmt.Sprintf(`{
  "xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
  "node": {"id": %q},
  "certificate_providers": {%q: {"plugin_name": "file_watcher", "config": {
    "certificate_file": %q, "private_key_file": %q, "ca_certificate_file": %q, "refresh_interval": "1s"}}},
  "server_listener_resource_name_template": %q
}`, mgmt, node, CertificateProviderInstance, certFile, keyFile, caFile, ServerListenerNameTemplate))
}

// TestGRPCServesWhatServerListenerAllows serves a gRPC health service behind ServerListener and
// calls it through ServiceResources, as one client identity, in each access mode.
func TestGRPCServesWhatServerListenerAllows(t *testing.T) {
	httpRule := func(methods ...string) mesh.AccessRule {
		return rule("http", []mesh.Identity{webID}, func(r *mesh.AccessRule) {
			r.Destination = apiID
			r.HTTP = []mesh.HTTPMatch{{Group: "g", Name: "health", Methods: methods,
				Path: mesh.PathMatch{Regex: "/grpc.health.v1.Health/", FullRegex: "^(?:/grpc.health.v1.Health/).*", Kind: mesh.PathRegex}}}
			r.HTTPPorts = allPorts
		})
	}
	// A v1alpha2 TrafficTarget allowing the health service on one destination port, built from
	// the SMI objects as the operator builds it.
	v1alpha2HealthRule := func(port int) []mesh.AccessRule {
		routes := &specsv1alpha4.HTTPRouteGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "health"},
			Spec: specsv1alpha4.HTTPRouteGroupSpec{Matches: []specsv1alpha4.HTTPMatch{{Name: "health", PathRegex: "/grpc.health.v1.Health/"}}}}
		return accessRulesOf(routes, v1alpha2Target(&port, "HTTPRouteGroup", "health"))
	}
	for _, tc := range []struct {
		name       string
		settings   mesh.Settings
		rules      func(port int32) []mesh.AccessRule
		clientID   mesh.Identity
		wantCode   codes.Code
		withHeader bool
		// serverID is the identity of the server's certificate (apiID when zero), endpointSA
		// the ServiceAccount the endpoint's Pod runs as ("api" when empty, none when "-"): the
		// client accepts the server only when they agree (secure naming), and then wantErr is
		// in the error of the call.
		serverID   mesh.Identity
		endpointSA string
		wantErr    string
	}{
		{name: "enforcing, TCP grant on the port", clientID: webID, wantCode: codes.OK,
			rules: func(p int32) []mesh.AccessRule {
				return []mesh.AccessRule{rule("tcp", []mesh.Identity{webID}, func(r *mesh.AccessRule) { r.TCP = ports(p) })}
			}},
		{name: "enforcing, TCP grant on another port", clientID: webID, wantCode: codes.PermissionDenied,
			rules: func(p int32) []mesh.AccessRule {
				return []mesh.AccessRule{rule("tcp", []mesh.Identity{webID}, func(r *mesh.AccessRule) { r.TCP = ports(p + 1) })}
			}},
		{name: "enforcing, other principal", clientID: promID, wantCode: codes.PermissionDenied,
			rules: func(p int32) []mesh.AccessRule {
				return []mesh.AccessRule{rule("tcp", []mesh.Identity{webID}, func(r *mesh.AccessRule) { r.TCP = ports(p) })}
			}},
		{name: "enforcing, HTTP regex path POST", clientID: webID, wantCode: codes.OK,
			rules: func(int32) []mesh.AccessRule { return []mesh.AccessRule{httpRule("POST")} }},
		{name: "enforcing, HTTP GET only", clientID: webID, wantCode: codes.PermissionDenied,
			rules: func(int32) []mesh.AccessRule { return []mesh.AccessRule{httpRule("GET")} }},
		{name: "enforcing, HTTP two methods", clientID: webID, wantCode: codes.OK,
			rules: func(int32) []mesh.AccessRule { return []mesh.AccessRule{httpRule("GET", "POST")} }},
		{name: "enforcing, header", clientID: webID, wantCode: codes.OK, withHeader: true,
			rules: func(int32) []mesh.AccessRule {
				r := httpRule()
				r.HTTP[0].Headers = []mesh.HeaderMatch{{Name: "x-canary", Regex: "1|yes"}}
				return []mesh.AccessRule{r}
			}},
		{name: "enforcing, header missing", clientID: webID, wantCode: codes.PermissionDenied,
			rules: func(int32) []mesh.AccessRule {
				r := httpRule()
				r.HTTP[0].Headers = []mesh.HeaderMatch{{Name: "x-canary", Regex: "1|yes"}}
				return []mesh.AccessRule{r}
			}},
		{name: "enforcing, v1alpha2 destination port of the server", clientID: webID, wantCode: codes.OK,
			rules: func(p int32) []mesh.AccessRule { return v1alpha2HealthRule(int(p)) }},
		{name: "enforcing, v1alpha2 destination port of another server", clientID: webID, wantCode: codes.PermissionDenied,
			rules: func(p int32) []mesh.AccessRule { return v1alpha2HealthRule(int(p) + 1) }},
		{name: "enforcing, no rules", clientID: webID, wantCode: codes.PermissionDenied,
			rules: func(int32) []mesh.AccessRule { return nil }},
		{name: "permissive, no rules, no TLS", settings: mesh.Settings{Access: mesh.AccessPermissive}, clientID: promID, wantCode: codes.OK,
			rules: func(int32) []mesh.AccessRule { return nil }},
		{name: "permissive, rules denying, mTLS", settings: mesh.Settings{Access: mesh.AccessPermissive, MTLS: true}, clientID: promID, wantCode: codes.OK,
			rules: func(int32) []mesh.AccessRule { return []mesh.AccessRule{httpRule("GET")} }},
		{name: "enforcing, server of another ServiceAccount than its endpoint's", clientID: webID, serverID: promID,
			wantCode: codes.Unavailable, wantErr: "do not match any of the accepted SANs",
			rules: func(p int32) []mesh.AccessRule {
				return []mesh.AccessRule{rule("tcp", []mesh.Identity{webID}, func(r *mesh.AccessRule) { r.TCP = ports(p) })}
			}},
		{name: "enforcing, endpoint of no known Pod", clientID: webID, endpointSA: "-",
			wantCode: codes.Unavailable, wantErr: "do not match any of the accepted SANs",
			rules: func(p int32) []mesh.AccessRule {
				return []mesh.AccessRule{rule("tcp", []mesh.Identity{webID}, func(r *mesh.AccessRule) { r.TCP = ports(p) })}
			}},
		{name: "permissive, mTLS, server of another ServiceAccount than its endpoint's", settings: mesh.Settings{Access: mesh.AccessPermissive, MTLS: true},
			clientID: webID, serverID: promID, wantCode: codes.Unavailable, wantErr: "do not match any of the accepted SANs",
			rules: func(int32) []mesh.AccessRule { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			p := newPKI(t)
			serverID := cmp.Or(tc.serverID, apiID)
			sCert, sKey := p.issue(t, "server", serverID.SPIFFEID)
			cCert, cKey := p.issue(t, "client", tc.clientID.SPIFFEID)
			ca := filepath.Join(p.dir, "ca.pem")

			cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
			mgmt := grpc.NewServer()
			srv := serverv3.NewServer(ctx, cache, nil)
			registerADS(mgmt, srv)
			ml := must(net.Listen("tcp", "127.0.0.1:0"))(t)
			go mgmt.Serve(ml) //nolint:errcheck // ends with Stop
			defer mgmt.Stop()

			lis := must(net.Listen("tcp", "127.0.0.1:0"))(t)
			port := int32(lis.Addr().(*net.TCPAddr).Port)
			name := fmt.Sprintf(ServerListenerNameTemplate, lis.Addr().String())
			sl, err := ServerListener(name, tc.rules(port), tc.settings)
			if err != nil {
				t.Fatal(err)
			}
			// One exact snapshot per node: grpc-go names every resource it wants.
			snap := must(cachev3.NewSnapshot("1", map[resourcev3.Type][]types.Resource{resourcev3.ListenerType: {sl}}))(t)
			if err := cache.SetSnapshot(ctx, "server", snap); err != nil {
				t.Fatal(err)
			}

			svc := mesh.Service{Namespace: "shop", Name: "api", FQDN: "api.shop.svc.cluster.local",
				Ports: []mesh.ServicePort{{Name: "grpc", Port: 8080, Protocol: "TCP"}}}
			endpointSA := cmp.Or(tc.endpointSA, apiID.ServiceAccount)
			if endpointSA == "-" {
				endpointSA = ""
			}
			endpoint := Endpoint{Address: "127.0.0.1", Port: uint32(port), Ready: true, ServiceAccount: endpointSA}
			out := ServiceResources(svc, Endpoints{{Namespace: "shop", Name: "api", Port: 8080}: {endpoint}}, tc.settings)
			if err := cache.SetSnapshot(ctx, "client", must(cachev3.NewSnapshot("1", out.Resources()))(t)); err != nil {
				t.Fatal(err)
			}

			serving := make(chan error, 1)
			screds := must(xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()}))(t)
			gs, err := xds.NewGRPCServer(grpc.Creds(screds),
				xds.BootstrapContentsForTesting(bootstrap(ml.Addr().String(), "server", sCert, sKey, ca)),
				xds.ServingModeCallback(func(_ net.Addr, a xds.ServingModeChangeArgs) {
					if a.Mode == connectivity.ServingModeServing {
						serving <- nil
					} else if a.Err != nil {
						serving <- a.Err
					}
				}))
			if err != nil {
				t.Fatal(err)
			}
			healthpb.RegisterHealthServer(gs, health.NewServer())
			go gs.Serve(lis) //nolint:errcheck // ends with Stop
			defer gs.Stop()
			select {
			case err := <-serving:
				if err != nil {
					t.Fatalf("server not serving: %v", err)
				}
			case <-ctx.Done():
				t.Fatal("server never served")
			}

			rb, err := xds.NewXDSResolverWithConfigForTesting(bootstrap(ml.Addr().String(), "client", cCert, cKey, ca))
			if err != nil {
				t.Fatal(err)
			}
			ccreds := must(xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()}))(t)
			cc, err := grpc.NewClient("xds:///api.shop.svc.cluster.local:8080", grpc.WithTransportCredentials(ccreds), grpc.WithResolvers(rb))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			cctx := ctx
			if tc.withHeader {
				cctx = metadataCtx(ctx)
			}
			// A refused handshake is a transient failure: waiting for the channel to be ready
			// would wait forever. Without waiting, the call fails once a connection was tried.
			_, err = healthpb.NewHealthClient(cc).Check(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(tc.wantErr == ""))
			if got := status.Code(err); got != tc.wantCode {
				t.Errorf("Check: %v, want %v", err, tc.wantCode)
			}
			if tc.wantErr != "" && !strings.Contains(fmt.Sprint(err), tc.wantErr) {
				t.Errorf("Check: %v, want an error saying %q", err, tc.wantErr)
			}
		})
	}
}

func registerADS(s *grpc.Server, srv serverv3.Server) {
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(s, srv)
}

func metadataCtx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "x-canary", "yes")
}

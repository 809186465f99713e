package agent_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/smi-operator/smi-operator/internal/agent"
	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/translators/mesh"
	xdstranslator "github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

// operator is an xDS server over TLS with a CA (its certificate for 127.0.0.1) and a token of
// shop/web, and the files a pod would have: the token and the trust bundle.
type operator struct {
	addr      string
	authority *ca.Authority
	paths     agent.Paths
}

func startOperator(t *testing.T, certTTL time.Duration) *operator {
	t.Helper()
	authority, err := ca.New(context.Background(), fake.NewClientset(), ca.Options{
		Secret: types.NamespacedName{Namespace: "smi-operator-system", Name: "xds-ca"}, TrustDomain: "cluster.local", CertTTL: certTTL,
	})
	if err != nil {
		t.Fatal(err)
	}
	serving, err := authority.IssueServing(nil, []net.IP{net.ParseIP("127.0.0.1")}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(serving.CertChainPEM, serving.PrivateKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{
		TLS:           &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		Settings:      mesh.Settings{Access: mesh.AccessEnforcing, TrustDomain: "cluster.local"},
		Authenticator: grpcxds.Tokens{"token-of-web": {Namespace: "shop", ServiceAccount: "web"}, "token-of-db": {Namespace: "shop", ServiceAccount: "db"}},
		CA:            authority,
		Log:           logr.Discard(),
	})
	addr := grpcxds.ServeLoopback(t, srv)

	dir := t.TempDir()
	paths := agent.DefaultPaths().InDir(dir)
	paths.TokenFile, paths.TrustBundleFile = filepath.Join(dir, "token"), filepath.Join(dir, "ca-root.pem")
	write(t, paths.TokenFile, "token-of-web")
	write(t, paths.TrustBundleFile, string(authority.TrustBundlePEM()))
	return &operator{addr: addr, authority: authority, paths: paths}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// noKeyIn fails the test if any recorded response carries a private key: "PRIVATE KEY", or the
// PKCS #8 DER or the private scalar of one of the certificates' keys.
func noKeyIn(t *testing.T, r *grpcxds.Responses, certs ...*agent.Certificate) {
	t.Helper()
	if r.Len() == 0 {
		t.Fatal("no response recorded")
	}
	var keys []*ecdsa.PrivateKey
	for _, c := range certs {
		keys = append(keys, c.Key)
	}
	found, err := r.CarryingKeys(keys...)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Errorf("responses of the operator carrying a private key: %v", found)
	}
}

func runAgent(t *testing.T, opts agent.Options) *agent.Agent {
	t.Helper()
	opts.PodName, opts.PodNamespace, opts.ServiceAccount = "web-1", "shop", "web"
	opts.MinRetry, opts.MaxRetry = 20*time.Millisecond, 200*time.Millisecond
	opts.Log = logr.Discard()
	a, err := agent.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return a
}

func waitRenewed(t *testing.T, a *agent.Agent, ch <-chan struct{}, within time.Duration) *agent.Certificate {
	t.Helper()
	select {
	case <-ch:
		return a.Current()
	case <-time.After(within):
		t.Fatalf("no certificate installed within %s", within)
		return nil
	}
}

func readyCode(a *agent.Agent) int {
	rec := httptest.NewRecorder()
	a.HealthHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz/ready", nil))
	return rec.Code
}

// TestGRPCAgent: the agent of a proxyless gRPC workload, without a token yet, is not ready and
// retries; once the token is there it gets a certificate of its identity for a key it made, writes
// the chain, the key and the bundle, and the gRPC bootstrap naming them, and is ready; at half the
// certificate's life, the operator out of reach, it keeps it and retries; then it renews it, with
// a new key, on disk before the old one expires.
// No response of the operator carries a key.
func TestGRPCAgent(t *testing.T) {
	op := startOperator(t, 6*time.Second)
	if err := os.Remove(op.paths.TokenFile); err != nil {
		t.Fatal(err)
	}
	var recorded grpcxds.Responses
	a := runAgent(t, agent.Options{Proxy: server.ProxyGRPC, XDSAddress: op.addr, Paths: op.paths, DialOptions: recorded.DialOptions()})
	first := a.Renewed()
	time.Sleep(200 * time.Millisecond)
	if code := readyCode(a); code != http.StatusServiceUnavailable {
		t.Fatalf("without a token: /healthz/ready %d, want 503", code)
	}
	write(t, op.paths.TokenFile, "token-of-web")
	cert := waitRenewed(t, a, first, 10*time.Second)
	if code := readyCode(a); code != http.StatusOK {
		t.Errorf("with a certificate: /healthz/ready %d, want 200", code)
	}

	onDisk := func() *x509.Certificate {
		t.Helper()
		pair, err := tls.LoadX509KeyPair(op.paths.CertChainFile, op.paths.KeyFile)
		if err != nil {
			t.Fatalf("the chain and key on disk: %v", err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	leaf := onDisk()
	if !leaf.Equal(cert.Leaf) || len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/shop/sa/web" {
		t.Errorf("on disk: %v, want the agent's certificate of spiffe://cluster.local/ns/shop/sa/web", leaf.URIs)
	}
	if fi, err := os.Stat(op.paths.KeyFile); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("key file mode %v (%v), want 0640: the app reads it through the pod's fsGroup, nobody else", fi.Mode().Perm(), err)
	}
	roots := x509.NewCertPool()
	rootsPEM, _ := os.ReadFile(op.paths.RootCertFile)
	roots.AppendCertsFromPEM(rootsPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the leaf does not verify with the root file: %v", err)
	}

	raw, err := os.ReadFile(op.paths.GRPCBootstrapFile)
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		XDSServers []struct {
			ServerURI    string `json:"server_uri"`
			ChannelCreds []struct {
				Type   string            `json:"type"`
				Config map[string]string `json:"config"`
			} `json:"channel_creds"`
			CallCreds []struct {
				Config map[string]string `json:"config"`
			} `json:"call_creds"`
		} `json:"xds_servers"`
		Node struct {
			ID       string            `json:"id"`
			Metadata map[string]string `json:"metadata"`
		} `json:"node"`
		Providers map[string]struct {
			Config map[string]string `json:"config"`
		} `json:"certificate_providers"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	s := b.XDSServers[0]
	if s.ServerURI != op.addr || s.ChannelCreds[0].Type != "tls" || s.ChannelCreds[0].Config["ca_certificate_file"] != op.paths.RootCertFile ||
		s.CallCreds[0].Config["jwt_token_file"] != op.paths.TokenFile {
		t.Errorf("bootstrap server %+v", s)
	}
	if b.Node.ID != "web-1.shop" || b.Node.Metadata[server.MetadataProxy] != server.ProxyGRPC ||
		b.Node.Metadata[server.MetadataNamespace] != "shop" || b.Node.Metadata[server.MetadataServiceAccount] != "web" {
		t.Errorf("bootstrap node %+v", b.Node)
	}
	if p := b.Providers[xdstranslator.CertificateProviderInstance].Config; p["certificate_file"] != op.paths.CertChainFile ||
		p["private_key_file"] != op.paths.KeyFile || p["ca_certificate_file"] != op.paths.RootCertFile {
		t.Errorf("bootstrap certificate provider %v", p)
	}

	// At half-life (3s) the operator cannot be asked (no token): the agent keeps its certificate,
	// on disk and ready, and retries; once it can, the renewal lands before the first expires (6s).
	if err := os.Remove(op.paths.TokenFile); err != nil {
		t.Fatal(err)
	}
	next := a.Renewed()
	time.Sleep(time.Until(cert.RenewAt) + 500*time.Millisecond)
	if got := a.Current(); got != cert || !onDisk().Equal(leaf) || readyCode(a) != http.StatusOK {
		t.Fatal("a failed renewal did not keep the current certificate")
	}
	write(t, op.paths.TokenFile, "token-of-web")
	renewed := waitRenewed(t, a, next, 5*time.Second)
	now := onDisk()
	if now.Equal(leaf) || !now.Equal(renewed.Leaf) {
		t.Fatal("the renewed certificate is not on disk")
	}
	if !time.Now().Before(leaf.NotAfter) {
		t.Errorf("renewed at %s, after the first expired (%s)", time.Now(), leaf.NotAfter)
	}
	if renewed.Key.Equal(cert.Key) {
		t.Error("the renewal kept the key; each CSR gets a new one")
	}
	noKeyIn(t, &recorded, cert, renewed)
}

// TestEnvoyAgent: the agent of an Envoy sidecar writes Envoy's bootstrap and serves on its socket
// SDS — the certificate it holds, whose key is its own, and the trust bundle — and an ADS proxy
// that reaches the operator with the pod's token: a node claiming its own identity gets its
// listeners, one claiming another is refused because of the token's identity, and a new stream
// carries the token the file holds then. No response of the operator carries a key.
func TestEnvoyAgent(t *testing.T) {
	op := startOperator(t, time.Hour)
	var recorded grpcxds.Responses
	a := runAgent(t, agent.Options{Proxy: server.ProxyEnvoy, XDSAddress: op.addr, Paths: op.paths, DialOptions: recorded.DialOptions()})
	cert := waitRenewed(t, a, a.Renewed(), 10*time.Second)
	if raw, err := os.ReadFile(op.paths.EnvoyBootstrapFile); err != nil || !bytes.Contains(raw, []byte(`"id": "web-1.shop"`)) {
		t.Errorf("Envoy's bootstrap: %v\n%s", err, raw)
	}
	conn, err := grpc.NewClient("unix://"+op.paths.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	meta := func(sa string) *corev3.Node {
		m, _ := structpb.NewStruct(map[string]any{server.MetadataProxy: server.ProxyEnvoy, server.MetadataNamespace: "shop", server.MetadataServiceAccount: sa})
		return &corev3.Node{Id: "web-1.shop", Metadata: m}
	}

	sds, err := secretv3.NewSecretDiscoveryServiceClient(conn).StreamSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sds.Send(&discoveryv3.DiscoveryRequest{Node: meta("web"), TypeUrl: resourcev3.SecretType,
		ResourceNames: []string{xdstranslator.WorkloadSecretName, xdstranslator.TrustBundleSecretName}}); err != nil {
		t.Fatal(err)
	}
	resp, err := sds.Recv()
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]*tlsv3.Secret{}
	for _, r := range resp.Resources {
		s := &tlsv3.Secret{}
		if err := r.UnmarshalTo(s); err != nil {
			t.Fatal(err)
		}
		secrets[s.Name] = s
	}
	own := secrets[xdstranslator.WorkloadSecretName].GetTlsCertificate()
	pair, err := tls.X509KeyPair(own.GetCertificateChain().GetInlineBytes(), own.GetPrivateKey().GetInlineBytes())
	if err != nil {
		t.Fatalf("SDS secret %q: %v", xdstranslator.WorkloadSecretName, err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if !leaf.Equal(cert.Leaf) || !cert.Key.Equal(pair.PrivateKey) {
		t.Error("SDS serves another certificate or key than the agent holds")
	}
	if ca := secrets[xdstranslator.TrustBundleSecretName].GetValidationContext().GetTrustedCa().GetInlineBytes(); !bytes.Contains(ca, firstPEM(op.authority.TrustBundlePEM())) {
		t.Errorf("SDS secret %q does not hold the CA's root", xdstranslator.TrustBundleSecretName)
	}

	ads := func(sa string) (*discoveryv3.DiscoveryResponse, error) {
		stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
		if err != nil {
			return nil, err
		}
		if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: meta(sa), TypeUrl: resourcev3.ListenerType}); err != nil {
			return nil, err
		}
		return stream.Recv()
	}
	listeners, err := ads("web")
	if err != nil || len(listeners.Resources) == 0 {
		t.Fatalf("ADS through the agent as shop/web: %d listeners, %v", len(listeners.GetResources()), err)
	}
	// The operator refuses the claim because the stream carries web's token: the agent added it.
	if _, err := ads("db"); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "its token is for ServiceAccount shop/web") {
		t.Errorf("ADS through the agent claiming shop/db: %v, want PermissionDenied naming the token's identity", err)
	}
	// The token is read anew for every stream (kubelet rotates it): here, another one.
	write(t, op.paths.TokenFile, "token-of-db")
	if _, err := ads("db"); err != nil {
		t.Errorf("ADS through the agent claiming shop/db once the token file holds db's token: %v", err)
	}
	noKeyIn(t, &recorded, cert)
}

func firstPEM(bundle []byte) []byte {
	block, _ := pem.Decode(bundle)
	return pem.EncodeToMemory(block)
}

// TestTrustBundleFollowsTheFile: a root added to the mounted trust bundle (the operator's CA
// rotated) reaches the proxy's root file between renewals, with the root the CA sent kept.
func TestTrustBundleFollowsTheFile(t *testing.T) {
	op := startOperator(t, time.Hour)
	a := runAgent(t, agent.Options{Proxy: server.ProxyGRPC, XDSAddress: op.addr, Paths: op.paths, RootsRefresh: 50 * time.Millisecond})
	cert := waitRenewed(t, a, a.Renewed(), 10*time.Second)
	other, err := ca.New(context.Background(), fake.NewClientset(), ca.Options{
		Secret: types.NamespacedName{Namespace: "elsewhere", Name: "other-ca"}, TrustDomain: "cluster.local",
	})
	if err != nil {
		t.Fatal(err)
	}
	next := a.Renewed()
	write(t, op.paths.TrustBundleFile, string(other.TrustBundlePEM())+string(op.authority.TrustBundlePEM()))
	waitRenewed(t, a, next, 5*time.Second)
	roots, err := os.ReadFile(op.paths.RootCertFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(roots, other.TrustBundlePEM()) || !bytes.Contains(roots, firstPEM(op.authority.TrustBundlePEM())) {
		t.Errorf("the root file does not hold both roots:\n%s", roots)
	}
	if got := a.Current(); !got.Leaf.Equal(cert.Leaf) {
		t.Error("a new trust bundle replaced the certificate")
	}
}

// TestEnvoySecretsFollowRenewals: an Envoy sidecar's SDS stream on the agent's socket is pushed the
// renewed certificate, without asking, when the agent renews it.
func TestEnvoySecretsFollowRenewals(t *testing.T) {
	op := startOperator(t, 2*time.Second)
	a := runAgent(t, agent.Options{Proxy: server.ProxyEnvoy, XDSAddress: op.addr, Paths: op.paths})
	first := waitRenewed(t, a, a.Renewed(), 10*time.Second)
	conn, err := grpc.NewClient("unix://"+op.paths.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sds, err := secretv3.NewSecretDiscoveryServiceClient(conn).StreamSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{xdstranslator.WorkloadSecretName}
	leafOf := func(resp *discoveryv3.DiscoveryResponse) *x509.Certificate {
		t.Helper()
		s := &tlsv3.Secret{}
		if len(resp.Resources) != 1 || resp.Resources[0].UnmarshalTo(s) != nil {
			t.Fatalf("SDS answered %d resources", len(resp.Resources))
		}
		block, _ := pem.Decode(s.GetTlsCertificate().GetCertificateChain().GetInlineBytes())
		leaf, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	if err := sds.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.SecretType, ResourceNames: names}); err != nil {
		t.Fatal(err)
	}
	resp, err := sds.Recv()
	if err != nil {
		t.Fatal(err)
	}
	served := leafOf(resp)
	if err := sds.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.SecretType, ResourceNames: names,
		VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
		t.Fatal(err)
	}
	// The first certificate may have been renewed already between the two reads; then the push
	// brings the one after.
	for served.Equal(first.Leaf) {
		resp, err := sds.Recv()
		if err != nil {
			t.Fatalf("no renewed certificate pushed: %v", err)
		}
		served = leafOf(resp)
	}
	if len(served.URIs) != 1 || served.URIs[0].String() != a.SPIFFEID() {
		t.Errorf("SDS pushed a certificate of %v", served.URIs)
	}
}

package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/xds/auth"
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

// createCertificate sends csr (PEM) on f's connection, with "authorization: Bearer token" when
// token is not empty.
func (f *fixture) createCertificate(t *testing.T, token string, csr []byte) (*securityv1alpha1.IstioCertificateResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	return securityv1alpha1.NewIstioCertificateServiceClient(f.conn).CreateCertificate(ctx, &securityv1alpha1.IstioCertificateRequest{Csr: string(csr)})
}

// ecKey is an ECDSA key on curve.
func ecKey(t *testing.T, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// csrPEM is a PEM CSR of key asking for the URI SANs ids and the DNS names dns.
func csrPEM(t *testing.T, key *ecdsa.PrivateKey, ids []string, dns ...string) []byte {
	t.Helper()
	data, err := ca.CSR(key, ids, dns...)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestCreateCertificate: a pod agent's CSR for the SPIFFE ID of its token's ServiceAccount is
// signed for the CSR's own key, and the response (leaf, then root) carries no key; a CSR asking for
// another identity, or for more than its own, one whose signature does not check out, one without
// a token or with a token the API server refuses, and any CSR in plain text are refused, each
// with a code and a message that say why.
func TestCreateCertificate(t *testing.T) {
	authority := newAuthority(t)
	opts := server.Options{
		Settings:      mesh.Settings{Access: mesh.AccessEnforcing},
		Authenticator: tokens{"token-of-a": {Namespace: "shop", ServiceAccount: "a"}},
		CA:            authority,
	}
	f := startServer(t, opts)
	const own = "spiffe://cluster.local/ns/shop/sa/a"
	key := ecKey(t, elliptic.P256())

	resp, err := f.createCertificate(t, "token-of-a", csrPEM(t, key, []string{own}))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.CertChain) != 2 {
		t.Fatalf("a chain of %d PEMs, want the leaf and the root", len(resp.CertChain))
	}
	block, _ := pem.Decode([]byte(resp.CertChain[0]))
	if block == nil {
		t.Fatal("the leaf is not PEM")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		t.Error("the certificate is not of the CSR's key")
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != own {
		t.Errorf("the certificate names %v, want %s", leaf.URIs, own)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(resp.CertChain[1]))
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the leaf does not verify with the root sent along: %v", err)
	}
	if !bytes.Contains(authority.TrustBundlePEM(), []byte(resp.CertChain[1])) {
		t.Error("the last certificate of the chain is not the CA's root")
	}
	wire, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(wire, []byte("PRIVATE KEY")) || bytes.Contains(wire, keyDER) || bytes.Contains(wire, key.D.Bytes()) {
		t.Error("the response carries a private key")
	}

	badSignature := csrPEM(t, key, []string{own})
	{
		block, _ := pem.Decode(badSignature)
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		// The signature is the DER's last bytes: flip one inside it.
		i := bytes.LastIndex(block.Bytes, csr.Signature) + len(csr.Signature)/2
		block.Bytes[i] ^= 1
		badSignature = pem.EncodeToMemory(block)
	}
	for _, tc := range []struct {
		name  string
		token string
		csr   []byte
		code  codes.Code
		want  string
	}{
		{"another identity", "token-of-a", csrPEM(t, key, []string{"spiffe://cluster.local/ns/shop/sa/b"}), codes.PermissionDenied,
			`the token proves ServiceAccount shop/a: the CSR asks for ["spiffe://cluster.local/ns/shop/sa/b"]`},
		{"another trust domain", "token-of-a", csrPEM(t, key, []string{"spiffe://evil.example/ns/shop/sa/a"}), codes.PermissionDenied, "exactly \"" + own + "\""},
		{"its identity and another", "token-of-a", csrPEM(t, key, []string{own, "spiffe://cluster.local/ns/shop/sa/b"}), codes.PermissionDenied, "may only ask for its own identity"},
		{"its identity and a DNS name", "token-of-a", csrPEM(t, key, []string{own}, "b.shop.svc"), codes.PermissionDenied, "DNS:b.shop.svc"},
		{"no name", "token-of-a", csrPEM(t, key, nil), codes.PermissionDenied, "may only ask for its own identity"},
		{"a bad signature", "token-of-a", badSignature, codes.InvalidArgument, "signature does not check out"},
		{"a weak key", "token-of-a", csrPEM(t, ecKey(t, elliptic.P224()), []string{own}), codes.InvalidArgument, "P-224"},
		{"not a CSR", "token-of-a", []byte("hello"), codes.InvalidArgument, "CERTIFICATE REQUEST"},
		{"no token", "", csrPEM(t, key, []string{own}), codes.Unauthenticated, `no "authorization" header`},
		{"a token the API server refuses", "forged", csrPEM(t, key, []string{own}), codes.Unauthenticated, "unknown token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := f.createCertificate(t, tc.token, tc.csr)
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %d certificates, error %v; want %v containing %q", len(resp.GetCertChain()), err, tc.code, tc.want)
			}
		})
	}

	plain := startPlainTextServer(t, opts)
	if resp, err := plain.createCertificate(t, "token-of-a", csrPEM(t, key, []string{own})); status.Code(err) != codes.Unauthenticated ||
		!strings.Contains(err.Error(), "over TLS only") {
		t.Errorf("in plain text: got %d certificates, error %v; want Unauthenticated", len(resp.GetCertChain()), err)
	}
	noCA := startServer(t, server.Options{Authenticator: opts.Authenticator})
	if _, err := noCA.createCertificate(t, "token-of-a", csrPEM(t, key, []string{own})); status.Code(err) != codes.Unimplemented {
		t.Errorf("without a CA: error %v, want Unimplemented", err)
	}
	if got := sum(t, f.reg, "smi_operator_xds_certificate_requests_total"); got != 11 {
		t.Errorf("certificate requests counted %v times, want 11", got)
	}
}

// fakeRotationCA answers every Rotate with changed, and notes each call on rotations (when set).
type fakeRotationCA struct {
	server.CertificateAuthority
	changed   bool
	rotations chan struct{}
}

func (c fakeRotationCA) Rotate(context.Context) (bool, error) {
	select {
	case c.rotations <- struct{}{}:
	default:
	}
	return c.changed, nil
}

// TestServingRereadsTheCAAtOnce: a server that starts serving (a replica just elected leader)
// has the CA re-read its Secret at once, not a RootRefresh later: the CA loaded its root when the
// process started, and another replica may have rotated it, or the Secret may be gone, since.
func TestServingRereadsTheCAAtOnce(t *testing.T) {
	ca := fakeRotationCA{CertificateAuthority: newAuthority(t), rotations: make(chan struct{}, 1)}
	startServer(t, server.Options{CA: ca, RootRefresh: time.Hour})
	select {
	case <-ca.rotations:
	case <-time.After(5 * time.Second):
		t.Fatal("the CA was not re-read when the server started serving")
	}
}

// TestOnTrustBundleChanged: when the CA's bundle changes, the server says so, for its holder to
// publish it.
func TestOnTrustBundleChanged(t *testing.T) {
	f := startServer(t, server.Options{CA: fakeRotationCA{CertificateAuthority: newAuthority(t), changed: true}, RootRefresh: 10 * time.Millisecond})
	told := make(chan struct{}, 1)
	f.srv.OnTrustBundleChanged(func() {
		select {
		case told <- struct{}{}:
		default:
		}
	})
	select {
	case <-told:
	case <-time.After(5 * time.Second):
		t.Fatal("a rotation was not told")
	}
}

// busyReviews is an Authenticator whose reviews are all taken (auth.ErrTooManyReviews).
type busyReviews struct{}

func (busyReviews) Authenticate(context.Context, string) (auth.Caller, error) {
	return auth.Caller{}, fmt.Errorf("auth: %w (32): try again later", auth.ErrTooManyReviews)
}

// TestBusyReviewsAreRetryable: while the token reviews in flight are at their bound, a CSR and a
// new ADS stream are refused Unavailable, which the agent and xDS clients retry (not
// Unauthenticated, which they would take as final), and counted as reviews-busy.
func TestBusyReviewsAreRetryable(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessEnforcing}, Authenticator: busyReviews{}, CA: newAuthority(t)})
	_, err := f.createCertificate(t, "token", csrPEM(t, ecKey(t, elliptic.P256()), []string{"spiffe://cluster.local/ns/shop/sa/a"}))
	if status.Code(err) != codes.Unavailable {
		t.Errorf("a CSR while reviews are busy: %v, want Unavailable", err)
	}
	stream := f.ads(t, "token")
	// io.EOF: the server ended the stream already; Recv says how.
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node(server.ProxyGRPC, "shop", "a"), TypeUrl: resourcev3.ListenerType}); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("an ADS stream while reviews are busy: %v, want Unavailable", err)
	}
	for _, name := range []string{"smi_operator_xds_certificate_requests_total", "smi_operator_xds_rejected_streams_total"} {
		if got := labelled(t, f.reg, name, "reviews-busy"); got != 1 {
			t.Errorf("%s{reviews-busy} = %v, want 1", name, got)
		}
	}
}

// TestCSRsAreLimitedPerPodAndNamespace: a pod whose token proves it may ask for certificates at
// most CSRBurst at once, then CSRRate a second; past that it is refused ResourceExhausted (which
// the pod agent retries later), counted as rate-limited, while another pod of its ServiceAccount
// is still served: one workload cannot have the operator sign without end, nor take its siblings'
// share. Past CSRNamespaceBurst a namespace's callers are refused together, whichever pods and
// ServiceAccounts they are, while another namespace is still served: a tenant cannot buy more by
// making more ServiceAccounts or pods.
func TestCSRsAreLimitedPerPodAndNamespace(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessEnforcing}, CA: newAuthority(t),
		CSRRate: 0.001, CSRBurst: 2, CSRNamespaceRate: 0.001, CSRNamespaceBurst: 4, // none more within the test
		Authenticator: grpcxds.Callers{
			"token-of-a-1": {Identity: auth.Identity{Namespace: "shop", ServiceAccount: "a"}, Pod: "uid-1"},
			"token-of-a-2": {Identity: auth.Identity{Namespace: "shop", ServiceAccount: "a"}, Pod: "uid-2"},
			"token-of-b":   {Identity: auth.Identity{Namespace: "shop", ServiceAccount: "b"}, Pod: "uid-3"},
			"token-of-c":   {Identity: auth.Identity{Namespace: "bank", ServiceAccount: "c"}, Pod: "uid-4"},
		}})
	key := ecKey(t, elliptic.P256())
	csrOf := func(ns, sa string) []byte {
		return csrPEM(t, key, []string{"spiffe://cluster.local/ns/" + ns + "/sa/" + sa})
	}
	for i := range 2 {
		if _, err := f.createCertificate(t, "token-of-a-1", csrOf("shop", "a")); err != nil {
			t.Fatalf("CSR %d of shop/a's pod uid-1, within the burst: %v", i+1, err)
		}
	}
	_, err := f.createCertificate(t, "token-of-a-1", csrOf("shop", "a"))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "shop/a (pod uid-1)") {
		t.Errorf("a third CSR of shop/a's pod uid-1 at once: %v; want ResourceExhausted naming the ServiceAccount and pod", err)
	}
	if _, err := f.createCertificate(t, "token-of-a-2", csrOf("shop", "a")); err != nil {
		t.Errorf("a CSR of shop/a's pod uid-2 while uid-1 is limited: %v", err)
	}
	if _, err := f.createCertificate(t, "token-of-b", csrOf("shop", "b")); err != nil {
		t.Errorf("a CSR of shop/b, the namespace's fourth: %v", err)
	}
	_, err = f.createCertificate(t, "token-of-b", csrOf("shop", "b"))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "namespace shop") {
		t.Errorf("the namespace's fifth CSR: %v; want ResourceExhausted naming the namespace", err)
	}
	if _, err := f.createCertificate(t, "token-of-c", csrOf("bank", "c")); err != nil {
		t.Errorf("a CSR of bank/c while shop is limited: %v", err)
	}
	for reason, want := range map[string]float64{"rate-limited": 1, "namespace-rate-limited": 1} {
		if got := labelled(t, f.reg, "smi_operator_xds_certificate_requests_total", reason); got != want {
			t.Errorf("certificate requests %s = %v, want %v", reason, got, want)
		}
	}
}

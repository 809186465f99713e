package istioe2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	networkingapi "istio.io/api/networking/v1"
	securityapi "istio.io/api/security/v1alpha1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// accessPort is where the xDS-enabled server of the access tests listens (the Service's
// targetPort).
const accessPort = 8080

// TestAccessOnIstiod: a TrafficTarget, through the operator and istiod, decides which proxyless
// gRPC clients an xDS-enabled gRPC server (istiod's RBAC, over mutual TLS with certificates from
// istiod's CA) answers: none before the target exists (deny-by-default), its source only while
// it does, none again once it is deleted.
func TestAccessOnIstiod(t *testing.T) {
	m := start(t)
	ctx := context.Background()
	ns := m.namespace(t, "access")

	// The server: Deployment api (the operator's policies select a workload's Pods by its
	// controller), its Pod, Service and EndpointSlice, and an xDS-enabled gRPC server with its
	// certificate.
	apiAddr := netns.Addr(3)
	deployment := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "api"}},
				Spec:       corev1.PodSpec{ServiceAccountName: "api", Containers: []corev1.Container{{Name: "app", Image: "app"}}},
			},
		},
	}
	if err := m.client.Create(ctx, deployment); err != nil {
		t.Fatal(err)
	}
	pod := m.pod(t, ns, "api-0", "api", apiAddr)
	svc, slice := testenv.GRPCService(ns, "api", servicePort, accessPort, pod)
	for _, obj := range []client.Object{svc, slice} {
		if err := m.client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	serverID := m.istioCertificate(t, ns, "api")
	server, err := grpcxds.StartXDSBackend("api", netip.AddrPortFrom(apiAddr, accessPort).String(), m.bootstrap(t, ns, "api-0", apiAddr, &serverID))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.Stop)
	if err := server.WaitServing(withTimeout(t, time.Minute)); err != nil {
		t.Fatalf("the server got no listener from istiod: %v", err)
	}
	// Istio's proxyless clients speak mutual TLS only where a DestinationRule says ISTIO_MUTUAL
	// (grpcgen has no auto mTLS), as a user of proxyless gRPC on Istio writes it.
	dr := &networkingv1.DestinationRule{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api-mtls"},
		Spec: networkingapi.DestinationRule{
			Host:          host(ns, "api"),
			TrafficPolicy: &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_ISTIO_MUTUAL}},
		},
	}
	if err := m.client.Create(ctx, dr); err != nil {
		t.Fatal(err)
	}

	// Two clients, each a Pod with its ServiceAccount and certificate.
	clients := map[string]grpc.ClientConnInterface{}
	for i, sa := range []string{"allowed", "other"} {
		addr := netns.Addr(4 + i)
		m.pod(t, ns, sa, sa, addr)
		id := m.istioCertificate(t, ns, sa)
		clients[sa] = m.dialAs(t, ns, "api", m.bootstrap(t, ns, sa, addr, &id))
	}
	spiffe := func(sa string) string { return fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/%s", ns, sa) }
	answered := func(sa string) func(grpcxds.Reply, error) error {
		return func(r grpcxds.Reply, err error) error {
			switch {
			case err != nil:
				return err
			case r.ClientIdentity != spiffe(sa):
				return fmt.Errorf("the server saw client identity %q, want %q (mutual TLS with istiod's certificates)", r.ClientIdentity, spiffe(sa))
			}
			return nil
		}
	}
	denied := func(r grpcxds.Reply, err error) error {
		if status.Code(err) != codes.PermissionDenied {
			return fmt.Errorf("answered %+v, %v; want PermissionDenied", r, err)
		}
		return nil
	}
	// deniedToBoth checks, for a while, that neither client gets through: SMI's deny-by-default.
	// istiod builds no RBAC filter for a proxyless server from an allow-nothing policy alone
	// (grpcgen's buildRBAC takes only policies with rules), so the operator's smi-default-deny
	// carries a rule no request matches.
	deniedToBoth := func(when string) {
		t.Helper()
		wait(t, ctx, func(ctx context.Context) error { return grpcxds.WaitFor(ctx, clients["allowed"], denied) })
		for range 10 {
			for _, sa := range []string{"allowed", "other"} {
				if err := denied(grpcxds.Call(withTimeout(t, 5*time.Second), clients[sa])); err != nil {
					t.Fatalf("%s: %s's call: %v", when, sa, err)
				}
			}
		}
	}
	deniedToBoth("deny-by-default, no TrafficTarget")

	m.createSMI(t, "specs.smi-spec.io/v1alpha4", "HTTPRouteGroup", ns, "everything",
		map[string]any{"matches": []any{map[string]any{"name": "all", "methods": []any{"*"}}}})
	target := m.createSMI(t, "access.smi-spec.io/v1alpha3", "TrafficTarget", ns, "allowed-to-api", map[string]any{
		"destination": map[string]any{"kind": "ServiceAccount", "name": "api", "namespace": ns},
		"sources":     []any{map[string]any{"kind": "ServiceAccount", "name": "allowed", "namespace": ns}},
		"rules":       []any{map[string]any{"kind": "HTTPRouteGroup", "name": "everything"}},
	})
	// Both were denied before: wait for the source to be let through.
	wait(t, ctx, func(ctx context.Context) error { return grpcxds.WaitFor(ctx, clients["allowed"], answered("allowed")) })
	for range 20 {
		for sa, check := range map[string]func(grpcxds.Reply, error) error{"allowed": answered("allowed"), "other": denied} {
			if err := check(grpcxds.Call(withTimeout(t, 5*time.Second), clients[sa])); err != nil {
				t.Fatalf("with the TrafficTarget, %s's call: %v", sa, err)
			}
		}
	}
	t.Logf("with the TrafficTarget: the source's calls are answered over mutual TLS as %s, another identity's are denied", spiffe("allowed"))
	m.istiodFindsNothingWrong(t, ns)

	// SMI denies both again once the target is gone.
	if err := m.client.Delete(ctx, target); err != nil {
		t.Fatal(err)
	}
	deniedToBoth("TrafficTarget deleted")
}

// withTimeout is a context that ends after d or with the test.
func withTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// serviceAccountToken is a token of ServiceAccount namespace/sa bound to audience, valid for an
// hour, as a projected token volume holds it.
func (m *meshEnv) serviceAccountToken(t testing.TB, namespace, sa, audience string) string {
	t.Helper()
	token, err := testenv.ServiceAccountToken(withTimeout(t, time.Minute), m.env.Config, namespace, sa, audience)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// istioCertificate gets a workload certificate for ServiceAccount namespace/sa the way Istio's
// agent does: a key made here, a CSR for spiffe://cluster.local/ns/<namespace>/sa/<sa> sent to
// istiod's IstioCertificateService over TLS (verified with the root istiod publishes in the
// ConfigMap istio-ca-root-cert of the namespace), authenticated by a token of the ServiceAccount
// bound to the audience istio-ca. It writes the chain, the key and the root to files.
func (m *meshEnv) istioCertificate(t testing.TB, namespace, sa string) grpcxds.PEMFiles {
	t.Helper()
	ctx := withTimeout(t, time.Minute)
	clientset, err := kubernetes.NewForConfig(m.env.Config)
	if err != nil {
		t.Fatal(err)
	}
	token := m.serviceAccountToken(t, namespace, sa, "istio-ca")
	var root string
	for {
		cm, err := clientset.CoreV1().ConfigMaps(namespace).Get(ctx, "istio-ca-root-cert", metav1.GetOptions{})
		if err == nil {
			root = cm.Data["root-cert.pem"]
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("istiod wrote no ConfigMap istio-ca-root-cert in %s: %v", namespace, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(root)) {
		t.Fatalf("istio-ca-root-cert of %s holds no certificate", namespace)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := &url.URL{Scheme: "spiffe", Host: "cluster.local", Path: fmt.Sprintf("/ns/%s/sa/%s", namespace, sa)}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id}}, key)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(netns.HostPort(1, testenv.IstiodSecureXDSPort), grpc.WithTransportCredentials(
		credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "istiod." + testenv.IstiodNamespace + ".svc", MinVersion: tls.VersionTLS12})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	callCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token, "ClusterID", "Kubernetes")
	resp, err := securityapi.NewIstioCertificateServiceClient(conn).CreateCertificate(callCtx, &securityapi.IstioCertificateRequest{
		Csr:              string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
		ValidityDuration: 3600,
	})
	if err != nil {
		t.Fatalf("istiod's CA refused the CSR of %s/%s: %v", namespace, sa, err)
	}
	if len(resp.GetCertChain()) < 2 {
		t.Fatalf("istiod's CA answered a chain of %d certificates", len(resp.GetCertChain()))
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := grpcxds.PEMFiles{
		CertificateFile:   filepath.Join(dir, "cert-chain.pem"),
		PrivateKeyFile:    filepath.Join(dir, "key.pem"),
		CACertificateFile: filepath.Join(dir, "root-cert.pem"),
	}
	chain := resp.GetCertChain()
	for file, data := range map[string]string{
		files.CertificateFile:   strings.Join(chain[:len(chain)-1], ""),
		files.PrivateKeyFile:    string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})),
		files.CACertificateFile: chain[len(chain)-1],
	} {
		if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

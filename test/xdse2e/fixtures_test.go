package xdse2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

// backendPort is the port every test backend listens on (the Services' targetPort).
const backendPort = 8080

// namespace creates a namespace named after the test, so tests do not see each other's objects.
func (o *operator) namespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 63 {
		name = name[:63]
	}
	o.create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	return name
}

func (o *operator) create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := o.client.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// service creates a Service with one gRPC port 80 → backendPort, and its EndpointSlice holding
// the given addresses (ready).
func (o *operator) service(t *testing.T, namespace, name string, addrs ...string) {
	t.Helper()
	o.create(t, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "grpc", Port: 80, TargetPort: intstr.FromInt32(backendPort), AppProtocol: ptr.To("grpc"),
		}}},
	})
	o.create(t, endpointSlice(namespace, name, addrs...))
}

func endpointSlice(namespace, service string, addrs ...string) *discoveryv1.EndpointSlice {
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: service + "-slice",
			Labels: map[string]string{discoveryv1.LabelServiceName: service},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("grpc"), Port: ptr.To(int32(backendPort)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, a := range addrs {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	return slice
}

// backend starts a gRPC backend (not xDS-enabled) answering as name on
// netns.Addr(i):backendPort. In enforcing mode clients only speak mutual TLS, so it serves TLS
// with a certificate of ServiceAccount namespace/name from the operator's CA and requires client
// certificates from it, as a sidecar-less workload of the mesh would.
func (o *operator) backend(t *testing.T, namespace, name string, i int) string {
	t.Helper()
	files := o.identity(t, namespace, name)
	cert, err := tls.LoadX509KeyPair(files.CertificateFile, files.PrivateKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(o.ca.TrustBundlePEM())
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
	})
	b, err := grpcxds.StartBackend(name, netns.HostPort(i, backendPort), grpc.Creds(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return netns.Addr(i).String()
}

// identity issues a certificate for ServiceAccount namespace/serviceAccount from the operator's
// CA and writes it, its key and the trust bundle to files, as a workload would get them.
func (o *operator) identity(t *testing.T, namespace, serviceAccount string) grpcxds.PEMFiles {
	t.Helper()
	files, err := grpcxds.IssuePEMFiles(t.TempDir(), o.ca, ca.SPIFFEID(o.ca.TrustDomain(), namespace, serviceAccount))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// clientBootstrap is the bootstrap of a proxyless gRPC client of the operator's xDS server,
// running as ServiceAccount namespace/serviceAccount: its node metadata says so and its
// certificate provider "default" holds that identity's certificate.
func (o *operator) clientBootstrap(t *testing.T, namespace, serviceAccount string) []byte {
	t.Helper()
	b, err := grpcxds.Bootstrap{
		ServerURI: netns.HostPort(1, xdsPortFor(namespace)),
		ServerTLS: o.xdsServerRoots(t, namespace),
		NodeID:    namespace + "/" + serviceAccount,
		NodeMetadata: map[string]any{
			server.MetadataProxy:          server.ProxyGRPC,
			server.MetadataNamespace:      namespace,
			server.MetadataServiceAccount: serviceAccount,
		},
		CertificateProviders: map[string]grpcxds.PEMFiles{"default": o.identity(t, namespace, serviceAccount)},
	}.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dial connects a proxyless client to the Service's port 80.
func dial(t *testing.T, namespace, service string, bootstrap []byte) *grpcClient {
	t.Helper()
	conn, err := grpcxds.Dial(fmt.Sprintf("%s.%s.svc.cluster.local:80", service, namespace), bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &grpcClient{t: t, conn: conn}
}

type grpcClient struct {
	t    *testing.T
	conn grpc.ClientConnInterface
}

// waitFor calls until check accepts a reply, or fails the test after a minute.
func (c *grpcClient) waitFor(ctx context.Context, check func(grpcxds.Reply, error) error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := grpcxds.WaitFor(ctx, c.conn, check); err != nil {
		c.t.Fatal(err)
	}
}

// shares makes n calls and checks how they spread over backends.
func (c *grpcClient) shares(ctx context.Context, n int, weights map[string]float64) {
	c.t.Helper()
	counts, err := grpcxds.Distribution(ctx, c.conn, n)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := grpcxds.CheckShares(counts, weights); err != nil {
		c.t.Fatalf("%d calls: %v", n, err)
	}
	c.t.Logf("%d calls spread as %v, expected shares %v", n, counts, weights)
}

// xdsServerRoots is what the proxies of namespace verify their xDS server with: the built-in CA's
// trust bundle, or nil when that server serves plain text (the permissive operator's and the
// plain-text enforcing one's).
func (o *operator) xdsServerRoots(t *testing.T, namespace string) *grpcxds.PEMFiles {
	t.Helper()
	if port := xdsPortFor(namespace); port == permissiveXDSPort || port == plainEnforcingXDSPort {
		return nil
	}
	file := filepath.Join(t.TempDir(), "xds-roots.pem")
	if err := os.WriteFile(file, o.ca.TrustBundlePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return &grpcxds.PEMFiles{CACertificateFile: file}
}

// dialXDS connects to the xDS server on netns.Addr(1):port over TLS, verifying it with the
// built-in CA's trust bundle as proxies do, for tests that speak ADS themselves.
func (o *operator) dialXDS(port uint16) (*grpc.ClientConn, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(o.ca.TrustBundlePEM()) {
		return nil, errors.New("the CA's trust bundle holds no certificate")
	}
	return grpc.NewClient(netns.HostPort(1, port), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})))
}

// xdsPortFor is the port of the xDS server of the operator that programs the namespace.
func xdsPortFor(namespace string) uint16 {
	switch namespace {
	case permissiveNamespace:
		return permissiveXDSPort
	case swapNamespace:
		return swapXDSPort
	}
	if slices.Contains(plainEnforcingNamespaces, namespace) {
		return plainEnforcingXDSPort
	}
	return xdsPort
}

// eventually calls check every interval until it returns nil, and fails the test with check's
// last error once within has passed.
func eventually(t *testing.T, within, interval time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(interval)
	}
}

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
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/test/testenv"
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

// backendPort is the port every test backend listens on (the Services' targetPort).
const backendPort = 8080

// namespace creates the namespace name, one per spec, so specs do not see each other's objects.
func (o *operator) namespace(name string) string {
	GinkgoHelper()
	o.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	return name
}

func (o *operator) create(obj client.Object) {
	GinkgoHelper()
	Expect(o.client.Create(context.Background(), obj)).To(Succeed(), "creating %T %s", obj, obj.GetName())
}

// service creates a Service with one gRPC port 80 → backendPort, and its EndpointSlice holding
// the given addresses (ready), each naming its Pod (endpointPod).
func (o *operator) service(namespace, name string, addrs ...string) {
	GinkgoHelper()
	o.create(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "grpc", Port: 80, TargetPort: intstr.FromInt32(backendPort), AppProtocol: ptr.To("grpc"),
		}}},
	})
	o.create(endpointSlice(namespace, name, addrs...))
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
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: namespace, Name: endpointPod(a)},
		})
	}
	return slice
}

// endpointPod names the Pod whose address is addr, in the EndpointSlices of the tests: the
// operator's clusters accept, as the server of an endpoint, only the ServiceAccount of that Pod
// (secure naming), which runsAs creates.
func endpointPod(addr string) string {
	return "pod-" + strings.ReplaceAll(addr, ".", "-")
}

// runsAs creates the Pod of the test server on netns.Addr(i) (endpointPod), running as
// ServiceAccount namespace/serviceAccount (created when missing), as a kubelet would report it.
func (o *operator) runsAs(namespace, serviceAccount string, i int) {
	GinkgoHelper()
	o.ensureServiceAccount(namespace, serviceAccount)
	pod := testenv.RunningPod(namespace, endpointPod(netns.Addr(i).String()), serviceAccount, netns.Addr(i), nil)
	Expect(testenv.CreatePod(context.Background(), o.client, pod)).To(Succeed())
}

// ensureServiceAccount creates the ServiceAccount namespace/name when it does not exist.
func (o *operator) ensureServiceAccount(namespace, name string) {
	GinkgoHelper()
	err := o.client.Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})
	if !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
}

// backend starts a gRPC backend (not xDS-enabled) answering as name on
// netns.Addr(i):backendPort, its Pod running as ServiceAccount namespace/name (runsAs).
func (o *operator) backend(namespace, name string, i int) string {
	GinkgoHelper()
	o.runsAs(namespace, name, i)
	b := o.tlsBackend(namespace, name, name, i)
	DeferCleanup(b.Stop)
	return netns.Addr(i).String()
}

// tlsBackend starts a gRPC backend (not xDS-enabled) answering as name on
// netns.Addr(i):backendPort. In enforcing mode clients only speak mutual TLS, so it serves TLS
// with a certificate of ServiceAccount namespace/serviceAccount from the operator's CA and
// requires client certificates from it, as a sidecar-less workload of the mesh would.
func (o *operator) tlsBackend(namespace, serviceAccount, name string, i int) *grpcxds.Backend {
	GinkgoHelper()
	files := o.identity(namespace, serviceAccount)
	cert, err := tls.LoadX509KeyPair(files.CertificateFile, files.PrivateKeyFile)
	Expect(err).NotTo(HaveOccurred())
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(o.ca.TrustBundlePEM())
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
	})
	b, err := grpcxds.StartBackend(name, netns.HostPort(i, backendPort), grpc.Creds(creds))
	Expect(err).NotTo(HaveOccurred())
	return b
}

// identity issues a certificate for ServiceAccount namespace/serviceAccount from the operator's
// CA and writes it, its key and the trust bundle to files, as a workload would get them.
func (o *operator) identity(namespace, serviceAccount string) grpcxds.PEMFiles {
	GinkgoHelper()
	files, err := grpcxds.IssuePEMFiles(GinkgoT().TempDir(), o.ca, ca.SPIFFEID(o.ca.TrustDomain(), namespace, serviceAccount))
	Expect(err).NotTo(HaveOccurred())
	return files
}

// clientBootstrap is the bootstrap of a proxyless gRPC client of the operator's xDS server,
// running as ServiceAccount namespace/serviceAccount: its node metadata says so and its
// certificate provider "default" holds that identity's certificate.
func (o *operator) clientBootstrap(namespace, serviceAccount string) []byte {
	GinkgoHelper()
	b, err := grpcxds.Bootstrap{
		ServerURI: netns.HostPort(1, xdsPortFor(namespace)),
		ServerTLS: o.xdsServerRoots(namespace),
		NodeID:    namespace + "/" + serviceAccount,
		NodeMetadata: map[string]any{
			server.MetadataProxy:          server.ProxyGRPC,
			server.MetadataNamespace:      namespace,
			server.MetadataServiceAccount: serviceAccount,
		},
		CertificateProviders: map[string]grpcxds.PEMFiles{"default": o.identity(namespace, serviceAccount)},
	}.JSON()
	Expect(err).NotTo(HaveOccurred())
	return b
}

// dial connects a proxyless client to the Service's port 80.
func dial(namespace, service string, bootstrap []byte) *grpcClient {
	GinkgoHelper()
	conn, err := grpcxds.Dial(fmt.Sprintf("%s.%s.svc.cluster.local:80", service, namespace), bootstrap)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { _ = conn.Close() })
	return &grpcClient{conn: conn}
}

type grpcClient struct {
	conn grpc.ClientConnInterface
}

// waitFor calls until check accepts a reply, or fails the spec after a minute.
func (c *grpcClient) waitFor(ctx context.Context, check func(grpcxds.Reply, error) error) {
	GinkgoHelper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	Expect(grpcxds.WaitFor(ctx, c.conn, check)).To(Succeed())
}

// shares makes n calls and checks how they spread over backends.
func (c *grpcClient) shares(ctx context.Context, n int, weights map[string]float64) {
	GinkgoHelper()
	counts, err := grpcxds.Distribution(ctx, c.conn, n)
	Expect(err).NotTo(HaveOccurred())
	Expect(grpcxds.CheckShares(counts, weights)).To(Succeed(), "%d calls", n)
	GinkgoWriter.Printf("%d calls spread as %v, expected shares %v\n", n, counts, weights)
}

// xdsServerRoots is what the proxies of namespace verify their xDS server with: the built-in CA's
// trust bundle, or nil when that server serves plain text (the permissive operator's and the
// plain-text enforcing one's).
func (o *operator) xdsServerRoots(namespace string) *grpcxds.PEMFiles {
	GinkgoHelper()
	if port := xdsPortFor(namespace); port == permissiveXDSPort || port == plainEnforcingXDSPort {
		return nil
	}
	file := filepath.Join(GinkgoT().TempDir(), "xds-roots.pem")
	Expect(os.WriteFile(file, o.ca.TrustBundlePEM(), 0o600)).To(Succeed())
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

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

	"github.com/smi-operator/smi-operator/internal/agent"
	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/test/testenv"
	"github.com/smi-operator/smi-operator/xds/bootstrap"
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
// netns.Addr(i):backendPort, its Pod running as ServiceAccount namespace/name (runsAs); opts are
// more server options (an interceptor that makes it fail or slow).
func (o *operator) backend(namespace, name string, i int, opts ...grpc.ServerOption) string {
	GinkgoHelper()
	o.runsAs(namespace, name, i)
	b := o.tlsBackend(namespace, name, name, i, opts...)
	DeferCleanup(b.Stop)
	return netns.Addr(i).String()
}

// tlsBackend starts a gRPC backend (not xDS-enabled) answering as name on
// netns.Addr(i):backendPort. In enforcing mode clients only speak mutual TLS, so it serves TLS
// with a certificate of ServiceAccount namespace/serviceAccount from the operator's CA and
// requires client certificates from it, as a sidecar-less workload of the mesh would.
func (o *operator) tlsBackend(namespace, serviceAccount, name string, i int, opts ...grpc.ServerOption) *grpcxds.Backend {
	GinkgoHelper()
	files := o.identity(namespace, serviceAccount)
	cert, err := tls.LoadX509KeyPair(files.CertificateFile, files.PrivateKeyFile)
	Expect(err).NotTo(HaveOccurred())
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(o.ca.TrustBundlePEM())
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
	})
	b, err := grpcxds.StartBackend(name, netns.HostPort(i, backendPort), append([]grpc.ServerOption{grpc.Creds(creds)}, opts...)...)
	Expect(err).NotTo(HaveOccurred())
	return b
}

// identity is the certificate, key and trust bundle files of ServiceAccount
// namespace/serviceAccount as a workload gets them: written by its pod agent (proxy grpc), which
// made the key and obtained the certificate with a CSR and a token of that ServiceAccount for the
// xDS audience (TokenRequest, as a projected volume holds it), from the enforcing operator, which
// holds the CA every operator of the suite trusts. The agent runs, renewing, until the spec ends;
// then no response it received from the operator may have carried a private key.
func (o *operator) identity(namespace, serviceAccount string) grpcxds.PEMFiles {
	GinkgoHelper()
	a := o.startAgent(namespace, serviceAccount, server.ProxyGRPC, netns.HostPort(1, xdsPort))
	return grpcxds.PEMFiles{CertificateFile: a.paths.CertChainFile, PrivateKeyFile: a.paths.KeyFile, CACertificateFile: a.paths.RootCertFile}
}

// runningAgent is a pod agent a spec started, with what it reads and writes and every response it
// received from the operator.
type runningAgent struct {
	*agent.Agent
	paths     agent.Paths
	responses *grpcxds.Responses
}

// agentSetup is what a spec may change of how startAgent runs an agent.
type agentSetup struct {
	// trustBundle is the bundle mounted at start; the operator's for the namespace (trustBundle)
	// when nil.
	trustBundle []byte
	// rootsRefresh is how often the agent reads its trust bundle file again; its default when 0.
	rootsRefresh time.Duration
}

// startAgent runs the pod agent of a pod of ServiceAccount namespace/serviceAccount (created when
// missing) for proxy against the operator at xdsAddress, as an injected pod runs it: its token
// is a TokenRequest token for the xDS audience, its trust bundle the CA's (unless setup says
// otherwise). It returns once the agent holds a certificate, and stops it when the spec ends,
// checking that no response it got carried a private key.
func (o *operator) startAgent(namespace, serviceAccount, proxy, xdsAddress string, setup ...agentSetup) *runningAgent {
	GinkgoHelper()
	var s agentSetup
	if len(setup) > 0 {
		s = setup[0]
	}
	if s.trustBundle == nil {
		s.trustBundle = o.trustBundle(namespace)
	}
	dir := GinkgoT().TempDir()
	paths := agent.DefaultPaths().InDir(dir)
	paths.TokenFile, paths.TrustBundleFile = filepath.Join(dir, "token"), filepath.Join(dir, "ca-root.pem")
	Expect(os.WriteFile(paths.TokenFile, []byte(o.serviceAccountToken(namespace, serviceAccount, tokenAudience)), 0o600)).To(Succeed())
	Expect(os.WriteFile(paths.TrustBundleFile, s.trustBundle, 0o644)).To(Succeed())
	recorded := &grpcxds.Responses{}
	a, err := agent.New(agent.Options{
		Proxy: proxy, XDSAddress: xdsAddress,
		PodName: serviceAccount + "-" + filepath.Base(dir), PodNamespace: namespace, ServiceAccount: serviceAccount,
		Paths: paths, DialOptions: recorded.DialOptions(), MinRetry: 100 * time.Millisecond, MaxRetry: time.Second,
		RootsRefresh: s.rootsRefresh,
		Log:          GinkgoLogr.WithName("agent").WithValues("identity", namespace+"/"+serviceAccount),
	})
	Expect(err).NotTo(HaveOccurred())
	first := a.Renewed()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	DeferCleanup(func() {
		cancel()
		Expect(<-done).To(Succeed())
		Expect(keysIn(recorded, a)).To(BeEmpty(), "responses of the operator carrying a private key")
	})
	select {
	case <-first:
	case <-time.After(30 * time.Second):
		Fail("the pod agent of " + namespace + "/" + serviceAccount + " got no certificate in 30s")
	}
	return &runningAgent{Agent: a, paths: paths, responses: recorded}
}

// trustBundle is what an injected pod of namespace mounts as its trust bundle: the ConfigMap the
// enforcing operator keeps in every namespace it programs, waited for; in the namespaces of the
// other operators, which run no CA, the CA's bundle.
func (o *operator) trustBundle(namespace string) []byte {
	GinkgoHelper()
	if xdsPortFor(namespace) != xdsPort {
		return o.ca.TrustBundlePEM()
	}
	cm := &corev1.ConfigMap{}
	Eventually(func() error {
		return o.client.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: bootstrap.TrustBundleConfigMap}, cm)
	}).Within(30*time.Second).ProbeEvery(50*time.Millisecond).Should(Succeed(), "the trust bundle ConfigMap of %s", namespace)
	return []byte(cm.Data[bootstrap.TrustBundleKey])
}

// keysIn names the responses recorded that carry a private key (the one the agent holds, or any
// PEM one); it fails when nothing was recorded.
func keysIn(r *grpcxds.Responses, a *agent.Agent) []string {
	GinkgoHelper()
	Expect(r.Len()).NotTo(BeZero(), "responses recorded")
	found, err := r.CarryingKeys(a.Current().Key)
	Expect(err).NotTo(HaveOccurred())
	return found
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
		JWTTokenFile:         o.xdsTokenFile(namespace, serviceAccount),
	}.JSON()
	Expect(err).NotTo(HaveOccurred())
	return b
}

// xdsTokenFile is the file of a token of ServiceAccount namespace/serviceAccount for the xDS
// audience, which a proxyless workload's bootstrap names (call_creds) for the operator of the
// namespace to check its node's identity, as an injected pod's does; "" when that operator
// serves plain text, where tokens are refused.
func (o *operator) xdsTokenFile(namespace, serviceAccount string) string {
	GinkgoHelper()
	if port := xdsPortFor(namespace); port == permissiveXDSPort || port == plainEnforcingXDSPort {
		return ""
	}
	file := filepath.Join(GinkgoT().TempDir(), "xds-token")
	Expect(os.WriteFile(file, []byte(o.serviceAccountToken(namespace, serviceAccount, tokenAudience)), 0o600)).To(Succeed())
	return file
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

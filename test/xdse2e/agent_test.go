package xdse2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"os"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	securityv1alpha1 "istio.io/api/security/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	xdsbackend "github.com/smi-operator/smi-operator/controllers/backends/xds"
	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/bootstrap"
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

// agentSpecs are the specs of the pod agent against the operator. (Every other spec's workloads
// take their certificates from pod agents too: see operator.identity.)
func agentSpecs() {
	It("the operator keeps the trust bundle ConfigMap in every namespace", trustBundleInEveryNamespace)
	It("workloads bootstrapped by their agents alone: a TrafficTarget allows and denies by identity", trafficTargetWithAgentBootstraps)
	It("the agent renews a short-lived certificate on disk before it expires", agentRenewsBeforeExpiry)
	It("rotating the CA's root loses no mutual-TLS call between agents' workloads", rootRotationLosesNoCall)
	It("a root that signs as soon as it is in the trust bundle fails mutual-TLS calls (the rotation spec's negative control)", rootSigningAtOnceFailsCalls)
	It("a CSR for another identity than the token's is refused", csrForAnotherIdentityIsRefused)
	It("an Envoy sidecar's agent serves SDS with its own key and proxies ADS with its token", envoyAgentServesSDSAndProxiesADS)
}

// trustBundleInEveryNamespace: the enforcing operator writes, in a namespace it sees appear, the
// ConfigMap the pod agents verify the xDS server with (bootstrap.TrustBundleConfigMap), holding
// the CA's trust bundle and controlled by the Namespace, so that it goes with it.
func trustBundleInEveryNamespace() {
	ns := o.namespace("trust-bundle-configmap")
	Expect(o.trustBundle(ns)).To(Equal(o.ca.TrustBundlePEM()))
	cm := &corev1.ConfigMap{}
	Expect(o.client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: bootstrap.TrustBundleConfigMap}, cm)).To(Succeed())
	ref := metav1.GetControllerOf(cm)
	Expect(ref).NotTo(BeNil())
	Expect(ref.Kind).To(Equal("Namespace"))
	Expect(ref.Name).To(Equal(ns))
}

// trafficTargetWithAgentBootstraps: an xDS-enabled grpc-go server and grpc-go clients each
// started from the gRPC bootstrap their pod agent wrote (the operator over TLS verified with the
// bundle the agent keeps, the node it names, the certificate provider on its files): deny by
// default, the TrafficTarget's source allowed over mutual TLS as its SPIFFE ID, another identity
// denied, denied again once the target is deleted.
func trafficTargetWithAgentBootstraps() {
	ns := o.namespace("traffic-target-with-agent-bootstraps")
	const i = 9
	o.runsAs(ns, "vault", i)
	vault := o.startAgent(ns, "vault", server.ProxyGRPC, netns.HostPort(1, xdsPort))
	b, err := grpcxds.StartXDSBackend("vault", netns.HostPort(i, backendPort), agentBootstrap(vault))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(b.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	Expect(b.WaitServing(ctx)).To(Succeed())
	o.checkTrafficTarget(ns, netns.Addr(i).String(), func(namespace, service, serviceAccount string) func() (grpcxds.Reply, error) {
		a := o.startAgent(namespace, serviceAccount, server.ProxyGRPC, netns.HostPort(1, xdsPort))
		c := dial(namespace, service, agentBootstrap(a))
		return func() (grpcxds.Reply, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			return grpcxds.Call(ctx, c.conn)
		}
	})
}

// agentBootstrap is the gRPC bootstrap the agent wrote.
func agentBootstrap(a *runningAgent) []byte {
	GinkgoHelper()
	b, err := os.ReadFile(a.paths.GRPCBootstrapFile)
	Expect(err).NotTo(HaveOccurred())
	return b
}

// shortTTLXDSPort is where agentRenewsBeforeExpiry's xDS server, whose CA (the suite's root)
// signs certificates for shortTTL, listens.
const (
	shortTTLXDSPort = 15014
	shortTTL        = 8 * time.Second
)

// agentRenewsBeforeExpiry: with certificates of a few seconds (the SMIOperator's API allows a
// minute at least; the CA allows less), the agent of a proxyless workload puts a renewed
// certificate — another key, the same identity — on disk at half its life, before the one on disk
// expires, and a grpc-go client keeps calling a server through the renewal over mutual TLS.
func agentRenewsBeforeExpiry() {
	startCAServer(shortTTLXDSPort, xdsbackend.Config{CASecret: types.NamespacedName{Namespace: operatorNamespace, Name: xdsCASecret}, CertTTL: shortTTL},
		xdsbackend.ServerWiring{Log: ctrl.Log.WithName("short-ttl-xds")})

	ns := o.namespace("agent-renews-before-expiry")
	a := o.startAgent(ns, "ticker", server.ProxyGRPC, netns.HostPort(1, shortTTLXDSPort))
	read := func() (*x509.Certificate, error) {
		pair, err := tls.LoadX509KeyPair(a.paths.CertChainFile, a.paths.KeyFile)
		if err != nil {
			return nil, err
		}
		return x509.ParseCertificate(pair.Certificate[0])
	}
	onDisk := func() *x509.Certificate {
		GinkgoHelper()
		leaf, err := read()
		Expect(err).NotTo(HaveOccurred(), "the chain and key on disk belong together")
		return leaf
	}
	first := onDisk()
	Expect(first.NotAfter).To(BeTemporally("~", time.Now().Add(shortTTL), 2*time.Second), "the certificate lives the configured TTL")
	firstKey := a.Current().Key
	// The agent writes the new key, then the new chain (file_watcher waits for both): a read
	// between the two sees a pair that does not match, and looks again.
	Eventually(func() bool {
		leaf, err := read()
		return err == nil && !leaf.Equal(first)
	}).Within(shortTTL).ProbeEvery(100*time.Millisecond).Should(BeTrue(), "a renewed certificate on disk, its key with it")
	renewed := onDisk()
	Expect(time.Now()).To(BeTemporally("<", first.NotAfter), "renewed before the first certificate expired")
	GinkgoWriter.Printf("renewed %s before the first certificate expired\n", time.Until(first.NotAfter).Round(time.Millisecond))
	Expect(renewed.URIs).To(HaveLen(1))
	Expect(renewed.URIs[0].String()).To(Equal(ca.SPIFFEID("cluster.local", ns, "ticker")))
	Expect(a.Current().Key.Equal(firstKey)).To(BeFalse(), "a new key for the renewal")
	Expect(keysIn(a.responses, a.Agent)).To(BeEmpty())
}

// startCAServer runs, until the spec ends, an xDS server of its own on netns.Addr(1):port with
// the CA and certificate lifetimes of cfg (CASecret, CertTTL, CARootTTL; the rest is the suite
// operator's) and wiring, for specs that need lifetimes the operators of the suite do not have.
func startCAServer(port uint16, cfg xdsbackend.Config, wiring xdsbackend.ServerWiring) {
	GinkgoHelper()
	ctx, cancel := context.WithCancel(context.Background())
	clients, err := xdsbackend.NewClients(o.env.Config)
	Expect(err).NotTo(HaveOccurred())
	cfg.Address, cfg.TokenAudiences, cfg.ServiceName = netns.HostPort(1, port), []string{tokenAudience}, xdsServiceName
	srv, err := xdsbackend.NewServer(ctx, clients, mesh.Settings{TrustDomain: "cluster.local", ClusterDomain: "cluster.local"}, cfg, wiring)
	Expect(err).NotTo(HaveOccurred())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Start(ctx) }()
	DeferCleanup(func() { cancel(); <-done })
	Expect(listening(netns.HostPort(1, port), 10*time.Second)).To(Succeed())
}

// csrForAnotherIdentityIsRefused: with a real token of ServiceAccount teller, the operator signs a
// CSR for teller's SPIFFE ID and refuses one for vault's (PermissionDenied, naming both), one
// asking for both, and one whose token is bound to the API server's audience.
func csrForAnotherIdentityIsRefused() {
	ns := o.namespace("csr-for-another-identity")
	conn, err := o.dialXDS(xdsPort)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { _ = conn.Close() })
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	csr := func(ids ...string) string {
		data, err := ca.CSR(key, ids)
		Expect(err).NotTo(HaveOccurred())
		return string(data)
	}
	sign := func(token, csr string) (*securityv1alpha1.IstioCertificateResponse, error) {
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token), 20*time.Second)
		defer cancel()
		return securityv1alpha1.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx, &securityv1alpha1.IstioCertificateRequest{Csr: csr})
	}
	teller, vault := ca.SPIFFEID("cluster.local", ns, "teller"), ca.SPIFFEID("cluster.local", ns, "vault")
	token := o.serviceAccountToken(ns, "teller", tokenAudience)

	resp, err := sign(token, csr(teller))
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.CertChain).To(HaveLen(2))
	Expect(resp.CertChain[0]).NotTo(ContainSubstring("PRIVATE KEY"))

	_, err = sign(token, csr(vault))
	Expect(status.Code(err)).To(Equal(codes.PermissionDenied), "%v", err)
	Expect(err.Error()).To(ContainSubstring("the token proves ServiceAccount " + ns + "/teller"))
	Expect(err.Error()).To(ContainSubstring(vault))
	_, err = sign(token, csr(teller, vault))
	Expect(status.Code(err)).To(Equal(codes.PermissionDenied), "%v", err)
	_, err = sign(o.serviceAccountToken(ns, "teller", "https://kubernetes.default.svc"), csr(teller))
	Expect(status.Code(err)).To(Equal(codes.Unauthenticated), "a token for the API server's audience: %v", err)
}

// envoyAgentServesSDSAndProxiesADS: the agent of an Envoy sidecar, with a real token, against
// the operator. On its Unix socket, SDS (spoken by grpc-go, as Envoy would) returns the
// certificate of its identity whose key is the agent's own, and the trust bundle; ADS through it
// reaches the operator with the token: as its own identity it gets its listeners, claiming another
// it is refused because of the token's identity. The operator itself serves no secrets to the
// token. No response carried a key (checked when the spec ends).
func envoyAgentServesSDSAndProxiesADS() {
	ns := o.namespace("envoy-agent")
	a := o.startAgent(ns, "web", server.ProxyEnvoy, netns.HostPort(1, xdsPort))
	conn, err := grpc.NewClient("unix://"+a.paths.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	DeferCleanup(cancel)
	node := func(sa string) *corev3.Node {
		m, _ := structpb.NewStruct(map[string]any{server.MetadataProxy: server.ProxyEnvoy, server.MetadataNamespace: ns, server.MetadataServiceAccount: sa})
		return &corev3.Node{Id: a.NodeID(), Metadata: m}
	}

	By("SDS: the agent's certificate and key, and the trust bundle")
	sds, err := secretv3.NewSecretDiscoveryServiceClient(conn).StreamSecrets(ctx)
	Expect(err).NotTo(HaveOccurred())
	Expect(sds.Send(&discoveryv3.DiscoveryRequest{Node: node("web"), TypeUrl: resourcev3.SecretType,
		ResourceNames: []string{xds.WorkloadSecretName, xds.TrustBundleSecretName}})).To(Succeed())
	resp, err := sds.Recv()
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.Resources).To(HaveLen(2))
	sans, err := grpcxds.CertificateURIs(resp.Resources)
	Expect(err).NotTo(HaveOccurred())
	Expect(sans).To(Equal([]string{ca.SPIFFEID("cluster.local", ns, "web")}))
	for _, r := range resp.Resources {
		secret := &tlsv3.Secret{}
		Expect(r.UnmarshalTo(secret)).To(Succeed())
		if own := secret.GetTlsCertificate(); own != nil {
			pair, err := tls.X509KeyPair(own.GetCertificateChain().GetInlineBytes(), own.GetPrivateKey().GetInlineBytes())
			Expect(err).NotTo(HaveOccurred())
			Expect(a.Current().Key.Equal(pair.PrivateKey)).To(BeTrue(), "SDS serves the key the agent made")
		} else {
			Expect(string(secret.GetValidationContext().GetTrustedCa().GetInlineBytes())).To(ContainSubstring(string(o.ca.TrustBundlePEM())))
		}
	}

	By("ADS through the agent: the operator sees the pod's token")
	ads := func(sa, typeURL string) (*discoveryv3.DiscoveryResponse, error) {
		stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
		if err != nil {
			return nil, err
		}
		if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node(sa), TypeUrl: typeURL}); err != nil {
			return nil, err
		}
		return stream.Recv()
	}
	listeners, err := ads("web", resourcev3.ListenerType)
	Expect(err).NotTo(HaveOccurred())
	Expect(listeners.Resources).NotTo(BeEmpty(), "the inbound and outbound listeners")
	_, err = ads("intruder", resourcev3.ListenerType)
	Expect(status.Code(err)).To(Equal(codes.PermissionDenied), "%v", err)
	Expect(err.Error()).To(ContainSubstring("its token is for ServiceAccount " + ns + "/web"))
	_, err = ads("web", resourcev3.SecretType)
	Expect(status.Code(err)).To(Equal(codes.Unimplemented), "the operator serves no secrets, even to a proven identity: %v", err)
}

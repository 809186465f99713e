package xdse2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/xds/ca"
)

// secureNamingSpecs are the specs of the server identities clients accept.
func secureNamingSpecs() {
	It("a grpc-go client accepts only a server of its endpoint Pod's ServiceAccount", clientAcceptsOnlyTheEndpointsIdentity)
	It("a C-core client accepts only a server of its endpoint Pod's ServiceAccount", func() {
		requireCCore()
		o.checkInteropSecureNaming(ccoreNamingNamespace, ccore("testdata/ccore_client.py", "--xds-credentials"),
			"SANs from certificate did not match SANs from xDS control plane", 12)
	})
	It("a grpc-js client accepts only a server of its endpoint Pod's ServiceAccount", func() {
		node, dir := requireGRPCJS()
		o.checkInteropSecureNaming(grpcJSNamingNamespace, grpcJS(node, dir, "testdata/grpc-js/client.js", "--xds-credentials"),
			"No matching subject alternative name found in certificate", 13)
	})
}

// ccoreNamingNamespace and grpcJSNamingNamespace are where the C-core and grpc-js clients' secure
// naming is checked: of plainEnforcingNamespaces, since they reach no TLS xDS server, and their
// clients speak mutual TLS only where access is enforced.
const (
	ccoreNamingNamespace  = "plaintext-ccore-naming"
	grpcJSNamingNamespace = "plaintext-grpc-js-naming"
)

// checkInteropSecureNaming is clientAcceptsOnlyTheEndpointsIdentity's check, but for the Pod
// unknown at first, with command's clients (startInterop's), which take mutual TLS from the
// Cluster, in namespace ns (created unless it exists), the endpoint on netns.Addr(i): refusal is
// the client's error for a certificate without an accepted SAN (takenOverByMallory).
func (o *operator) checkInteropSecureNaming(ns string, command interopCommand, refusal string, i int) {
	GinkgoHelper()
	o.ensureNamespace(ns)
	o.service(ns, "ledger", netns.Addr(i).String())
	o.runsAs(ns, "ledger", i)
	ledger := o.tlsBackend(ns, "ledger", "ledger", i)
	DeferCleanup(ledger.Stop)
	c := o.startInterop(command, ns, "ledger", "teller")

	By("the endpoint's server runs as the endpoint Pod's ServiceAccount: accepted")
	Eventually(func() error { return grpcxds.FromBackend("ledger")(c.call()) }).Within(time.Minute).ProbeEvery(50 * time.Millisecond).Should(Succeed())

	o.takenOverByMallory(ns, i, ledger, c.call, refusal)
}

// takenOverByMallory stops ledger, the server at the endpoint netns.Addr(i) of namespace ns, and
// starts there a workload of another ServiceAccount, mallory, with a valid certificate of the
// mesh's CA; a client that accepts mallory shows that it answers there. call's client must refuse
// it, its error holding refusal, and no call may be answered, on the way or in 20 calls after.
func (o *operator) takenOverByMallory(ns string, i int, ledger *grpcxds.Backend, call func() (grpcxds.Reply, error), refusal string) {
	GinkgoHelper()
	By("a workload of another ServiceAccount takes over the endpoint's address: refused")
	ledger.Stop()
	mallory := o.tlsBackend(ns, "mallory", "mallory", i)
	DeferCleanup(mallory.Stop)
	files := o.identity(ns, "teller")
	pair, err := tls.LoadX509KeyPair(files.CertificateFile, files.PrivateKeyFile)
	Expect(err).NotTo(HaveOccurred())
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(o.ca.TrustBundlePEM())
	Eventually(func() error {
		_, err := spiffeCall(context.Background(), netns.HostPort(i, backendPort), pair, roots, ca.SPIFFEID("cluster.local", ns, "mallory"))
		return err
	}).Within(time.Minute).ProbeEvery(50*time.Millisecond).Should(Succeed(), "mallory does not answer at the endpoint's address")

	refused := refusedWith(refusal)
	// The client reaches mallory once it reconnects: until then other errors are fine, an answer never.
	Eventually(func() error {
		r, err := call()
		if err == nil {
			return StopTrying(fmt.Sprintf("the call was answered by %q", r.Backend))
		}
		return refused(r, err)
	}).Within(time.Minute).ProbeEvery(50 * time.Millisecond).Should(Succeed())
	for range 20 {
		Expect(refused(call())).To(Succeed())
	}
}

// refusedServer is the error grpc-go gives when a server's certificate carries none of the SANs
// its Cluster accepts.
const refusedServer = "do not match any of the accepted SANs"

// clientAcceptsOnlyTheEndpointsIdentity (secure naming): a proxyless grpc-go client with mutual
// TLS calls the Service ledger, whose one endpoint names a Pod. While the operator has not seen
// that Pod, the client accepts no server identity and refuses the handshake with the real server;
// once the Pod (ServiceAccount ledger) appears, after the EndpointSlice, as a Pod informer may
// see it, the operator reconciles the Service again and the calls get through. Then another
// workload of the mesh, with a valid certificate of the mesh's CA for ServiceAccount mallory,
// takes over the endpoint's address: the client refuses its handshake, and none of its calls is
// answered by it.
func clientAcceptsOnlyTheEndpointsIdentity() {
	ctx := context.Background()
	ns := o.namespace("secure-naming")
	const i = 9
	o.service(ns, "ledger", netns.Addr(i).String())
	ledger := o.tlsBackend(ns, "ledger", "ledger", i)
	DeferCleanup(ledger.Stop)
	client := dial(ns, "ledger", o.clientBootstrap(ns, "teller"))
	call := func() (grpcxds.Reply, error) {
		callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return grpcxds.Call(callCtx, client.conn)
	}

	By("the endpoint's Pod is not known: no server is accepted")
	refused := refusedWith(refusedServer)
	Eventually(func() error { return refused(call()) }).Within(time.Minute).ProbeEvery(50 * time.Millisecond).Should(Succeed())
	Consistently(func() error { return refused(call()) }).Within(time.Second).ProbeEvery(100 * time.Millisecond).Should(Succeed())

	By("the Pod appears, running as ledger: the server of that identity is accepted")
	o.runsAs(ns, "ledger", i)
	client.waitFor(ctx, grpcxds.FromBackend("ledger"))

	o.takenOverByMallory(ns, i, ledger, call, refusedServer)
}

// refusedWith is a check that the call failed because the client refused the server's
// certificate, with an error holding text.
func refusedWith(text string) func(grpcxds.Reply, error) error {
	return func(r grpcxds.Reply, err error) error {
		switch {
		case err == nil:
			return fmt.Errorf("the call was answered by %q, want the server refused", r.Backend)
		case !strings.Contains(err.Error(), text):
			return fmt.Errorf("want the server's certificate refused (%q), got %w", text, err)
		}
		return nil
	}
}

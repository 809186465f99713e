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
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
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
// the client's error for a certificate without an accepted SAN. A grpc-go client that checks no
// name (mutual TLS with the mesh's CA, any SAN) shows that mallory does answer at the address.
func (o *operator) checkInteropSecureNaming(ns string, command interopCommand, refusal string, i int) {
	GinkgoHelper()
	o.ensureNamespace(ns)
	o.service(ns, "ledger", netns.Addr(i).String())
	o.runsAs(ns, "ledger", i)
	ledger := o.tlsBackend(ns, "ledger", "ledger", i)
	DeferCleanup(ledger.Stop)
	c := o.startInterop(command, ns, "ledger", "teller")

	By("the endpoint's server runs as the endpoint Pod's ServiceAccount: accepted")
	Eventually(func() error {
		r, err := c.call()
		if err == nil && r.Backend != "ledger" {
			return fmt.Errorf("answered by %q, want ledger", r.Backend)
		}
		return err
	}).Within(time.Minute).ProbeEvery(50 * time.Millisecond).Should(Succeed())

	By("a workload of another ServiceAccount takes over the endpoint's address: refused")
	ledger.Stop()
	mallory := o.tlsBackend(ns, "mallory", "mallory", i)
	DeferCleanup(mallory.Stop)
	answeredByMallory := o.callerWithoutNameCheck(ns, i, "mallory")
	Eventually(answeredByMallory).Within(time.Minute).ProbeEvery(50*time.Millisecond).
		Should(Succeed(), "mallory does not answer at the endpoint's address")
	// The client refuses mallory's certificate, which it reaches once it reconnects; never a call
	// answered on the way.
	deadline := time.Now().Add(time.Minute)
	for {
		r, err := c.call()
		Expect(err).To(HaveOccurred(), "%s's call was answered by %q", command.name, r.Backend)
		if strings.Contains(err.Error(), refusal) {
			break
		}
		Expect(time.Now().Before(deadline)).To(BeTrue(), "%s did not refuse mallory's certificate within a minute; last error: %v", command.name, err)
		time.Sleep(50 * time.Millisecond)
	}
	for range 20 {
		r, err := c.call()
		Expect(err).To(HaveOccurred(), "%s's call was answered by %q", command.name, r.Backend)
	}
}

// callerWithoutNameCheck returns a check that a call to netns.Addr(i), with mutual TLS as
// ServiceAccount ns/teller, trusting the mesh's CA but checking no name, is answered by backend.
func (o *operator) callerWithoutNameCheck(ns string, i int, backend string) func() error {
	GinkgoHelper()
	files := o.identity(ns, "teller")
	cert, err := tls.LoadX509KeyPair(files.CertificateFile, files.PrivateKeyFile)
	Expect(err).NotTo(HaveOccurred())
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(o.ca.TrustBundlePEM())
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert},
		// Any certificate of the mesh's CA: the check secure naming makes is what this leaves out.
		InsecureSkipVerify: true, VerifyPeerCertificate: verifiedBy(pool)})
	conn, err := grpc.NewClient(netns.HostPort(i, backendPort), grpc.WithTransportCredentials(creds))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(conn.Close)
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := grpcxds.Call(ctx, conn)
		if err == nil && r.Backend != backend {
			return fmt.Errorf("answered by %q, want %s", r.Backend, backend)
		}
		return err
	}
}

// verifiedBy checks that the peer's chain leads to a root of pool, whatever names it carries.
func verifiedBy(pool *x509.CertPool) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return fmt.Errorf("no certificate")
		}
		certs := make([]*x509.Certificate, len(raw))
		for j, der := range raw {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return err
			}
			certs[j] = c
		}
		intermediates := x509.NewCertPool()
		for _, c := range certs[1:] {
			intermediates.AddCert(c)
		}
		_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err
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
	Eventually(func() error { return refused(call()) }).Within(time.Minute).ProbeEvery(50 * time.Millisecond).Should(Succeed())
	Consistently(func() error { return refused(call()) }).Within(time.Second).ProbeEvery(100 * time.Millisecond).Should(Succeed())

	By("the Pod appears, running as ledger: the server of that identity is accepted")
	o.runsAs(ns, "ledger", i)
	client.waitFor(ctx, func(r grpcxds.Reply, err error) error {
		if err == nil && r.Backend != "ledger" {
			return fmt.Errorf("answered by %q, want ledger", r.Backend)
		}
		return err
	})

	By("a workload of another ServiceAccount takes over the endpoint's address: refused")
	ledger.Stop()
	mallory := o.tlsBackend(ns, "mallory", "mallory", i)
	DeferCleanup(mallory.Stop)
	Eventually(func() error { return refused(call()) }).Within(time.Minute).ProbeEvery(50 * time.Millisecond).Should(Succeed())
	// Call after call: none reaches mallory (refused fails on any answer).
	for range 20 {
		Expect(refused(call())).To(Succeed())
	}
}

// refused is a check that the call failed because the client refused the server's certificate.
func refused(r grpcxds.Reply, err error) error {
	switch {
	case err == nil:
		return fmt.Errorf("the call was answered by %q, want the server refused", r.Backend)
	case !strings.Contains(err.Error(), refusedServer):
		return fmt.Errorf("want the server's certificate refused, got %w", err)
	}
	return nil
}

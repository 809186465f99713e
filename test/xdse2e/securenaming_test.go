package xdse2e

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
)

// secureNamingSpecs are the specs of the server identities clients accept.
func secureNamingSpecs() {
	It("a grpc-go client accepts only a server of its endpoint Pod's ServiceAccount", clientAcceptsOnlyTheEndpointsIdentity)
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

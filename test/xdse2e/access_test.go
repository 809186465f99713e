package xdse2e

import (
	"context"
	"errors"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

// accessSpecs are the specs of access rules on xDS-enabled grpc-go servers.
func accessSpecs() {
	It("an xDS-enabled server enforces a TrafficTarget", trafficTargetOnXDSServer)
	It("deny-by-default applies in the selected namespaces only, following their labels", accessAppliesInSelectedNamespacesOnXDSServer)
	It("permissive mode allows every identity", permissiveModeAllowsEveryIdentity)
}

// trafficTargetOnXDSServer: on an xDS-enabled gRPC server, enforcing mode denies everybody
// until a TrafficTarget names a source, which is then allowed (over mutual TLS, as the identity
// in its certificate) while every other identity stays denied; deleting the target denies it
// again.
func trafficTargetOnXDSServer() {
	ns := o.namespace("traffic-target-on-xds-server")
	o.checkTrafficTarget(ns, o.xdsBackend(ns, "vault", 9), o.grpcGoCaller)
}

// startClient starts a client of the Service's port 80 running as ServiceAccount serviceAccount of
// namespace, and returns what makes one call with it, as grpcxds.Call does.
type startClient func(namespace, service, serviceAccount string) func() (grpcxds.Reply, error)

// grpcGoCaller is a startClient of grpc-go clients with xDS credentials (mutual TLS when the Cluster
// says so).
func (o *operator) grpcGoCaller(namespace, service, serviceAccount string) func() (grpcxds.Reply, error) {
	c := dial(namespace, service, o.clientBootstrap(namespace, serviceAccount))
	return func() (grpcxds.Reply, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return grpcxds.Call(ctx, c.conn)
	}
}

// checkTrafficTarget is trafficTargetOnXDSServer's check, on an xDS-enabled server running as
// ServiceAccount vault of an enforcing namespace at vault: it becomes the Service vault, and
// clients started by clients, as teller and as visitor, call it.
func (o *operator) checkTrafficTarget(ns, vault string, clients startClient) {
	GinkgoHelper()
	ctx := context.Background()
	o.service(ns, "vault", vault)
	allowed := clients(ns, "vault", "teller")
	denied := clients(ns, "vault", "visitor")
	waitFor := func(call func() (grpcxds.Reply, error), check func(grpcxds.Reply, error) error) {
		GinkgoHelper()
		Eventually(func() error { return check(call()) }).Within(time.Minute).ProbeEvery(50 * time.Millisecond).Should(Succeed())
	}

	// No TrafficTarget yet: the destination is under SMI's deny-by-default.
	waitFor(allowed, deniedCall)
	waitFor(denied, deniedCall)

	target := o.tellersOpenTheVault(ns)
	teller := ca.SPIFFEID("cluster.local", ns, "teller")
	waitFor(allowed, func(r grpcxds.Reply, err error) error {
		if err != nil {
			return err
		}
		if r.ClientIdentity != teller {
			return fmt.Errorf("the server saw client identity %q, want %q", r.ClientIdentity, teller)
		}
		return nil
	})
	// The rest stay denied, call after call.
	for range 20 {
		Expect(deniedCall(denied())).To(Succeed(), "visitor")
	}

	Expect(o.client.Delete(ctx, target)).To(Succeed())
	waitFor(allowed, deniedCall)
}

// accessAppliesInSelectedNamespacesOnXDSServer: deny-by-default holds in the namespaces the
// operator's selector selects, following their labels: an identity no TrafficTarget names calls an
// xDS-enabled gRPC server of a namespace left out (over mutual TLS, kept there), and is denied
// once the namespace's labels bring it into the selection.
func accessAppliesInSelectedNamespacesOnXDSServer() {
	ctx := context.Background()
	ns := o.namespace("access-applies-in-selected-namespaces")
	o.mergePatch(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, `{"metadata":{"labels":{"`+accessOffLabel+`":"off"}}}`)
	o.service(ns, "vault", o.xdsBackend(ns, "vault", 19))
	visitor := dial(ns, "vault", o.clientBootstrap(ns, "visitor"))
	visitor.waitFor(ctx, func(r grpcxds.Reply, err error) error {
		if id := ca.SPIFFEID("cluster.local", ns, "visitor"); err == nil && r.ClientIdentity != id {
			return fmt.Errorf("the backend saw the caller as %q, want %s", r.ClientIdentity, id)
		}
		return err
	})

	o.mergePatch(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, `{"metadata":{"labels":{"`+accessOffLabel+`":null}}}`)
	visitor.waitFor(ctx, deniedCall)
}

// deniedCall is a waitFor check: the call was refused by the server's RBAC.
func deniedCall(_ grpcxds.Reply, err error) error {
	if status.Code(err) == codes.PermissionDenied {
		return nil
	}
	if err == nil {
		return errors.New("the call was allowed, want PermissionDenied")
	}
	return fmt.Errorf("want PermissionDenied, got %w", err)
}

// xdsBackend starts an xDS-enabled gRPC server running as ServiceAccount namespace/name on
// netns.Addr(i):backendPort, its Pod too (runsAs), and waits until the operator's Listener makes
// it serve.
func (o *operator) xdsBackend(namespace, name string, i int) string {
	GinkgoHelper()
	o.runsAs(namespace, name, i)
	b, err := grpcxds.StartXDSBackend(name, netns.HostPort(i, backendPort), o.serverBootstrap(namespace, name))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(b.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	Expect(b.WaitServing(ctx)).To(Succeed())
	return netns.Addr(i).String()
}

// serverBootstrap is the bootstrap of an xDS-enabled gRPC server running as ServiceAccount
// namespace/name: its node metadata says so, its certificate provider "default" holds that
// identity's certificate, and it names its Listener with grpcxds.ServerListenerTemplate.
func (o *operator) serverBootstrap(namespace, name string) []byte {
	GinkgoHelper()
	bootstrap, err := grpcxds.Bootstrap{
		ServerURI: netns.HostPort(1, xdsPortFor(namespace)),
		ServerTLS: o.xdsServerRoots(namespace),
		NodeID:    namespace + "/" + name + "-server",
		NodeMetadata: map[string]any{
			server.MetadataProxy:          server.ProxyGRPC,
			server.MetadataNamespace:      namespace,
			server.MetadataServiceAccount: name,
		},
		CertificateProviders: map[string]grpcxds.PEMFiles{"default": o.identity(namespace, name)},
		JWTTokenFile:         o.xdsTokenFile(namespace, name),
	}.JSON()
	Expect(err).NotTo(HaveOccurred())
	return bootstrap
}

// permissiveModeAllowsEveryIdentity: with the operator in permissive mode (with mutual TLS,
// so that every caller proves its identity), an xDS-enabled gRPC server whose TrafficTarget
// names one source lets every identity through.
func permissiveModeAllowsEveryIdentity() {
	ctx := context.Background()
	ns := permissiveNamespace
	o.ensureNamespace(ns)
	o.service(ns, "vault", o.xdsBackend(ns, "vault", 10))
	target := o.tellersOpenTheVault(ns)
	// The permissive operator, which alone programs this namespace, has accepted it.
	o.waitCondition(target, smi.ConditionAccepted, metav1.ConditionTrue, "")
	for _, sa := range []string{"teller", "visitor"} {
		c := dial(ns, "vault", o.clientBootstrap(ns, sa))
		c.waitFor(ctx, func(r grpcxds.Reply, err error) error {
			if id := ca.SPIFFEID("cluster.local", ns, sa); err == nil && r.ClientIdentity != id {
				return fmt.Errorf("the backend saw the caller as %q, want %s", r.ClientIdentity, id)
			}
			return err
		})
		c.shares(ctx, 50, map[string]float64{"vault": 1})
	}
}

// tellersOpenTheVault creates a TrafficTarget letting ServiceAccount teller make any HTTP request
// to ServiceAccount vault, with its HTTPRouteGroup.
func (o *operator) tellersOpenTheVault(ns string) *hub.TrafficTarget {
	GinkgoHelper()
	o.create(&hub.HTTPRouteGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "everything"},
		Spec:       specsv1alpha4.HTTPRouteGroupSpec{Matches: []specsv1alpha4.HTTPMatch{{Name: "all", PathRegex: ".*"}}},
	})
	target := &hub.TrafficTarget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tellers-open-the-vault"},
		Spec: accessv1alpha3.TrafficTargetSpec{
			Destination: accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: "vault", Namespace: ns},
			Sources:     []accessv1alpha3.IdentityBindingSubject{{Kind: "ServiceAccount", Name: "teller", Namespace: ns}},
			Rules:       []accessv1alpha3.TrafficTargetRule{{Kind: smi.HTTPRouteGroupKind, Name: "everything", Matches: []string{"all"}}},
		},
	}
	o.create(target)
	return target
}

package xdse2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

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

// TestTrafficTargetOnXDSServer: on an xDS-enabled gRPC server, enforcing mode denies everybody
// until a TrafficTarget names a source, which is then allowed (over mutual TLS, as the identity
// in its certificate) while every other identity stays denied; deleting the target denies it
// again.
func TestTrafficTargetOnXDSServer(t *testing.T) {
	o := start(t)
	ns := o.namespace(t)
	o.checkTrafficTarget(t, ns, o.xdsBackend(t, ns, "vault", 9), o.grpcGoCaller)
}

// startClient starts a client of the Service's port 80 running as ServiceAccount serviceAccount of
// namespace, and returns what makes one call with it, as grpcxds.Call does.
type startClient func(t *testing.T, namespace, service, serviceAccount string) func() (grpcxds.Reply, error)

// grpcGoCaller is a startClient of grpc-go clients with xDS credentials (mutual TLS when the Cluster
// says so).
func (o *operator) grpcGoCaller(t *testing.T, namespace, service, serviceAccount string) func() (grpcxds.Reply, error) {
	c := dial(t, namespace, service, o.clientBootstrap(t, namespace, serviceAccount))
	return func() (grpcxds.Reply, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return grpcxds.Call(ctx, c.conn)
	}
}

// checkTrafficTarget is TestTrafficTargetOnXDSServer's check, on an xDS-enabled server running as
// ServiceAccount vault of an enforcing namespace at vault: it becomes the Service vault, and
// clients started by clients, as teller and as visitor, call it.
func (o *operator) checkTrafficTarget(t *testing.T, ns, vault string, clients startClient) {
	t.Helper()
	ctx := context.Background()
	o.service(t, ns, "vault", vault)
	allowed := clients(t, ns, "vault", "teller")
	denied := clients(t, ns, "vault", "visitor")
	waitFor := func(call func() (grpcxds.Reply, error), check func(grpcxds.Reply, error) error) {
		t.Helper()
		eventually(t, time.Minute, 50*time.Millisecond, func() error { return check(call()) })
	}

	// No TrafficTarget yet: the destination is under SMI's deny-by-default.
	waitFor(allowed, deniedCall)
	waitFor(denied, deniedCall)

	target := o.tellersOpenTheVault(t, ns)
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
		if err := deniedCall(denied()); err != nil {
			t.Fatalf("visitor: %v", err)
		}
	}

	if err := o.client.Delete(ctx, target); err != nil {
		t.Fatal(err)
	}
	waitFor(allowed, deniedCall)
}

// TestAccessAppliesInSelectedNamespacesOnXDSServer: deny-by-default holds in the namespaces the
// operator's selector selects, following their labels: an identity no TrafficTarget names calls an
// xDS-enabled gRPC server of a namespace left out (over mutual TLS, kept there), and is denied
// once the namespace's labels bring it into the selection.
func TestAccessAppliesInSelectedNamespacesOnXDSServer(t *testing.T) {
	o := start(t)
	ctx := context.Background()
	ns := o.namespace(t)
	o.mergePatch(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, `{"metadata":{"labels":{"`+accessOffLabel+`":"off"}}}`)
	o.service(t, ns, "vault", o.xdsBackend(t, ns, "vault", 19))
	visitor := dial(t, ns, "vault", o.clientBootstrap(t, ns, "visitor"))
	visitor.waitFor(ctx, func(r grpcxds.Reply, err error) error {
		if id := ca.SPIFFEID("cluster.local", ns, "visitor"); err == nil && r.ClientIdentity != id {
			return fmt.Errorf("the backend saw the caller as %q, want %s", r.ClientIdentity, id)
		}
		return err
	})

	o.mergePatch(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, `{"metadata":{"labels":{"`+accessOffLabel+`":null}}}`)
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
// netns.Addr(i):backendPort, and waits until the operator's Listener makes it serve.
func (o *operator) xdsBackend(t *testing.T, namespace, name string, i int) string {
	t.Helper()
	b, err := grpcxds.StartXDSBackend(name, netns.HostPort(i, backendPort), o.serverBootstrap(t, namespace, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.WaitServing(ctx); err != nil {
		t.Fatal(err)
	}
	return netns.Addr(i).String()
}

// serverBootstrap is the bootstrap of an xDS-enabled gRPC server running as ServiceAccount
// namespace/name: its node metadata says so, its certificate provider "default" holds that
// identity's certificate, and it names its Listener with grpcxds.ServerListenerTemplate.
func (o *operator) serverBootstrap(t *testing.T, namespace, name string) []byte {
	t.Helper()
	bootstrap, err := grpcxds.Bootstrap{
		ServerURI: netns.HostPort(1, xdsPortFor(namespace)),
		ServerTLS: o.xdsServerRoots(t, namespace),
		NodeID:    namespace + "/" + name + "-server",
		NodeMetadata: map[string]any{
			server.MetadataProxy:          server.ProxyGRPC,
			server.MetadataNamespace:      namespace,
			server.MetadataServiceAccount: name,
		},
		CertificateProviders: map[string]grpcxds.PEMFiles{"default": o.identity(t, namespace, name)},
	}.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return bootstrap
}

// TestPermissiveModeAllowsEveryIdentity: with the operator in permissive mode (with mutual TLS,
// so that every caller proves its identity), an xDS-enabled gRPC server whose TrafficTarget
// names one source lets every identity through.
func TestPermissiveModeAllowsEveryIdentity(t *testing.T) {
	o := start(t)
	ctx := context.Background()
	ns := permissiveNamespace
	o.create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	o.service(t, ns, "vault", o.xdsBackend(t, ns, "vault", 10))
	target := o.tellersOpenTheVault(t, ns)
	// The permissive operator, which alone programs this namespace, has accepted it.
	o.waitCondition(t, target, smi.ConditionAccepted, metav1.ConditionTrue, "")
	for _, sa := range []string{"teller", "visitor"} {
		c := dial(t, ns, "vault", o.clientBootstrap(t, ns, sa))
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
func (o *operator) tellersOpenTheVault(t *testing.T, ns string) *hub.TrafficTarget {
	t.Helper()
	o.create(t, &hub.HTTPRouteGroup{
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
	o.create(t, target)
	return target
}

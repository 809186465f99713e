package grpcxds_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// TestWeightedSplitFromEndpointSlices is the whole chain the operator's end-to-end tests rely on:
// a real API server inside the namespace accepts EndpointSlices with the namespace's addresses
// (and refuses loopback ones), the load assignments are built from the slices as read back, and a
// real grpc-go client spreads its calls 80/20 over two real backends as a weighted route says.
func TestWeightedSplitFromEndpointSlices(t *testing.T) {
	netns.Require(t)
	env, err := testenv.Start(testenv.Options{APIServerFlags: netns.APIServerFlags()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	ctx := testContext(t) // from here on: starting the control plane can take long on a busy machine
	k8s, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}

	v1 := backend(t, "v1", netns.HostPort(2, 0))
	v2 := backend(t, "v2", netns.HostPort(3, 0))

	const ns = "split"
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"svc", "svc-v1", "svc-v2"} {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "grpc", Port: 80}}},
		}
		if err := k8s.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
		if ip := netip.MustParseAddr(svc.Spec.ClusterIP); !netip.MustParsePrefix("10.96.0.0/12").Contains(ip) {
			t.Fatalf("Service %s got ClusterIP %s, outside the range netns.APIServerFlags sets", name, ip)
		}
	}
	slice := func(name, service, addr string) *discoveryv1.EndpointSlice {
		ap := netip.MustParseAddrPort(addr)
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{
				Addresses:  []string{ap.Addr().String()},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			}},
			Ports: []discoveryv1.EndpointPort{{Name: ptr.To("grpc"), Port: ptr.To(int32(ap.Port()))}},
		}
	}

	// What the namespace is for: the API server refuses a loopback endpoint…
	err = k8s.Create(ctx, slice("loopback", "svc-v1", "127.0.0.1:50051"))
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("creating an EndpointSlice with 127.0.0.1: %v, want Invalid … loopback", err)
	}
	// …and takes the namespace's addresses.
	for _, s := range []*discoveryv1.EndpointSlice{slice("svc-v1-a", "svc-v1", v1.Addr), slice("svc-v2-a", "svc-v2", v2.Addr)} {
		if err := k8s.Create(ctx, s); err != nil {
			t.Fatalf("creating EndpointSlice %s for %s: %v", s.Name, s.Endpoints[0].Addresses[0], err)
		}
	}

	// Load assignments from the slices as the API server returns them.
	resources := []proto.Message{}
	for _, service := range []string{"svc-v1", "svc-v2"} {
		var slices discoveryv1.EndpointSliceList
		if err := k8s.List(ctx, &slices, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: service}); err != nil {
			t.Fatal(err)
		}
		var addrs []string
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				for _, a := range e.Addresses {
					addrs = append(addrs, netip.AddrPortFrom(netip.MustParseAddr(a), uint16(*s.Ports[0].Port)).String())
				}
			}
		}
		if len(addrs) != 1 {
			t.Fatalf("EndpointSlices of %s hold %v, want one address", service, addrs)
		}
		cluster := fmt.Sprintf("outbound|80||%s.%s.svc.cluster.local", service, ns)
		resources = append(resources, edsCluster(cluster, nil), endpoints(t, cluster, addrs...))
	}

	const target = "svc.split.svc.cluster.local:80"
	cp := startControlPlane(t)
	cp.set(t, "client", append(resources,
		apiListener(target, target),
		routeConfig(target, target, route(prefix("/"),
			weighted{"outbound|80||svc-v1.split.svc.cluster.local", 80},
			weighted{"outbound|80||svc-v2.split.svc.cluster.local", 20},
		)),
	)...)
	conn := dial(t, target, cp.bootstrap("client"))
	if err := grpcxds.WaitFor(ctx, conn, func(_ grpcxds.Reply, err error) error { return err }); err != nil {
		t.Fatalf("the client never reached a backend: %v", err)
	}

	const n = 1000
	counts, err := grpcxds.Distribution(ctx, conn, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := grpcxds.CheckShares(counts, map[string]float64{"v1": 80, "v2": 20}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d calls: %v (tolerance ±%.1f)", n, counts, grpcxds.Tolerance(n, 0.2))
	// The same counts are far from an even split: the check has teeth at this n.
	if err := grpcxds.CheckShares(counts, map[string]float64{"v1": 50, "v2": 50}); err == nil {
		t.Fatalf("%v passes as a 50/50 split too", counts)
	}
}

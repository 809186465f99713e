package server_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/server"
)

// policyMesh is a model with TrafficPolicies on a split apex (one per port, the HTTP one with
// every route setting, a fault and a ring hash, the opaque TCP one with an idle timeout), on one
// of its backends, and on a Service of its own; with its Services and their endpoints.
func policyMesh() (mesh.Model, []mesh.Service, xds.Endpoints) {
	service := func(name, ip string, tcpOnly bool) mesh.Service {
		svc := mesh.Service{Namespace: "shop", Name: name, FQDN: name + ".shop.svc.cluster.local", ClusterIPs: []string{ip},
			Ports: []mesh.ServicePort{{Name: "grpc", Port: 80, Protocol: corev1.ProtocolTCP, AppProtocol: "grpc"},
				{Name: "tcp", Port: 5432, Protocol: corev1.ProtocolTCP}}}
		if tcpOnly {
			svc.Ports = svc.Ports[1:]
		}
		return svc
	}
	web, v1, v2, db := service("web", "10.96.0.10", false), service("web-v1", "10.96.0.11", false),
		service("web-v2", "10.96.0.12", false), service("db", "10.96.0.20", true)
	services := []mesh.Service{web, v1, v2, db}
	endpoints := xds.Endpoints{}
	for i, svc := range services {
		for _, p := range svc.Ports {
			endpoints[xds.ServiceKey{Namespace: "shop", Name: svc.Name, Port: p.Port}] = []xds.Endpoint{
				{Address: "10.0.0." + strconv.Itoa(i+1), Port: uint32(p.Port) + 8000, Ready: true, ServiceAccount: svc.Name}}
		}
	}
	ref := func(name string) mesh.ObjectRef {
		return mesh.ObjectRef{Kind: policyv1alpha1.TrafficPolicyKind, Namespace: "shop", Name: name}
	}
	model := mesh.Model{
		Splits: []mesh.Split{{Source: mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "web"}, Apex: web,
			Backends: []mesh.Backend{{Service: v1, Weight: 1}, {Service: v2, Weight: 3}}}},
		Policies: []mesh.Policy{
			{Source: ref("db"), Service: db, IdleTimeout: 30 * time.Second,
				OutlierDetection: &mesh.OutlierDetection{Consecutive5xx: 5, Interval: 10 * time.Second}},
			{Source: ref("web-grpc"), Service: web, Port: 80, Timeout: 2 * time.Second,
				Retries:        &mesh.Retries{Attempts: 3, RetryOn: []policyv1alpha1.RetryOn{policyv1alpha1.RetryOnUnavailable}},
				Fault:          &mesh.Fault{Abort: &mesh.FaultAbort{GRPCStatus: "UNAVAILABLE", GRPCCode: uint32(codes.Unavailable), Percent: 10}},
				CircuitBreaker: &mesh.CircuitBreaker{MaxRequests: 100},
				LoadBalancer:   &mesh.LoadBalancer{Type: policyv1alpha1.LoadBalancerRingHash, HashHeader: "x-user"}},
			{Source: ref("web-tcp"), Service: web, Port: 5432, IdleTimeout: time.Minute},
			{Source: ref("web-v2"), Service: v2, CircuitBreaker: &mesh.CircuitBreaker{MaxConnections: 10},
				LoadBalancer: &mesh.LoadBalancer{Type: policyv1alpha1.LoadBalancerLeastRequest}},
		},
	}
	return model, services, endpoints
}

// feed gives the server what the reconcilers would of the model: every Service, split and policy.
func feed(t *testing.T, srv *server.Server, model mesh.Model, services []mesh.Service, endpoints xds.Endpoints) {
	t.Helper()
	for _, svc := range services {
		srv.SetService(types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}, svc, endpoints)
	}
	for i := range model.Splits {
		srv.SetSplit(model.Splits[i].Source, &model.Splits[i])
	}
	for i := range model.Policies {
		p := &model.Policies[i]
		if diags := srv.SetPolicy(p.Source, p); !slices.Equal(diags, xds.PolicyDiagnostics(p)) {
			t.Errorf("SetPolicy(%s) = %v, want only what the translator reports, %v", p.Source, diags, xds.PolicyDiagnostics(p))
		}
	}
}

// TestServedPoliciesAreTheTranslators: what the server serves, piece by piece, of Services with
// TrafficPolicies (a split apex's included) is what Translate and TranslateEnvoy output for the
// same model, to proxyless clients and Envoy sidecars alike: listeners, routes, clusters, load
// assignments.
func TestServedPoliciesAreTheTranslators(t *testing.T) {
	settings := mesh.Settings{Access: mesh.AccessEnforcing}
	model, services, endpoints := policyMesh()
	f := startServer(t, server.Options{Settings: settings})
	feed(t, f.srv, model, services, endpoints)

	grpcOut, _ := xds.Translate(model, services, endpoints, settings)
	envoyOut, _ := xds.TranslateEnvoy(model, services, endpoints, settings)
	var routeNames, clusterNames []string
	for _, rc := range grpcOut.RouteConfigurations {
		routeNames = append(routeNames, rc.Name)
	}
	for _, cla := range grpcOut.ClusterLoadAssignments {
		clusterNames = append(clusterNames, cla.ClusterName)
	}
	for _, tc := range []struct {
		proxy, typeURL string
		names          []string
		want           []proto.Message
	}{
		{server.ProxyGRPC, resourcev3.ListenerType, nil, messages(grpcOut.Listeners)},
		{server.ProxyGRPC, resourcev3.RouteType, routeNames, messages(grpcOut.RouteConfigurations)},
		{server.ProxyGRPC, resourcev3.ClusterType, nil, messages(grpcOut.Clusters)},
		{server.ProxyGRPC, resourcev3.EndpointType, clusterNames, messages(grpcOut.ClusterLoadAssignments)},
		// Envoy's wildcard listeners are the outbound one and its identity's inbound one, which
		// Translate does not make.
		{server.ProxyEnvoy, resourcev3.ListenerType, nil, append(messages(envoyOut.Listeners), inboundListener(t, settings))},
		{server.ProxyEnvoy, resourcev3.RouteType, routeNames, messages(envoyOut.RouteConfigurations)},
		{server.ProxyEnvoy, resourcev3.ClusterType, nil, messages(envoyOut.Clusters)},
		{server.ProxyEnvoy, resourcev3.EndpointType, clusterNames, messages(envoyOut.ClusterLoadAssignments)},
	} {
		_, resp := f.subscribe(t, tc.proxy, "shop", "client", tc.typeURL, tc.names...)
		served := resourcesByName(t, resp)
		want := map[string]proto.Message{}
		for _, m := range tc.want {
			want[nameOf(m)] = m
		}
		names := slices.Sorted(maps.Keys(want))
		for name := range served {
			if want[name] == nil {
				names = append(names, name)
			}
		}
		for _, name := range names {
			if d := cmp.Diff(want[name], served[name], protocmp.Transform()); d != "" {
				t.Errorf("%s %s %s: served (+) differs from the translator's (-):\n%s", tc.proxy, tc.typeURL, name, d)
			}
		}
	}
}

func messages[T proto.Message](list []T) []proto.Message {
	out := make([]proto.Message, len(list))
	for i, m := range list {
		out[i] = m
	}
	return out
}

// nameOf is a resource's name, a load assignment's its cluster_name.
func nameOf(m proto.Message) string {
	if n, ok := m.(interface{ GetName() string }); ok && n.GetName() != "" {
		return n.GetName()
	}
	return m.(interface{ GetClusterName() string }).GetClusterName()
}

// inboundListener is the inbound listener of an identity without access rules.
func inboundListener(t *testing.T, settings mesh.Settings) proto.Message {
	t.Helper()
	l, err := xds.InboundListener(nil, settings)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// retriesOf are the attempts of the retry policy of every route of a response's route
// configuration, 0 for a route without one.
func retriesOf(t *testing.T, resp *discoveryv3.DiscoveryResponse, name string) []uint32 {
	t.Helper()
	rc, ok := resourcesByName(t, resp)[name].(*routev3.RouteConfiguration)
	if !ok {
		t.Fatalf("no route configuration %s in the response", name)
	}
	var out []uint32
	for _, vh := range rc.VirtualHosts {
		for _, r := range vh.Routes {
			out = append(out, r.GetRoute().GetRetryPolicy().GetNumRetries().GetValue())
		}
	}
	return out
}

// retryPolicy is a TrafficPolicy of source retrying calls to every port of svc attempts times.
func retryPolicy(source mesh.ObjectRef, svc mesh.Service, port int32, attempts int32) *mesh.Policy {
	return &mesh.Policy{Source: source, Service: svc, Port: port, Retries: &mesh.Retries{Attempts: attempts}}
}

// TestPolicyChangesWhatClientsReceive: a TrafficPolicy set, changed, moved to another Service and
// removed reaches the clients subscribed to its Service's routes, proxyless and Envoy alike; the
// routes of another Service are not pushed.
func TestPolicyChangesWhatClientsReceive(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive}})
	web, db := shopService("web"), shopService("db")
	for _, svc := range []mesh.Service{web, db} {
		f.srv.SetService(types.NamespacedName{Namespace: "shop", Name: svc.Name}, svc, nil)
	}
	webRoute, dbRoute := xds.ListenerName(web, 80), xds.ListenerName(db, 80)
	source := mesh.ObjectRef{Kind: policyv1alpha1.TrafficPolicyKind, Namespace: "shop", Name: "retries"}

	type subscription struct {
		stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
		name   string
	}
	var webStreams []subscription
	var dbStream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	for _, proxy := range []string{server.ProxyGRPC, server.ProxyEnvoy} {
		stream, resp := f.subscribe(t, proxy, "shop", "client", resourcev3.RouteType, webRoute)
		if got := retriesOf(t, resp, webRoute); !slices.Equal(got, []uint32{0}) {
			t.Fatalf("%s: without a policy the route retries %v times", proxy, got)
		}
		webStreams = append(webStreams, subscription{stream, proxy})
	}
	dbStream, _ = f.subscribe(t, server.ProxyGRPC, "shop", "client", resourcev3.RouteType, dbRoute)
	expect := func(step string, stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, route string, proxy string, attempts uint32) {
		t.Helper()
		if got := retriesOf(t, recvAndACK(t, stream, route), route); !slices.Equal(got, []uint32{attempts}) {
			t.Errorf("%s: %s received a route retrying %v times, want %d", step, proxy, got, attempts)
		}
	}

	f.srv.SetPolicy(source, retryPolicy(source, web, 0, 3))
	for _, s := range webStreams {
		expect("set", s.stream, webRoute, s.name, 3)
	}
	f.srv.SetPolicy(source, retryPolicy(source, web, 80, 2))
	for _, s := range webStreams {
		expect("changed", s.stream, webRoute, s.name, 2)
	}

	f.srv.SetPolicy(source, retryPolicy(source, db, 0, 4))
	for _, s := range webStreams {
		expect("moved away", s.stream, webRoute, s.name, 0)
	}
	// db's first push since it subscribed: web's policy pushed it nothing.
	expect("moved to db", dbStream, dbRoute, server.ProxyGRPC, 4)
	f.srv.SetPolicy(source, nil)
	expect("removed", dbStream, dbRoute, server.ProxyGRPC, 0)
	for _, s := range webStreams {
		noPush(t, "the removal of db's policy", s.stream)
	}
}

// noPush fails when the stream receives anything within 300ms of what happened.
func noPush(t *testing.T, what string, stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient) {
	t.Helper()
	received := make(chan *discoveryv3.DiscoveryResponse, 1)
	go func() {
		if r, err := stream.Recv(); err == nil {
			received <- r
		}
	}()
	select {
	case r := <-received:
		t.Errorf("%s pushed %d %s resources to an unconcerned client", what, len(r.Resources), r.TypeUrl)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestPolicyHandoverServesTheFirstByRefAndIsNoConflict: while two TrafficPolicies cover one
// Service port (the model gives it to the oldest; the reconciler hands it over one policy at a
// time), the port is served the first by ref, and the other ports the other covers keep its
// settings. The handover is not reported: the model reports the policy that lost, and a policy
// the model gives the port to, set while the one that held it still is, would keep a Conflicted
// status, since the other's reconcile comes after and nothing reconciles it again. Once the
// first by ref goes, the other is served.
func TestPolicyHandoverServesTheFirstByRefAndIsNoConflict(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive}})
	web := mesh.Service{Namespace: "shop", Name: "web", FQDN: "web.shop.svc.cluster.local",
		Ports: []mesh.ServicePort{{Name: "grpc", Port: 80, Protocol: corev1.ProtocolTCP}, {Name: "grpc-admin", Port: 9090, Protocol: corev1.ProtocolTCP}}}
	f.srv.SetService(types.NamespacedName{Namespace: "shop", Name: "web"}, web, nil)
	first := mesh.ObjectRef{Kind: policyv1alpha1.TrafficPolicyKind, Namespace: "shop", Name: "a"}
	second := mesh.ObjectRef{Kind: policyv1alpha1.TrafficPolicyKind, Namespace: "shop", Name: "b"}
	route, admin := xds.ListenerName(web, 80), xds.ListenerName(web, 9090)

	if diags := f.srv.SetPolicy(first, retryPolicy(first, web, 80, 3)); len(diags) != 0 {
		t.Errorf("a policy alone on its Service: %v", diags)
	}
	// second, the older, now covers port 80 too: the model gives it the port, and first is
	// reconciled after.
	if diags := f.srv.SetPolicy(second, retryPolicy(second, web, 0, 4)); len(diags) != 0 {
		t.Errorf("the policy the model gives port 80, set while the one that held it still is: %v, want none", diags)
	}
	stream, resp := f.subscribe(t, server.ProxyGRPC, "shop", "client", resourcev3.RouteType, route, admin)
	if got := retriesOf(t, resp, route); !slices.Equal(got, []uint32{3}) {
		t.Errorf("the contested port retries %v times, want the first policy's 3", got)
	}
	if got := retriesOf(t, resp, admin); !slices.Equal(got, []uint32{4}) {
		t.Errorf("the port only the second policy covers retries %v times, want its 4", got)
	}

	f.srv.SetPolicy(first, nil)
	if got := retriesOf(t, recvAndACK(t, stream, route, admin), route); !slices.Equal(got, []uint32{4}) {
		t.Errorf("once the first policy is gone the port retries %v times, want the second's 4", got)
	}
}

// TestPolicyFollowsItsServicesPorts: a policy of a whole Service covers the ports the Service has
// now, as the server knows it: a port added is served with the policy's settings at once, not
// after the policy's own reconcile; and that reconcile, handing the server the policy again with
// the Service as it now is, pushes nothing (the settings did not change).
func TestPolicyFollowsItsServicesPorts(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive}})
	key := types.NamespacedName{Namespace: "shop", Name: "web"}
	web := shopService("web")
	f.srv.SetService(key, web, nil)
	policy := mesh.ObjectRef{Kind: policyv1alpha1.TrafficPolicyKind, Namespace: "shop", Name: "web"}
	f.srv.SetPolicy(policy, retryPolicy(policy, web, 0, 3))

	grown := web
	grown.Ports = append(slices.Clone(web.Ports), mesh.ServicePort{Name: "grpc-admin", Port: 9090, Protocol: corev1.ProtocolTCP})
	f.srv.SetService(key, grown, nil)
	admin := xds.ListenerName(grown, 9090)
	stream, resp := f.subscribe(t, server.ProxyGRPC, "shop", "client", resourcev3.RouteType, admin)
	if got := retriesOf(t, resp, admin); !slices.Equal(got, []uint32{3}) {
		t.Errorf("the port the Service gained retries %v times, want the policy's 3 before the policy is set again", got)
	}
	f.srv.SetPolicy(policy, retryPolicy(policy, grown, 0, 3))
	noPush(t, "the policy set again with its Service as it now is", stream)
}

// TestPolicySetBeforeItsServiceIsServedAndGoes: a policy the server gets before its Service (the
// reconcilers run apart) is served once the Service comes, and its removal then reaches the
// clients.
func TestPolicySetBeforeItsServiceIsServedAndGoes(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive}})
	key := types.NamespacedName{Namespace: "shop", Name: "web"}
	web := shopService("web")
	policy := mesh.ObjectRef{Kind: policyv1alpha1.TrafficPolicyKind, Namespace: "shop", Name: "web"}
	f.srv.SetPolicy(policy, retryPolicy(policy, web, 0, 3))
	f.srv.SetService(key, web, nil)
	route := xds.ListenerName(web, 80)
	stream, resp := f.subscribe(t, server.ProxyGRPC, "shop", "client", resourcev3.RouteType, route)
	if got := retriesOf(t, resp, route); !slices.Equal(got, []uint32{3}) {
		t.Errorf("the Service's port retries %v times, want the policy's 3", got)
	}
	f.srv.SetPolicy(policy, nil)
	if got := retriesOf(t, recvAndACK(t, stream, route), route); !slices.Equal(got, []uint32{0}) {
		t.Errorf("once the policy is gone the port retries %v times, want none", got)
	}
}

// TestPolicyChangedOffItsServicesPortsIsServedWhenThePortComes: a policy of one port changed
// while its Service lacks the port (no resource of the Service changes then) is served as it now
// is once the port comes back, on the route configuration a split of the Service still holds.
func TestPolicyChangedOffItsServicesPortsIsServedWhenThePortComes(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive}})
	key := types.NamespacedName{Namespace: "shop", Name: "web"}
	both := mesh.Service{Namespace: "shop", Name: "web", FQDN: "web.shop.svc.cluster.local",
		Ports: []mesh.ServicePort{{Name: "grpc", Port: 80, Protocol: corev1.ProtocolTCP}, {Name: "grpc-admin", Port: 9090, Protocol: corev1.ProtocolTCP}}}
	one := both
	one.Ports = both.Ports[:1]
	f.srv.SetService(key, both, nil)
	split := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "web"}
	f.srv.SetSplit(split, &mesh.Split{Source: split, Apex: both, Backends: []mesh.Backend{{Service: both, Weight: 1}}})
	policy := mesh.ObjectRef{Kind: policyv1alpha1.TrafficPolicyKind, Namespace: "shop", Name: "admin"}
	f.srv.SetPolicy(policy, retryPolicy(policy, both, 9090, 3))
	admin := xds.ListenerName(both, 9090)
	_, resp := f.subscribe(t, server.ProxyGRPC, "shop", "client", resourcev3.RouteType, admin)
	if got := retriesOf(t, resp, admin); !slices.Equal(got, []uint32{3}) {
		t.Errorf("port 9090 retries %v times, want the policy's 3", got)
	}

	f.srv.SetService(key, one, nil)
	f.srv.SetPolicy(policy, retryPolicy(policy, one, 9090, 4))
	f.srv.SetService(key, both, nil)
	_, resp = f.subscribe(t, server.ProxyGRPC, "shop", "another-client", resourcev3.RouteType, admin)
	if got := retriesOf(t, resp, admin); !slices.Equal(got, []uint32{4}) {
		t.Errorf("port 9090, back, retries %v times, want the policy's 4 as it now is", got)
	}
}

// TestPolicyReachesGRPCClients: a real grpc-go xDS client calling a Service follows its
// TrafficPolicy as the server changes it: a fault aborting every call with one status, then with
// another, then no policy and the backend answers again.
func TestPolicyReachesGRPCClients(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive}})
	backend, err := grpcxds.StartBackend("api", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backend.Stop)
	host, port, err := net.SplitHostPort(backend.Addr)
	if err != nil {
		t.Fatal(err)
	}
	backendPort, _ := strconv.Atoi(port)
	api := mesh.Service{Namespace: "shop", Name: "api", FQDN: "api.shop.svc.cluster.local",
		Ports: []mesh.ServicePort{{Name: "grpc", Port: 80, Protocol: corev1.ProtocolTCP}}}
	f.srv.SetService(types.NamespacedName{Namespace: "shop", Name: "api"}, api, xds.Endpoints{
		{Namespace: "shop", Name: "api", Port: 80}: {{Address: host, Port: uint32(backendPort), Ready: true}},
	})
	conn, err := grpcxds.Dial(xds.ListenerName(api, 80), grpcxds.Bootstrap{
		ServerURI: f.addr, ServerTLS: &grpcxds.PEMFiles{CACertificateFile: f.caFile}, NodeID: "client",
		NodeMetadata: map[string]any{server.MetadataNamespace: "shop", server.MetadataServiceAccount: "client"},
		JWTTokenFile: tokenFileOf(t, "shop", "client"),
	}.MustJSON())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := grpcxds.WaitFor(ctx, conn, grpcxds.FromBackend("api")); err != nil {
		t.Fatalf("without a policy: %v", err)
	}

	source := mesh.ObjectRef{Kind: policyv1alpha1.TrafficPolicyKind, Namespace: "shop", Name: "api"}
	for _, name := range []policyv1alpha1.GRPCStatus{"RESOURCE_EXHAUSTED", "PERMISSION_DENIED"} {
		code := policyv1alpha1.GRPCStatusCodes[name]
		f.srv.SetPolicy(source, &mesh.Policy{Source: source, Service: api,
			Fault: &mesh.Fault{Abort: &mesh.FaultAbort{GRPCStatus: name, GRPCCode: code, Percent: 100}}})
		err := grpcxds.WaitFor(ctx, conn, func(_ grpcxds.Reply, err error) error {
			if status.Code(err) != codes.Code(code) {
				return fmt.Errorf("got %v, want %s", err, name)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("with a policy aborting with %s: %v", name, err)
		}
	}
	f.srv.SetPolicy(source, nil)
	if err := grpcxds.WaitFor(ctx, conn, grpcxds.FromBackend("api")); err != nil {
		t.Fatalf("once the policy is removed: %v", err)
	}
}

package server_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/metadata"
	corev1 "k8s.io/api/core/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/server"
)

// TestRejectedRouteIsReportedOnItsSplitUntilAccepted: a proxy that NACKs a split's route
// configuration shows in Rejections of that split (one proxy, its error) and OnRejections names
// the split; an ACK of a later version clears it, and so do the proxy unsubscribing and the stream
// ending after other NACKs.
func TestRejectedRouteIsReportedOnItsSplitUntilAccepted(t *testing.T) {
	changed := make(chan []mesh.ObjectRef, 16)
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive}, RejectionReportInterval: -1, // every change told at once
		Authenticator: tokens{"token-of-client": {Namespace: "shop", ServiceAccount: "client"}}})
	f.srv.OnRejections(func(refs []mesh.ObjectRef) { changed <- refs })
	split := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "web"}
	unrelated := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "other"}
	routeTo := func(backend string) *mesh.Split {
		return &mesh.Split{Source: split, Apex: shopService("web"), Backends: []mesh.Backend{{Service: shopService(backend), Weight: 1}}}
	}
	f.srv.SetSplit(split, routeTo("v1"))
	const route = "web.shop.svc.cluster.local:80"
	const refusal = "RouteConfiguration " + route + ": RouteAction weighted_cluster has incorrect total weight"

	ctx, closeStream := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer token-of-client"))
	defer closeStream()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(f.conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	subscribe := &discoveryv3.DiscoveryRequest{Node: node(server.ProxyGRPC, "shop", "client"), TypeUrl: resourcev3.RouteType, ResourceNames: []string{route}}
	send := func(req *discoveryv3.DiscoveryRequest) {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() *discoveryv3.DiscoveryResponse {
		t.Helper()
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	reply := func(to *discoveryv3.DiscoveryResponse, accepted string, refusal *rpcstatus.Status) *discoveryv3.DiscoveryRequest {
		return &discoveryv3.DiscoveryRequest{TypeUrl: subscribe.TypeUrl, ResourceNames: subscribe.ResourceNames,
			VersionInfo: accepted, ResponseNonce: to.Nonce, ErrorDetail: refusal}
	}
	// expect waits for OnRejections to name the split and for Rejections to say so: the server
	// handles a reply after the client has sent it.
	expect := func(step string, proxies int, detail string) {
		t.Helper()
		select {
		case refs := <-changed:
			if len(refs) != 1 || refs[0] != split {
				t.Errorf("%s: OnRejections named %v, want only %v", step, refs, split)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: OnRejections was not called", step)
		}
		got := f.srv.Rejections(split)
		if got.Proxies != proxies || got.Detail != detail || len(got.Namespaces) != 0 {
			t.Errorf("%s: Rejections = %+v; want %d proxies of its namespace, %q", step, got, proxies, detail)
		}
		if proxies > 0 && got.By != (server.Identity{Namespace: "shop", ServiceAccount: "client"}) {
			t.Errorf("%s: Rejections quotes %v, want shop/client", step, got.By)
		}
	}

	send(subscribe)
	first := recv()
	send(reply(first, "", &rpcstatus.Status{Message: refusal}))
	expect("after the NACK", 1, refusal)
	if n := f.srv.Rejections(unrelated).Proxies; n != 0 {
		t.Errorf("a split programming nothing the proxy refused reports %d rejections", n)
	}
	diags := f.srv.RejectionDiagnostics(split)
	if len(diags) != 1 || diags[0].Reason != mesh.ReasonRejectedByProxies || diags[0].Condition != "Programmed" ||
		!strings.Contains(diags[0].Message, "1 xDS proxy") || !strings.Contains(diags[0].Message, "ServiceAccount shop/client says: "+refusal) {
		t.Errorf("diagnostics of the refused split: %v", diags)
	}

	f.srv.SetSplit(split, routeTo("v2"))
	second := recv()
	send(reply(second, second.VersionInfo, nil))
	expect("after the ACK of a later version", 0, "")
	if diags := f.srv.RejectionDiagnostics(split); len(diags) != 0 {
		t.Errorf("diagnostics after the ACK: %v", diags)
	}

	f.srv.SetSplit(split, routeTo("v3"))
	third := recv()
	send(reply(third, second.VersionInfo, &rpcstatus.Status{Message: refusal}))
	expect("after another NACK", 1, refusal)
	// The proxy stops asking for the route configuration: it no longer holds any of it.
	send(&discoveryv3.DiscoveryRequest{TypeUrl: subscribe.TypeUrl, ResourceNames: []string{"other.shop.svc.cluster.local:80"},
		VersionInfo: second.VersionInfo, ResponseNonce: third.Nonce})
	expect("after the proxy unsubscribed", 0, "")

	send(&discoveryv3.DiscoveryRequest{TypeUrl: subscribe.TypeUrl, ResourceNames: subscribe.ResourceNames, VersionInfo: second.VersionInfo})
	fourth := recv()
	send(reply(fourth, second.VersionInfo, &rpcstatus.Status{Message: refusal}))
	expect("after a NACK on the new subscription", 1, refusal)
	closeStream()
	expect("after the stream ended", 0, "")
}

// TestRefusedInboundListenerIsReportedOnTheTargets: an Envoy sidecar (its token proving its
// identity) refusing its identity's inbound listener is reported on the TrafficTargets whose
// rules make it up, not on another identity's; a NACK whose error names only another listener of
// the response clears it (the inbound one was taken).
func TestRefusedInboundListenerIsReportedOnTheTargets(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessEnforcing},
		Authenticator: tokens{"token-of-db": {Namespace: "shop", ServiceAccount: "db"}}})
	target := mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "to-db"}
	// allow has the target admit another source each time: a change, pushed to the sidecar.
	allow := func(source string) {
		f.srv.SetAccess(target, []mesh.AccessRule{{
			Source:      target,
			Destination: mesh.Identity{Namespace: "shop", ServiceAccount: "db", SPIFFEID: "spiffe://cluster.local/ns/shop/sa/db"},
			Sources:     []mesh.Identity{{Namespace: "shop", ServiceAccount: source, SPIFFEID: "spiffe://cluster.local/ns/shop/sa/" + source}},
			TCP:         mesh.PortSet{All: true},
		}})
	}
	allow("api")
	// Another identity's target: db's sidecar refusing its own inbound listener is nothing of it.
	other := mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "to-cache"}
	f.srv.SetAccess(other, []mesh.AccessRule{{
		Source:      other,
		Destination: mesh.Identity{Namespace: "shop", ServiceAccount: "cache", SPIFFEID: "spiffe://cluster.local/ns/shop/sa/cache"},
		Sources:     []mesh.Identity{{Namespace: "shop", ServiceAccount: "api", SPIFFEID: "spiffe://cluster.local/ns/shop/sa/api"}},
		TCP:         mesh.PortSet{All: true},
	}})
	stream := f.ads(t, "token-of-db")
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node(server.ProxyEnvoy, "shop", "db"), TypeUrl: resourcev3.ListenerType}); err != nil {
		t.Fatal(err)
	}
	recvAndACK(t, stream)
	nack := func(source, message string) {
		t.Helper()
		allow(source)
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ListenerType, ResponseNonce: resp.Nonce,
			ErrorDetail: &rpcstatus.Status{Message: message}}); err != nil {
			t.Fatal(err)
		}
	}
	waitRejections := func(step string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := f.srv.Rejections(target).Proxies
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: Rejections of the target = %d, want %d", step, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	nack("web", "Error adding/updating listener(s) "+xds.InboundListenerName+": bad RBAC")
	waitRejections("inbound listener refused", 1)
	if n := f.srv.Rejections(other).Proxies; n != 0 {
		t.Errorf("another identity's target reports %d rejections of db's inbound listener", n)
	}
	nack("admin", "Error adding/updating listener(s) "+xds.OutboundListenerName+": bad filter chain")
	waitRejections("only the outbound listener refused", 0)
}

// TestOnlyAccountableStreamsMarkObjectsRejected: on the TLS server a NACK turns into SMI status
// only from a stream whose token proved its identity: a token-less stream proves nothing, and
// any client could otherwise mark any split (or any identity's TrafficTargets) rejected. On a
// plain-text server (the explicit opt-out, where no stream can prove anything and every claim is
// believed) every stream counts.
func TestOnlyAccountableStreamsMarkObjectsRejected(t *testing.T) {
	web := shopService("web")
	split := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "web"}
	const route = "web.shop.svc.cluster.local:80"
	for _, tc := range []struct {
		name    string
		start   func(*testing.T, server.Options) *fixture
		token   string
		node    *corev3.Node
		counted bool
	}{
		// Without a token, a node over TLS may claim no identity (it would be refused).
		{"TLS without a token", startServer, "", &corev3.Node{Id: "anonymous"}, false},
		{"TLS with a token", startServer, "token-of-client", node(server.ProxyGRPC, "shop", "client"), true},
		{"plain text", startPlainTextServer, "", node(server.ProxyGRPC, "shop", "client"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.start(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive},
				Authenticator: tokens{"token-of-client": {Namespace: "shop", ServiceAccount: "client"}}})
			changed := make(chan []mesh.ObjectRef, 16)
			f.srv.OnRejections(func(refs []mesh.ObjectRef) { changed <- refs })
			f.srv.SetSplit(split, &mesh.Split{Source: split, Apex: web, Backends: []mesh.Backend{{Service: web, Weight: 1}}})

			stream := f.ads(t, tc.token)
			refuse(t, stream, tc.node, resourcev3.RouteType, []string{route}, "refused")
			handled(t, stream, resourcev3.ClusterType)
			if got := sum(t, f.reg, "smi_operator_xds_nacks_total"); got != 1 {
				t.Errorf("NACKs counted = %v, want 1 whoever sent it", got)
			}
			want := 0
			if tc.counted {
				want = 1
			}
			if proxies := f.srv.Rejections(split).Proxies; proxies != want {
				t.Errorf("Rejections of the split = %d, want %d", proxies, want)
			}
			select {
			case refs := <-changed:
				if !tc.counted {
					t.Errorf("OnRejections named %v for a stream that proved nothing", refs)
				}
			default:
				if tc.counted {
					t.Error("OnRejections was not called")
				}
			}
		})
	}
}

// TestRefusedClustersAndListenersAreReportedOnTheirSplitOrPolicy: besides its route
// configurations, a split is programmed by the gRPC clients' listener of its apex, the clusters
// and load assignments of its backends and of its apex (its standby route names the apex's
// cluster for proxyless clients), and, when its apex has an opaque TCP port, the Envoy outbound
// listener (its weights are there): a proxy refusing one of them keeps the split out of its
// configuration too. A policy is programmed by its Service's clusters and route configurations;
// a cluster of a Service neither names is nobody's.
func TestRefusedClustersAndListenersAreReportedOnTheirSplitOrPolicy(t *testing.T) {
	service := func(name string) mesh.Service {
		port := "grpc"
		if strings.HasPrefix(name, "api") {
			port = "tcp-ledger" // opaque TCP: split on the Envoy outbound listener
		}
		svc := mesh.Service{Namespace: "shop", Name: name, FQDN: name + ".shop.svc.cluster.local",
			Ports: []mesh.ServicePort{{Name: port, Port: 80, Protocol: corev1.ProtocolTCP}}}
		if name == "pay" {
			svc.ClusterIPs = []string{"10.96.0.10"} // Envoy's outbound listener has chains of it
		}
		return svc
	}
	web := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "web"}
	api := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "api"}
	dbPolicy := mesh.ObjectRef{Kind: "TrafficPolicy", Namespace: "shop", Name: "db"}
	payPolicy := mesh.ObjectRef{Kind: "TrafficPolicy", Namespace: "shop", Name: "pay"}
	// A fault too, but its Service has no cluster IP: no chain of it on the outbound listener.
	headlessPolicy := mesh.ObjectRef{Kind: "TrafficPolicy", Namespace: "shop", Name: "headless"}
	for _, tc := range []struct {
		name, proxy, typeURL, resource string
		want                           []mesh.ObjectRef
	}{
		{"apex listener", server.ProxyGRPC, resourcev3.ListenerType, "web.shop.svc.cluster.local:80", []mesh.ObjectRef{web}},
		{"backend cluster", server.ProxyGRPC, resourcev3.ClusterType, "outbound|80||web-v2.shop.svc.cluster.local", []mesh.ObjectRef{web}},
		{"backend endpoints", server.ProxyGRPC, resourcev3.EndpointType, "outbound|80||web-v2.shop.svc.cluster.local", []mesh.ObjectRef{web}},
		// Its standby route names it: proxyless clients fetch it with the split's routes.
		{"apex cluster of a split without matches", server.ProxyGRPC, resourcev3.ClusterType, "outbound|80||web.shop.svc.cluster.local", []mesh.ObjectRef{web}},
		{"cluster of a policy's Service", server.ProxyGRPC, resourcev3.ClusterType, "outbound|80||db.shop.svc.cluster.local", []mesh.ObjectRef{dbPolicy}},
		{"route configuration of a policy's Service", server.ProxyGRPC, resourcev3.RouteType, "db.shop.svc.cluster.local:80", []mesh.ObjectRef{dbPolicy}},
		{"cluster of neither a split nor a policy", server.ProxyGRPC, resourcev3.ClusterType, "outbound|80||cache.shop.svc.cluster.local", nil},
		// A policy puts something on the client listener only with a fault (its filter).
		{"client listener of a policy's Service, without a fault", server.ProxyGRPC, resourcev3.ListenerType, "db.shop.svc.cluster.local:80", nil},
		{"client listener of a policy's Service, with a fault", server.ProxyGRPC, resourcev3.ListenerType, "pay.shop.svc.cluster.local:80", []mesh.ObjectRef{payPolicy}},
		// api's split weighs there (opaque TCP), and pay's policy puts its fault filter there;
		// headless has no chain there.
		{"Envoy outbound listener", server.ProxyEnvoy, resourcev3.ListenerType, xds.OutboundListenerName, []mesh.ObjectRef{api, payPolicy}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive},
				Authenticator: tokens{"token-of-client": {Namespace: "shop", ServiceAccount: "client"}}})
			changed := make(chan []mesh.ObjectRef, 16)
			f.srv.OnRejections(func(refs []mesh.ObjectRef) { changed <- refs })
			for _, name := range []string{"web", "web-v1", "web-v2", "api", "api-v1", "db", "pay", "headless", "cache"} {
				f.srv.SetService(k8stypes.NamespacedName{Namespace: "shop", Name: name}, service(name), nil)
			}
			f.srv.SetSplit(web, &mesh.Split{Source: web, Apex: service("web"), Backends: []mesh.Backend{
				{Service: service("web-v1"), Weight: 1}, {Service: service("web-v2"), Weight: 1}}})
			f.srv.SetSplit(api, &mesh.Split{Source: api, Apex: service("api"), Backends: []mesh.Backend{{Service: service("api-v1"), Weight: 1}}})
			f.srv.SetPolicy(dbPolicy, &mesh.Policy{Source: dbPolicy, Service: service("db"), Timeout: time.Second})
			f.srv.SetPolicy(payPolicy, &mesh.Policy{Source: payPolicy, Service: service("pay"), Fault: &mesh.Fault{Abort: &mesh.FaultAbort{HTTPStatus: 503, Percent: 100}}})
			f.srv.SetPolicy(headlessPolicy, &mesh.Policy{Source: headlessPolicy, Service: service("headless"), Fault: &mesh.Fault{Abort: &mesh.FaultAbort{HTTPStatus: 503, Percent: 100}}})

			stream := f.ads(t, "token-of-client")
			var names []string
			if tc.proxy == server.ProxyGRPC {
				names = []string{tc.resource}
			}
			resp := refuse(t, stream, node(tc.proxy, "shop", "client"), tc.typeURL, names, "refused "+tc.resource)
			if _, ok := resourcesByName(t, resp)[tc.resource]; !ok {
				t.Fatalf("the response refused does not carry %s", tc.resource)
			}
			if tc.typeURL == resourcev3.RouteType {
				handled(t, stream, resourcev3.ClusterType, "outbound|80||api-v1.shop.svc.cluster.local")
			} else {
				handled(t, stream, resourcev3.RouteType, "api.shop.svc.cluster.local:80")
			}
			var told []mesh.ObjectRef
			select {
			case told = <-changed:
			default:
			}
			slices.SortFunc(told, func(a, b mesh.ObjectRef) int { return strings.Compare(a.Name, b.Name) })
			slices.SortFunc(tc.want, func(a, b mesh.ObjectRef) int { return strings.Compare(a.Name, b.Name) })
			if !slices.Equal(told, tc.want) {
				t.Errorf("OnRejections named %v, want %v", told, tc.want)
			}
			for _, ref := range []mesh.ObjectRef{web, api, dbPolicy, payPolicy, headlessPolicy} {
				want := 0
				if slices.Contains(tc.want, ref) {
					want = 1
				}
				if got := f.srv.Rejections(ref).Proxies; got != want {
					t.Errorf("Rejections of %s = %d, want %d", ref.Name, got, want)
				}
			}
		})
	}
}

// TestRejectionDetailIsAboutTheObject: the error reported on an SMI object is one the proxy gave
// for a resource that object programs, not for another resource the same proxy refuses.
func TestRejectionDetailIsAboutTheObject(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive},
		Authenticator: tokens{"token-of-client": {Namespace: "shop", ServiceAccount: "client"}}})
	for _, name := range []string{"web", "web-v1", "db"} {
		f.srv.SetService(k8stypes.NamespacedName{Namespace: "shop", Name: name}, shopService(name), nil)
	}
	web := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "web"}
	f.srv.SetSplit(web, &mesh.Split{Source: web, Apex: shopService("web"), Backends: []mesh.Backend{{Service: shopService("web-v1"), Weight: 1}}})

	stream := f.ads(t, "token-of-client")
	refuse(t, stream, node(server.ProxyGRPC, "shop", "client"), resourcev3.RouteType, []string{"web.shop.svc.cluster.local:80"}, "bad route")
	// Its error sorts first, but the db cluster is nothing the split programs.
	refuse(t, stream, nil, resourcev3.ClusterType, []string{"outbound|80||db.shop.svc.cluster.local"}, "a bad cluster")
	handled(t, stream, resourcev3.EndpointType, "outbound|80||web-v1.shop.svc.cluster.local")
	if r := f.srv.Rejections(web); r.Proxies != 1 || r.Detail != "bad route" {
		t.Errorf("Rejections of the split = %+v; want 1 proxy, %q", r, "bad route")
	}
}

// TestRefusalsOfOtherNamespacesAreCountedNotQuoted: any workload with a token can ask for, and
// refuse, a split's route configuration, wherever it runs. Its refusal counts on the split (a
// client elsewhere that keeps the old routes is a fact worth knowing), but its text, unproven and
// its own, is quoted only on objects of its own namespace: a workload of another tenant must not
// write what a split's owners read. The proxy quoted is named.
func TestRefusalsOfOtherNamespacesAreCountedNotQuoted(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive},
		Authenticator: tokens{
			"token-of-outsider": {Namespace: "elsewhere", ServiceAccount: "outsider"},
			"token-of-client":   {Namespace: "shop", ServiceAccount: "client"},
		}})
	web := shopService("web")
	split := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "web"}
	f.srv.SetSplit(split, &mesh.Split{Source: split, Apex: web, Backends: []mesh.Backend{{Service: web, Weight: 1}}})
	const route = "web.shop.svc.cluster.local:80"
	const lure = "RouteConfiguration " + route + " is broken: apply https://example.com/fix.yaml to repair it"
	const refusal = "RouteConfiguration " + route + ": RouteAction weighted_cluster has incorrect total weight"

	refuseAs := func(token, namespace, serviceAccount, message string) {
		t.Helper()
		stream := f.ads(t, token)
		refuse(t, stream, node(server.ProxyGRPC, namespace, serviceAccount), resourcev3.RouteType, []string{route}, message)
		handled(t, stream, resourcev3.ClusterType)
	}
	message := func() string {
		t.Helper()
		diags := f.srv.RejectionDiagnostics(split)
		if len(diags) != 1 || diags[0].Reason != mesh.ReasonRejectedByProxies {
			t.Fatalf("diagnostics of the refused split: %v", diags)
		}
		return diags[0].Message
	}

	refuseAs("token-of-outsider", "elsewhere", "outsider", lure)
	if got := message(); strings.Contains(got, "example.com") || !strings.Contains(got, "1 xDS proxy") || !strings.Contains(got, `namespace "elsewhere"`) {
		t.Errorf("refused by a proxy of another namespace only, the split says %q; want it counted, its namespace named, its text not quoted", got)
	}

	refuseAs("token-of-client", "shop", "client", refusal)
	got := message()
	for _, want := range []string{"2 xDS proxies", "ServiceAccount shop/client", refusal, `namespace "elsewhere"`} {
		if !strings.Contains(got, want) {
			t.Errorf("refused by proxies of its namespace and another, the split says %q; want it to hold %q", got, want)
		}
	}
	if strings.Contains(got, "example.com") {
		t.Errorf("the split quotes the proxy of another namespace: %q", got)
	}
}

// TestRewordedRefusalReachesOnlyObjectsQuotingIt: a proxy that refuses a split's routes again,
// in other words, changes what the split's status would quote only when the proxy is of the
// split's namespace; of another namespace its words are never quoted, and its rewording must not
// have the split reconciled (any workload can reword its refusals as often as it has the routes
// sent again). Its refusal appearing and clearing still count.
func TestRewordedRefusalReachesOnlyObjectsQuotingIt(t *testing.T) {
	for _, tc := range []struct {
		namespace string
		reworded  bool // the rewording reported
	}{
		{"shop", true},
		{"elsewhere", false},
	} {
		t.Run(tc.namespace, func(t *testing.T) {
			f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive}, RejectionReportInterval: -1, // every change told at once
				Authenticator: tokens{"token": {Namespace: tc.namespace, ServiceAccount: "client"}}})
			web := shopService("web")
			split := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "web"}
			f.srv.SetSplit(split, &mesh.Split{Source: split, Apex: web, Backends: []mesh.Backend{{Service: web, Weight: 1}}})
			// Each call records how many proxies refused the split when it was made: the calls
			// are made on the stream's goroutine, in the order of its requests.
			calls := make(chan int, 16)
			f.srv.OnRejections(func([]mesh.ObjectRef) { calls <- f.srv.Rejections(split).Proxies })
			const route = "web.shop.svc.cluster.local:80"
			stream := f.ads(t, "token")
			nd := node(server.ProxyGRPC, tc.namespace, "client")
			// Asking for one more name each time has the routes sent again.
			refuse(t, stream, nd, resourcev3.RouteType, []string{route}, "refused")
			refuse(t, stream, nd, resourcev3.RouteType, []string{route, "a.shop.svc.cluster.local:80"}, "refused in other words")
			accepted := []string{route, "b.shop.svc.cluster.local:80"} // accepted: the refusal clears
			if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: nd, TypeUrl: resourcev3.RouteType, ResourceNames: accepted}); err != nil {
				t.Fatal(err)
			}
			recvAndACK(t, stream, accepted...)
			var got []int
			for {
				select {
				case n := <-calls:
					got = append(got, n)
				case <-time.After(10 * time.Second):
					t.Fatalf("OnRejections calls %v, and none after the refusal cleared", got)
				}
				if got[len(got)-1] == 0 {
					break
				}
			}
			want := []int{1, 0}
			if tc.reworded {
				want = []int{1, 1, 0}
			}
			if !slices.Equal(got, want) {
				t.Errorf("OnRejections calls saw %v refusing proxies; want %v", got, want)
			}
		})
	}
}

// refuse has the stream ask for names of typeURL, as node (nil on a stream's later requests: its
// first node stays), and refuse (NACK) the response with message; it returns the response.
func refuse(t *testing.T, stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, node *corev3.Node,
	typeURL string, names []string, message string) *discoveryv3.DiscoveryResponse {
	t.Helper()
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typeURL, ResourceNames: names}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names, ResponseNonce: resp.Nonce,
		ErrorDetail: &rpcstatus.Status{Message: message}}); err != nil {
		t.Fatal(err)
	}
	return resp
}

// handled returns once the server has handled every request sent on the stream so far: a
// stream's requests are handled in order, so it asks for names of typeURL (another type than
// those asked before, or the request would drop them) and waits for the answer.
func handled(t *testing.T, stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, typeURL string, names ...string) {
	t.Helper()
	if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
}

// TestRefusingNamespacesAreNamedUpToFive: the message names the namespaces of refusing proxies
// of other namespaces, sorted, at most five and then how many more, and proxies without an
// identity (on a plain-text server) as such: the number of namespaces is the clients' to grow.
func TestRefusingNamespacesAreNamedUpToFive(t *testing.T) {
	f := startPlainTextServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive}})
	web := shopService("web")
	split := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "web"}
	f.srv.SetSplit(split, &mesh.Split{Source: split, Apex: web, Backends: []mesh.Backend{{Service: web, Weight: 1}}})
	const route = "web.shop.svc.cluster.local:80"
	nodes := []*corev3.Node{{Id: "anonymous"}}
	for _, ns := range []string{"g", "f", "e", "d", "c", "b", "a"} {
		nodes = append(nodes, node(server.ProxyGRPC, ns, "client"))
	}
	for _, nd := range nodes {
		stream := f.ads(t, "")
		refuse(t, stream, nd, resourcev3.RouteType, []string{route}, "refused")
		handled(t, stream, resourcev3.ClusterType)
	}
	diags := f.srv.RejectionDiagnostics(split)
	if len(diags) != 1 {
		t.Fatalf("diagnostics of the refused split: %v", diags)
	}
	const want = `8 xDS proxies reject this object's configuration and keep their last good one; refusing proxies with no identity, ` +
		`of namespace "a", of namespace "b", of namespace "c", of namespace "d", of 3 more namespaces are counted, not quoted`
	if !strings.HasPrefix(diags[0].Message, want) {
		t.Errorf("the split says %q; want it to begin %q", diags[0].Message, want)
	}
}

// TestRejectionsOfAnObjectAreToldAtMostOncePerInterval: a proxy that refuses and accepts a split's
// routes over and over (any proven workload can) has OnRejections told of the split at once the
// first time, then at most once per RejectionReportInterval, with the state the last change left
// (each call has the split's status written); once an interval passes with no change, the next
// change is told at once again.
func TestRejectionsOfAnObjectAreToldAtMostOncePerInterval(t *testing.T) {
	const interval = 2 * time.Second
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive}, RejectionReportInterval: interval,
		Authenticator: tokens{"token": {Namespace: "shop", ServiceAccount: "client"}}})
	web := shopService("web")
	split := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "web"}
	f.srv.SetSplit(split, &mesh.Split{Source: split, Apex: web, Backends: []mesh.Backend{{Service: web, Weight: 1}}})
	type call struct {
		at      time.Time
		proxies int // refusing the split when told
	}
	calls := make(chan call, 16)
	f.srv.OnRejections(func(refs []mesh.ObjectRef) {
		if slices.Equal(refs, []mesh.ObjectRef{split}) {
			calls <- call{time.Now(), f.srv.Rejections(split).Proxies}
		} else {
			t.Errorf("OnRejections named %v, want only %v", refs, split)
		}
	})
	next := func(step string) call {
		t.Helper()
		select {
		case c := <-calls:
			return c
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: OnRejections was not called", step)
			return call{}
		}
	}
	const route = "web.shop.svc.cluster.local:80"
	stream := f.ads(t, "token")
	// Asking for one more name each time has the routes sent again, to refuse or accept.
	accept := func(extra string) {
		t.Helper()
		names := []string{route, extra}
		if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNames: names}); err != nil {
			t.Fatal(err)
		}
		recvAndACK(t, stream, names...)
	}

	began := time.Now()
	refuse(t, stream, node(server.ProxyGRPC, "shop", "client"), resourcev3.RouteType, []string{route}, "refused")
	accept("a.shop.svc.cluster.local:80")
	refuse(t, stream, nil, resourcev3.RouteType, []string{route, "b.shop.svc.cluster.local:80"}, "refused")
	accept("c.shop.svc.cluster.local:80")
	refuse(t, stream, nil, resourcev3.RouteType, []string{route, "d.shop.svc.cluster.local:80"}, "refused again")
	handled(t, stream, resourcev3.ClusterType)

	first := next("the first refusal")
	// "At once": well within the interval, which is as late as a held change may be told.
	if first.at.Sub(began) >= interval/4 {
		t.Errorf("the first refusal was told %v after it, want at once", first.at.Sub(began))
	}
	last := next("the changes after it")
	if gap := last.at.Sub(first.at); gap < interval {
		t.Errorf("OnRejections told the split again %v after the first call, want at least %v", gap, interval)
	}
	if last.proxies != 1 {
		t.Errorf("the last call saw %d refusing proxies, want 1: the last change was a refusal", last.proxies)
	}
	select {
	case c := <-calls:
		t.Fatalf("OnRejections told the split a third time (%d refusing) with no change since its second call", c.proxies)
	case <-time.After(interval + interval/2):
	}

	changedAt := time.Now()
	accept("e.shop.svc.cluster.local:80")
	cleared := next("the acceptance after a quiet interval")
	if cleared.proxies != 0 || cleared.at.Sub(changedAt) >= interval/4 {
		t.Errorf("after a quiet interval the acceptance was told %v after it, with %d refusing; want at once, none refusing",
			cleared.at.Sub(changedAt), cleared.proxies)
	}
}

package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	corev1 "k8s.io/api/core/v1"

	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/server"
)

// TestRejectedRouteIsReportedOnItsSplitUntilAccepted: a proxy that NACKs a split's route
// configuration shows in Rejections of that split (one proxy, its error) and OnRejections names
// the split; an ACK of a later version clears it, and so does the stream ending after another NACK.
func TestRejectedRouteIsReportedOnItsSplitUntilAccepted(t *testing.T) {
	changed := make(chan []mesh.ObjectRef, 16)
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive}})
	f.srv.OnRejections(func(refs []mesh.ObjectRef) { changed <- refs })
	service := func(name string) mesh.Service {
		return mesh.Service{Namespace: "shop", Name: name, FQDN: name + ".shop.svc.cluster.local",
			Ports: []mesh.ServicePort{{Name: "grpc", Port: 80, Protocol: corev1.ProtocolTCP}}}
	}
	split := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "web"}
	unrelated := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "other"}
	routeTo := func(backend string) *mesh.Split {
		return &mesh.Split{Source: split, Apex: service("web"), Backends: []mesh.Backend{{Service: service(backend), Weight: 1}}}
	}
	f.srv.SetSplit(split, routeTo("v1"))
	const route = "web.shop.svc.cluster.local:80"
	const refusal = "RouteConfiguration " + route + ": RouteAction weighted_cluster has incorrect total weight"

	ctx, closeStream := context.WithCancel(context.Background())
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
		gotProxies, gotDetail := f.srv.Rejections(split)
		if gotProxies != proxies || gotDetail != detail {
			t.Errorf("%s: Rejections = %d, %q; want %d, %q", step, gotProxies, gotDetail, proxies, detail)
		}
	}

	send(subscribe)
	first := recv()
	send(reply(first, "", &rpcstatus.Status{Message: refusal}))
	expect("after the NACK", 1, refusal)
	if n, _ := f.srv.Rejections(unrelated); n != 0 {
		t.Errorf("a split programming nothing the proxy refused reports %d rejections", n)
	}
	diags := f.srv.RejectionDiagnostics(split)
	if len(diags) != 1 || diags[0].Reason != mesh.ReasonRejectedByProxies || diags[0].Condition != "Programmed" ||
		!strings.Contains(diags[0].Message, "1 xDS proxy") || !strings.Contains(diags[0].Message, refusal) {
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
	closeStream()
	expect("after the stream ended", 0, "")
}

// TestRefusedInboundListenerIsReportedOnTheTargets: an Envoy sidecar refusing its identity's
// inbound listener is reported on the TrafficTargets whose rules make it up; a NACK whose error
// names only another listener of the response clears it (the inbound one was taken).
func TestRefusedInboundListenerIsReportedOnTheTargets(t *testing.T) {
	f := startServer(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessEnforcing}})
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
	stream, _ := f.subscribeEnvoy(t, "shop", "db", resourcev3.ListenerType)
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
			got, _ := f.srv.Rejections(target)
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
	nack("admin", "Error adding/updating listener(s) "+xds.OutboundListenerName+": bad filter chain")
	waitRejections("only the outbound listener refused", 0)
}

package xdse2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/metadata"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// TestRejectedRouteTurnsSplitUnprogrammed: a proxy that refuses (NACKs) a split's route
// configuration, as an old gRPC C-core does some of them, makes the TrafficSplit
// Programmed=False RejectedByProxies with the proxy's error, with a Warning Event; once the proxy
// accepts the version a weight change brings, the split is Programmed again. With the xDS backend
// of a fixed --backend=xds (the SMIOperator's: TestSMIOperatorCountsRejectedObjects).
func TestRejectedRouteTurnsSplitUnprogrammed(t *testing.T) {
	o := start(t)
	o.refuseSplitRoute(t, o.namespace(t), "shop", func(int32) {})
}

// refuseSplitRoute creates the split name (name-v1 and name-v2, half each) in ns, has a proxy
// refuse its route configuration and then accept a later version, and checks the split's
// condition and Event at each step; counted is called after each with the number of split
// proxies refuse (1, then 0), once the split's condition says so.
func (o *operator) refuseSplitRoute(t *testing.T, ns, name string, counted func(int32)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, svc := range []string{name, name + "-v1", name + "-v2"} {
		o.service(t, ns, svc)
	}
	split := &hub.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: splitv1alpha4.TrafficSplitSpec{Service: name, Backends: []splitv1alpha4.TrafficSplitBackend{
			{Service: name + "-v1", Weight: 50}, {Service: name + "-v2", Weight: 50},
		}},
	}
	o.create(t, split)
	o.waitProgrammed(t, split)

	route := name + "." + ns + ".svc.cluster.local:80"
	// The proxy proves who it is, as the operator's TLS server requires for its refusals to count.
	token := o.serviceAccountToken(t, ns, "old-client", tokenAudience)
	stream, err := askXDSOn(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token),
		xdsPortFor(ns), ns, "old-client", resourcev3.RouteType, []string{route})
	if err != nil {
		t.Fatal(err)
	}
	recv := func() *discoveryv3.DiscoveryResponse {
		t.Helper()
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	reply := func(to *discoveryv3.DiscoveryResponse, accepted string, refusal *rpcstatus.Status) {
		t.Helper()
		err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNames: []string{route},
			VersionInfo: accepted, ResponseNonce: to.Nonce, ErrorDetail: refusal})
		if err != nil {
			t.Fatal(err)
		}
	}

	// The error C-core 1.51 gives for a weighted cluster without total_weight.
	refusal := "errors parsing RDS resource: [resource index 0: " + route + ": RouteAction weighted_cluster has incorrect total weight]"
	reply(recv(), "", &rpcstatus.Status{Message: refusal})
	o.waitCondition(t, split, smi.ConditionProgrammed, metav1.ConditionFalse, mesh.ReasonRejectedByProxies)
	if got := o.programmedMessage(t, split); !strings.Contains(got, "1 xDS proxy") || !strings.Contains(got, refusal) {
		t.Errorf("Programmed message %q does not say one proxy refused it, and why", got)
	}
	o.waitWarningEvent(t, split, mesh.ReasonRejectedByProxies)
	counted(1)

	o.setWeights(t, split, 70, 30)
	accepted := recv()
	reply(accepted, accepted.VersionInfo, nil)
	o.waitCondition(t, split, smi.ConditionProgrammed, metav1.ConditionTrue, "")
	counted(0)
}

// programmedMessage is the message of the SMI object's Programmed condition.
func (o *operator) programmedMessage(t *testing.T, obj hub.Object) string {
	t.Helper()
	got := obj.DeepCopyObject().(hub.Object)
	if err := o.client.Get(context.Background(), client.ObjectKeyFromObject(obj), got); err != nil {
		t.Fatal(err)
	}
	return meta.FindStatusCondition(got.GetStatus().Conditions, smi.ConditionProgrammed).Message
}

// waitWarningEvent waits for a Warning Event with reason about the object (this one, by UID).
func (o *operator) waitWarningEvent(t *testing.T, obj hub.Object, reason string) {
	t.Helper()
	current := obj.DeepCopyObject().(hub.Object)
	if err := o.client.Get(context.Background(), client.ObjectKeyFromObject(obj), current); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		list := &eventsv1.EventList{}
		if err := o.client.List(context.Background(), list, client.InNamespace(obj.GetNamespace())); err != nil {
			t.Fatal(err)
		}
		for _, ev := range list.Items {
			if ev.Regarding.UID == current.GetUID() && ev.Type == corev1.EventTypeWarning && ev.Reason == reason {
				return nil
			}
		}
		return fmt.Errorf("no Warning Event %s about %s/%s among %d Events", reason, obj.GetNamespace(), obj.GetName(), len(list.Items))
	})
}

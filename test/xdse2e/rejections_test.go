package xdse2e

import (
	"context"
	"fmt"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
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

// rejectionsSpecs are the specs of what proxies refuse.
func rejectionsSpecs() {
	It("a route configuration a proxy refuses turns its TrafficSplit Programmed=False, until it accepts one", rejectedRouteTurnsSplitUnprogrammed)
}

// rejectedRouteTurnsSplitUnprogrammed: a proxy that refuses (NACKs) a split's route
// configuration, as an old gRPC C-core does some of them, makes the TrafficSplit
// Programmed=False RejectedByProxies with the proxy's error, with a Warning Event; once the proxy
// accepts the version a weight change brings, the split is Programmed again. With the xDS backend
// of a fixed --backend=xds (the SMIOperator's: smiOperatorCountsRejectedObjects).
func rejectedRouteTurnsSplitUnprogrammed() {
	o.refuseSplitRoute(o.namespace("rejected-route-turns-split-unprogrammed"), "shop", func(int32) {})
}

// refuseSplitRoute creates the split name (name-v1 and name-v2, half each) in ns, has a proxy
// refuse its route configuration and then accept a later version, and checks the split's
// condition and Event at each step; counted is called after each with the number of split
// proxies refuse (1, then 0), once the split's condition says so.
func (o *operator) refuseSplitRoute(ns, name string, counted func(int32)) {
	GinkgoHelper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, svc := range []string{name, name + "-v1", name + "-v2"} {
		o.service(ns, svc)
	}
	split := &hub.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: splitv1alpha4.TrafficSplitSpec{Service: name, Backends: []splitv1alpha4.TrafficSplitBackend{
			{Service: name + "-v1", Weight: 50}, {Service: name + "-v2", Weight: 50},
		}},
	}
	o.create(split)
	o.waitProgrammed(split)

	route := name + "." + ns + ".svc.cluster.local:80"
	// The proxy proves who it is, as the operator's TLS server requires for its refusals to count.
	token := o.serviceAccountToken(ns, "old-client", tokenAudience)
	stream, err := askXDSOn(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token),
		xdsPortFor(ns), ns, "old-client", resourcev3.RouteType, []string{route})
	Expect(err).NotTo(HaveOccurred())
	recv := func() *discoveryv3.DiscoveryResponse {
		GinkgoHelper()
		resp, err := stream.Recv()
		Expect(err).NotTo(HaveOccurred())
		return resp
	}
	reply := func(to *discoveryv3.DiscoveryResponse, accepted string, refusal *rpcstatus.Status) {
		GinkgoHelper()
		err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNames: []string{route},
			VersionInfo: accepted, ResponseNonce: to.Nonce, ErrorDetail: refusal})
		Expect(err).NotTo(HaveOccurred())
	}

	// The error C-core 1.51 gives for a weighted cluster without total_weight.
	refusal := "errors parsing RDS resource: [resource index 0: " + route + ": RouteAction weighted_cluster has incorrect total weight]"
	reply(recv(), "", &rpcstatus.Status{Message: refusal})
	o.waitCondition(split, smi.ConditionProgrammed, metav1.ConditionFalse, mesh.ReasonRejectedByProxies)
	Expect(o.programmedMessage(split)).To(SatisfyAll(ContainSubstring("1 xDS proxy"), ContainSubstring(refusal)),
		"the Programmed message does not say one proxy refused it, and why")
	o.waitWarningEvent(split, mesh.ReasonRejectedByProxies)
	counted(1)

	o.setWeights(split, 70, 30)
	accepted := recv()
	reply(accepted, accepted.VersionInfo, nil)
	o.waitCondition(split, smi.ConditionProgrammed, metav1.ConditionTrue, "")
	counted(0)
}

// programmedMessage is the message of the SMI object's Programmed condition.
func (o *operator) programmedMessage(obj hub.Object) string {
	GinkgoHelper()
	got := obj.DeepCopyObject().(hub.Object)
	Expect(o.client.Get(context.Background(), client.ObjectKeyFromObject(obj), got)).To(Succeed())
	return meta.FindStatusCondition(got.GetStatus().Conditions, smi.ConditionProgrammed).Message
}

// waitWarningEvent waits for a Warning Event with reason about the object (this one, by UID).
func (o *operator) waitWarningEvent(obj hub.Object, reason string) {
	GinkgoHelper()
	current := obj.DeepCopyObject().(hub.Object)
	Expect(o.client.Get(context.Background(), client.ObjectKeyFromObject(obj), current)).To(Succeed())
	Eventually(func() error {
		list := &eventsv1.EventList{}
		Expect(o.client.List(context.Background(), list, client.InNamespace(obj.GetNamespace()))).To(Succeed())
		for _, ev := range list.Items {
			if ev.Regarding.UID == current.GetUID() && ev.Type == corev1.EventTypeWarning && ev.Reason == reason {
				return nil
			}
		}
		return fmt.Errorf("no Warning Event %s about %s/%s among %d Events", reason, obj.GetNamespace(), obj.GetName(), len(list.Items))
	}).Within(30 * time.Second).ProbeEvery(100 * time.Millisecond).Should(Succeed())
}

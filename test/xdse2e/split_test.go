package xdse2e

import (
	"context"
	"errors"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	"google.golang.org/grpc/metadata"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/test/grpcxds"
)

// splitSpecs are the specs of grpc-go clients following splits and endpoints.
func splitSpecs() {
	It("a TrafficSplit's weights move live traffic", splitWeightsMoveLiveTraffic)
	It("a TrafficSplit's matches move live traffic", splitMatchesMoveLiveTraffic)
	It("endpoints are followed", endpointsAreFollowed)
	It("a split flipping through all-zero weights loses no RPC", splitFlipsLoseNoRPC)
}

// splitWeightsMoveLiveTraffic: a TrafficSplit's weights show up in how a proxyless client's
// RPCs spread, and changing them moves the traffic.
func splitWeightsMoveLiveTraffic() {
	ctx := context.Background()
	ns := o.namespace("split-weights-move-live-traffic")
	split := o.apexWithTwoVersions(ns, "web", 80, 20)

	c := dial(ns, "web", o.clientBootstrap(ns, "weights-client"))
	// Without a split, the apex's own endpoints answer.
	c.waitFor(ctx, grpcxds.FromBackend("web"))

	o.create(split)
	c.waitFor(ctx, notFrom("web"))
	c.shares(ctx, 1000, map[string]float64{"web-v1": 80, "web-v2": 20})
	o.waitProgrammed(split)

	// Flip: everything to v2, then everything back to v1.
	for _, weights := range [][2]int{{0, 100}, {100, 0}} {
		o.setWeights(split, weights[0], weights[1])
		want := "web-v2"
		if weights[0] == 100 {
			want = "web-v1"
		}
		// From 80/20, a call may land on v2 before the new weights arrive: wait for a run of them.
		waitOnly(c, ctx, want)
		c.shares(ctx, 200, map[string]float64{want: 1})
	}

	// Deleting the split gives the apex its own traffic back.
	Expect(o.client.Delete(ctx, split)).To(Succeed())
	c.waitFor(ctx, grpcxds.FromBackend("web"))
}

// splitMatchesMoveLiveTraffic: only requests matching the HTTPRouteGroup are split, the
// rest stay on the apex, and editing the match moves the traffic.
func splitMatchesMoveLiveTraffic() {
	ctx := context.Background()
	ns := o.namespace("split-matches-move-live-traffic")
	o.service(ns, "api", o.backend(ns, "api", 5))
	o.service(ns, "api-canary", o.backend(ns, "api-canary", 6))
	group := &hub.HTTPRouteGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "canary-users"},
		Spec: specsv1alpha4.HTTPRouteGroupSpec{Matches: []specsv1alpha4.HTTPMatch{{
			Name: "canary", Headers: map[string]string{"x-canary": "yes"},
		}}},
	}
	o.create(group)
	o.create(&hub.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"},
		Spec: splitv1alpha4.TrafficSplitSpec{
			Service:  "api",
			Matches:  []corev1.TypedLocalObjectReference{{APIGroup: ptr.To(smi.SpecsGroup), Kind: smi.HTTPRouteGroupKind, Name: "canary-users"}},
			Backends: []splitv1alpha4.TrafficSplitBackend{{Service: "api-canary", Weight: 1}},
		},
	})

	c := dial(ns, "api", o.clientBootstrap(ns, "matches-client"))
	canary := metadata.AppendToOutgoingContext(ctx, "x-canary", "yes")
	c.waitFor(canary, grpcxds.FromBackend("api-canary"))
	c.shares(canary, 100, map[string]float64{"api-canary": 1})
	c.shares(ctx, 100, map[string]float64{"api": 1})

	// The match now wants another value, and POST (what every gRPC call is, though grpc-go's
	// route matching never sees ":method"): the old value stays on the apex, the new one is split.
	Expect(o.client.Get(ctx, client.ObjectKeyFromObject(group), group)).To(Succeed())
	group.Spec.Matches[0].Headers = map[string]string{"x-canary": "always"}
	group.Spec.Matches[0].Methods = []string{"POST"}
	Expect(o.client.Update(ctx, group)).To(Succeed())
	always := metadata.AppendToOutgoingContext(ctx, "x-canary", "always")
	c.waitFor(always, grpcxds.FromBackend("api-canary"))
	c.shares(canary, 100, map[string]float64{"api": 1})
}

// splitFlipsLoseNoRPC: a proxyless client calling back to back loses no RPC while its split's
// weight flips between the backends, and through all-zero weights (traffic back on the apex) and
// out again. grpc-go (v1.84) fails the RPCs it picks for a cluster its balancer does not hold yet
// ("unknown cluster selected for RPC", see the README): the split's routes must keep every
// cluster it may route to referenced, its apex included, all-zero weights included.
func splitFlipsLoseNoRPC() {
	ctx := context.Background()
	ns := o.namespace("split-flips-lose-no-rpc")
	split := o.apexWithTwoVersions(ns, "shop", 100, 0)
	o.create(split)
	c := dial(ns, "shop", o.clientBootstrap(ns, "flips-client"))
	// A split's first routes move the client onto clusters it never held: only what follows counts.
	waitOnly(c, ctx, "shop-v1")

	calls := startCallingEvery(ctx, 0, map[string]*grpcClient{"any backend": c}, false)
	flips := [][2]int{{0, 100}, {0, 0}, {100, 0}, {0, 0}, {0, 100}, {100, 0}, {0, 0}, {0, 100}, {0, 0}, {100, 0}, {0, 100}, {100, 0}}
	for _, weights := range flips {
		o.setWeights(split, weights[0], weights[1])
		want := map[[2]int]string{{100, 0}: "shop-v1", {0, 100}: "shop-v2", {0, 0}: "shop"}[weights]
		waitOnly(c, ctx, want)
	}
	ok, failed := calls.stop()
	Expect(failed).To(BeEmpty(), "%d of %d RPCs failed through %d flips, first at %v; by error: %v",
		len(failed), ok+len(failed), len(flips), failed[:min(1, len(failed))], countByCause(failed))
	Expect(ok).To(BeNumerically(">=", 1000), "RPCs made during the flips")
	GinkgoWriter.Printf("%d RPCs back to back through %d flips, none failed\n", ok, len(flips))
}

// countByCause counts the caller's failures by the error underneath each (whose own message
// says when it happened).
func countByCause(failed []error) map[string]int {
	counts := map[string]int{}
	for _, err := range failed {
		if cause := errors.Unwrap(err); cause != nil {
			err = cause
		}
		counts[err.Error()]++
	}
	return counts
}

// endpointsAreFollowed: endpoints added to and removed from a Service's EndpointSlice, and
// endpoints turning unready, change where RPCs go.
func endpointsAreFollowed() {
	ctx := context.Background()
	ns := o.namespace("endpoints-are-followed")
	first, second := o.backend(ns, "first", 7), o.backend(ns, "second", 8)
	o.service(ns, "store", first)
	c := dial(ns, "store", o.clientBootstrap(ns, "endpoints-client"))
	c.waitFor(ctx, grpcxds.FromBackend("first"))

	o.updateSlice(ns, "store", func(s *discoveryv1.EndpointSlice) { *s = *endpointSlice(ns, "store", first, second) })
	c.waitFor(ctx, grpcxds.FromBackend("second"))
	c.shares(ctx, 400, map[string]float64{"first": 1, "second": 1})

	o.updateSlice(ns, "store", func(s *discoveryv1.EndpointSlice) {
		s.Endpoints[0].Conditions.Ready = ptr.To(false) // first
	})
	waitOnly(c, ctx, "second")

	o.updateSlice(ns, "store", func(s *discoveryv1.EndpointSlice) { *s = *endpointSlice(ns, "store", first) })
	waitOnly(c, ctx, "first")
}

// waitOnly waits, a minute at most, until 50 calls in a row land on name.
func waitOnly(c *grpcClient, ctx context.Context, name string) {
	GinkgoHelper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	Expect(grpcxds.WaitOnly(ctx, c.conn, name, 50)).To(Succeed())
}

func notFrom(name string) func(grpcxds.Reply, error) error {
	return func(r grpcxds.Reply, err error) error {
		if err != nil {
			return err
		}
		if r.Backend == name {
			return fmt.Errorf("%s still answers", name)
		}
		return nil
	}
}

// apexWithTwoVersions starts backends answering as apex, apex-v1 and apex-v2 (on addresses 2 to
// 4), each behind a Service of its name, and returns, not yet created, a TrafficSplit of apex
// between the two versions, weighing v1 and v2.
func (o *operator) apexWithTwoVersions(ns, apex string, v1, v2 int) *hub.TrafficSplit {
	GinkgoHelper()
	for i, name := range []string{apex, apex + "-v1", apex + "-v2"} {
		o.service(ns, name, o.backend(ns, name, 2+i))
	}
	return &hub.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: apex},
		Spec: splitv1alpha4.TrafficSplitSpec{Service: apex, Backends: []splitv1alpha4.TrafficSplitBackend{
			{Service: apex + "-v1", Weight: v1}, {Service: apex + "-v2", Weight: v2},
		}},
	}
}

// setWeights sets the weights of the split's two backends, reading it again when the operator
// wrote its status in between.
func (o *operator) setWeights(split *hub.TrafficSplit, v1, v2 int) {
	GinkgoHelper()
	ctx := context.Background()
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := o.client.Get(ctx, client.ObjectKeyFromObject(split), split); err != nil {
			return err
		}
		split.Spec.Backends[0].Weight, split.Spec.Backends[1].Weight = v1, v2
		return o.client.Update(ctx, split)
	})).To(Succeed())
}

// waitProgrammed waits for the split's Programmed condition to be True for its generation.
func (o *operator) waitProgrammed(split *hub.TrafficSplit) {
	GinkgoHelper()
	o.waitCondition(split, smi.ConditionProgrammed, metav1.ConditionTrue, "")
}

// waitCondition waits until the SMI object's condition has status (and reason, unless empty) for
// its current generation.
func (o *operator) waitCondition(obj hub.Object, condition string, status metav1.ConditionStatus, reason string) {
	GinkgoHelper()
	Eventually(func() error {
		got := obj.DeepCopyObject().(hub.Object)
		Expect(o.client.Get(context.Background(), client.ObjectKeyFromObject(obj), got)).To(Succeed())
		c := meta.FindStatusCondition(got.GetStatus().Conditions, condition)
		if c == nil || c.Status != status || (reason != "" && c.Reason != reason) || c.ObservedGeneration != got.GetGeneration() {
			return fmt.Errorf("%T %s: %s = %+v, want %s %s", obj, obj.GetName(), condition, c, status, reason)
		}
		return nil
	}).Within(30 * time.Second).ProbeEvery(50 * time.Millisecond).Should(Succeed())
}

func (o *operator) updateSlice(namespace, service string, edit func(*discoveryv1.EndpointSlice)) {
	GinkgoHelper()
	ctx := context.Background()
	slice := &discoveryv1.EndpointSlice{}
	Expect(o.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: service + "-slice"}, slice)).To(Succeed())
	rv := slice.ResourceVersion
	edit(slice)
	slice.ResourceVersion = rv
	Expect(o.client.Update(ctx, slice)).To(Succeed())
}

package xds

import (
	"fmt"
	"slices"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"

	"github.com/smi-operator/smi-operator/test/corpus"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// TestSplitRoutesNameEveryClusterOfTheSplit: every RouteConfiguration a split's apex gets for
// proxyless clients names the cluster of every backend of the split and of the apex, whatever the
// weights: as written, all zero (an unweighted split: everything to the apex), and each backend
// alone. grpc-go (v1.84) fails the RPCs it picks for a cluster its balancer does not hold yet, and
// holds only the clusters its routes name; a split whose every route configuration names all
// of them moves traffic between clusters the client already holds, through all its weight
// changes (withStandby). The names that carry no traffic are in a "standby" route after a
// catch-all, which no request takes. Runs every input of the repository (package test/corpus).
func TestSplitRoutesNameEveryClusterOfTheSplit(t *testing.T) {
	cases, err := corpus.All("../..")
	if err != nil {
		t.Fatal(err)
	}
	var programmed, unweighted int
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			for i, ts := range c.Snapshot.TrafficSplits {
				for _, weights := range weightsOverALife(len(ts.Spec.Backends)) {
					snap := c.Snapshot
					snap.TrafficSplits = slices.Clone(snap.TrafficSplits)
					snap.TrafficSplits[i] = *withWeights(&ts, weights)
					model, _ := mesh.Build(snap, c.Settings)
					split, isUnweighted := splitFrom(model, ts.Namespace, ts.Name)
					if split == nil {
						continue // refused for what it is, not its weights: it never routes
					}
					if isUnweighted {
						unweighted++
					} else {
						programmed++
					}
					endpoints := BuildEndpoints(snap.Services, c.EndpointSlices, c.Pods)
					out, _ := Translate(model, servicesOf(snap, c.Settings), endpoints, c.Settings)
					if err := namesEveryCluster(out.RouteConfigurations, split); err != nil {
						t.Errorf("split %s/%s with weights %v: %v", ts.Namespace, ts.Name, weights, err)
					}
				}
			}
		})
	}
	if programmed == 0 || unweighted == 0 {
		t.Errorf("%d programmed and %d unweighted splits checked: the corpus does not exercise both", programmed, unweighted)
	}
}

// weightsOverALife are weights a split of n backends may go through: each backend alone, then
// all of them at 0; nil keeps the weights as written.
func weightsOverALife(n int) [][]int {
	lives := [][]int{nil, make([]int, n)}
	for i := range n {
		alone := make([]int, n)
		alone[i] = 1
		lives = append(lives, alone)
	}
	return lives
}

// withWeights is a copy of ts with weights, unless nil.
func withWeights(ts *splitv1alpha4.TrafficSplit, weights []int) *splitv1alpha4.TrafficSplit {
	out := ts.DeepCopy()
	for i, w := range weights {
		out.Spec.Backends[i].Weight = w
	}
	return out
}

// splitFrom finds the TrafficSplit namespace/name in the model, programmed or unweighted.
func splitFrom(model mesh.Model, namespace, name string) (split *mesh.Split, unweighted bool) {
	for i, list := range [][]mesh.Split{model.Splits, model.UnweightedSplits} {
		for j := range list {
			if list[j].Source.Namespace == namespace && list[j].Source.Name == name {
				return &list[j], i == 1
			}
		}
	}
	return nil, false
}

// namesEveryCluster checks that the route configuration of each TCP port of the split's apex
// names the cluster of the apex and of every backend, and that a route carrying no traffic
// ("standby") comes after a catch-all.
func namesEveryCluster(routeConfigs []*routev3.RouteConfiguration, split *mesh.Split) error {
	for _, port := range split.Apex.Ports {
		if port.Protocol != corev1.ProtocolTCP {
			continue
		}
		i := slices.IndexFunc(routeConfigs, func(rc *routev3.RouteConfiguration) bool { return rc.Name == ListenerName(split.Apex, port.Port) })
		if i < 0 {
			return fmt.Errorf("no RouteConfiguration for port %d of the apex", port.Port)
		}
		named := map[string]bool{}
		caughtAll := false
		for _, r := range routeConfigs[i].GetVirtualHosts()[0].GetRoutes() {
			if r.Name == standbyRouteName && !caughtAll {
				return fmt.Errorf("RouteConfiguration %s: standby route before any catch-all: requests would take it", routeConfigs[i].Name)
			}
			caughtAll = caughtAll || (r.GetMatch().GetPrefix() == "/" && len(r.GetMatch().GetHeaders()) == 0)
			for _, c := range clustersOf(r.GetRoute()) {
				named[c] = true
			}
		}
		want := []string{ClusterName(split.Apex, port.Port)}
		for _, b := range split.Backends {
			want = append(want, ClusterName(b.Service, port.Port))
		}
		for _, c := range want {
			if !named[c] {
				return fmt.Errorf("RouteConfiguration %s does not name cluster %s", routeConfigs[i].Name, c)
			}
		}
	}
	return nil
}

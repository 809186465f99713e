package xds

import (
	"math"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/smi-operator/smi-operator/test/corpus"
)

// TestEveryInputSuitsOldClients runs every input of the repository (package test/corpus) through
// every xDS output and checks the two rules that keep the oldest clients of the README's support
// matrix from refusing (NACKing) a whole RouteConfiguration or Listener, which then keeps its last
// good configuration while the SMI object looks programmed:
//
//   - No header matcher uses string_match: clients older than gRFC A63 (gRPC C-core 1.51,
//     Debian bookworm's, in routes and in RBAC) know only the older exact_match,
//     safe_regex_match, prefix_match, … fields ("Invalid route header matcher specified").
//   - Every weighted_clusters sets total_weight to the sum of its weights: C-core 1.51 and older
//     Envoy take a missing total as 100 and refuse any other sum; older grpc-go refused a total
//     other than the sum, a missing one included. Current Envoy and grpc-go ignore the field.
//     The sum is at most MaxInt32: grpc-java reads a weight as a signed 32-bit int.
//
// and one that keeps a client from reading a route otherwise than Envoy does:
//
//   - Every path or prefix route match (but the catch-all "/") sets case_sensitive: true.
//     Envoy, grpc-go and C-core take an unset case_sensitive as true; grpc-java reads the
//     unset BoolValue as false, and would match /API as well as /api.
func TestEveryInputSuitsOldClients(t *testing.T) {
	cases, err := corpus.All("../..")
	if err != nil {
		t.Fatal(err)
	}
	var headers, weighted, paths, scaled int
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			for _, m := range corpusMessages(t, c) {
				walkMessages(m, func(inner proto.Message) bool {
					switch v := inner.(type) {
					case *routev3.HeaderMatcher:
						headers++
						if v.GetStringMatch() != nil {
							t.Errorf("%T: header matcher on %q uses string_match, which clients older than gRFC A63 refuse: %v", m, v.GetName(), v)
						}
					case *routev3.WeightedCluster:
						weighted++
						var sum uint64
						for _, cw := range v.GetClusters() {
							sum += uint64(cw.GetWeight().GetValue())
						}
						if v.GetTotalWeight() == nil || uint64(v.GetTotalWeight().GetValue()) != sum {
							t.Errorf("%T: weighted_clusters %v has total_weight %v, want the sum of its weights, %d", m, v, v.GetTotalWeight(), sum)
						}
						if sum > math.MaxInt32 {
							t.Errorf("%T: weighted_clusters %v sums to %d, above what grpc-java reads as a weight", m, v, sum)
						}
						if sum > math.MaxInt32/2 {
							scaled++ // a split whose SMI weights were beyond it (large-weights-xds)
						}
					case *routev3.RouteMatch:
						if v.GetPath() == "" && (v.GetPrefix() == "" || v.GetPrefix() == "/") {
							break
						}
						paths++
						if !v.GetCaseSensitive().GetValue() {
							t.Errorf("%T: route match %v leaves case_sensitive unset, which grpc-java reads as false", m, v)
						}
					}
					return true
				})
			}
		})
	}
	// The corpus must reach both, or the test proves nothing.
	if headers == 0 || weighted == 0 || paths == 0 || scaled == 0 {
		t.Errorf("%d header matchers, %d weighted_clusters (%d near the weight bound), %d path matches: the corpus does not exercise them all",
			headers, weighted, scaled, paths)
	}
}

package server

import (
	"fmt"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
)

// BenchmarkNACKOfAWholeResponse is a stream's bookkeeping when an Envoy sidecar refuses a
// response of 5,000 clusters (its wildcard subscription: no names) with an error naming none of
// them (Envoy's can), then accepts the next one: every cluster is marked rejected, then cleared.
func BenchmarkNACKOfAWholeResponse(b *testing.B) {
	names := make([]string, 5000)
	for i := range names {
		names[i] = fmt.Sprintf("outbound|8080||svc-%d.shop.svc.cluster.local", i)
	}
	for b.Loop() {
		st := &streamState{}
		st.recordResponse(resourcev3.ClusterType, sentResponse{nonce: 1, names: names})
		changed, _ := st.reply(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType,
			ResponseNonce: "1", ErrorDetail: &rpcstatus.Status{Message: "the update was refused"}})
		if len(changed) != len(names) {
			b.Fatalf("the NACK marked %d clusters rejected, want %d", len(changed), len(names))
		}
		st.recordResponse(resourcev3.ClusterType, sentResponse{nonce: 2, names: names})
		if changed, _ := st.reply(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: "2"}); len(changed) != len(names) {
			b.Fatalf("the ACK cleared %d clusters, want %d", len(changed), len(names))
		}
	}
}

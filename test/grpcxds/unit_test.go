package grpcxds_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/smi-operator/smi-operator/test/grpcxds"
)

func TestBootstrapJSON(t *testing.T) {
	b := grpcxds.Bootstrap{
		ServerURI:            "10.200.0.1:15010",
		NodeID:               "sidecar~10.200.0.2~pod.ns~ns.svc.cluster.local",
		NodeCluster:          "c",
		NodeMetadata:         map[string]any{"GENERATOR": "grpc", "N": 2},
		ServerTLS:            &grpcxds.PEMFiles{CACertificateFile: "/ca.pem"},
		JWTTokenFile:         "/token",
		CertificateProviders: map[string]grpcxds.PEMFiles{"default": {CertificateFile: "/c.pem", PrivateKeyFile: "/k.pem", CACertificateFile: "/ca.pem"}},
		CertificateRefresh:   1500 * time.Millisecond,
	}
	var got any
	if err := json.Unmarshal(b.MustJSON(), &got); err != nil {
		t.Fatal(err)
	}
	var want any
	if err := json.Unmarshal([]byte(`{
	  "xds_servers": [{
	    "server_uri": "10.200.0.1:15010",
	    "channel_creds": [{"type": "tls", "config": {"ca_certificate_file": "/ca.pem"}}],
	    "call_creds": [{"type": "jwt_token_file", "config": {"jwt_token_file": "/token"}}],
	    "server_features": ["xds_v3"]
	  }],
	  "node": {"id": "sidecar~10.200.0.2~pod.ns~ns.svc.cluster.local", "cluster": "c", "metadata": {"GENERATOR": "grpc", "N": 2}},
	  "certificate_providers": {"default": {"plugin_name": "file_watcher", "config": {
	    "certificate_file": "/c.pem", "private_key_file": "/k.pem", "ca_certificate_file": "/ca.pem", "refresh_interval": "1.500s"}}},
	  "server_listener_resource_name_template": "grpc/server?xds.resource.listening_address=%s"
	}`), &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("bootstrap (-want +got):\n%s", diff)
	}

	minimal := string(grpcxds.Bootstrap{ServerURI: "x:1", NodeID: "n", ServerFeatures: []string{}}.MustJSON())
	for _, s := range []string{`"type": "insecure"`, `"id": "n"`} {
		if !strings.Contains(minimal, s) {
			t.Errorf("minimal bootstrap lacks %s:\n%s", s, minimal)
		}
	}
	for _, s := range []string{"server_features", "call_creds", "certificate_providers", "metadata"} {
		if strings.Contains(minimal, s) {
			t.Errorf("minimal bootstrap has %s:\n%s", s, minimal)
		}
	}
	for _, bad := range []grpcxds.Bootstrap{
		{NodeID: "n"},
		{ServerURI: "x:1"},
		{ServerURI: "x:1", NodeID: "n", CertificateProviders: map[string]grpcxds.PEMFiles{"p": {PrivateKeyFile: "k"}}},
	} {
		if _, err := bad.JSON(); err == nil {
			t.Errorf("%+v makes a bootstrap", bad)
		}
	}
	if got := grpcxds.ServerListenerName("10.200.0.2:8080"); got != "grpc/server?xds.resource.listening_address=10.200.0.2:8080" {
		t.Errorf("ServerListenerName = %s", got)
	}
}

func TestCheckShares(t *testing.T) {
	for _, tc := range []struct {
		counts  map[string]int
		weights map[string]float64
		ok      bool
	}{
		{map[string]int{"a": 800, "b": 200}, map[string]float64{"a": 80, "b": 20}, true},
		{map[string]int{"a": 851, "b": 149}, map[string]float64{"a": 0.8, "b": 0.2}, true}, // 51 off, tolerance 51.6
		{map[string]int{"a": 852, "b": 148}, map[string]float64{"a": 0.8, "b": 0.2}, false},
		{map[string]int{"a": 500, "b": 500}, map[string]float64{"a": 80, "b": 20}, false},
		{map[string]int{"a": 1000}, map[string]float64{"a": 1}, true},
		{map[string]int{"a": 999, "c": 1}, map[string]float64{"a": 1}, false},         // c has no weight
		{map[string]int{"a": 999, "b": 1}, map[string]float64{"a": 1, "b": 0}, false}, // b has weight 0
		{map[string]int{"a": 800}, map[string]float64{"a": 80, "b": 20}, false},       // b never answered
		{map[string]int{}, map[string]float64{"a": 1}, false},
		{map[string]int{"a": 1}, map[string]float64{"a": -1}, false},
	} {
		err := grpcxds.CheckShares(tc.counts, tc.weights)
		if (err == nil) != tc.ok {
			t.Errorf("CheckShares(%v, %v) = %v, want ok=%v", tc.counts, tc.weights, err, tc.ok)
		}
	}
}

// The false-failure probabilities Tolerance documents, computed exactly.
func TestFalseFailureProbability(t *testing.T) {
	for _, tc := range []struct {
		n    int
		p    float64
		want float64
	}{{1000, 0.2, 4.98e-5}, {1000, 0.5, 4.41e-5}} {
		if got := grpcxds.FalseFailureProbability(tc.n, tc.p); math.Abs(got-tc.want) > 0.01e-5 {
			t.Errorf("FalseFailureProbability(%d, %v) = %.3g, want %.3g", tc.n, tc.p, got, tc.want)
		}
	}
	for _, bound := range []struct{ variance, probability float64 }{{1, 5e-4}, {10, 2e-4}} {
		for n := 10; n <= 5000; n = n*3/2 + 1 {
			for p := 0.01; p < 1; p += 0.01 {
				if float64(n)*p*(1-p) < bound.variance {
					continue
				}
				if got := grpcxds.FalseFailureProbability(n, p); got > bound.probability {
					t.Errorf("FalseFailureProbability(%d, %.2f) = %.3g: n·p·(1−p) ≥ %v, documented < %v", n, p, got, bound.variance, bound.probability)
				}
			}
		}
	}
}

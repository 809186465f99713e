package server_test

import (
	"context"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/auth"
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

// TestRenewedCertificatesArePushed: a sidecar keeps its SDS stream, and when its certificate is
// due for renewal the server pushes the renewed one, for the same identity, without being asked.
func TestRenewedCertificatesArePushed(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Now())
	authority, err := ca.New(context.Background(), fake.NewSimpleClientset(), ca.Options{
		Secret:      types.NamespacedName{Namespace: "smi-operator-system", Name: "xds-ca"},
		TrustDomain: "cluster.local", CertTTL: time.Hour, Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	f := startServer(t, server.Options{
		Settings:      mesh.Settings{Access: mesh.AccessEnforcing},
		Authenticator: tokens{"token-of-a": auth.Identity{Namespace: "shop", ServiceAccount: "a"}},
		CA:            authority,
		SecretRefresh: 20 * time.Millisecond,
	})
	stream := f.ads(t, "token-of-a")
	first := subscribeWorkloadSecret(t, stream)

	// Past half of the certificate's life: the next refresh renews it and pushes it.
	clock.Step(45 * time.Minute)
	renewed, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Resources) != 1 || len(renewed.Resources) != 1 || string(renewed.Resources[0].Value) == string(first.Resources[0].Value) {
		t.Fatalf("no renewed certificate pushed: first %d secrets, then %d (same content: %v)", len(first.Resources), len(renewed.Resources),
			len(renewed.Resources) == 1 && string(renewed.Resources[0].Value) == string(first.Resources[0].Value))
	}
	sans, err := grpcxds.CertificateURIs(renewed.Resources)
	if err != nil {
		t.Fatal(err)
	}
	if len(sans) != 1 || sans[0] != "spiffe://cluster.local/ns/shop/sa/a" {
		t.Errorf("renewed certificate names %v, want spiffe://cluster.local/ns/shop/sa/a", sans)
	}
}

// subscribeWorkloadSecret asks on stream, as the Envoy sidecar of shop/a, for its workload
// certificate, ACKs the answer and returns it: the stream then waits for pushes.
func subscribeWorkloadSecret(t *testing.T, stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient) *discoveryv3.DiscoveryResponse {
	t.Helper()
	names := []string{xds.WorkloadSecretName}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node(server.ProxyEnvoy, "shop", "a"), TypeUrl: resourcev3.SecretType, ResourceNames: names}); err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.SecretType, ResourceNames: names, VersionInfo: first.VersionInfo, ResponseNonce: first.Nonce}); err != nil {
		t.Fatal(err)
	}
	return first
}

package xdse2e

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/server"
)

// TestSecretsForTheTokensIdentityOnly: an Envoy sidecar presenting its ServiceAccount's token
// (projected for the xDS audience, reviewed by the API server) gets its own workload certificate
// over SDS; claiming another identity with that token, or a token for another audience, gets
// nothing.
func TestSecretsForTheTokensIdentityOnly(t *testing.T) {
	o := start(t)
	ns := o.namespace(t)
	ctx := context.Background()
	token := func(audience string) string { return o.serviceAccountToken(t, ns, "envoy", audience) }
	conn, err := o.dialXDS(xdsPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	// askSecrets opens an ADS stream with the token, as the node claiming serviceAccount, and
	// asks for both secrets.
	askSecrets := func(token, serviceAccount string) (*discoveryv3.DiscoveryResponse, error) {
		callCtx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), 20*time.Second)
		defer cancel()
		stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(callCtx)
		if err != nil {
			return nil, err
		}
		meta, _ := structpb.NewStruct(map[string]any{
			server.MetadataProxy: server.ProxyEnvoy, server.MetadataNamespace: ns, server.MetadataServiceAccount: serviceAccount,
		})
		err = stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: serviceAccount, Metadata: meta}, TypeUrl: resourcev3.SecretType,
			ResourceNames: []string{xds.WorkloadSecretName, xds.TrustBundleSecretName}})
		if err != nil {
			return nil, err
		}
		return stream.Recv()
	}

	resp, err := askSecrets(token(tokenAudience), "envoy")
	if err != nil {
		t.Fatal(err)
	}
	want := "spiffe://cluster.local/ns/" + ns + "/sa/envoy"
	sans, err := grpcxds.CertificateURIs(resp.Resources)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Resources) != 2 || len(sans) != 1 || sans[0] != want {
		t.Fatalf("got %d secrets, certificate URI SANs %v; want both secrets and %s", len(resp.Resources), sans, want)
	}

	if _, err := askSecrets(token(tokenAudience), "someone-else"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("claiming another identity with envoy's token: got %v, want PermissionDenied", err)
	}
	if _, err := askSecrets(token("https://kubernetes.default.svc"), "envoy"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("a token for the API server's audience: got %v, want Unauthenticated", err)
	}
}

// serviceAccountToken creates the ServiceAccount ns/name when it does not exist and returns a
// token of it bound to audience, as a projected token volume would hold.
func (o *operator) serviceAccountToken(t *testing.T, ns, name, audience string) string {
	t.Helper()
	clientset, err := kubernetes.NewForConfig(o.env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = clientset.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	tr, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr.To(int64(600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

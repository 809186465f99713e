package xdse2e

import (
	"context"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/server"
)

// secretsSpecs are the specs of the secrets the xDS server serves.
func secretsSpecs() {
	It("an Envoy sidecar gets the secrets of its token's identity only", secretsForTheTokensIdentityOnly)
}

// secretsForTheTokensIdentityOnly: an Envoy sidecar presenting its ServiceAccount's token
// (projected for the xDS audience, reviewed by the API server) gets its own workload certificate
// over SDS; claiming another identity with that token, or a token for another audience, gets
// nothing.
func secretsForTheTokensIdentityOnly() {
	ns := o.namespace("secrets-for-the-tokens-identity-only")
	ctx := context.Background()
	token := func(audience string) string { return o.serviceAccountToken(ns, "envoy", audience) }
	conn, err := o.dialXDS(xdsPort)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { _ = conn.Close() })
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
	Expect(err).NotTo(HaveOccurred())
	want := "spiffe://cluster.local/ns/" + ns + "/sa/envoy"
	sans, err := grpcxds.CertificateURIs(resp.Resources)
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.Resources).To(HaveLen(2), "both secrets")
	Expect(sans).To(Equal([]string{want}), "the certificate's URI SANs")

	_, err = askSecrets(token(tokenAudience), "someone-else")
	Expect(status.Code(err)).To(Equal(codes.PermissionDenied), "claiming another identity with envoy's token: %v", err)
	_, err = askSecrets(token("https://kubernetes.default.svc"), "envoy")
	Expect(status.Code(err)).To(Equal(codes.Unauthenticated), "a token for the API server's audience: %v", err)
}

// serviceAccountToken creates the ServiceAccount ns/name when it does not exist and returns a
// token of it bound to audience, as a projected token volume would hold.
func (o *operator) serviceAccountToken(ns, name, audience string) string {
	GinkgoHelper()
	o.ensureServiceAccount(ns, name)
	clientset, err := kubernetes.NewForConfig(o.env.Config)
	Expect(err).NotTo(HaveOccurred())
	ctx := context.Background()
	tr, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr.To(int64(600))},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return tr.Status.Token
}

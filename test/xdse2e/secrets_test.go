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

	"github.com/smi-operator/smi-operator/test/testenv"
	"github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/server"
)

// secretsSpecs are the specs of the tokens ADS streams present.
func secretsSpecs() {
	It("an Envoy sidecar's token proves its identity only, and gets it no secret", tokensProveTheirIdentityOnly)
}

// tokensProveTheirIdentityOnly: an Envoy sidecar presenting its ServiceAccount's token
// (projected for the xDS audience, reviewed by the API server) gets the listeners of its identity
// but no secret — its key is made in its pod, and its pod agent serves the certificate; claiming
// another identity with that token, or presenting a token for another audience, gets nothing.
func tokensProveTheirIdentityOnly() {
	ns := o.namespace("tokens-prove-their-identity-only")
	ctx := context.Background()
	token := func(audience string) string { return o.serviceAccountToken(ns, "envoy", audience) }
	conn, err := o.dialXDS(xdsPort)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { _ = conn.Close() })
	// ask opens an ADS stream with the token, as the node claiming serviceAccount, and asks for
	// typeURL.
	ask := func(token, serviceAccount, typeURL string, names ...string) (*discoveryv3.DiscoveryResponse, error) {
		callCtx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), 20*time.Second)
		defer cancel()
		stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(callCtx)
		if err != nil {
			return nil, err
		}
		meta, _ := structpb.NewStruct(map[string]any{
			server.MetadataProxy: server.ProxyEnvoy, server.MetadataNamespace: ns, server.MetadataServiceAccount: serviceAccount,
		})
		err = stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: serviceAccount, Metadata: meta}, TypeUrl: typeURL, ResourceNames: names})
		if err != nil {
			return nil, err
		}
		return stream.Recv()
	}

	resp, err := ask(token(tokenAudience), "envoy", resourcev3.ListenerType)
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.Resources).NotTo(BeEmpty(), "envoy's listeners")
	_, err = ask(token(tokenAudience), "envoy", resourcev3.SecretType, xds.WorkloadSecretName, xds.TrustBundleSecretName)
	Expect(status.Code(err)).To(Equal(codes.Unimplemented), "secrets asked of the operator with envoy's token: %v", err)

	_, err = ask(token(tokenAudience), "someone-else", resourcev3.ListenerType)
	Expect(status.Code(err)).To(Equal(codes.PermissionDenied), "claiming another identity with envoy's token: %v", err)
	_, err = ask(token("https://kubernetes.default.svc"), "envoy", resourcev3.ListenerType)
	Expect(status.Code(err)).To(Equal(codes.Unauthenticated), "a token for the API server's audience: %v", err)
}

// serviceAccountToken creates the ServiceAccount ns/name when it does not exist and returns a
// token of it bound to audience, as a projected token volume would hold.
func (o *operator) serviceAccountToken(ns, name, audience string) string {
	GinkgoHelper()
	token, err := testenv.ServiceAccountToken(context.Background(), o.env.Config, ns, name, audience)
	Expect(err).NotTo(HaveOccurred())
	return token
}

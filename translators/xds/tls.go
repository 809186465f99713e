package xds

import (
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Names the TLS configuration refers to; the xDS server and the clients' bootstraps must agree on
// them.
const (
	// CertificateProviderInstance is the certificate provider instance proxyless gRPC clients and
	// servers take both their own certificate and the trust bundle from: their bootstrap must
	// define it under "certificate_providers" (grpc-go's "file_watcher" plugin, for example).
	CertificateProviderInstance = "default"
	// WorkloadSecretName is the SDS secret holding an Envoy sidecar's own certificate and key,
	// as Istio names it.
	WorkloadSecretName = "default"
	// TrustBundleSecretName is the SDS secret holding the CA certificates an Envoy sidecar
	// trusts, as Istio names it.
	TrustBundleSecretName = "ROOTCA"
	// SDSCluster is the static cluster of an Envoy sidecar's bootstrap that serves its secrets:
	// the pod agent, which holds the workload's key (package xds/bootstrap), as Istio names it.
	SDSCluster = "sds-grpc"
)

// ALPN protocols Envoy sidecars offer upstream and accept downstream on mutual TLS: what tells an
// inbound sidecar that a connection carries HTTP, since it cannot sniff inside TLS.
var (
	alpnHTTP2 = []string{"h2"}
	alpnHTTP1 = []string{"http/1.1"}
	// alpnInboundHTTP is what an inbound sidecar's HTTP chain matches and negotiates: "h2"
	// first, which is also the only protocol proxyless gRPC clients offer.
	alpnInboundHTTP = []string{"h2", "http/1.1"}
)

// mtls reports whether workloads talk mutual TLS: always when enforcing, since RBAC principals are
// only proven by client certificates, and whenever Settings.MTLS asks for it.
func mtls(s mesh.Settings) bool {
	return s.Enforcing() || s.MTLS
}

// WorkloadSecret is the SDS secret of an Envoy sidecar's own certificate: the PEM chain (leaf
// first) and its PEM private key, inline.
func WorkloadSecret(certChainPEM, keyPEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: WorkloadSecretName,
		Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inlineBytes(certChainPEM),
			PrivateKey:       inlineBytes(keyPEM),
		}},
	}
}

// TrustBundleSecret is the SDS secret of the PEM CA certificates an Envoy sidecar verifies peers
// with.
func TrustBundleSecret(bundlePEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: TrustBundleSecretName,
		Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inlineBytes(bundlePEM),
		}},
	}
}

func inlineBytes(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

// NobodySPIFFEID is the one server identity a cluster accepts when none of its endpoints' is
// known: mesh.Nobody's, which no certificate carries. An empty list of SAN matchers would mean
// "any certificate of the mesh" to Envoy and to every gRPC library, so a cluster never gets one.
var NobodySPIFFEID = mesh.Nobody.SPIFFEID

// ServerIdentities are the SPIFFE IDs a client accepts on the certificate of a server of a Service
// port, whose endpoints are given ("secure naming", as Istio calls it): one per ServiceAccount the
// Pods of its ready endpoints run as (in the Service's namespace), sorted. Mutual TLS alone only
// proves that the server is some workload of the mesh; this proves it is one that serves the
// Service, so a workload of another ServiceAccount that gets the traffic (a stale endpoint, an
// address taken over) is refused at the handshake. When no endpoint's identity is known (no
// endpoints, or Pods the operator has not seen) it is [NobodySPIFFEID] alone: fail closed.
func ServerIdentities(namespace string, endpoints []Endpoint, settings mesh.Settings) []string {
	var out []string
	for _, account := range ServiceAccounts(endpoints) {
		out = append(out, settings.Identity(namespace, account).SPIFFEID)
	}
	if len(out) == 0 {
		return []string{NobodySPIFFEID}
	}
	return out
}

// ServiceAccounts are the known ServiceAccounts of the endpoints a ClusterLoadAssignment lists
// (ready ones, each address once), sorted, each once.
func ServiceAccounts(endpoints []Endpoint) []string {
	var out []string
	for _, e := range normalize(endpoints) {
		if e.ServiceAccount != "" {
			out = append(out, e.ServiceAccount)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// sanMatchers match a peer certificate's SANs exactly against the identities, in the field every
// client of the support matrix reads: match_subject_alt_names. grpc-go (v1.84, xdsresource's
// cluster parsing), gRPC C-core and grpc-js read no other; Envoy reads it as a matcher of every
// SAN type (a URI SAN included) and deprecated it in 1.21.0 for match_typed_subject_alt_names,
// which 1.19 and 1.20 do not know, and 1.21.0 to 1.21.3 refuse alongside it.
func sanMatchers(identities []string) []*matcherv3.StringMatcher {
	out := make([]*matcherv3.StringMatcher, len(identities))
	for i, id := range identities {
		out[i] = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id}}
	}
	return out
}

// providerContext is the CommonTlsContext of proxyless gRPC: certificate provider instances
// only (grpc-go NACKs SDS secrets and inline certificates), and on clients the server identities
// accepted (nil on servers: grpc-go NACKs SAN matchers there).
func providerContext(serverIdentities []string) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{InstanceName: CertificateProviderInstance},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			CaCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{InstanceName: CertificateProviderInstance},
			MatchSubjectAltNames:          sanMatchers(serverIdentities),
		}},
	}
}

// sdsContext is the CommonTlsContext of Envoy sidecars: the workload certificate and the trust
// bundle over SDS from the pod agent (agentSDS), which holds the workload's key. Upstream, the server identities
// accepted go with the trust bundle in a combined validation context, as Istio sends them.
func sdsContext(alpn, serverIdentities []string) *tlsv3.CommonTlsContext {
	common := &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: WorkloadSecretName, SdsConfig: agentSDS()}},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: TrustBundleSecretName, SdsConfig: agentSDS()},
		},
		AlpnProtocols: alpn,
	}
	if serverIdentities != nil {
		common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchSubjectAltNames: sanMatchers(serverIdentities)},
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: TrustBundleSecretName, SdsConfig: agentSDS()},
			},
		}
	}
	return common
}

// agentSDS is where an Envoy sidecar gets its secrets: the static cluster SDSCluster of its
// bootstrap, the pod agent's Unix socket, as Istio's sidecars do. Not ADS: the operator never has
// the workload's key, which is generated in the pod.
func agentSDS() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion: corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
			ApiType:             corev3.ApiConfigSource_GRPC,
			TransportApiVersion: corev3.ApiVersion_V3,
			GrpcServices: []*corev3.GrpcService{{
				TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: SDSCluster}},
			}},
			SetNodeOnFirstMessageOnly: true,
		}},
	}
}

// upstreamTLS is a cluster's transport socket for mutual TLS.
func upstreamTLS(common *tlsv3.CommonTlsContext) *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name:       wellknown.TransportSocketTLS, // the only transport socket name grpc-go accepts for TLS
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.UpstreamTlsContext{CommonTlsContext: common})},
	}
}

// downstreamTLS is a filter chain's transport socket for mutual TLS: a client certificate is
// required, so every connection carries a verified principal.
func downstreamTLS(common *tlsv3.CommonTlsContext) *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name: wellknown.TransportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.DownstreamTlsContext{
			CommonTlsContext:         common,
			RequireClientCertificate: wrapperspb.Bool(true),
		})},
	}
}

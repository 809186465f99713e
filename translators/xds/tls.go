package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
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

// providerContext is the CommonTlsContext of proxyless gRPC: certificate provider instances
// only. grpc-go NACKs SDS secrets and inline certificates.
func providerContext() *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{InstanceName: CertificateProviderInstance},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			CaCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{InstanceName: CertificateProviderInstance},
		}},
	}
}

// sdsContext is the CommonTlsContext of Envoy sidecars: the workload certificate and the trust
// bundle over SDS, from the same ADS stream as everything else.
func sdsContext(alpn []string) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: WorkloadSecretName, SdsConfig: ads()}},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: TrustBundleSecretName, SdsConfig: ads()},
		},
		AlpnProtocols: alpn,
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

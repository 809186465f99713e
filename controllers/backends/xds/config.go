package xds

import (
	"net"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
)

// Config is what the operator's xDS server is built from, besides the mesh settings: main.go's
// flags fill it for a fixed --backend=xds, and ConfigFrom reads it from an SMIOperator.
type Config struct {
	// Address the ADS server listens on, such as ":15010".
	Address string
	// TLSCertDir (flags) holds tls.crt and tls.key, TLSSecretName (SMIOperator) names a Secret
	// in the operator's namespace holding them, to serve ADS over TLS with; with neither, the
	// server presents a certificate the built-in CA issues for ServiceName (and Address's host,
	// when that is an address), unless Plaintext.
	TLSCertDir, TLSSecretName string
	// Plaintext serves ADS without TLS, the explicit opt-out: tokens are then refused and no
	// secret is served.
	Plaintext bool
	// ServiceName is the Service in front of the xDS server, in CASecret's namespace.
	ServiceName string
	// TokenAudiences are the audiences ServiceAccount tokens presented on ADS streams must be
	// bound to (projected tokens), so that a proxy never hands the operator its API token.
	TokenAudiences []string
	// CASecret keeps the root of the built-in certificate authority.
	CASecret types.NamespacedName
	// CertTTL is the lifetime of workload certificates; ca.DefaultCertTTL when zero.
	CertTTL time.Duration
	// CARootTTL is the lifetime of the roots the CA makes (ca.Options.RootTTL); ca.DefaultRootTTL
	// when zero.
	CARootTTL time.Duration
}

// ConfigFrom is the xDS server configuration an SMIOperator spec asks for (spec.xds, defaults
// filled in) on base, which holds what the spec does not say: the host to listen on (host), the
// Service name and the CA Secret. (The swap grace period is the Switch's, not the server's.)
func ConfigFrom(spec v1alpha1.SMIOperatorSpec, host string, base Config) Config {
	d := spec.WithDefaults()
	out := base
	out.Address = net.JoinHostPort(host, strconv.Itoa(int(d.XDS.Port)))
	out.TLSCertDir, out.TLSSecretName = "", ""
	if d.XDS.TLS != nil {
		out.TLSSecretName = d.XDS.TLS.SecretName
	}
	out.Plaintext = d.XDS.InsecurePlaintext
	out.TokenAudiences = d.XDS.TokenAudiences // WithDefaults made them a copy
	out.CertTTL = d.XDS.CertificateTTL.Duration
	return out
}

package backends

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// The backends read their configuration from two places: main.go's flags, for a fixed --backend,
// and the SMIOperator resource. Both end up in the same two types, mesh.Settings (what the
// translators read) and XDSConfig (what the xDS server is built from), so that a backend never
// knows where its settings came from; the defaults are the API's (v1alpha1.Default*).

// MeshSettings is the mesh configuration of an SMIOperator spec, its defaults filled in. A
// namespace selector that does not convert selects every namespace (deny-by-default fails
// closed), and the error names the field: the backend must not run on it.
func MeshSettings(spec v1alpha1.SMIOperatorSpec) (mesh.Settings, error) {
	d := spec.WithDefaults()
	namespaces, err := accessNamespaces(d.AccessNamespaceSelector)
	return mesh.Settings{
		TrustDomain:      d.TrustDomain,
		ClusterDomain:    d.ClusterDomain,
		Access:           mesh.AccessMode(d.AccessMode),
		MTLS:             d.MTLS,
		AccessNamespaces: namespaces,
	}, err
}

// accessNamespaces writes a namespace selector as mesh.Settings.AccessNamespaces: "" (the
// default) when unset, mesh.EveryNamespace for the empty selector. One that does not convert
// selects every namespace, failing closed, and the error says why.
func accessNamespaces(sel *metav1.LabelSelector) (string, error) {
	if sel == nil {
		return "", nil
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return mesh.EveryNamespace, fmt.Errorf("spec.accessNamespaceSelector: %w", err)
	}
	if selector.Empty() {
		return mesh.EveryNamespace, nil
	}
	return selector.String(), nil
}

// XDSConfig is what the operator's xDS server is built from, besides the mesh settings: main.go's
// flags fill it for a fixed --backend=xds, and XDSConfigFrom reads it from an SMIOperator.
type XDSConfig struct {
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
}

// XDSConfigFrom is the xDS server configuration an SMIOperator spec asks for (spec.xds, defaults
// filled in) on base, which holds what the spec does not say: the host to listen on (host), the
// Service name and the CA Secret. (The swap grace period is the Switch's, not the server's.)
func XDSConfigFrom(spec v1alpha1.SMIOperatorSpec, host string, base XDSConfig) XDSConfig {
	d := spec.WithDefaults()
	out := base
	out.Address = net.JoinHostPort(host, strconv.Itoa(int(d.XDS.Port)))
	out.TLSCertDir, out.TLSSecretName = "", ""
	if d.XDS.TLS != nil {
		out.TLSSecretName = d.XDS.TLS.SecretName
	}
	out.Plaintext = d.XDS.InsecurePlaintext
	out.TokenAudiences = slices.Clone(d.XDS.TokenAudiences)
	out.CertTTL = d.XDS.CertificateTTL.Duration
	return out
}

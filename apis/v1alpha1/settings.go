package v1alpha1

import (
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Defaults of SMIOperatorSpec. They equal main.go's flag defaults (TestDefaultsMatchFlags holds
// them together) and the CRD's defaults (the envtest test reads them back from the API server).
const (
	DefaultBackend         = BackendIstio
	DefaultTrustDomain     = "cluster.local"
	DefaultClusterDomain   = "cluster.local"
	DefaultAccessMode      = AccessEnforcing
	DefaultMTLS            = false
	DefaultXDSPort         = int32(15010)
	DefaultTokenAudience   = "smi-operator-xds"
	DefaultCertificateTTL  = time.Hour
	DefaultSwapGracePeriod = 5 * time.Minute
)

// WithDefaults returns a copy of the spec with every empty field set to its default, as the API
// server's defaulting would. Objects read from the API server are already defaulted; this is for
// objects built in Go, and so that a reader never has to know the defaults.
func (s SMIOperatorSpec) WithDefaults() SMIOperatorSpec {
	out := *s.DeepCopy()
	if out.Backend == "" {
		out.Backend = DefaultBackend
	}
	if out.TrustDomain == "" {
		out.TrustDomain = DefaultTrustDomain
	}
	if out.ClusterDomain == "" {
		out.ClusterDomain = DefaultClusterDomain
	}
	if out.AccessMode == "" {
		out.AccessMode = DefaultAccessMode
	}
	if out.XDS.Port == 0 {
		out.XDS.Port = DefaultXDSPort
	}
	if len(out.XDS.TokenAudiences) == 0 {
		out.XDS.TokenAudiences = []string{DefaultTokenAudience}
	}
	if out.XDS.CertificateTTL == nil {
		out.XDS.CertificateTTL = &metav1.Duration{Duration: DefaultCertificateTTL}
	}
	if out.XDS.SwapGracePeriod == nil {
		out.XDS.SwapGracePeriod = &metav1.Duration{Duration: DefaultSwapGracePeriod}
	}
	return out
}

// Settings is the mesh configuration every translator reads, from this spec (defaults filled
// in). It is the same type main.go's flags fill, so the backends need not know where it came from.
func (s SMIOperatorSpec) Settings() mesh.Settings {
	d := s.WithDefaults()
	namespaces, _ := accessNamespaces(d.AccessNamespaceSelector)
	return mesh.Settings{
		TrustDomain:      d.TrustDomain,
		ClusterDomain:    d.ClusterDomain,
		Access:           mesh.AccessMode(d.AccessMode),
		MTLS:             d.MTLS,
		AccessNamespaces: namespaces,
	}
}

// Validate reports what the CRD's schema cannot check: a namespace selector whose keys, values or
// operators Kubernetes' label selectors refuse.
func (s SMIOperatorSpec) Validate() error {
	_, err := accessNamespaces(s.AccessNamespaceSelector)
	return err
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

// XDSSettings are the xDS server's settings with defaults filled in and durations resolved, what
// the controller hands to the xDS backend (controllers.XDSOptions, which this package cannot
// import: the controllers import this package).
type XDSSettings struct {
	// Port the server listens on.
	Port int32
	// TLSSecretName is the Secret holding the serving certificate; empty serves a certificate of
	// the built-in CA, unless Plaintext.
	TLSSecretName string
	// Plaintext serves without TLS (spec.xds.insecurePlaintext).
	Plaintext bool
	// TokenAudiences accepted on ADS streams.
	TokenAudiences []string
	// CertificateTTL of workload certificates.
	CertificateTTL time.Duration
	// SwapGracePeriod the server keeps serving after a swap away from xds.
	SwapGracePeriod time.Duration
}

// XDSSettings returns the xDS server's settings, defaults filled in.
func (s SMIOperatorSpec) XDSSettings() XDSSettings {
	d := s.WithDefaults()
	out := XDSSettings{
		Port:            d.XDS.Port,
		TokenAudiences:  slices.Clone(d.XDS.TokenAudiences),
		CertificateTTL:  d.XDS.CertificateTTL.Duration,
		SwapGracePeriod: d.XDS.SwapGracePeriod.Duration,
		Plaintext:       d.XDS.InsecurePlaintext,
	}
	if d.XDS.TLS != nil {
		out.TLSSecretName = d.XDS.TLS.SecretName
	}
	return out
}

package v1alpha1

import (
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Defaults of SMIOperatorSpec, defined here only: main.go's flags default to them, the mesh
// settings (translators/mesh) fall back to them, and the CRD's defaults equal them (the envtest
// test reads them back from the API server).
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
	DefaultEnvoyImage      = "docker.io/envoyproxy/envoy:v1.36.2"
	// DefaultGammaAccessPolicy enforces nothing, and says so on every TrafficTarget: writing
	// a mesh's policies must be asked for, since the operator cannot tell which mesh reads the
	// routes.
	DefaultGammaAccessPolicy = GammaAccessPolicyNone
	// DefaultAccessNamespaces is where access applies when spec.accessNamespaceSelector is unset,
	// as a label selector in kubectl's syntax: every namespace but Kubernetes' own and Istio's
	// root namespace. What runs there (cluster DNS, istiod) is the platform, not SMI workloads,
	// and an AuthorizationPolicy in Istio's root namespace applies to the whole mesh.
	DefaultAccessNamespaces = NamespaceNameLabel + " notin (kube-system,kube-public,kube-node-lease,istio-system)"
	// NamespaceNameLabel is the label the API server sets on every namespace to its name.
	NamespaceNameLabel = "kubernetes.io/metadata.name"
)

// Defaults of the injected proxy's resources (InjectionSpec.ProxyResources), as Istio's sidecars
// have them; no CPU limit.
const (
	DefaultProxyCPURequest    = "100m"
	DefaultProxyMemoryRequest = "128Mi"
	DefaultProxyMemoryLimit   = "1Gi"
)

// setQuantity sets *q to def when it is unset.
func setQuantity(q **resource.Quantity, def string) {
	if *q == nil {
		v := resource.MustParse(def)
		*q = &v
	}
}

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
	in := &out.XDS.Injection
	if in.EnvoyImage == "" {
		in.EnvoyImage = DefaultEnvoyImage
	}
	setQuantity(&in.ProxyResources.CPURequest, DefaultProxyCPURequest)
	setQuantity(&in.ProxyResources.MemoryRequest, DefaultProxyMemoryRequest)
	setQuantity(&in.ProxyResources.MemoryLimit, DefaultProxyMemoryLimit)
	if out.Gamma.AccessPolicy == "" {
		out.Gamma.AccessPolicy = DefaultGammaAccessPolicy
	}
	return out
}

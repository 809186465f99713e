package mesh

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
)

// Settings is the operator's configuration, the one type every part reads: the manager's flags or
// the SMIOperator resource fill it (backends.MeshSettings). Build reads the cluster facts, the backends
// read the rest. The zero value is valid and means the defaults.
type Settings struct {
	// TrustDomain of SPIFFE identities; default v1alpha1.DefaultTrustDomain.
	TrustDomain string `json:"trustDomain,omitempty"`
	// ClusterDomain of Service FQDNs; default v1alpha1.DefaultClusterDomain.
	ClusterDomain string `json:"clusterDomain,omitempty"`
	// Access says what happens to traffic that no TrafficTarget mentions; default AccessEnforcing.
	Access AccessMode `json:"access,omitempty"`
	// MTLS makes clients of split backends use mutual TLS (Istio: ISTIO_MUTUAL DestinationRules).
	MTLS bool `json:"mtls,omitempty"`
	// AccessNamespaces is the label selector (in kubectl's syntax, as labels.Parse reads it) of the
	// namespaces where SMI access applies: in enforcing mode, what no TrafficTarget allows there
	// is denied, whether or not the namespace holds a TrafficTarget. Default
	// DefaultAccessNamespaces. A string, not a labels.Selector, so that Settings stay comparable.
	AccessNamespaces string `json:"accessNamespaces,omitempty"`
}

// Namespace selectors of AccessNamespaces.
const (
	// DefaultAccessNamespaces is the SMIOperator API's default (see there why).
	DefaultAccessNamespaces = v1alpha1.DefaultAccessNamespaces
	// EveryNamespace selects every namespace: the API server labels each with its name. It
	// stands for an empty selector, which the empty string (the default) cannot.
	EveryNamespace = NamespaceNameLabel
	// NamespaceNameLabel is the label the API server sets on every namespace to its name.
	NamespaceNameLabel = v1alpha1.NamespaceNameLabel
)

// AccessMode says how far SMI's deny-by-default reaches.
type AccessMode string

// Access modes.
const (
	// AccessEnforcing is SMI's model: in every namespace AccessNamespaces selects, whatever no
	// TrafficTarget allows is denied, and destinations accept only mutual TLS so that
	// source identities are proven. The default.
	AccessEnforcing = AccessMode(v1alpha1.AccessEnforcing)
	// AccessPermissive restricts only the workloads that TrafficTargets name (each still accepts
	// exactly what its TrafficTargets allow); other workloads keep whatever the mesh allows them,
	// and mutual TLS stays as the mesh configures it. For adopting SMI one service at a time.
	AccessPermissive = AccessMode(v1alpha1.AccessPermissive)
)

// BindFlags defines the flags that set s, with the SMIOperator API's defaults: the manager's
// (for a fixed --backend) and the translate command's are the same flags.
func (s *Settings) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.TrustDomain, "trust-domain", v1alpha1.DefaultTrustDomain, "SPIFFE trust domain of workload identities.")
	fs.StringVar(&s.ClusterDomain, "cluster-domain", v1alpha1.DefaultClusterDomain, "DNS domain of the cluster's Services.")
	fs.StringVar((*string)(&s.Access), "access-mode", string(v1alpha1.DefaultAccessMode), "Enforcing: SMI deny-by-default in every namespace "+
		"--access-namespace-selector selects (an allow-nothing policy in each, STRICT mTLS on destinations); Permissive: only what TrafficTargets say.")
	fs.StringVar(&s.AccessNamespaces, "access-namespace-selector", v1alpha1.DefaultAccessNamespaces, "Label selector (kubectl syntax) of the "+
		"namespaces SMI access applies to; \""+EveryNamespace+"\" selects every namespace.")
	fs.BoolVar(&s.MTLS, "mtls", v1alpha1.DefaultMTLS, "Require Istio mutual TLS to TrafficSplit backends (a DestinationRule per backend).")
}

// withDefaults fills in the SMIOperator API's defaults.
func (s Settings) withDefaults() Settings {
	if s.TrustDomain == "" {
		s.TrustDomain = v1alpha1.DefaultTrustDomain
	}
	if s.ClusterDomain == "" {
		s.ClusterDomain = v1alpha1.DefaultClusterDomain
	}
	if s.Access == "" {
		s.Access = AccessMode(v1alpha1.DefaultAccessMode)
	}
	if s.AccessNamespaces == "" {
		s.AccessNamespaces = DefaultAccessNamespaces
	}
	return s
}

// Identity is the workload identity of a ServiceAccount, with its SPIFFE ID in the settings'
// trust domain (the default one when unset).
func (s Settings) Identity(namespace, serviceAccount string) Identity {
	return Identity{
		Namespace:      namespace,
		ServiceAccount: serviceAccount,
		SPIFFEID:       spiffeScheme + s.withDefaults().TrustDomain + "/ns/" + namespace + "/sa/" + serviceAccount,
	}
}

// EnforcesIn reports whether deny-by-default applies in a namespace with these labels: enforcing
// mode, and the namespace selected by AccessNamespaces. A selector that does not parse (which
// Validate reports) selects every namespace: it fails closed.
func (s Settings) EnforcesIn(namespaceLabels map[string]string) bool {
	if !s.Enforcing() {
		return false
	}
	sel, err := labels.Parse(s.withDefaults().AccessNamespaces)
	return err != nil || sel.Matches(labels.Set(namespaceLabels))
}

// Unenforced returns the settings of workloads where access is not enforced (outside
// AccessNamespaces, and no TrafficTarget names them): AccessPermissive but, when the mesh enforces elsewhere, with mutual TLS kept, since their clients, wherever they
// run, talk it to them.
func (s Settings) Unenforced() Settings {
	if s.Enforcing() {
		s.Access, s.MTLS = AccessPermissive, true
	}
	return s
}

// NamespaceLabels are the labels the API server gives a namespace of that name and nothing more:
// what a namespace known only by its name (in `translate`'s input, say) is judged by.
func NamespaceLabels(name string) map[string]string {
	return map[string]string{NamespaceNameLabel: name}
}

// Enforcing reports whether deny-by-default applies. Only an explicit AccessPermissive turns it
// off, so a misspelt mode that slipped past Validate fails closed rather than open.
func (s Settings) Enforcing() bool {
	return s.Access != AccessPermissive
}

// Validate reports settings that cannot be used, for the flags or the resource that set them.
func (s Settings) Validate() error {
	s = s.withDefaults()
	var errs []error
	if s.Access != AccessEnforcing && s.Access != AccessPermissive {
		errs = append(errs, fmt.Errorf("access mode %q is neither %q nor %q", s.Access, AccessEnforcing, AccessPermissive))
	}
	if _, err := labels.Parse(s.AccessNamespaces); err != nil {
		errs = append(errs, fmt.Errorf("access namespace selector %q: %w", s.AccessNamespaces, err))
	}
	for _, msg := range validation.IsDNS1123Subdomain(s.ClusterDomain) {
		errs = append(errs, fmt.Errorf("cluster domain %q: %s", s.ClusterDomain, msg))
	}
	if !isTrustDomain(s.TrustDomain) {
		errs = append(errs, fmt.Errorf("trust domain %q: SPIFFE allows only lower-case letters, digits, '.', '-' and '_'", s.TrustDomain))
	}
	return errors.Join(errs...)
}

// isTrustDomain follows the SPIFFE ID specification's trust domain syntax.
func isTrustDomain(td string) bool {
	return td != "" && strings.Trim(td, "abcdefghijklmnopqrstuvwxyz0123456789.-_") == ""
}

package mesh

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Settings is the operator's configuration, the one type every part reads: the manager's flags fill
// it today, the operator's own custom resource later. Build reads the cluster facts, the backends
// read the rest. The zero value is valid and means the defaults.
type Settings struct {
	// TrustDomain of SPIFFE identities; default "cluster.local".
	TrustDomain string `json:"trustDomain,omitempty"`
	// ClusterDomain of Service FQDNs; default "cluster.local".
	ClusterDomain string `json:"clusterDomain,omitempty"`
	// Access says what happens to traffic that no TrafficTarget mentions; default AccessEnforcing.
	Access AccessMode `json:"access,omitempty"`
	// MTLS makes clients of split backends use mutual TLS (Istio: ISTIO_MUTUAL DestinationRules).
	MTLS bool `json:"mtls,omitempty"`
}

// AccessMode says how far SMI's deny-by-default reaches.
type AccessMode string

// Access modes.
const (
	// AccessEnforcing is SMI's model: in every namespace holding a TrafficTarget destination,
	// whatever no TrafficTarget allows is denied, and destinations accept only mutual TLS so that
	// source identities are proven. The default.
	AccessEnforcing AccessMode = "Enforcing"
	// AccessPermissive restricts only the workloads that TrafficTargets name (each still accepts
	// exactly what its TrafficTargets allow); other workloads keep whatever the mesh allows them,
	// and mutual TLS stays as the mesh configures it. For adopting SMI one service at a time.
	AccessPermissive AccessMode = "Permissive"
)

const defaultDomain = "cluster.local"

func (s Settings) withDefaults() Settings {
	if s.TrustDomain == "" {
		s.TrustDomain = defaultDomain
	}
	if s.ClusterDomain == "" {
		s.ClusterDomain = defaultDomain
	}
	if s.Access == "" {
		s.Access = AccessEnforcing
	}
	return s
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

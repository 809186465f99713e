package smi

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

const (
	// MaxNameLength keeps generated names within a DNS-1123 label and a label value, so they fit
	// wherever Istio or a tool copies them.
	MaxNameLength = 63
	// hashLength hex characters of SHA-256 (40 bits) make an accidental collision negligible.
	hashLength = 10
)

// ShortName returns s when it fits MaxNameLength, else s cut to make room for "-<hash of s>".
// Parts of generated names are DNS-1123 names themselves, so the result is one too.
func ShortName(s string) string {
	if len(s) <= MaxNameLength {
		return s
	}
	return HashedName(s, s)
}

// HashedName cuts s to make room for "-<hash of key>" within MaxNameLength. The cut never leaves a
// '-' or '.' before the hash, which DNS-1123 forbids.
func HashedName(s, key string) string {
	sum := sha256.Sum256([]byte(key))
	s = strings.TrimRight(s[:min(len(s), MaxNameLength-hashLength-1)], "-.")
	return s + "-" + hex.EncodeToString(sum[:])[:hashLength]
}

// NamespaceSourceKind is the source kind of objects generated for a whole namespace (enforcing
// mode's allow-nothing policy), which come from no single SMI object; their source is the namespace.
const NamespaceSourceKind = "Namespace"

// SourceLabels are the labels of every object generated from the SMI object kind/name (in the
// object's namespace): the writer finds them again, and prunes them, by these.
func SourceLabels(kind, name string) map[string]string {
	return map[string]string{LabelManagedBy: ManagedByValue, LabelSourceKind: kind, LabelSourceName: ShortName(name)}
}

// SplitService is a TrafficSplit's spec.service read as SMI defines it, "the FQDN that
// applications will use": "<name>", "<name>.<namespace>", "<name>.<namespace>.svc" or
// "<name>.<namespace>.svc.<cluster domain>". A value, not an API type.
// +kubebuilder:object:generate=false
type SplitService struct {
	// Name is the Service's name.
	Name string
	// Namespace and ClusterDomain are those the value names; "" when it names none.
	Namespace, ClusterDomain string
}

// ParseSplitService reads spec.service; ok is false when it has none of SplitService's forms: an
// empty label anywhere ("web..svc", "web.", a trailing dot) or a third label other than "svc".
// The labels' characters are not checked.
func ParseSplitService(service string) (s SplitService, ok bool) {
	labels := strings.Split(service, ".")
	if slices.Contains(labels, "") || len(labels) >= 3 && labels[2] != "svc" {
		return SplitService{}, false
	}
	s.Name = labels[0]
	if len(labels) > 1 {
		s.Namespace = labels[1]
	}
	if len(labels) > 3 {
		s.ClusterDomain = strings.Join(labels[3:], ".")
	}
	return s, true
}

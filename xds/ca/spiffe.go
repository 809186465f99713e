package ca

import (
	"fmt"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// SPIFFEID returns the SPIFFE ID of a Kubernetes ServiceAccount:
// spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>.
func SPIFFEID(trustDomain, namespace, serviceAccount string) string {
	return "spiffe://" + trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// ParseSPIFFEID checks that id is the SPIFFE ID of a ServiceAccount in trustDomain, exactly as
// [SPIFFEID] writes it, and returns the namespace and ServiceAccount it names.
func ParseSPIFFEID(id, trustDomain string) (namespace, serviceAccount string, err error) {
	namespace, serviceAccount, err = parseSPIFFEID(id, trustDomain)
	if err != nil {
		return "", "", fmt.Errorf("invalid SPIFFE ID %q: %w", id, err)
	}
	return namespace, serviceAccount, nil
}

func parseSPIFFEID(id, trustDomain string) (string, string, error) {
	// url.Parse lowercases the scheme; SPIFFE requires it lowercase as written.
	if !strings.HasPrefix(id, "spiffe://") {
		return "", "", fmt.Errorf(`it must start with "spiffe://"`)
	}
	if strings.ContainsAny(id, "%?#@") {
		return "", "", fmt.Errorf("percent-encoding, query, fragment and user info are not allowed")
	}
	u, err := url.Parse(id)
	if err != nil {
		return "", "", err
	}
	if u.Port() != "" || strings.HasSuffix(u.Host, ":") {
		return "", "", fmt.Errorf("a port is not allowed")
	}
	if u.Host != trustDomain {
		return "", "", fmt.Errorf("trust domain %q is not %q", u.Host, trustDomain)
	}
	parts := strings.Split(u.Path, "/")
	if len(parts) != 5 || parts[0] != "" || parts[1] != "ns" || parts[3] != "sa" {
		return "", "", fmt.Errorf("the path must be /ns/<namespace>/sa/<service account>")
	}
	ns, sa := parts[2], parts[4]
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return "", "", fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(sa); len(errs) > 0 {
		return "", "", fmt.Errorf("service account %q: %s", sa, strings.Join(errs, "; "))
	}
	return ns, sa, nil
}

// validateTrustDomain applies the SPIFFE rules for trust domain names: lowercase letters, digits,
// dots, dashes and underscores, at most 255 characters.
func validateTrustDomain(td string) error {
	if td == "" {
		return fmt.Errorf("the trust domain is empty")
	}
	if len(td) > 255 {
		return fmt.Errorf("trust domain %q is longer than 255 characters", td)
	}
	for _, r := range td {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return fmt.Errorf("trust domain %q: only lowercase letters, digits, '.', '-' and '_' are allowed", td)
		}
	}
	return nil
}

package server

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/ca"
)

// CertificateAuthority issues the workload certificates SDS serves.
type CertificateAuthority interface {
	// ForIdentity returns a valid certificate for the SPIFFE ID, shared by the callers of one
	// identity until it is due for renewal.
	ForIdentity(spiffeID string) (*ca.Certificate, error)
	TrustBundlePEM() []byte
	TrustDomain() string
	// Rotate replaces the root when it is due, keeping the old one in the trust bundle.
	Rotate(ctx context.Context) (rotated bool, err error)
}

// secretSource serves each identity its own certificate ("default") and the trust bundle
// ("ROOTCA"). The streams callbacks only let SDS requests through on streams authenticated as
// the identity the node claims, so the scope here is a proven identity.
type secretSource Server

func (src *secretSource) Version(scope, name string) (string, bool) {
	_, version, ok := src.lookup(scope, name, false)
	return version, ok
}

func (src *secretSource) Resolve(scope, name string) (types.Resource, bool) {
	res, _, ok := src.lookup(scope, name, true)
	return res, ok
}

// lookup finds the secret's material and version, and builds the Secret only when build is set:
// versions are asked for on every re-evaluation, the Secret only when it changed. The CA caches
// certificates, so the lookup itself is cheap; it renews a certificate that is due.
func (src *secretSource) lookup(scope, name string, build bool) (types.Resource, string, bool) {
	s := (*Server)(src)
	authority := s.opts.CA
	if authority == nil || scope == "" {
		return nil, "", false
	}
	switch name {
	case xds.WorkloadSecretName:
		namespace, serviceAccount, ok := strings.Cut(scope, "/")
		if !ok {
			return nil, "", false
		}
		cert, err := authority.ForIdentity(ca.SPIFFEID(authority.TrustDomain(), namespace, serviceAccount))
		if err != nil {
			s.opts.Log.Error(err, "cannot issue a workload certificate", "identity", scope)
			return nil, "", false
		}
		// Not the validity: two certificates can start in the same second (x509 times have no
		// finer resolution), and a replaced one must reach the proxy all the same.
		version := contentVersion(cert.CertChainPEM, cert.PrivateKeyPEM)
		if !build {
			return nil, version, true
		}
		return xds.WorkloadSecret(cert.CertChainPEM, cert.PrivateKeyPEM), version, true
	case xds.TrustBundleSecretName:
		bundle := authority.TrustBundlePEM()
		version := contentVersion(bundle)
		if !build {
			return nil, version, true
		}
		return xds.TrustBundleSecret(bundle), version, true
	}
	return nil, "", false
}

// contentVersion is a version that changes whenever the content does.
func contentVersion(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		// Lengths first, so that moving bytes from one part to the next is a change too.
		_, _ = h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(p))))
		_, _ = h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (src *secretSource) Wildcard(scope string) []string {
	if scope == "" {
		return nil
	}
	return []string{xds.WorkloadSecretName, xds.TrustBundleSecretName}
}

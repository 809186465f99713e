package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"
)

// clockSkew is how far NotBefore is backdated, so that a peer whose clock is a little behind
// accepts a certificate issued a moment ago.
const clockSkew = 5 * time.Minute

// rootCommonName is the subject of every root this package creates.
const rootCommonName = "smi-operator xDS CA"

// Certificate is a certificate, with its key when this process generated it, and the trust bundle
// to verify peers with.
type Certificate struct {
	// CertChainPEM is the leaf certificate; the root is in TrustBundlePEM.
	CertChainPEM []byte
	// PrivateKeyPEM is the leaf's ECDSA P-256 key, PKCS #8, when this process generated it
	// ([Authority.Issue], [Authority.IssueServing]); empty for a certificate signed from a CSR
	// ([Authority.Sign]), whose key never left its workload.
	PrivateKeyPEM []byte
	// TrustBundlePEM holds every root whose certificates are trusted: the current one first, then
	// the previous ones until they expire.
	TrustBundlePEM []byte
	// NotBefore and NotAfter are the leaf's validity.
	NotBefore, NotAfter time.Time
}

// RenewAt is half-way through the certificate's validity: renewing then leaves the other half to
// retry in when the control plane is away.
func (c *Certificate) RenewAt() time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) / 2)
}

// keyPair is a CA certificate with its key.
type keyPair struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
}

// newRoot makes a self-signed ECDSA P-256 root valid from now-clockSkew to now+ttl. With
// spiffeSAN it carries the trust domain's SPIFFE ID (spiffe://<trustDomain>) as URI SAN.
func newRoot(trustDomain string, spiffeSAN bool, now time.Time, ttl time.Duration) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: rootCommonName, Organization: []string{trustDomain}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(ttl),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// Leaves are signed by the root directly.
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if spiffeSAN {
		tmpl.URIs = []*url.URL{{Scheme: "spiffe", Host: trustDomain}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("signing the root: %w", err)
	}
	return newKeyPair(der, key)
}

func newKeyPair(der []byte, key crypto.Signer) (*keyPair, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &keyPair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// needsRotation reports whether root has less than a third of its lifetime left at now. A third
// leaves the new root long enough in every trust bundle before the old one expires.
func needsRotation(root *x509.Certificate, now time.Time) bool {
	lifetime := root.NotAfter.Sub(root.NotBefore)
	return root.NotAfter.Sub(now) < lifetime/3
}

// trustBundle returns current followed by the certificates of previous that are not current,
// not expired at now and not repeated: a root is trusted until it expires, and no longer.
func trustBundle(current *x509.Certificate, previous []*x509.Certificate, now time.Time) []*x509.Certificate {
	bundle := []*x509.Certificate{current}
	for _, c := range previous {
		if !now.Before(c.NotAfter) {
			continue
		}
		seen := false
		for _, b := range bundle {
			if bytes.Equal(b.Raw, c.Raw) {
				seen = true
				break
			}
		}
		if !seen {
			bundle = append(bundle, c)
		}
	}
	return bundle
}

func encodeCerts(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// parseCerts parses every CERTIFICATE block of data; other blocks are an error.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(bytes.TrimSpace(data)) > 0 {
		return nil, errors.New("trailing data that is not PEM")
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	return certs, nil
}

// parseKeyPair reads a CA certificate and its key (PKCS #8, SEC 1 or PKCS #1 PEM) and checks
// that they belong together and that the certificate may sign certificates.
func parseKeyPair(certPEM, keyPEM []byte) (*keyPair, error) {
	certs, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	cert := certs[0]
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("key: no PEM block")
	}
	var parsed any
	switch block.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		parsed, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("key: unexpected PEM block %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	key, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key: %T cannot sign", parsed)
	}
	if pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("the key does not match the certificate")
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("the certificate is not a CA that may sign certificates")
	}
	return &keyPair{cert: cert, key: key, certPEM: certPEM, keyPEM: keyPEM}, nil
}

// workloadNames makes a leaf a workload certificate: client and server authentication, its
// identity the URI SAN (spiffeID, already validated).
func workloadNames(spiffeID *url.URL) func(*x509.Certificate) {
	return func(tmpl *x509.Certificate) {
		// An empty subject, as X.509-SVIDs have: the identity is the URI SAN, which Go then marks
		// critical (RFC 5280 4.2.1.6).
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.URIs = []*url.URL{spiffeID}
	}
}

// issueLeaf signs a fresh ECDSA P-256 key for spiffeID (already validated) with root: a workload
// certificate whose key this process holds.
func issueLeaf(root *keyPair, bundlePEM []byte, spiffeID *url.URL, now time.Time, ttl time.Duration) (*Certificate, error) {
	return signLeaf(root, bundlePEM, now, ttl, spiffeID.String(), workloadNames(spiffeID))
}

// signLeaf signs a fresh ECDSA P-256 key with root, valid from now (backdated for clock skew) for
// ttl or until the root expires, whichever comes first; names fill in the subject alternative
// names and key usages. what names the certificate in errors.
func signLeaf(root *keyPair, bundlePEM []byte, now time.Time, ttl time.Duration, what string, names func(*x509.Certificate)) (*Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	c, der, err := signPublicKey(root, bundlePEM, key.Public(), now, ttl, what, names)
	if err != nil {
		return nil, err
	}
	leaf, err := newKeyPair(der, key)
	if err != nil {
		return nil, err
	}
	c.PrivateKeyPEM = leaf.keyPEM
	return c, nil
}

// signPublicKey signs a certificate of pub with root, as signLeaf does, without a key: the
// returned Certificate has no PrivateKeyPEM; der is the leaf.
func signPublicKey(root *keyPair, bundlePEM []byte, pub crypto.PublicKey, now time.Time, ttl time.Duration, what string, names func(*x509.Certificate)) (*Certificate, []byte, error) {
	if !now.Before(root.cert.NotAfter) {
		return nil, nil, fmt.Errorf("the root CA expired at %s; it is rotated by Rotate", root.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(ttl)
	if notAfter.After(root.cert.NotAfter) {
		notAfter = root.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	names(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.cert, pub, root.key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing the certificate of %s: %w", what, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return &Certificate{
		CertChainPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		TrustBundlePEM: bundlePEM,
		NotBefore:      leaf.NotBefore,
		NotAfter:       leaf.NotAfter,
	}, der, nil
}

// newSerial returns a random positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

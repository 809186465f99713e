package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=get;create;update

// Keys of the CA Secret. tls.crt and tls.key are the current root, the one that signs
// (kubernetes.io/tls requires them); ca.crt is the trust bundle; next.crt and next.key, while a
// rotation is under way, the root that signs once it has been in the bundle for the propagation
// delay.
const (
	SecretCertKey     = corev1.TLSCertKey
	SecretKeyKey      = corev1.TLSPrivateKeyKey
	SecretBundleKey   = "ca.crt"
	SecretNextCertKey = "next.crt"
	SecretNextKeyKey  = "next.key"
)

// Defaults of [Options].
const (
	DefaultRootTTL = 365 * 24 * time.Hour
	DefaultCertTTL = time.Hour
	// DefaultRootPropagation is far more than a trust bundle takes to reach every proxy: the
	// operator's ConfigMap writes, the kubelet's sync of the mounted ConfigMap (about a minute),
	// the agent's re-read of the file (30 s).
	DefaultRootPropagation = time.Hour
)

// maxAttempts bounds how often Rotate re-reads the Secret after losing a race to another writer.
const maxAttempts = 5

// Options configure an [Authority].
type Options struct {
	// Secret is where the root is kept, e.g. smi-operator-system/smi-operator-xds-ca. Required.
	Secret types.NamespacedName
	// TrustDomain of every SPIFFE ID the Authority signs, e.g. "cluster.local". Required.
	TrustDomain string
	// RootTTL is the lifetime of a new root; DefaultRootTTL when zero.
	RootTTL time.Duration
	// CertTTL is the lifetime of a workload certificate; DefaultCertTTL when zero.
	CertTTL time.Duration
	// RootPropagation is how long a new root is in the trust bundle before it signs anything:
	// until then a peer that has not yet read the new bundle would refuse its certificates.
	// DefaultRootPropagation when zero, and never more than a sixth of RootTTL, so that the new
	// root signs while the old one still has a sixth of its life left.
	RootPropagation time.Duration
	// RootSPIFFESAN puts the trust domain's SPIFFE ID (spiffe://<trust domain>) into new roots.
	RootSPIFFESAN bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Authority signs workload certificates with the root kept in a Secret. It is safe for
// concurrent use.
type Authority struct {
	client kubernetes.Interface
	opts   Options

	rotateMu sync.Mutex // one Rotate at a time

	mu        sync.RWMutex
	root      *keyPair
	bundle    []*x509.Certificate
	bundlePEM []byte
}

// New loads the root from the Secret, creating the Secret when it does not exist, and rotates the
// root right away when it is due (see [Authority.Rotate]). A Secret that exists but does not hold
// a usable CA is an error: it is never overwritten.
func New(ctx context.Context, client kubernetes.Interface, opts Options) (*Authority, error) {
	if opts.Secret.Namespace == "" || opts.Secret.Name == "" {
		return nil, errors.New("ca: the Secret's namespace and name are required")
	}
	if err := validateTrustDomain(opts.TrustDomain); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if opts.RootTTL == 0 {
		opts.RootTTL = DefaultRootTTL
	}
	if opts.CertTTL == 0 {
		opts.CertTTL = DefaultCertTTL
	}
	if opts.RootPropagation == 0 {
		opts.RootPropagation = DefaultRootPropagation
	}
	if opts.RootTTL < 0 || opts.CertTTL < 0 || opts.RootPropagation < 0 {
		return nil, errors.New("ca: RootTTL, CertTTL and RootPropagation must be positive")
	}
	opts.RootPropagation = min(opts.RootPropagation, opts.RootTTL/6)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Authority{client: client, opts: opts}
	if _, err := a.Rotate(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// Rotate re-reads the Secret and moves a rotation on, in two steps. When the current root has
// less than a third of its lifetime left, a new root is made and added to the trust bundle only
// (next.crt): the current root goes on signing. Once the new root has been in the bundle for
// RootPropagation, it becomes the current root and signs; the old one stays in the bundle until
// it expires. Every peer thus trusts a root before it meets a certificate of it. A current root
// that has already expired (an operator down for that long) is replaced at once: nothing can
// be signed with it. A Secret deleted meanwhile is created again as step 1 of a rotation: the
// root this Authority holds goes on signing, a new one joins the bundle (with the roots this
// Authority still trusts) and signs after RootPropagation. Only an Authority without a root of
// its own, or whose root has expired, makes a new root that signs at once. Call Rotate often
// enough for the propagation delay to hold (the xDS server: every minute).
//
// bundleChanged reports whether the trust bundle changed (a root added, promoted or expired),
// whether by this call or by another replica: the caller should then publish it.
func (a *Authority) Rotate(ctx context.Context) (bundleChanged bool, err error) {
	a.rotateMu.Lock()
	defer a.rotateMu.Unlock()
	ref := a.opts.Secret
	for range maxAttempts {
		root, bundle, err := a.syncOnce(ctx)
		switch {
		case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err), apierrors.IsNotFound(err):
			continue // another writer got there first: read again
		case err != nil:
			return false, err
		}
		return a.adopt(root, bundle), nil
	}
	return false, fmt.Errorf("ca: Secret %s kept changing under us: gave up after %d attempts", ref, maxAttempts)
}

// syncOnce reads the Secret and makes one attempt at creating or rotating it. Conflict,
// AlreadyExists and NotFound errors from the API server mean "read again".
func (a *Authority) syncOnce(ctx context.Context) (*keyPair, []*x509.Certificate, error) {
	ref := a.opts.Secret
	now := a.opts.Now()
	secrets := a.client.CoreV1().Secrets(ref.Namespace)
	s, err := secrets.Get(ctx, ref.Name, metav1.GetOptions{})
	missing := apierrors.IsNotFound(err)
	var root, next *keyPair
	var stored []*x509.Certificate
	switch {
	case missing:
		// Never made, or deleted while this Authority runs: then its root, still valid, goes on
		// signing and a new one is staged, as a due rotation does. A new root signing at once
		// would have peers holding the bundle published before refuse its certificates.
		a.mu.RLock()
		root, stored = a.root, a.bundle
		a.mu.RUnlock()
		s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
			Namespace: ref.Namespace,
			Name:      ref.Name,
			Labels:    map[string]string{"app.kubernetes.io/managed-by": "smi-operator"},
		}, Type: corev1.SecretTypeTLS}
	case err != nil:
		return nil, nil, annotate(err, "reading", ref)
	default:
		if root, next, stored, err = decodeSecret(s); err != nil {
			return nil, nil, fmt.Errorf("ca: Secret %s does not hold a usable CA (fix or delete it): %w", ref, err)
		}
	}
	expired := root == nil || !now.Before(root.cert.NotAfter)
	var signing, staged *keyPair
	switch {
	case next != nil && (expired || !now.Before(a.promotionTime(next))):
		signing = next // promote: the new root has been in every bundle long enough
	case next == nil && expired:
		if signing, err = newRoot(a.opts.TrustDomain, a.opts.RootSPIFFESAN, now, a.opts.RootTTL); err != nil {
			return nil, nil, err
		}
	case next == nil && (missing || needsRotation(root.cert, now)):
		if staged, err = newRoot(a.opts.TrustDomain, a.opts.RootSPIFFESAN, now, a.opts.RootTTL); err != nil {
			return nil, nil, err
		}
		signing = root
	default:
		return root, trustBundle(root.cert, append(certsOf(next), stored...), now), nil
	}
	trusted := append(certsOf(staged), certsOf(root)...)
	bundle := trustBundle(signing.cert, append(trusted, stored...), now)
	setSecretData(s, signing, staged, bundle)
	if missing {
		if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
			return nil, nil, annotate(err, "creating", ref)
		}
		return signing, bundle, nil
	}
	// s carries the resourceVersion read above: a concurrent writer makes this a Conflict.
	if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		return nil, nil, annotate(err, "rotating the root in", ref)
	}
	return signing, bundle, nil
}

// promotionTime is when next, added to the bundle as it was made, starts signing.
func (a *Authority) promotionTime(next *keyPair) time.Time {
	return next.cert.NotBefore.Add(clockSkew + a.opts.RootPropagation)
}

// certsOf is kp's certificate, or nothing for nil.
func certsOf(kp *keyPair) []*x509.Certificate {
	if kp == nil {
		return nil
	}
	return []*x509.Certificate{kp.cert}
}

// annotate keeps the API error (callers test it with apierrors.Is*) and says what was done.
func annotate(err error, doing string, ref types.NamespacedName) error {
	return fmt.Errorf("ca: %s Secret %s: %w", doing, ref, err)
}

// setSecretData writes the signing root, the next root (nil: none) and the bundle into s. The
// type of an existing Secret is left alone: it cannot be changed.
func setSecretData(s *corev1.Secret, root, next *keyPair, bundle []*x509.Certificate) {
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	s.Data[SecretCertKey] = root.certPEM
	s.Data[SecretKeyKey] = root.keyPEM
	s.Data[SecretBundleKey] = encodeCerts(bundle)
	delete(s.Data, SecretNextCertKey)
	delete(s.Data, SecretNextKeyKey)
	if next != nil {
		s.Data[SecretNextCertKey] = next.certPEM
		s.Data[SecretNextKeyKey] = next.keyPEM
	}
}

// decodeSecret returns the signing root, the next root (nil when no rotation is under way) and
// the stored bundle; a missing ca.crt is an empty bundle.
func decodeSecret(s *corev1.Secret) (root, next *keyPair, bundle []*x509.Certificate, err error) {
	for _, k := range []string{SecretCertKey, SecretKeyKey} {
		if len(s.Data[k]) == 0 {
			return nil, nil, nil, fmt.Errorf("%s is missing", k)
		}
	}
	if root, err = parseKeyPair(s.Data[SecretCertKey], s.Data[SecretKeyKey]); err != nil {
		return nil, nil, nil, err
	}
	if len(s.Data[SecretNextCertKey]) > 0 || len(s.Data[SecretNextKeyKey]) > 0 {
		if next, err = parseKeyPair(s.Data[SecretNextCertKey], s.Data[SecretNextKeyKey]); err != nil {
			return nil, nil, nil, fmt.Errorf("%s/%s: %w", SecretNextCertKey, SecretNextKeyKey, err)
		}
	}
	if len(s.Data[SecretBundleKey]) > 0 {
		if bundle, err = parseCerts(s.Data[SecretBundleKey]); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", SecretBundleKey, err)
		}
	}
	return root, next, bundle, nil
}

// adopt makes root (the signing one) and bundle current and reports whether the bundle changed.
func (a *Authority) adopt(root *keyPair, bundle []*x509.Certificate) bool {
	bundlePEM := encodeCerts(bundle)
	a.mu.Lock()
	changed := a.bundlePEM != nil && !bytes.Equal(a.bundlePEM, bundlePEM)
	a.root, a.bundle, a.bundlePEM = root, bundle, bundlePEM
	a.mu.Unlock()
	return changed
}

// TrustDomain is the trust domain of every SPIFFE ID the Authority signs.
func (a *Authority) TrustDomain() string { return a.opts.TrustDomain }

// TrustBundlePEM returns the roots that peers must trust, the current one first.
func (a *Authority) TrustBundlePEM() []byte {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return bytes.Clone(a.bundlePEM)
}

// Issue generates a key and signs a new certificate of it for spiffeID, which must be
// spiffe://<trust domain>/ns/<namespace>/sa/<service account>. The key is generated in this
// process: it is for a workload that is this process (tests, tools), never to be sent to one.
// Workloads send a CSR ([Authority.Sign]).
func (a *Authority) Issue(spiffeID string) (*Certificate, error) {
	if _, _, err := ParseSPIFFEID(spiffeID, a.opts.TrustDomain); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	u, err := url.Parse(spiffeID)
	if err != nil {
		return nil, err // unreachable: ParseSPIFFEID parsed it
	}
	a.mu.RLock()
	root, bundlePEM := a.root, a.bundlePEM
	a.mu.RUnlock()
	c, err := issueLeaf(root, bundlePEM, u, a.opts.Now(), a.opts.CertTTL)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	return c, nil
}

// IssueServing signs a new server certificate for the DNS names and IP addresses a server is
// reached by (the xDS server's own, so that proxies verify it with the trust bundle they already
// hold), valid for ttl or until the root expires. It carries no SPIFFE ID: it proves a server
// name, not a workload identity, and is good for server authentication only.
func (a *Authority) IssueServing(dnsNames []string, ips []net.IP, ttl time.Duration) (*Certificate, error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, errors.New("ca: a serving certificate needs a DNS name or an IP address")
	}
	if ttl <= 0 {
		return nil, errors.New("ca: a serving certificate needs a positive lifetime")
	}
	a.mu.RLock()
	root, bundlePEM := a.root, a.bundlePEM
	a.mu.RUnlock()
	what := fmt.Sprintf("server %v %v", dnsNames, ips)
	c, err := signLeaf(root, bundlePEM, a.opts.Now(), ttl, what, func(tmpl *x509.Certificate) {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = dnsNames
		tmpl.IPAddresses = ips
		if len(dnsNames) > 0 {
			tmpl.Subject.CommonName = dnsNames[0]
		}
	})
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	return c, nil
}

// Now is the Authority's clock.
func (a *Authority) Now() time.Time { return a.opts.Now() }

// CertTTL is the lifetime of the workload certificates the Authority signs.
func (a *Authority) CertTTL() time.Duration { return a.opts.CertTTL }

// Sign signs the public key of a certificate signing request as the workload certificate of
// spiffeID (spiffe://<trust domain>/ns/<namespace>/sa/<service account>, which the caller derives
// from what authenticated the requester), valid for the configured CertTTL. The CSR's signature
// must check out (its sender holds the key) and its only subject alternative name must be that
// SPIFFE ID: a CSR asking for any other name, or for more, is refused, not narrowed, so that a
// workload never holds a certificate other than the one it asked for. The key is the
// requester's: the returned Certificate has no PrivateKeyPEM.
func (a *Authority) Sign(csr *x509.CertificateRequest, spiffeID string) (*Certificate, error) {
	if _, _, err := ParseSPIFFEID(spiffeID, a.opts.TrustDomain); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if err := CheckCSR(csr, spiffeID); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	u, err := url.Parse(spiffeID)
	if err != nil {
		return nil, err // unreachable: ParseSPIFFEID parsed it
	}
	a.mu.RLock()
	root, bundlePEM := a.root, a.bundlePEM
	a.mu.RUnlock()
	c, _, err := signPublicKey(root, bundlePEM, csr.PublicKey, a.opts.Now(), a.opts.CertTTL, spiffeID, workloadNames(u))
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	return c, nil
}

// CheckCSR says why csr is not a request for the workload certificate of spiffeID, nil when it
// is: its key and signature pass CheckCSRKey, and it carries exactly one URI SAN, spiffeID, and no
// DNS name, IP address or e-mail address.
func CheckCSR(csr *x509.CertificateRequest, spiffeID string) error {
	if err := CheckCSRKey(csr); err != nil {
		return err
	}
	var asked []string
	for _, u := range csr.URIs {
		asked = append(asked, u.String())
	}
	for _, n := range csr.DNSNames {
		asked = append(asked, "DNS:"+n)
	}
	for _, ip := range csr.IPAddresses {
		asked = append(asked, "IP:"+ip.String())
	}
	for _, e := range csr.EmailAddresses {
		asked = append(asked, "email:"+e)
	}
	if len(asked) != 1 || len(csr.URIs) != 1 || asked[0] != spiffeID {
		return fmt.Errorf("the CSR asks for %q; the requester may only ask for its own identity, exactly %q", asked, spiffeID)
	}
	return nil
}

// CheckCSRKey says why csr's key or signature is not acceptable, nil when they are: the key is
// ECDSA on P-256, P-384 or P-521, RSA of 2048 bits or more, or Ed25519, and the signature checks
// out with it (the sender holds the key).
func CheckCSRKey(csr *x509.CertificateRequest) error {
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if c := k.Curve; c != elliptic.P256() && c != elliptic.P384() && c != elliptic.P521() {
			return fmt.Errorf("the CSR's ECDSA key is on %s; P-256, P-384 or P-521 are accepted", c.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("the CSR's RSA key has %d bits; 2048 at least are accepted", k.N.BitLen())
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("the CSR's key is a %T; ECDSA, RSA or Ed25519 keys are accepted", csr.PublicKey)
	}
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("the CSR's signature does not check out with its public key: %w", err)
	}
	return nil
}

// CSR is a PEM certificate signing request of key asking for the URI SANs ids and the DNS names
// dnsNames. A pod agent asks for its one SPIFFE ID; anything more is refused by [CheckCSR].
func CSR(key crypto.Signer, ids []string, dnsNames ...string) ([]byte, error) {
	tmpl := &x509.CertificateRequest{DNSNames: dnsNames}
	for _, id := range ids {
		u, err := url.Parse(id)
		if err != nil {
			return nil, fmt.Errorf("ca: %q: %w", id, err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

package ca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

var secretRef = types.NamespacedName{Namespace: "smi-operator-system", Name: "smi-operator-xds-ca"}

func testOptions(clock *clocktesting.FakeClock) Options {
	return Options{Secret: secretRef, TrustDomain: "cluster.local", RootTTL: 30 * 24 * time.Hour, Now: clock.Now}
}

// propagatingAuthority is an Authority whose new roots wait an hour (RootPropagation) before
// signing, on a fake API server and a fake clock starting at t0.
func propagatingAuthority(t *testing.T) (*Authority, *fake.Clientset, *clocktesting.FakeClock, Options) {
	t.Helper()
	client := fake.NewClientset()
	clock := clocktesting.NewFakeClock(t0)
	opts := testOptions(clock)
	opts.RootPropagation = time.Hour
	a, err := New(context.Background(), client, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a, client, clock, opts
}

// checkRotationBegun checks that the Secret is at a rotation's first step, old still signing and
// a new root in the bundle after it, and returns the new root.
func checkRotationBegun(t *testing.T, client *fake.Clientset, old *x509.Certificate) *x509.Certificate {
	t.Helper()
	s := getSecret(t, client)
	if signing := bundleOf(t, s.Data["tls.crt"])[0]; !signing.Equal(old) {
		t.Fatal("tls.crt is a new root: it signs before peers trust it")
	}
	next := bundleOf(t, s.Data["next.crt"])[0]
	if stored := bundleOf(t, s.Data["ca.crt"]); len(stored) != 2 || !stored[0].Equal(old) || !stored[1].Equal(next) {
		t.Fatalf("ca.crt holds %d certificates, want the signing root then the next one", len(stored))
	}
	return next
}

func deleteSecret(t *testing.T, client *fake.Clientset) {
	t.Helper()
	if err := client.CoreV1().Secrets(secretRef.Namespace).Delete(context.Background(), secretRef.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

func getSecret(t *testing.T, client *fake.Clientset) *corev1.Secret {
	t.Helper()
	s, err := client.CoreV1().Secrets(secretRef.Namespace).Get(context.Background(), secretRef.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bundleOf(t *testing.T, pemData []byte) []*x509.Certificate {
	t.Helper()
	certs, err := parseCerts(pemData)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

func countActions(client *fake.Clientset, verb string) int {
	n := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == "secrets" {
			n++
		}
	}
	return n
}

func TestNewCreatesTheSecret(t *testing.T) {
	client := fake.NewClientset()
	clock := clocktesting.NewFakeClock(t0)
	a, err := New(context.Background(), client, testOptions(clock))
	if err != nil {
		t.Fatal(err)
	}
	s := getSecret(t, client)
	if s.Type != corev1.SecretTypeTLS {
		t.Errorf("type %q, want kubernetes.io/tls", s.Type)
	}
	root, err := parseKeyPair(s.Data["tls.crt"], s.Data["tls.key"])
	if err != nil {
		t.Fatalf("the Secret does not hold the root: %v", err)
	}
	if b := bundleOf(t, s.Data["ca.crt"]); len(b) != 1 || !b[0].Equal(root.cert) {
		t.Errorf("ca.crt holds %d certificates, want the root only", len(b))
	}
	if !bytes.Equal(a.TrustBundlePEM(), s.Data["ca.crt"]) {
		t.Error("the Authority's bundle is not the Secret's")
	}
	if !root.cert.NotAfter.Equal(t0.Add(30 * 24 * time.Hour)) {
		t.Errorf("root expires %s, want RootTTL after now", root.cert.NotAfter)
	}

	c, err := a.Issue("spiffe://cluster.local/ns/default/sa/bookbuyer")
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyLeaf(c.CertChainPEM, s.Data["ca.crt"], clock.Now()); err != nil {
		t.Errorf("a certificate does not verify against the Secret's bundle: %v", err)
	}
	if got := c.NotAfter.Sub(clock.Now()); got != DefaultCertTTL {
		t.Errorf("certificate lifetime %s, want the default %s", got, DefaultCertTTL)
	}

	// A second Authority on the same Secret loads the same root.
	b, err := New(context.Background(), client, testOptions(clock))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.TrustBundlePEM(), a.TrustBundlePEM()) {
		t.Error("the second Authority has another bundle")
	}
	if n := countActions(client, "create") + countActions(client, "update"); n != 1 {
		t.Errorf("%d writes to the Secret, want the single create", n)
	}
}

func TestIssueRefusesOtherIdentities(t *testing.T) {
	a, err := New(context.Background(), fake.NewClientset(), testOptions(clocktesting.NewFakeClock(t0)))
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{
		"spiffe://other.domain/ns/default/sa/x": `trust domain "other.domain" is not "cluster.local"`,
		"spiffe://cluster.local/ns/default":     "the path must be",
		"https://cluster.local/ns/default/sa/x": `must start with "spiffe://"`,
	} {
		if _, err := a.Issue(id); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Issue(%q) = %v, want an error containing %q", id, err, want)
		}
		if _, err := a.Sign(testCSR(t, newKey(t, elliptic.P256()), id), id); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Sign(%q) = %v, want an error containing %q", id, err, want)
		}
	}
}

func TestNewValidatesOptions(t *testing.T) {
	clock := clocktesting.NewFakeClock(t0)
	for name, tt := range map[string]struct {
		mutate func(*Options)
		want   string
	}{
		"no secret name":    {func(o *Options) { o.Secret.Name = "" }, "namespace and name are required"},
		"no namespace":      {func(o *Options) { o.Secret.Namespace = "" }, "namespace and name are required"},
		"no trust domain":   {func(o *Options) { o.TrustDomain = "" }, "trust domain is empty"},
		"bad trust domain":  {func(o *Options) { o.TrustDomain = "Cluster.Local" }, "only lowercase"},
		"negative cert TTL": {func(o *Options) { o.CertTTL = -time.Hour }, "must be positive"},
		"negative root TTL": {func(o *Options) { o.RootTTL = -time.Hour }, "must be positive"},
	} {
		opts := testOptions(clock)
		tt.mutate(&opts)
		client := fake.NewClientset()
		if _, err := New(context.Background(), client, opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tt.want)
		}
		if len(client.Actions()) != 0 {
			t.Errorf("%s: the API server was called", name)
		}
	}
}

func TestNewRefusesAnUnusableSecret(t *testing.T) {
	clock := clocktesting.NewFakeClock(t0)
	other := mustRoot(t, "cluster.local", false, t0, time.Hour)
	mine := mustRoot(t, "cluster.local", false, t0, time.Hour)
	for name, tt := range map[string]struct {
		data map[string][]byte
		want string
	}{
		"no key":       {map[string][]byte{"tls.crt": mine.certPEM}, "tls.key is missing"},
		"no cert":      {map[string][]byte{"tls.key": mine.keyPEM}, "tls.crt is missing"},
		"key mismatch": {map[string][]byte{"tls.crt": mine.certPEM, "tls.key": other.keyPEM}, "does not match"},
		"bad bundle":   {map[string][]byte{"tls.crt": mine.certPEM, "tls.key": mine.keyPEM, "ca.crt": []byte("x")}, "ca.crt: "},
	} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: secretRef.Namespace, Name: secretRef.Name}, Data: tt.data}
		client := fake.NewClientset(s)
		_, err := New(context.Background(), client, testOptions(clock))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "does not hold a usable CA") {
			t.Errorf("%s: %v, want an error containing %q", name, err, tt.want)
		}
		if n := countActions(client, "create") + countActions(client, "update"); n != 0 {
			t.Errorf("%s: the Secret was written %d times", name, n)
		}
	}
}

// TestRotation: a due root is replaced in two steps, so that every peer trusts the new root before
// it meets a certificate of it: first the new root joins the bundle while the old one goes on
// signing, then, RootPropagation later, the new root signs; the old root stays trusted until it
// expires.
func TestRotation(t *testing.T) {
	a, client, clock, opts := propagatingAuthority(t)
	oldRoot := bundleOf(t, a.TrustBundlePEM())[0]
	oldLeaf, err := a.Issue("spiffe://cluster.local/ns/default/sa/old")
	if err != nil {
		t.Fatal(err)
	}

	// 30-day root (+5m backdating): due with less than 10 days and 100s left.
	clock.Step(20*24*time.Hour - time.Hour)
	if changed, err := a.Rotate(context.Background()); err != nil || changed {
		t.Fatalf("Rotate with 10 days and an hour left = %v, %v; want nothing to do", changed, err)
	}
	if n := countActions(client, "update"); n != 0 {
		t.Fatalf("%d updates without a rotation", n)
	}

	// Step 1: the new root joins the bundle; the old one still signs.
	clock.Step(time.Hour)
	changed, err := a.Rotate(context.Background())
	if err != nil || !changed {
		t.Fatalf("Rotate with less than a third left = %v, %v; want the bundle changed", changed, err)
	}
	newRoot := checkRotationBegun(t, client, oldRoot)
	published := a.TrustBundlePEM()
	if !bytes.Equal(published, getSecret(t, client).Data["ca.crt"]) {
		t.Error("the Authority's bundle is not the Secret's")
	}
	if !newRoot.NotAfter.Equal(clock.Now().Add(30 * 24 * time.Hour)) {
		t.Errorf("new root expires %s, want RootTTL after it was made", newRoot.NotAfter)
	}
	interim, err := a.Issue("spiffe://cluster.local/ns/default/sa/interim")
	if err != nil {
		t.Fatal(err)
	}
	if err := mustParseCert(t, interim.CertChainPEM).CheckSignatureFrom(oldRoot); err != nil {
		t.Errorf("a certificate issued while the new root propagates is not the old root's: %v", err)
	}
	// A second replica starting now takes over the rotation where it is.
	if b, err := New(context.Background(), client, opts); err != nil || !bytes.Equal(b.TrustBundlePEM(), published) {
		t.Fatalf("a new Authority during the propagation: %v, its bundle the Secret's: %v", err, err == nil && bytes.Equal(b.TrustBundlePEM(), published))
	}

	clock.Step(time.Hour - time.Second)
	if changed, err := a.Rotate(context.Background()); err != nil || changed {
		t.Fatalf("Rotate before the propagation delay passed = %v, %v; want nothing to do", changed, err)
	}

	// Step 2: the new root signs.
	clock.Step(time.Second)
	changed, err = a.Rotate(context.Background())
	if err != nil || !changed {
		t.Fatalf("Rotate after the propagation delay = %v, %v; want the bundle changed", changed, err)
	}
	s := getSecret(t, client)
	if signing := bundleOf(t, s.Data["tls.crt"])[0]; !signing.Equal(newRoot) {
		t.Fatal("tls.crt does not hold the next root after the propagation delay")
	}
	if _, found := s.Data["next.crt"]; found {
		t.Error("next.crt kept after its root was promoted")
	}
	if stored := bundleOf(t, s.Data["ca.crt"]); len(stored) != 2 || !stored[0].Equal(newRoot) || !stored[1].Equal(oldRoot) {
		t.Fatalf("ca.crt holds %d certificates, want the new root then the old one", len(stored))
	}
	newLeaf, err := a.Issue("spiffe://cluster.local/ns/default/sa/new")
	if err != nil {
		t.Fatal(err)
	}
	if err := mustParseCert(t, newLeaf.CertChainPEM).CheckSignatureFrom(newRoot); err != nil {
		t.Errorf("a certificate issued after the promotion is not signed by the new root: %v", err)
	}
	// What the rotation is for: a peer that still holds the bundle published in step 1 verifies
	// the new certificates, and every generation verifies against the current bundle.
	if err := verifyLeaf(newLeaf.CertChainPEM, published, clock.Now()); err != nil {
		t.Errorf("the new root's leaf does not verify against the bundle published before it signed: %v", err)
	}
	for name, leaf := range map[string]*Certificate{"old": oldLeaf, "interim": interim, "new": newLeaf} {
		at := leaf.NotBefore.Add(time.Minute) // within each leaf's hour
		if err := verifyLeaf(leaf.CertChainPEM, a.TrustBundlePEM(), at); err != nil {
			t.Errorf("%s leaf does not verify against the bundle after rotation: %v", name, err)
		}
	}
	// A bundle without the old root (what would happen without keeping it) refuses the old leaf.
	if err := verifyLeaf(oldLeaf.CertChainPEM, encodeCerts([]*x509.Certificate{newRoot}), oldLeaf.NotBefore.Add(time.Minute)); err == nil {
		t.Error("the old leaf verifies against the new root alone: the test proves nothing")
	}

	// Once the old root has expired it leaves the bundle; the new root is not due yet.
	clock.Step(10 * 24 * time.Hour)
	if changed, err := a.Rotate(context.Background()); err != nil || !changed {
		t.Fatalf("Rotate after the old root expired = %v, %v; want the bundle changed", changed, err)
	}
	if b := bundleOf(t, a.TrustBundlePEM()); len(b) != 1 || !b[0].Equal(newRoot) {
		t.Errorf("bundle holds %d certificates after the old root expired, want the new root only", len(b))
	}
	if n := countActions(client, "update"); n != 2 {
		t.Errorf("%d updates, want 2: the expired root leaves the bundle without a write", n)
	}
	// A second Authority starting now loads the new root.
	b, err := New(context.Background(), client, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.TrustBundlePEM(), a.TrustBundlePEM()) {
		t.Error("a new Authority does not load the rotated root")
	}
}

// An operator that was down until its root expired cannot wait for the propagation delay:
// nothing verifies against an expired root, so the new root signs at once.
func TestExpiredRootIsReplacedAtOnce(t *testing.T) {
	client := fake.NewClientset()
	clock := clocktesting.NewFakeClock(t0)
	a, err := New(context.Background(), client, testOptions(clock))
	if err != nil {
		t.Fatal(err)
	}
	old := bundleOf(t, a.TrustBundlePEM())[0]
	clock.Step(31 * 24 * time.Hour)
	if changed, err := a.Rotate(context.Background()); err != nil || !changed {
		t.Fatalf("Rotate = %v, %v", changed, err)
	}
	leaf, err := a.Issue("spiffe://cluster.local/ns/default/sa/late")
	if err != nil {
		t.Fatalf("no certificate right after the expired root was replaced: %v", err)
	}
	if b := bundleOf(t, a.TrustBundlePEM()); len(b) != 1 || b[0].Equal(old) || mustParseCert(t, leaf.CertChainPEM).CheckSignatureFrom(b[0]) != nil {
		t.Error("want a bundle of the new root alone, which signed the leaf")
	}
}

// rootSecret builds the Secret another replica would write for root and bundle.
func rootSecret(root *keyPair, bundle []*x509.Certificate) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: secretRef.Namespace, Name: secretRef.Name}, Type: corev1.SecretTypeTLS}
	setSecretData(s, root, nil, bundle)
	return s
}

func TestCreateRaceAdoptsTheWinner(t *testing.T) {
	client := fake.NewClientset()
	winner := mustRoot(t, "cluster.local", false, t0, 30*24*time.Hour)
	client.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		// Another replica created the Secret between our Get and our Create.
		if err := client.Tracker().Add(rootSecret(winner, []*x509.Certificate{winner.cert})); err != nil {
			t.Error(err)
		}
		return true, nil, apierrors.NewAlreadyExists(corev1.Resource("secrets"), secretRef.Name)
	})
	a, err := New(context.Background(), client, testOptions(clocktesting.NewFakeClock(t0)))
	if err != nil {
		t.Fatal(err)
	}
	if b := bundleOf(t, a.TrustBundlePEM()); len(b) != 1 || !b[0].Equal(winner.cert) {
		t.Error("the Authority did not adopt the root of the replica that created the Secret")
	}
	if n := countActions(client, "create"); n != 1 {
		t.Errorf("%d creates, want 1", n)
	}
}

func TestRotationConflictAdoptsTheWinner(t *testing.T) {
	client := fake.NewClientset()
	clock := clocktesting.NewFakeClock(t0)
	a, err := New(context.Background(), client, testOptions(clock))
	if err != nil {
		t.Fatal(err)
	}
	old := bundleOf(t, a.TrustBundlePEM())[0]
	clock.Step(25 * 24 * time.Hour)
	winner := mustRoot(t, "cluster.local", false, clock.Now(), 30*24*time.Hour)
	client.PrependReactor("update", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		// Another replica rotated between our Get and our Update.
		s := rootSecret(winner, []*x509.Certificate{winner.cert, old})
		if err := client.Tracker().Update(corev1.SchemeGroupVersion.WithResource("secrets"), s, s.Namespace); err != nil {
			t.Error(err)
		}
		return true, nil, apierrors.NewConflict(corev1.Resource("secrets"), secretRef.Name, nil)
	})
	rotated, err := a.Rotate(context.Background())
	if err != nil || !rotated {
		t.Fatalf("Rotate = %v, %v; want the root changed", rotated, err)
	}
	if b := bundleOf(t, a.TrustBundlePEM()); len(b) != 2 || !b[0].Equal(winner.cert) || !b[1].Equal(old) {
		t.Error("the Authority did not adopt the winner's root and bundle")
	}
	if n := countActions(client, "update"); n != 1 {
		t.Errorf("%d updates, want 1: the loser must not rotate a second time", n)
	}
}

// A Secret deleted while the operator runs is created again as a rotation would go on: the root
// this Authority holds goes on signing, a new one joins the bundle and signs only after
// RootPropagation. A new root signing at once would have peers that still hold the bundle
// published before refuse every certificate issued meanwhile.
func TestRotateRecreatesADeletedSecretAsARotation(t *testing.T) {
	a, client, clock, _ := propagatingAuthority(t)
	old := bundleOf(t, a.TrustBundlePEM())[0]
	published := a.TrustBundlePEM() // what peers hold
	clock.Step(time.Minute)
	deleteSecret(t, client)
	changed, err := a.Rotate(context.Background())
	if err != nil || !changed {
		t.Fatalf("Rotate = %v, %v; want the Secret created again and a new root in the bundle", changed, err)
	}
	next := checkRotationBegun(t, client, old)
	leaf, err := a.Issue("spiffe://cluster.local/ns/default/sa/meanwhile")
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyLeaf(leaf.CertChainPEM, published, clock.Now()); err != nil {
		t.Errorf("a certificate issued after the Secret was re-created does not verify against the bundle peers hold: %v", err)
	}

	clock.Step(time.Hour)
	if changed, err := a.Rotate(context.Background()); err != nil || !changed {
		t.Fatalf("Rotate after the propagation delay = %v, %v; want the new root promoted", changed, err)
	}
	if signing := bundleOf(t, getSecret(t, client).Data["tls.crt"])[0]; !signing.Equal(next) {
		t.Error("the new root does not sign after the propagation delay")
	}
}

// An Authority whose root has expired (an operator down for that long, its Secret deleted
// meanwhile) cannot go on signing with it: the Secret comes back with a new root that signs at
// once.
func TestRotateRecreatesADeletedSecretAfterItsRootExpiredAtOnce(t *testing.T) {
	client := fake.NewClientset()
	clock := clocktesting.NewFakeClock(t0)
	a, err := New(context.Background(), client, testOptions(clock))
	if err != nil {
		t.Fatal(err)
	}
	old := bundleOf(t, a.TrustBundlePEM())[0]
	clock.Step(31 * 24 * time.Hour)
	deleteSecret(t, client)
	if changed, err := a.Rotate(context.Background()); err != nil || !changed {
		t.Fatalf("Rotate = %v, %v; want a new root", changed, err)
	}
	s := getSecret(t, client)
	signing := bundleOf(t, s.Data["tls.crt"])[0]
	if signing.Equal(old) || len(s.Data["next.crt"]) > 0 {
		t.Fatal("the re-created Secret does not sign with a new root at once")
	}
	leaf, err := a.Issue("spiffe://cluster.local/ns/default/sa/late")
	if err != nil {
		t.Fatal(err)
	}
	if err := mustParseCert(t, leaf.CertChainPEM).CheckSignatureFrom(signing); err != nil {
		t.Errorf("the leaf is not the new root's: %v", err)
	}
	if b := bundleOf(t, a.TrustBundlePEM()); len(b) != 1 || !b[0].Equal(signing) {
		t.Error("want a bundle of the new root alone: the expired one verifies nothing")
	}
}

// TestSign: a CSR for the identity is signed for its own public key, valid for CertTTL, with no
// key in what comes back; a CSR asking for another identity, for more than the identity, or
// whose signature does not check out is refused and says why.
func TestSign(t *testing.T) {
	clock := clocktesting.NewFakeClock(t0)
	opts := testOptions(clock)
	opts.CertTTL = 10 * time.Minute
	a, err := New(context.Background(), fake.NewClientset(), opts)
	if err != nil {
		t.Fatal(err)
	}
	const id = "spiffe://cluster.local/ns/default/sa/bookbuyer"
	key := newKey(t, elliptic.P256())
	c, err := a.Sign(testCSR(t, key, id), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.PrivateKeyPEM) != 0 || bytes.Contains(c.CertChainPEM, []byte("PRIVATE KEY")) {
		t.Error("a certificate signed from a CSR carries a key")
	}
	leaf := bundleOf(t, c.CertChainPEM)[0]
	if !key.PublicKey.Equal(leaf.PublicKey) {
		t.Error("the certificate is not of the CSR's key")
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id || len(leaf.DNSNames) != 0 {
		t.Errorf("SANs %v %v, want %s only", leaf.URIs, leaf.DNSNames, id)
	}
	if got := leaf.NotAfter.Sub(clock.Now()); got != 10*time.Minute {
		t.Errorf("lifetime from now %s, want CertTTL", got)
	}
	if err := verifyLeaf(c.CertChainPEM, a.TrustBundlePEM(), clock.Now()); err != nil {
		t.Errorf("does not verify against the trust bundle: %v", err)
	}

	other := "spiffe://cluster.local/ns/default/sa/bookstore"
	for name, tt := range map[string]struct {
		csr  *x509.CertificateRequest
		want string
	}{
		"another identity":     {testCSR(t, key, other), `the CSR asks for ["` + other + `"]`},
		"two identities":       {testCSR(t, key, id, other), "may only ask for its own identity"},
		"a DNS name beside it": {testCSRWith(t, key, []string{id}, []string{"bookbuyer.default.svc"}), `DNS:bookbuyer.default.svc`},
		"no name":              {testCSR(t, key), "may only ask for its own identity"},
		"a bad signature":      {tamper(testCSR(t, key, id)), "signature does not check out"},
		"a weak key":           {testCSR(t, newKey(t, elliptic.P224()), id), "the CSR's ECDSA key is on P-224"},
	} {
		if _, err := a.Sign(tt.csr, id); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Sign = %v, want an error containing %q", name, err, tt.want)
		}
	}
}

// newKey is an ECDSA key on curve.
func newKey(t *testing.T, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// testCSR is a CSR of key asking for the URI SANs ids.
func testCSR(t *testing.T, key *ecdsa.PrivateKey, ids ...string) *x509.CertificateRequest {
	t.Helper()
	return testCSRWith(t, key, ids, nil)
}

func testCSRWith(t *testing.T, key *ecdsa.PrivateKey, ids, dnsNames []string) *x509.CertificateRequest {
	t.Helper()
	data, err := CSR(key, ids, dnsNames...)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// tamper flips a bit of the CSR's signature.
func tamper(csr *x509.CertificateRequest) *x509.CertificateRequest {
	csr.Signature[len(csr.Signature)/2] ^= 1
	return csr
}

// TestIssueServing: a serving certificate verifies, with the trust bundle, for each of its names
// and addresses as a server, and for nothing else: not another name, not as a client, not as a
// workload identity.
func TestIssueServing(t *testing.T) {
	clock := clocktesting.NewFakeClock(t0)
	a, err := New(context.Background(), fake.NewClientset(), testOptions(clock))
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.IssueServing([]string{"smi-operator-xds.smi-operator-system.svc"}, []net.IP{net.ParseIP("10.200.0.1")}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf := bundleOf(t, c.CertChainPEM)[0]
	roots := x509.NewCertPool()
	for _, root := range bundleOf(t, a.TrustBundlePEM()) {
		roots.AddCert(root)
	}
	verify := func(name string, usage x509.ExtKeyUsage) error {
		_, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{usage}})
		return err
	}
	for _, name := range []string{"smi-operator-xds.smi-operator-system.svc", "10.200.0.1"} {
		if err := verify(name, x509.ExtKeyUsageServerAuth); err != nil {
			t.Errorf("as the server %s: %v", name, err)
		}
	}
	if err := verify("evil.example.com", x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("verified for a name it was not issued for")
	}
	if err := verify("smi-operator-xds.smi-operator-system.svc", x509.ExtKeyUsageClientAuth); err == nil {
		t.Error("verified as a client certificate")
	}
	if len(leaf.URIs) != 0 {
		t.Errorf("a serving certificate carries URI SANs %v", leaf.URIs)
	}
	if got, want := leaf.NotAfter, t0.Add(24*time.Hour); !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	if _, err := a.IssueServing(nil, nil, time.Hour); err == nil {
		t.Error("issued a serving certificate without a name")
	}
}

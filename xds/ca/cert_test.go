package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func mustRoot(t *testing.T, td string, san bool, now time.Time, ttl time.Duration) *keyPair {
	t.Helper()
	root, err := newRoot(td, san, now, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func mustParseCert(t *testing.T, pemData []byte) *x509.Certificate {
	t.Helper()
	certs, err := parseCerts(pemData)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 {
		t.Fatalf("%d certificates, want 1", len(certs))
	}
	return certs[0]
}

// verifyLeaf verifies a leaf against a PEM bundle at a time, for client and server use.
func verifyLeaf(leafPEM, bundlePEM []byte, at time.Time) error {
	certs, err := parseCerts(leafPEM)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundlePEM) {
		return errNoCerts
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return err
		}
	}
	return nil
}

var errNoCerts = &x509.CertificateInvalidError{Detail: "empty bundle"}

func TestNewRoot(t *testing.T) {
	for _, san := range []bool{false, true} {
		root := mustRoot(t, "cluster.local", san, t0, 48*time.Hour)
		c := root.cert
		if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
			t.Errorf("root is not a path-length-0 CA: IsCA=%v MaxPathLen=%d", c.IsCA, c.MaxPathLen)
		}
		if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
			t.Errorf("key usage %v, want CertSign|CRLSign", c.KeyUsage)
		}
		if c.Subject.CommonName != rootCommonName {
			t.Errorf("CN %q", c.Subject.CommonName)
		}
		if !c.NotBefore.Equal(t0.Add(-clockSkew)) || !c.NotAfter.Equal(t0.Add(48*time.Hour)) {
			t.Errorf("validity %s..%s", c.NotBefore, c.NotAfter)
		}
		if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
			t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
		}
		if err := c.CheckSignatureFrom(c); err != nil {
			t.Errorf("not self-signed: %v", err)
		}
		var uris []string
		for _, u := range c.URIs {
			uris = append(uris, u.String())
		}
		want := ""
		if san {
			want = "spiffe://cluster.local"
		}
		if strings.Join(uris, ",") != want {
			t.Errorf("URI SANs %v, want %q", uris, want)
		}
		// What is written to the Secret reads back as the same CA.
		back, err := parseKeyPair(root.certPEM, root.keyPEM)
		if err != nil {
			t.Fatalf("parsing the root back: %v", err)
		}
		if !back.cert.Equal(c) {
			t.Error("the root read back differs")
		}
	}
}

func TestIssueLeafContents(t *testing.T) {
	root := mustRoot(t, "cluster.local", false, t0, 365*24*time.Hour)
	bundlePEM := encodeCerts([]*x509.Certificate{root.cert})
	id := &url.URL{Scheme: "spiffe", Host: "cluster.local", Path: "/ns/default/sa/bookbuyer"}
	now := t0.Add(time.Hour)
	c, err := issueLeaf(root, bundlePEM, id, now, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf := mustParseCert(t, c.CertChainPEM)

	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String() {
		t.Errorf("URI SANs %v, want exactly %s", leaf.URIs, id)
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
		t.Errorf("unexpected SANs: %v %v %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
	}
	if leaf.IsCA {
		t.Error("leaf is a CA")
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage %v, want DigitalSignature", leaf.KeyUsage)
	}
	if len(leaf.ExtKeyUsage) != 2 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
		t.Errorf("ext key usage %v, want server and client auth", leaf.ExtKeyUsage)
	}
	if !leaf.NotBefore.Equal(now.Add(-5*time.Minute)) || !leaf.NotAfter.Equal(now.Add(2*time.Hour)) {
		t.Errorf("validity %s..%s, want %s..%s", leaf.NotBefore, leaf.NotAfter, now.Add(-5*time.Minute), now.Add(2*time.Hour))
	}
	if !c.NotBefore.Equal(leaf.NotBefore) || !c.NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("Certificate validity %s..%s differs from the leaf's", c.NotBefore, c.NotAfter)
	}
	if want := now.Add(-5 * time.Minute).Add(62*time.Minute + 30*time.Second); !c.RenewAt().Equal(want) {
		t.Errorf("RenewAt %s, want %s (half-way)", c.RenewAt(), want)
	}
	if len(leaf.Subject.Names) != 0 {
		t.Errorf("subject %v, want empty", leaf.Subject)
	}
	if !bytes.Equal(c.TrustBundlePEM, bundlePEM) {
		t.Error("trust bundle differs")
	}
	if !bytes.Equal(leaf.AuthorityKeyId, root.cert.SubjectKeyId) || len(leaf.AuthorityKeyId) == 0 {
		t.Error("authority key ID does not name the root")
	}
	// The key is a fresh ECDSA P-256 key belonging to the certificate (tls checks the pair).
	pair, err := tls.X509KeyPair(c.CertChainPEM, c.PrivateKeyPEM)
	if err != nil {
		t.Fatalf("cert and key do not pair: %v", err)
	}
	if k, ok := pair.PrivateKey.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("private key %T, want ECDSA P-256", pair.PrivateKey)
	}
	if b, _ := pem.Decode(c.PrivateKeyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Error("private key is not PKCS #8 PEM")
	}

	for _, tt := range []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"at issuance", now, true},
		{"a minute before issuance (skew)", now.Add(-time.Minute), true},
		{"before NotBefore", now.Add(-6 * time.Minute), false},
		{"just before expiry", now.Add(2*time.Hour - time.Second), true},
		{"after expiry", now.Add(2*time.Hour + time.Second), false},
	} {
		if err := verifyLeaf(c.CertChainPEM, bundlePEM, tt.at); (err == nil) != tt.ok {
			t.Errorf("verify %s: %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	other := mustRoot(t, "cluster.local", false, t0, 365*24*time.Hour)
	if err := verifyLeaf(c.CertChainPEM, encodeCerts([]*x509.Certificate{other.cert}), now); err == nil {
		t.Error("the leaf verifies against an unrelated root")
	}

	// Two issues never share a key or serial.
	c2, err := issueLeaf(root, bundlePEM, id, now, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(c.PrivateKeyPEM, c2.PrivateKeyPEM) || mustParseCert(t, c2.CertChainPEM).SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("two issues share a key or a serial number")
	}
}

func TestIssueLeafNeverOutlivesRoot(t *testing.T) {
	root := mustRoot(t, "cluster.local", false, t0, 10*time.Hour)
	id := &url.URL{Scheme: "spiffe", Host: "cluster.local", Path: "/ns/a/sa/b"}
	c, err := issueLeaf(root, nil, id, t0.Add(9*time.Hour+30*time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !c.NotAfter.Equal(root.cert.NotAfter) {
		t.Errorf("NotAfter %s, want the root's %s", c.NotAfter, root.cert.NotAfter)
	}
	if _, err := issueLeaf(root, nil, id, t0.Add(10*time.Hour), time.Hour); err == nil || !strings.Contains(err.Error(), "root CA expired") {
		t.Errorf("issuing with an expired root: %v, want an error", err)
	}
}

func TestNeedsRotation(t *testing.T) {
	// Lifetime 30h (NotBefore backdated 5m is part of it): rotate with less than 10h left.
	root := mustRoot(t, "cluster.local", false, t0.Add(clockSkew), 30*time.Hour-clockSkew).cert
	for _, tt := range []struct {
		at   time.Time
		want bool
	}{
		{t0, false},
		{t0.Add(19*time.Hour + 59*time.Minute), false},
		{t0.Add(20 * time.Hour), false},
		{t0.Add(20*time.Hour + time.Second), true},
		{t0.Add(29 * time.Hour), true},
		{t0.Add(31 * time.Hour), true},
	} {
		if got := needsRotation(root, tt.at); got != tt.want {
			t.Errorf("needsRotation at %s after NotBefore = %v, want %v", tt.at.Sub(t0), got, tt.want)
		}
	}
}

func TestTrustBundle(t *testing.T) {
	a := mustRoot(t, "td", false, t0, 10*time.Hour).cert // expires t0+10h
	b := mustRoot(t, "td", false, t0, 20*time.Hour).cert // expires t0+20h
	c := mustRoot(t, "td", false, t0, 30*time.Hour).cert
	names := map[*x509.Certificate]string{a: "a", b: "b", c: "c"}
	for _, tt := range []struct {
		name     string
		current  *x509.Certificate
		previous []*x509.Certificate
		at       time.Time
		want     string
	}{
		{"first root", c, nil, t0, "c"},
		{"current first, old roots kept", c, []*x509.Certificate{a, b}, t0, "c,a,b"},
		{"current not repeated", c, []*x509.Certificate{c, b, c}, t0, "c,b"},
		{"duplicates dropped", c, []*x509.Certificate{b, b}, t0, "c,b"},
		{"expired dropped", c, []*x509.Certificate{a, b}, t0.Add(10 * time.Hour), "c,b"},
		{"all old expired", c, []*x509.Certificate{a, b}, t0.Add(21 * time.Hour), "c"},
	} {
		var got []string
		for _, cert := range trustBundle(tt.current, tt.previous, tt.at) {
			got = append(got, names[cert])
		}
		if strings.Join(got, ",") != tt.want {
			t.Errorf("%s: bundle %v, want %s", tt.name, got, tt.want)
		}
	}
}

func TestParseKeyPairRejects(t *testing.T) {
	root := mustRoot(t, "td", false, t0, time.Hour)
	other := mustRoot(t, "td", false, t0, time.Hour)
	leaf, err := issueLeaf(root, nil, &url.URL{Scheme: "spiffe", Host: "td", Path: "/ns/a/sa/b"}, t0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		cert, key []byte
		want      string
	}{
		{"key of another root", root.certPEM, other.keyPEM, "does not match"},
		{"not a CA", leaf.CertChainPEM, leaf.PrivateKeyPEM, "not a CA"},
		{"garbage certificate", []byte("nope"), root.keyPEM, "certificate: "},
		{"garbage key", root.certPEM, []byte("nope"), "key: no PEM block"},
		{"wrong key block", root.certPEM, root.certPEM, `unexpected PEM block "CERTIFICATE"`},
	} {
		if _, err := parseKeyPair(tt.cert, tt.key); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

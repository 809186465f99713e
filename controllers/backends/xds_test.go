package backends

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// selfSigned returns the PEM certificate and key of a self-signed certificate for name.
func selfSigned(t *testing.T, name string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{name}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// TestSecretCertificateFollowsRenewal: the xDS server's certificate is read again from its Secret
// once it is a minute old, so a renewal in place is served; a Secret gone keeps the last one.
func TestSecretCertificateFollowsRenewal(t *testing.T) {
	ctx := context.Background()
	key := types.NamespacedName{Namespace: "smi-operator-system", Name: "xds-tls"}
	secret := func(name string) *corev1.Secret {
		crt, k := selfSigned(t, name)
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: k}}
	}
	c := fake.NewClientBuilder().WithObjects(secret("first")).Build()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	sc := &secretCertificate{reader: c, key: key, now: func() time.Time { return now }}
	if err := sc.read(ctx); err != nil {
		t.Fatal(err)
	}
	served := func() string {
		t.Helper()
		cert, err := sc.get(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.Subject.CommonName
	}
	if got := served(); got != "first" {
		t.Fatalf("serves %q, want first", got)
	}
	if err := c.Update(ctx, secret("renewed")); err != nil {
		t.Fatal(err)
	}
	now = now.Add(30 * time.Second)
	if got := served(); got != "first" {
		t.Errorf("re-read after 30 s: serves %q", got)
	}
	now = now.Add(31 * time.Second)
	if got := served(); got != "renewed" {
		t.Errorf("after a minute serves %q, want the renewed certificate", got)
	}
	if err := c.Delete(ctx, secret("renewed")); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if got := served(); got != "renewed" {
		t.Errorf("with the Secret gone serves %q, want the last one read", got)
	}
}

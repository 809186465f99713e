package xds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/smi-operator/smi-operator/xds/ca"
)

// TestSecretCertificateFollowsRenewal: the xDS server's certificate is read again from its Secret
// once it is a minute old, so a renewal in place is served; a Secret gone keeps the last one.
func TestSecretCertificateFollowsRenewal(t *testing.T) {
	ctx := context.Background()
	key := types.NamespacedName{Namespace: "smi-operator-system", Name: "xds-tls"}
	// Certificates from the operator's own CA, told apart by their identity.
	authority, err := ca.New(ctx, kubefake.NewClientset(), ca.Options{
		Secret: types.NamespacedName{Namespace: key.Namespace, Name: "xds-ca"}, TrustDomain: "cluster.local",
	})
	if err != nil {
		t.Fatal(err)
	}
	secret := func(name string) *corev1.Secret {
		c, err := authority.Issue(ca.SPIFFEID("cluster.local", key.Namespace, name))
		if err != nil {
			t.Fatal(err)
		}
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: c.CertChainPEM, corev1.TLSPrivateKeyKey: c.PrivateKeyPEM}}
	}
	c := fake.NewClientBuilder().WithObjects(secret("first")).Build()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	refreshed := make(chan struct{}, 1)
	sc := &secretCertificate{reader: c, key: key, now: func() time.Time { return now }, refreshed: refreshed}
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
		_, name, err := ca.ParseSPIFFEID(leaf.URIs[0].String(), "cluster.local")
		if err != nil {
			t.Fatal(err)
		}
		return name
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
	select {
	case <-refreshed:
		t.Error("the Secret was read again after 30 s")
	case <-time.After(50 * time.Millisecond):
	}
	now = now.Add(31 * time.Second)
	// The handshake that finds the certificate stale does not wait for the read; the next ones
	// get what it read.
	if got := served(); got != "first" {
		t.Errorf("the handshake that starts the re-read serves %q, want the one it had", got)
	}
	<-refreshed
	if got := served(); got != "renewed" {
		t.Errorf("after a minute serves %q, want the renewed certificate", got)
	}
	if err := c.Delete(ctx, secret("renewed")); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	served()
	<-refreshed
	if got := served(); got != "renewed" {
		t.Errorf("with the Secret gone serves %q, want the last one read", got)
	}
}

// TestCAServingCertificate: without a Secret the xDS server presents a certificate of the built-in
// CA that a client holding the trust bundle verifies for the xds Service's names and the listening
// address, renewed once half of its life has passed.
func TestCAServingCertificate(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	authority, err := ca.New(context.Background(), kubefake.NewClientset(), ca.Options{
		Secret: types.NamespacedName{Namespace: "smi-operator-system", Name: "xds-ca"}, TrustDomain: "cluster.local",
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	names, ips := ServingNames("smi-operator-xds", "smi-operator-system", "example.org", "10.200.0.1")
	cfg, err := tlsFromCA(authority, names, ips, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(authority.TrustBundlePEM()) {
		t.Fatal("no roots in the trust bundle")
	}
	served := func() *x509.Certificate {
		t.Helper()
		cert, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	first := served()
	for _, name := range []string{"smi-operator-xds.smi-operator-system.svc", "smi-operator-xds.smi-operator-system.svc.example.org",
		"smi-operator-xds.smi-operator-system", "smi-operator-xds", "10.200.0.1"} {
		if _, err := first.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := first.Verify(x509.VerifyOptions{DNSName: "kubernetes.default.svc", Roots: roots, CurrentTime: now}); err == nil {
		t.Error("the serving certificate verifies for kubernetes.default.svc")
	}
	if got := served(); !got.Equal(first) {
		t.Error("a second handshake got a new certificate before renewal was due")
	}
	now = first.NotBefore.Add(first.NotAfter.Sub(first.NotBefore)/2 + time.Second)
	if got := served(); got.Equal(first) {
		t.Error("past half of its life the serving certificate was not renewed")
	}
	if _, ips := ServingNames("x", "ns", "cluster.local", ""); len(ips) != 0 {
		t.Errorf("listening on every address gave IP SANs %v", ips)
	}
}

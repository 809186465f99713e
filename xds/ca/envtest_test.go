package ca_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/smi-operator/smi-operator/test/testenv"
	"github.com/smi-operator/smi-operator/xds/ca"
)

// controlPlane is started by the first test that needs it, so the unit tests of the package run
// without one, and stopped by TestMain.
var controlPlane testenv.Lazy

func TestMain(m *testing.M) { controlPlane.Main(m) }

func kube(t *testing.T) kubernetes.Interface {
	t.Helper()
	env := controlPlane.Get(t)
	c, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// namespace creates a namespace for one test.
func namespace(t *testing.T, c kubernetes.Interface) string {
	t.Helper()
	ns, err := c.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "xds-ca-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func certs(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func verify(t *testing.T, c *ca.Certificate, bundlePEM []byte, at time.Time) error {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundlePEM) {
		t.Fatal("empty bundle")
	}
	_, err := certs(t, c.CertChainPEM)[0].Verify(x509.VerifyOptions{
		Roots: pool, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err
}

func TestSecretOnAPIServer(t *testing.T) {
	c := kube(t)
	ctx := context.Background()
	ref := types.NamespacedName{Namespace: namespace(t, c), Name: "smi-operator-xds-ca"}
	clk := clocktesting.NewFakeClock(time.Now())
	opts := ca.Options{Secret: ref, TrustDomain: "cluster.local", RootTTL: 30 * 24 * time.Hour, RootSPIFFESAN: true, Now: clk.Now}

	first, err := ca.New(ctx, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the first Authority did not create the Secret: %v", err)
	}
	if s.Type != corev1.SecretTypeTLS || len(s.Data["tls.crt"]) == 0 || len(s.Data["tls.key"]) == 0 {
		t.Fatalf("Secret of type %q with keys %v", s.Type, keys(s.Data))
	}
	if !bytes.Equal(s.Data["ca.crt"], first.TrustBundlePEM()) {
		t.Fatal("ca.crt is not the first Authority's bundle")
	}
	root := certs(t, s.Data["tls.crt"])[0]
	if len(root.URIs) != 1 || root.URIs[0].String() != "spiffe://cluster.local" {
		t.Errorf("root URI SANs %v, want spiffe://cluster.local", root.URIs)
	}

	// A second Authority (another replica) loads the same root: its certificates verify with
	// the first one's bundle, and the other way round.
	second, err := ca.New(ctx, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	fromSecond, err := second.Issue(ca.SPIFFEID("cluster.local", "default", "bookbuyer"))
	if err != nil {
		t.Fatal(err)
	}
	fromFirst, err := first.Issue(ca.SPIFFEID("cluster.local", "default", "bookstore"))
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(t, fromSecond, first.TrustBundlePEM(), clk.Now()); err != nil {
		t.Errorf("the second Authority's certificate does not verify with the first's bundle: %v", err)
	}
	if err := verify(t, fromFirst, second.TrustBundlePEM(), clk.Now()); err != nil {
		t.Errorf("the first Authority's certificate does not verify with the second's bundle: %v", err)
	}
	after, err := c.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != s.ResourceVersion {
		t.Error("the second Authority wrote the Secret")
	}

	// Rotation persists: the first Authority rotates (the new root joins the bundle, then signs
	// an hour later), the second adopts on its next Rotate, and certificates of the old root still
	// verify with the bundle of either.
	clk.Step(21 * 24 * time.Hour)
	for step := range 2 {
		if changed, err := first.Rotate(ctx); err != nil || !changed {
			t.Fatalf("Rotate, step %d = %v, %v; want the bundle changed", step+1, changed, err)
		}
		clk.Step(ca.DefaultRootPropagation)
	}
	s, err = c.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newRoot := certs(t, s.Data["tls.crt"])[0]
	stored := certs(t, s.Data["ca.crt"])
	if newRoot.Equal(root) || len(stored) != 2 || !stored[0].Equal(newRoot) || !stored[1].Equal(root) {
		t.Fatalf("the rotation was not persisted: ca.crt holds %d certificates", len(stored))
	}
	if rotated, err := second.Rotate(ctx); err != nil || !rotated {
		t.Fatalf("second Rotate = %v, %v; want the root changed (adopted)", rotated, err)
	}
	if !bytes.Equal(second.TrustBundlePEM(), first.TrustBundlePEM()) {
		t.Fatal("the second Authority did not adopt the rotated root")
	}
	if after, err := c.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{}); err != nil || after.ResourceVersion != s.ResourceVersion {
		t.Fatalf("the second Authority rotated again (%v)", err)
	}
	renewed, err := second.Issue(ca.SPIFFEID("cluster.local", "default", "bookbuyer"))
	if err != nil {
		t.Fatal(err)
	}
	if err := certs(t, renewed.CertChainPEM)[0].CheckSignatureFrom(newRoot); err != nil {
		t.Errorf("after rotation the second Authority does not sign with the new root: %v", err)
	}
	if err := verify(t, fromFirst, second.TrustBundlePEM(), fromFirst.NotBefore.Add(time.Minute)); err != nil {
		t.Errorf("a certificate of the old root does not verify after rotation: %v", err)
	}
	if err := verify(t, renewed, first.TrustBundlePEM(), clk.Now()); err != nil {
		t.Errorf("a certificate of the new root does not verify: %v", err)
	}
}

// Replicas starting together race to create the Secret; all of them end up with one root.
func TestConcurrentStartConverges(t *testing.T) {
	c := kube(t)
	ref := types.NamespacedName{Namespace: namespace(t, c), Name: "smi-operator-xds-ca"}
	const replicas = 4
	bundles := make([][]byte, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() {
			a, err := ca.New(context.Background(), c, ca.Options{Secret: ref, TrustDomain: "cluster.local"})
			if err != nil {
				t.Error(err)
				return
			}
			bundles[i] = a.TrustBundlePEM()
		})
	}
	wg.Wait()
	s, err := c.CoreV1().Secrets(ref.Namespace).Get(context.Background(), ref.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range bundles {
		if !bytes.Equal(b, s.Data["ca.crt"]) {
			t.Errorf("replica %d has a bundle other than the Secret's", i)
		}
	}
}

// Replicas rotating together: the API server's resourceVersion check lets one win; the others
// get a conflict and adopt its root instead of rotating again.
func TestConcurrentRotationConverges(t *testing.T) {
	c := kube(t)
	ctx := context.Background()
	ref := types.NamespacedName{Namespace: namespace(t, c), Name: "smi-operator-xds-ca"}
	clk := clocktesting.NewFakeClock(time.Now())
	const replicas = 4
	authorities := make([]*ca.Authority, replicas)
	for i := range authorities {
		a, err := ca.New(ctx, c, ca.Options{Secret: ref, TrustDomain: "cluster.local", RootTTL: 30 * time.Hour, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		authorities[i] = a
	}
	old := certs(t, authorities[0].TrustBundlePEM())[0]
	clk.Step(21 * time.Hour)
	// Both steps of a rotation: the new root joins the bundle, then, an hour later, signs.
	var next *x509.Certificate
	for step := 1; step <= 2; step++ {
		var wg sync.WaitGroup
		for i, a := range authorities {
			wg.Go(func() {
				if changed, err := a.Rotate(ctx); err != nil || !changed {
					t.Errorf("step %d, replica %d: Rotate = %v, %v; want the bundle changed", step, i, changed, err)
				}
			})
		}
		wg.Wait()
		s, err := c.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		stored := certs(t, s.Data["ca.crt"])
		if next == nil && len(stored) == 2 {
			next = stored[1]
		}
		want := []*x509.Certificate{old, next} // signing root first
		if step == 2 {
			want = []*x509.Certificate{next, old}
		}
		if len(stored) != 2 || !stored[0].Equal(want[0]) || !stored[1].Equal(want[1]) {
			t.Fatalf("step %d: ca.crt holds %d certificates, want the signing root and one other: a replica rotated twice", step, len(stored))
		}
		for i, a := range authorities {
			if !bytes.Equal(a.TrustBundlePEM(), s.Data["ca.crt"]) {
				t.Errorf("step %d: replica %d has a bundle other than the Secret's", step, i)
			}
		}
		clk.Step(ca.DefaultRootPropagation)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

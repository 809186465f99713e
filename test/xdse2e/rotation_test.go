package xdse2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"

	xdsbackend "github.com/smi-operator/smi-operator/controllers/backends/xds"
	"github.com/smi-operator/smi-operator/internal/agent"
	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

// rotationXDSPort is where rotateUnderCalls's xDS server, with a CA of its own, listens.
// rotationRootTTL is the life of that CA's roots: a root is backdated by the CA's clock skew
// allowance (5 minutes) and rotated with a third of its whole validity left, so 160 s has the
// first root staged about 7 s after it is made, and signing a sixth of 160 s (27 s) later.
const (
	rotationXDSPort = 15016
	rotationRootTTL = 160 * time.Second
	rotationCertTTL = 4 * time.Second
	// rotationBackendIndex is the netns address the spec's server listens on.
	rotationBackendIndex = 11
	// kubeletLag is how late a pod's mounted trust bundle follows the CA's: the kubelet updates
	// ConfigMap volumes on its sync period (a minute by default). Here longer than a renewal
	// (half of rotationCertTTL), so that a root signing before every pod holds it fails calls,
	// and shorter than the staging of a new root.
	kubeletLag = 6 * time.Second
)

// rootRotationLosesNoCall: while the CA rotates its root (the new root in the trust bundle first,
// signing only once every pod has read that bundle), two workloads whose pod agents renew
// certificates of a few seconds keep calling each other over mutual TLS, a new connection per
// call and the files read again at every handshake, as proxyless gRPC's file watcher does. The
// trust bundle reaches the pods' files as the kubelet updates a mounted ConfigMap: late
// (kubeletLag), copied from the CA's Secret. Not one call fails, and at the end both workloads hold
// certificates of the new root.
func rootRotationLosesNoCall() {
	r := rotateUnderCalls("root-rotation", 0)
	Expect(r.failures).To(BeEmpty(), "%d of %d calls failed across the rotation", len(r.failures), r.calls)
	Expect(r.notOnRoot).NotTo(HaveOccurred())
}

// rootSigningAtOnceFailsCalls is rootRotationLosesNoCall's negative control: the same rotation
// with a new root that signs as soon as it is in the trust bundle (one step) fails the handshakes
// of the workload whose bundle does not hold it yet. It shows that spec would see a rotation that
// loses calls.
func rootSigningAtOnceFailsCalls() {
	r := rotateUnderCalls("root-rotation-one-step", time.Nanosecond)
	// The calls failed for the rotation, not for anything before it, and in the handshake.
	Expect(r.failuresBefore).To(BeEmpty(), "calls failed before the new root signed")
	Expect(r.failures).To(ContainElement(MatchError(ContainSubstring("certificate"))),
		"no call of %d failed its handshake with a root that signs at once", r.calls)
	GinkgoWriter.Printf("%d of %d calls failed, the first: %v; at the end: %v\n", len(r.failures), r.calls, r.failures[0], r.notOnRoot)
}

// rotateUnderCalls runs a CA whose new roots sign after propagation (its default when zero) until
// it has rotated its root and three certificate lifetimes more have passed, while two workloads of
// namespace ns (created) call each other, and says what it saw.
func rotateUnderCalls(ns string, propagation time.Duration) rotation {
	GinkgoHelper()
	ctx := context.Background()
	clientset, err := kubernetes.NewForConfig(o.env.Config)
	Expect(err).NotTo(HaveOccurred())
	secret := types.NamespacedName{Namespace: operatorNamespace, Name: "rotation-xds-ca"}
	deleteSecret := func() {
		err := clientset.CoreV1().Secrets(secret.Namespace).Delete(ctx, secret.Name, metav1.DeleteOptions{})
		Expect(err == nil || apierrors.IsNotFound(err)).To(BeTrue(), "deleting the CA Secret: %v", err)
	}
	deleteSecret() // a root of an earlier run would rotate on its own schedule
	DeferCleanup(deleteSecret)
	startCAServer(rotationXDSPort, xdsbackend.Config{CASecret: secret, CertTTL: rotationCertTTL, CARootTTL: rotationRootTTL},
		xdsbackend.ServerWiring{RootRefresh: 500 * time.Millisecond, RootPropagation: propagation, Log: ctrl.Log.WithName("rotation-xds")})
	secretData := func(key string) []byte {
		s, err := clientset.CoreV1().Secrets(secret.Namespace).Get(ctx, secret.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		return s.Data[key]
	}
	firstRoot := secretData(ca.SecretCertKey)

	o.namespace(ns)
	setup := agentSetup{trustBundle: secretData(ca.SecretBundleKey), rootsRefresh: 500 * time.Millisecond}
	vault := o.startAgent(ns, "vault", server.ProxyGRPC, netns.HostPort(1, rotationXDSPort), setup)
	teller := o.startAgent(ns, "teller", server.ProxyGRPC, netns.HostPort(1, rotationXDSPort), setup)
	kubeletCtx, stopKubelet := context.WithCancel(ctx)
	kubeletDone := make(chan struct{})
	// Stopped and waited for: a write into the agents' folders after the spec would fail outside it.
	DeferCleanup(func() { stopKubelet(); <-kubeletDone })
	go func() {
		defer GinkgoRecover()
		defer close(kubeletDone)
		type seen struct {
			at     time.Time
			bundle []byte
		}
		var history []seen
		for kubeletCtx.Err() == nil {
			if s, err := clientset.CoreV1().Secrets(secret.Namespace).Get(kubeletCtx, secret.Name, metav1.GetOptions{}); err == nil {
				history = append(history, seen{time.Now(), s.Data[ca.SecretBundleKey]})
			}
			// The bundle as it was kubeletLag ago: the newest one seen at least that long ago.
			for len(history) > 1 && time.Since(history[1].at) >= kubeletLag {
				history = history[1:]
			}
			if len(history) > 0 && time.Since(history[0].at) >= kubeletLag {
				for _, a := range []*runningAgent{vault, teller} {
					Expect(writeAtomically(a.paths.TrustBundleFile, history[0].bundle)).To(Succeed())
				}
			}
			select {
			case <-time.After(500 * time.Millisecond):
			case <-kubeletCtx.Done():
			}
		}
	}()

	vaultFiles, tellerFiles := &workloadFiles{paths: vault.paths}, &workloadFiles{paths: teller.paths}
	serverCreds := credentials.NewTLS(&tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		pair, roots, err := vaultFiles.load()
		if err != nil {
			return nil, err
		}
		return &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: roots, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}, nil
	}})
	backend, err := grpcxds.StartBackend("vault", netns.HostPort(rotationBackendIndex, backendPort), grpc.Creds(serverCreds))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(backend.Stop)
	call := func() error {
		pair, roots, err := tellerFiles.load()
		if err != nil {
			return err
		}
		_, err = spiffeCall(ctx, netns.HostPort(rotationBackendIndex, backendPort), pair, roots, ca.SPIFFEID("cluster.local", ns, "vault"))
		return err
	}

	var calls int
	var failures, failuresBefore []error
	rotated := time.Time{}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && (rotated.IsZero() || time.Since(rotated) < 3*rotationCertTTL) {
		// Looked at before the call: the CA writes the new root to the Secret before it signs with
		// it, so a call that fails while rotated is zero failed before the rotation.
		if rotated.IsZero() && !bytes.Equal(secretData(ca.SecretCertKey), firstRoot) {
			rotated = time.Now()
			GinkgoWriter.Printf("the new root signs after %d calls\n", calls)
		}
		calls++
		if err := call(); err != nil {
			failures = append(failures, err)
			if rotated.IsZero() {
				failuresBefore = append(failuresBefore, err)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	Expect(rotated).NotTo(BeZero(), "the root was not rotated within 2 minutes")
	Expect(calls).To(BeNumerically(">", 100))

	newRoot := x509.NewCertPool()
	Expect(newRoot.AppendCertsFromPEM(secretData(ca.SecretCertKey))).To(BeTrue())
	for _, files := range []*workloadFiles{vaultFiles, tellerFiles} {
		pair, _, err := files.load()
		Expect(err).NotTo(HaveOccurred())
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		Expect(err).NotTo(HaveOccurred())
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: newRoot, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return rotation{calls, failures, failuresBefore, fmt.Errorf("the certificate of %s is not of the new root: %w", leaf.URIs, err)}
		}
	}
	return rotation{calls, failures, failuresBefore, nil}
}

// rotation is what rotateUnderCalls saw: the calls made, the errors of those that failed (and of
// those before the new root was seen signing), and why a workload does not hold a certificate of
// the new root at the end (nil when both do).
type rotation struct {
	calls                    int
	failures, failuresBefore []error
	notOnRoot                error
}

// workloadFiles reads the certificate, key and trust bundle a pod agent writes for proxyless gRPC,
// keeping the last pair that matched: the agent replaces the files one by one, and a handshake
// between two of those writes must go on with the pair before, as gRPC's file watcher does.
type workloadFiles struct {
	paths agent.Paths

	mu       sync.Mutex
	lastGood *tls.Certificate
}

func (w *workloadFiles) load() (tls.Certificate, *x509.CertPool, error) {
	rootsPEM, err := os.ReadFile(w.paths.RootCertFile)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootsPEM) {
		return tls.Certificate{}, nil, errors.New("no root in " + w.paths.RootCertFile)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	pair, err := tls.LoadX509KeyPair(w.paths.CertChainFile, w.paths.KeyFile)
	switch {
	case err == nil:
		w.lastGood = &pair
	case w.lastGood == nil:
		return tls.Certificate{}, nil, err
	}
	return *w.lastGood, roots, nil
}

// spiffeCall calls addr once with mutual TLS as the holder of pair, accepting only a server whose
// certificate chains to roots and carries the SPIFFE ID want (verifySPIFFE: SPIFFE certificates
// name no host, so the usual host check cannot be used).
func spiffeCall(ctx context.Context, addr string, pair tls.Certificate, roots *x509.CertPool, want string) (grpcxds.Reply, error) {
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12,
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error { return verifySPIFFE(raw, roots, want) },
	})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return grpcxds.Reply{}, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return grpcxds.Call(ctx, conn)
}

// verifySPIFFE verifies a peer's chain against roots and that its leaf is the SPIFFE ID want.
func verifySPIFFE(raw [][]byte, roots *x509.CertPool, want string) error {
	if len(raw) == 0 {
		return errors.New("the peer sent no certificate")
	}
	leaf, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return err
	}
	intermediates := x509.NewCertPool()
	for _, der := range raw[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return err
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
		return fmt.Errorf("the peer is %v, not %s", leaf.URIs, want)
	}
	return nil
}

// writeAtomically replaces path with data in one rename, as the kubelet swaps a ConfigMap volume's
// files: a reader never sees half of it.
func writeAtomically(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bundle-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	xdstranslator "github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/bootstrap"
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

// Paths are where the agent reads and writes; DefaultPaths is the pod layout of package
// xds/bootstrap.
type Paths struct {
	// TokenFile is the ServiceAccount token projected for the xDS audience; TrustBundleFile the
	// mesh's trust bundle (the ConfigMap bootstrap.TrustBundleConfigMap, mounted).
	TokenFile, TrustBundleFile string
	// CertChainFile, KeyFile and RootCertFile are what proxyless gRPC's file_watcher reads;
	// GRPCBootstrapFile the gRPC bootstrap (ProxyGRPC).
	CertChainFile, KeyFile, RootCertFile, GRPCBootstrapFile string
	// EnvoyBootstrapFile is Envoy's bootstrap; Socket the agent's Unix socket (ProxyEnvoy).
	EnvoyBootstrapFile, Socket string
}

// DefaultPaths is the layout of an injected pod.
func DefaultPaths() Paths {
	return Paths{
		TokenFile: bootstrap.TokenFile, TrustBundleFile: bootstrap.TrustBundleFile,
		CertChainFile: bootstrap.CertChainFile, KeyFile: bootstrap.KeyFile, RootCertFile: bootstrap.RootCertFile,
		GRPCBootstrapFile: bootstrap.GRPCBootstrapFile, EnvoyBootstrapFile: bootstrap.EnvoyBootstrapFile, Socket: bootstrap.AgentSocket,
	}
}

// InDir moves the files the agent writes (the certificate, key and bundle, the bootstraps and the
// socket) into dir, under their names in the pod layout: for tests, and for a layout of one's own.
func (p Paths) InDir(dir string) Paths {
	in := func(path string) string { return filepath.Join(dir, filepath.Base(path)) }
	p.CertChainFile, p.KeyFile, p.RootCertFile = in(p.CertChainFile), in(p.KeyFile), in(p.RootCertFile)
	p.GRPCBootstrapFile, p.EnvoyBootstrapFile, p.Socket = in(p.GRPCBootstrapFile), in(p.EnvoyBootstrapFile), in(p.Socket)
	return p
}

// Options configure an Agent.
type Options struct {
	// Proxy is server.ProxyGRPC or server.ProxyEnvoy: what the agent hands the certificate to.
	Proxy string
	// XDSAddress is the operator's xDS Service, "host:port": its certificate service, and the
	// management server of the bootstraps and of the ADS proxy. Its certificate must verify, with
	// the trust bundle, for host.
	XDSAddress string
	// PodName, PodNamespace and ServiceAccount are the pod's (downward API); the node ID is
	// "<pod>.<namespace>". InstanceIP is the pod's IP (logged; optional).
	PodName, PodNamespace, ServiceAccount, InstanceIP string
	// TrustDomain of the workload's SPIFFE ID; v1alpha1.DefaultTrustDomain when empty.
	TrustDomain string
	Paths       Paths
	// DialOptions are added to every connection to the operator (tests observe responses with
	// interceptors).
	DialOptions []grpc.DialOption
	// MinRetry and MaxRetry bound the backoff between failed attempts (1s and 30s when zero).
	MinRetry, MaxRetry time.Duration
	// RootsRefresh is how often the trust bundle file is read again between renewals, so that a
	// root the operator added (a rotation) reaches the proxy without waiting for a renewal; 30s
	// when zero.
	RootsRefresh time.Duration
	Log          logr.Logger
}

// Agent obtains and renews the workload's certificate and hands it to the proxy.
type Agent struct {
	opts     Options
	spiffeID string
	secrets  *cache.LinearCache

	mu      sync.Mutex
	current *Certificate
	written bool // what the proxy reads is on disk (or served)
	renewed chan struct{}
}

// Certificate is the workload's certificate as the agent holds it.
type Certificate struct {
	// ChainPEM is the certificate chain, leaf first; KeyPEM its key (PKCS #8); RootsPEM the trust
	// bundle (every root the trust bundle file and the CA's response name).
	ChainPEM, KeyPEM, RootsPEM []byte
	Leaf                       *x509.Certificate
	Key                        *ecdsa.PrivateKey
	// RenewAt is half-way from when it was received to its expiry.
	RenewAt time.Time
	// caRoot is the root the CA sent with it (PEM), trusted beside the bundle file.
	caRoot []byte
}

// New checks the options and returns an agent; Run runs it.
func New(opts Options) (*Agent, error) {
	var missing []string
	for name, v := range map[string]string{"the xDS address": opts.XDSAddress, "the pod name": opts.PodName,
		"the pod namespace": opts.PodNamespace, "the service account": opts.ServiceAccount} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("agent: %s required", strings.Join(missing, ", "))
	}
	if opts.Proxy != server.ProxyGRPC && opts.Proxy != server.ProxyEnvoy {
		return nil, fmt.Errorf("agent: proxy %q: want %q or %q", opts.Proxy, server.ProxyEnvoy, server.ProxyGRPC)
	}
	if _, _, err := net.SplitHostPort(opts.XDSAddress); err != nil {
		return nil, fmt.Errorf("agent: xDS address %q: %w", opts.XDSAddress, err)
	}
	if opts.TrustDomain == "" {
		opts.TrustDomain = v1alpha1.DefaultTrustDomain
	}
	if opts.Paths == (Paths{}) {
		opts.Paths = DefaultPaths()
	}
	if opts.MinRetry <= 0 {
		opts.MinRetry = time.Second
	}
	if opts.MaxRetry <= 0 {
		opts.MaxRetry = 30 * time.Second
	}
	if opts.RootsRefresh <= 0 {
		opts.RootsRefresh = 30 * time.Second
	}
	a := &Agent{
		opts:     opts,
		spiffeID: "spiffe://" + opts.TrustDomain + "/ns/" + opts.PodNamespace + "/sa/" + opts.ServiceAccount,
		renewed:  make(chan struct{}),
	}
	if opts.Proxy == server.ProxyEnvoy {
		a.secrets = cache.NewLinearCache(resourcev3.SecretType)
	}
	return a, nil
}

// NodeID is the node ID of the pod's proxy: "<pod>.<namespace>".
func (a *Agent) NodeID() string { return a.opts.PodName + "." + a.opts.PodNamespace }

// SPIFFEID is the identity the agent asks a certificate for.
func (a *Agent) SPIFFEID() string { return a.spiffeID }

// Current is the certificate held now, nil before the first.
func (a *Agent) Current() *Certificate {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.current
}

// Renewed is closed when the agent next hands the proxy a certificate (the first, a renewal) or a
// changed trust bundle.
func (a *Agent) Renewed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.renewed
}

// Ready says whether the proxy can start: a certificate valid now is held and what the proxy
// reads is written.
func (a *Agent) Ready() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.written && a.current != nil && time.Now().Before(a.current.Leaf.NotAfter)
}

// HealthHandler answers /healthz/ready: 200 when Ready, else 503.
func (a *Agent) HealthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz/ready", func(w http.ResponseWriter, _ *http.Request) {
		if a.Ready() {
			_, _ = w.Write([]byte("ready\n"))
			return
		}
		http.Error(w, "no valid workload certificate yet", http.StatusServiceUnavailable)
	})
	return mux
}

// Run serves (the Envoy socket) and keeps a certificate until ctx ends. It returns an error only
// when it cannot start (the socket, a bootstrap); failures to obtain a certificate are retried.
func (a *Agent) Run(ctx context.Context) error {
	log := a.opts.Log
	log.Info("starting the pod agent", "proxy", a.opts.Proxy, "identity", a.spiffeID, "node", a.NodeID(),
		"xdsAddress", a.opts.XDSAddress, "instanceIP", a.opts.InstanceIP)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if a.opts.Proxy == server.ProxyEnvoy {
		envoy, err := bootstrap.Envoy{NodeID: a.NodeID(), Namespace: a.opts.PodNamespace, ServiceAccount: a.opts.ServiceAccount}.JSON()
		if err != nil {
			return err
		}
		if err := writeFileAtomic(a.opts.Paths.EnvoyBootstrapFile, envoy, 0o644); err != nil {
			return fmt.Errorf("agent: writing Envoy's bootstrap: %w", err)
		}
		lis, err := listenUnix(a.opts.Paths.Socket)
		if err != nil {
			return err
		}
		srv := grpc.NewServer()
		secretv3.RegisterSecretDiscoveryServiceServer(srv, serverv3.NewServer(ctx, a.secrets, nil))
		discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, &adsProxy{a: a})
		wg.Go(func() { _ = srv.Serve(lis) })
		wg.Go(func() { <-ctx.Done(); srv.Stop() })
	}
	retry := a.opts.MinRetry
	for {
		var wait time.Duration
		cert, err := a.fetch(ctx)
		if err == nil {
			err = a.install(cert)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			wait = retry
			if current := a.Current(); current != nil {
				log.Error(err, "renewing the workload certificate; keeping the current one", "retryIn", wait, "expires", current.Leaf.NotAfter)
			} else {
				log.Error(err, "obtaining the workload certificate", "retryIn", wait)
			}
			retry = min(2*retry, a.opts.MaxRetry)
		} else {
			retry = a.opts.MinRetry
			// Never sooner than a retry: a certificate of a few seconds must not make a tight loop.
			wait = max(time.Until(cert.RenewAt), a.opts.MinRetry)
			log.Info("installed the workload certificate", "identity", a.spiffeID, "serial", cert.Leaf.SerialNumber.Text(16),
				"expires", cert.Leaf.NotAfter, "renewAt", cert.RenewAt)
		}
		if !a.sleep(ctx, wait) {
			return nil
		}
	}
}

// sleep waits for d, reading the trust bundle file again every RootsRefresh meanwhile; false when
// ctx ended.
func (a *Agent) sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	ticker := time.NewTicker(a.opts.RootsRefresh)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case <-ticker.C:
			if err := a.refreshRoots(); err != nil {
				a.opts.Log.Error(err, "reading the trust bundle again; keeping the current one")
			}
		}
	}
}

// refreshRoots hands the proxy the trust bundle again when the file now says something else.
func (a *Agent) refreshRoots() error {
	c := a.Current()
	if c == nil {
		return nil
	}
	bundle, _, err := a.trustBundle()
	if err != nil {
		return err
	}
	roots := mergeRoots(bundle, c.caRoot)
	if bytes.Equal(roots, c.RootsPEM) {
		return nil
	}
	next := *c
	next.RootsPEM = roots
	a.opts.Log.Info("the trust bundle changed; handing it to the proxy")
	return a.install(&next)
}

// mergeRoots is bundle followed by the certificates of extra that it does not hold (compared by
// their DER).
func mergeRoots(bundle, extra []byte) []byte {
	out := bytes.Clone(bundle)
	held := map[string]bool{}
	for rest := bundle; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		held[string(block.Bytes)] = true
	}
	for rest := extra; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if !held[string(block.Bytes)] {
			held[string(block.Bytes)] = true
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes})...)
		}
	}
	return out
}

// fetch generates a key and has the operator sign a CSR of it.
func (a *Agent) fetch(ctx context.Context) (*Certificate, error) {
	token, err := a.token()
	if err != nil {
		return nil, err
	}
	bundle, roots, err := a.trustBundle()
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := ca.CSR(key, []string{a.spiffeID})
	if err != nil {
		return nil, err
	}
	conn, err := a.dial(roots)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	callCtx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), 30*time.Second)
	defer cancel()
	resp, err := securityv1alpha1.NewIstioCertificateServiceClient(conn).CreateCertificate(callCtx, &securityv1alpha1.IstioCertificateRequest{
		Csr: string(csr),
	})
	if err != nil {
		return nil, fmt.Errorf("asking %s to sign the CSR: %w", a.opts.XDSAddress, err)
	}
	received := time.Now()
	return a.check(resp.GetCertChain(), key, bundle, roots, received)
}

// check reads the CA's answer: the leaf must be of our key, name our identity alone and verify
// with the trust bundle (or the root sent along, once the bundle verified the server).
func (a *Agent) check(chain []string, key *ecdsa.PrivateKey, bundle []byte, roots *x509.CertPool, received time.Time) (*Certificate, error) {
	var certs []*x509.Certificate
	for _, p := range chain {
		rest := []byte(p)
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("the CA's answer: %w", err)
			}
			certs = append(certs, c)
		}
	}
	if len(certs) == 0 {
		return nil, errors.New("the CA's answer holds no certificate")
	}
	leaf := certs[0]
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, errors.New("the CA's certificate is not of the key the CSR was made with")
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != a.spiffeID {
		return nil, fmt.Errorf("the CA's certificate names %v, not %s", leaf.URIs, a.spiffeID)
	}
	if !received.Before(leaf.NotAfter) {
		return nil, fmt.Errorf("the CA's certificate expired at %s (is the clock right?)", leaf.NotAfter)
	}
	// The root the CA sent (the chain's last, when it is not the leaf) joins the bundle: after a
	// root rotation it may be newer than the mounted ConfigMap.
	var chainPEM bytes.Buffer
	var caRoot []byte
	intermediates := x509.NewCertPool()
	for i, c := range certs {
		last := i == len(certs)-1 && i > 0
		if last && c.IsCA {
			caRoot = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
			continue
		}
		_ = pem.Encode(&chainPEM, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		if i > 0 {
			intermediates.AddCert(c)
		}
	}
	rootsPEM := mergeRoots(bundle, caRoot)
	verifyRoots := roots.Clone()
	verifyRoots.AppendCertsFromPEM(rootsPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: verifyRoots, Intermediates: intermediates,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, fmt.Errorf("the CA's certificate does not verify with the trust bundle: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Certificate{
		ChainPEM: chainPEM.Bytes(), KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), RootsPEM: rootsPEM,
		Leaf: leaf, Key: key, RenewAt: received.Add(leaf.NotAfter.Sub(received) / 2), caRoot: caRoot,
	}, nil
}

// install hands the certificate to the proxy, then makes it the current one.
func (a *Agent) install(c *Certificate) error {
	p := a.opts.Paths
	switch a.opts.Proxy {
	case server.ProxyGRPC:
		// The bundle first (it may hold a new root the new leaf needs), then the key and the chain:
		// file_watcher refuses a key and chain that do not match and keeps what it has until both
		// are new. The key is readable by the group: the app, which runs as a UID of its own,
		// reads it as a member of the pod's fsGroup (the grpc template sets one when the pod
		// has none), which the volume's files get; nobody else shares the volume.
		for _, f := range []struct {
			path string
			data []byte
			perm os.FileMode
		}{{p.RootCertFile, c.RootsPEM, 0o644}, {p.KeyFile, c.KeyPEM, 0o640}, {p.CertChainFile, c.ChainPEM, 0o644}} {
			if err := writeFileAtomic(f.path, f.data, f.perm); err != nil {
				return err
			}
		}
		a.mu.Lock()
		written := a.written
		a.mu.Unlock()
		if !written {
			b, err := a.grpcBootstrap()
			if err != nil {
				return err
			}
			if err := writeFileAtomic(p.GRPCBootstrapFile, b, 0o644); err != nil {
				return err
			}
		}
	case server.ProxyEnvoy:
		if err := a.secrets.UpdateResources(map[string]types.Resource{
			xdstranslator.WorkloadSecretName:    xdstranslator.WorkloadSecret(c.ChainPEM, c.KeyPEM),
			xdstranslator.TrustBundleSecretName: xdstranslator.TrustBundleSecret(c.RootsPEM),
		}, nil); err != nil {
			return err
		}
	}
	a.mu.Lock()
	a.current, a.written = c, true
	close(a.renewed)
	a.renewed = make(chan struct{})
	a.mu.Unlock()
	return nil
}

// grpcBootstrap is the proxyless gRPC bootstrap: the operator over TLS (verified with the bundle
// the agent keeps), the token as call_creds, the node, and the certificate provider instance the
// xDS resources name on the agent's files.
func (a *Agent) grpcBootstrap() ([]byte, error) {
	p := a.opts.Paths
	return bootstrap.GRPC{
		ServerURI:    a.opts.XDSAddress,
		ServerTLS:    &bootstrap.PEMFiles{CACertificateFile: p.RootCertFile},
		JWTTokenFile: p.TokenFile,
		NodeID:       a.NodeID(),
		NodeMetadata: map[string]any{
			server.MetadataProxy:          server.ProxyGRPC,
			server.MetadataNamespace:      a.opts.PodNamespace,
			server.MetadataServiceAccount: a.opts.ServiceAccount,
		},
		CertificateProviders: map[string]bootstrap.PEMFiles{xdstranslator.CertificateProviderInstance: {
			CertificateFile: p.CertChainFile, PrivateKeyFile: p.KeyFile, CACertificateFile: p.RootCertFile,
		}},
	}.JSON()
}

// token reads the ServiceAccount token anew: kubelet rotates it.
func (a *Agent) token() (string, error) {
	b, err := os.ReadFile(a.opts.Paths.TokenFile)
	if err != nil {
		return "", fmt.Errorf("reading the ServiceAccount token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("the ServiceAccount token file %s is empty", a.opts.Paths.TokenFile)
	}
	return token, nil
}

// trustBundle reads the mesh's trust bundle anew (kubelet updates the ConfigMap's volume), with
// the roots the agent received from the CA since.
func (a *Agent) trustBundle() ([]byte, *x509.CertPool, error) {
	b, err := os.ReadFile(a.opts.Paths.TrustBundleFile)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the trust bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, nil, fmt.Errorf("the trust bundle %s holds no PEM certificate", a.opts.Paths.TrustBundleFile)
	}
	if c := a.Current(); c != nil {
		pool.AppendCertsFromPEM(c.RootsPEM)
	}
	return b, pool, nil
}

// dial connects to the operator over TLS, verifying it with roots.
func (a *Agent) dial(roots *x509.CertPool) (*grpc.ClientConn, error) {
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}))},
		a.opts.DialOptions...)
	return grpc.NewClient(a.opts.XDSAddress, opts...)
}

// listenUnix listens on the socket, removing one a previous agent left.
func listenUnix(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("agent: removing the old socket: %w", err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return lis, nil
}

// writeFileAtomic writes data to a temporary file of path's directory and renames it to path: a
// reader sees the old content or the new, never part of it.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename, nothing is there
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

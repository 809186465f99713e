package xds

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/xds/auth"
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

// ServerWiring is what an xDS server is built with besides its configuration: what the caller
// runs it with.
type ServerWiring struct {
	// TLS serves ADS with a certificate of the caller's (a Secret, files). When nil and the
	// configuration is not Plaintext, ADS is served over TLS with a certificate the built-in CA
	// issues for the xDS Service's names and the address's host, so proxies verify the server
	// with the trust bundle they get their workload certificates with.
	TLS *tls.Config
	// HoldUntilSynced has the server answer no proxy until its Synced is called (server.Options).
	HoldUntilSynced bool
	// Registerer receives the server's metrics; nil registers none.
	Registerer prometheus.Registerer
	// RootRefresh is how often the CA's root rotation is moved on (server.Options.RootRefresh).
	RootRefresh time.Duration
	// RootPropagation is how long a new root is in the trust bundle before it signs
	// (ca.Options.RootPropagation; its default when zero). Tests shorten it to sign at once.
	RootPropagation time.Duration
	Log             logr.Logger
}

// Clients are the API clients of an xDS server: API for the CA and the trust bundles, and
// TokenReviews for the token reviews alone. Each client has its own rate limit, and anyone who
// reaches the xDS port can send tokens to review: sharing one would let them hold the CA's and
// the trust bundles' calls back.
type Clients struct {
	API, TokenReviews kubernetes.Interface
}

// NewClients makes the two Clients from config, each with its own rate limit.
func NewClients(config *rest.Config) (Clients, error) {
	api, err := kubernetes.NewForConfig(config)
	if err != nil {
		return Clients{}, err
	}
	// A limiter of config's own would be shared by both: each gets one made from QPS and Burst.
	own := rest.CopyConfig(config)
	own.RateLimiter = nil
	reviews, err := kubernetes.NewForConfig(own)
	if err != nil {
		return Clients{}, err
	}
	return Clients{API: api, TokenReviews: reviews}, nil
}

// NewServer starts the built-in certificate authority (its root kept in cfg.CASecret) and the
// token authenticator, and returns an xDS server using them, which publishes the CA's trust bundle
// in every namespace it is told of (TrustBundles), again whenever the root rotates; it does not
// listen yet.
func NewServer(ctx context.Context, clients Clients, settings mesh.Settings, cfg Config, with ServerWiring) (*server.Server, error) {
	host, _, err := net.SplitHostPort(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("xDS address %q: %w", cfg.Address, err)
	}
	authority, err := ca.New(ctx, clients.API, ca.Options{Secret: cfg.CASecret, TrustDomain: settings.TrustDomain, CertTTL: cfg.CertTTL, RootTTL: cfg.CARootTTL,
		RootPropagation: with.RootPropagation})
	if err != nil {
		return nil, fmt.Errorf("starting the xDS certificate authority: %w", err)
	}
	authenticator, err := auth.New(clients.TokenReviews, auth.Options{Audiences: cfg.TokenAudiences})
	if err != nil {
		return nil, err
	}
	serving := with.TLS
	if serving == nil && !cfg.Plaintext {
		names, ips := ServingNames(cfg.ServiceName, cfg.CASecret.Namespace, settings.ClusterDomain, host)
		if serving, err = tlsFromCA(authority, names, ips, with.Log); err != nil {
			return nil, err
		}
	}
	bundles := NewTrustBundles(clients.API, authority.TrustBundlePEM, with.Log)
	srv := server.New(server.Options{
		Address:         cfg.Address,
		Settings:        settings,
		Authenticator:   authenticator,
		CA:              authority,
		TrustBundles:    bundles,
		TLS:             serving,
		HoldUntilSynced: with.HoldUntilSynced,
		RootRefresh:     with.RootRefresh,
		Registerer:      with.Registerer,
		Log:             with.Log,
	})
	srv.OnTrustBundleChanged(func() {
		// In the background: the rotation loop must not wait for a write per namespace. A new
		// root signs only RootPropagation (an hour) after it entered the bundle, and an old one
		// stays in it until it expires, so retrying for ten minutes is safe.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			for wait := time.Second; ; wait *= 2 {
				err := bundles.Republish(ctx)
				if err == nil {
					return
				}
				with.Log.Error(err, "publishing the rotated trust bundle; retrying", "in", wait)
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}()
	})
	return srv, nil
}

// ServingNames are the DNS names of the xDS Service (service in namespace) and the IP address
// of host, the address the server listens on, when host is one (not a wildcard): what the built-in
// CA's serving certificate is issued for, so that proxies can dial either.
func ServingNames(service, namespace, clusterDomain, host string) ([]string, []net.IP) {
	var names []string
	if service != "" {
		names = []string{
			service + "." + namespace + ".svc",
			service + "." + namespace + ".svc." + clusterDomain,
			service + "." + namespace,
			service,
		}
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		ips = append(ips, ip)
	}
	return names, ips
}

// servingCertTTL is the lifetime of the serving certificate the built-in CA issues the xDS
// server; it is renewed at half-life, by the first handshake after.
const servingCertTTL = 24 * time.Hour

// tlsFromCA serves with a certificate the built-in CA issues for names and ips, renewed at
// half-life. The first one is issued now, so that a CA that cannot sign shows in the SMIOperator's
// status; a renewal that fails keeps the current certificate (valid for another half-life) and
// is logged.
func tlsFromCA(authority *ca.Authority, names []string, ips []net.IP, log logr.Logger) (*tls.Config, error) {
	sc := &caServingCertificate{authority: authority, names: names, ips: ips, log: log}
	if _, err := sc.get(nil); err != nil {
		return nil, fmt.Errorf("issuing the xDS serving certificate: %w", err)
	}
	return &tls.Config{GetCertificate: sc.get, MinVersion: tls.VersionTLS12}, nil
}

type caServingCertificate struct {
	authority *ca.Authority
	names     []string
	ips       []net.IP
	log       logr.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	renewAt time.Time
}

func (sc *caServingCertificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.cert != nil && sc.authority.Now().Before(sc.renewAt) {
		return sc.cert, nil
	}
	issued, err := sc.authority.IssueServing(sc.names, sc.ips, servingCertTTL)
	var pair tls.Certificate
	if err == nil {
		pair, err = tls.X509KeyPair(issued.CertChainPEM, issued.PrivateKeyPEM)
	}
	if err != nil {
		if sc.cert != nil {
			sc.log.Error(err, "renewing the xDS serving certificate; serving the current one")
			return sc.cert, nil
		}
		return nil, err
	}
	sc.cert, sc.renewAt = &pair, issued.RenewAt()
	return sc.cert, nil
}

// TLSFromSecret serves with the certificate in a kubernetes.io/tls Secret, read again in the
// background at most every secretRefresh when a handshake finds it stale, so a certificate renewed
// in place (cert-manager) is picked up without a restart and no handshake waits for the API
// server; when a read fails, the certificate read last is kept. It reads
// the API server directly: caching Secrets would mean watching every Secret of the cluster. The
// first read must succeed, so that a missing Secret shows in the SMIOperator's status.
func TLSFromSecret(ctx context.Context, reader client.Reader, key types.NamespacedName) (*tls.Config, error) {
	sc := &secretCertificate{reader: reader, key: key, now: time.Now}
	if err := sc.read(ctx); err != nil {
		return nil, err
	}
	return &tls.Config{GetCertificate: sc.get, MinVersion: tls.VersionTLS12}, nil
}

// secretRefresh is how stale the certificate read from a Secret may get.
const secretRefresh = time.Minute

type secretCertificate struct {
	reader client.Reader
	key    types.NamespacedName
	now    func() time.Time

	mu     sync.Mutex
	cert   *tls.Certificate
	readAt time.Time
	// refreshed, when set, is told each background read has ended (tests).
	refreshed chan<- struct{}
}

func (sc *secretCertificate) read(ctx context.Context) error {
	secret := &corev1.Secret{}
	if err := sc.reader.Get(ctx, sc.key, secret); err != nil {
		return fmt.Errorf("reading the xDS TLS Secret %s: %w", sc.key, err)
	}
	cert, err := tls.X509KeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return fmt.Errorf("the xDS TLS Secret %s holds no usable %s and %s: %w", sc.key, corev1.TLSCertKey, corev1.TLSPrivateKeyKey, err)
	}
	sc.mu.Lock()
	sc.cert, sc.readAt = &cert, sc.now()
	sc.mu.Unlock()
	return nil
}

func (sc *secretCertificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	sc.mu.Lock()
	stale := sc.now().Sub(sc.readAt) >= secretRefresh
	if stale {
		sc.readAt = sc.now() // one handshake refreshes; the others use what is there
	}
	cert := sc.cert
	sc.mu.Unlock()
	if stale {
		// In the background: this handshake, and those until the read ends, get the certificate
		// read last (at most a minute older, plus the read).
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = sc.read(ctx) // on failure the certificate read last stays
			if sc.refreshed != nil {
				sc.refreshed <- struct{}{}
			}
		}()
	}
	return cert, nil
}

package backends

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/xds/auth"
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

// ServerConfig is what an xDS server is built from, besides the mesh settings.
type ServerConfig struct {
	// Address the ADS server listens on, such as ":15010".
	Address string
	// TLS serves ADS over TLS; nil serves plain text. grpc-go sends its ServiceAccount token
	// (call credentials) over TLS only.
	TLS *tls.Config
	// TokenAudiences are the audiences ServiceAccount tokens presented on ADS streams must be
	// bound to (projected tokens), so that a proxy never hands the operator its API token.
	TokenAudiences []string
	// CASecret keeps the root of the built-in certificate authority.
	CASecret types.NamespacedName
	// CertTTL is the lifetime of workload certificates; ca.DefaultCertTTL when zero.
	CertTTL time.Duration
	// Registerer receives the server's metrics; nil registers none.
	Registerer prometheus.Registerer
	Log        logr.Logger
}

// NewXDSServer starts the built-in certificate authority (its root kept in cfg.CASecret) and the
// token authenticator, and returns an xDS server using them; it does not listen yet.
func NewXDSServer(ctx context.Context, clientset kubernetes.Interface, settings mesh.Settings, cfg ServerConfig) (*server.Server, error) {
	authority, err := ca.New(ctx, clientset, ca.Options{Secret: cfg.CASecret, TrustDomain: settings.TrustDomain, CertTTL: cfg.CertTTL})
	if err != nil {
		return nil, fmt.Errorf("starting the xDS certificate authority: %w", err)
	}
	authenticator, err := auth.New(clientset, auth.Options{Audiences: cfg.TokenAudiences})
	if err != nil {
		return nil, err
	}
	return server.New(server.Options{
		Address:       cfg.Address,
		Settings:      settings,
		Authenticator: authenticator,
		CA:            authority,
		TLS:           cfg.TLS,
		Registerer:    cfg.Registerer,
		Log:           cfg.Log,
	}), nil
}

// tlsFromSecret serves with the certificate in a kubernetes.io/tls Secret, read again in the
// background at most every secretRefresh when a handshake finds it stale, so a certificate renewed
// in place (cert-manager) is picked up without a restart and no handshake waits for the API
// server; when a read fails, the certificate read last is kept. It reads
// the API server directly: caching Secrets would mean watching every Secret of the cluster. The
// first read must succeed, so that a missing Secret shows in the SMIOperator's status.
func tlsFromSecret(ctx context.Context, reader client.Reader, key types.NamespacedName) (*tls.Config, error) {
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

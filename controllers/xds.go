package controllers

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/smi-operator/smi-operator/xds/auth"
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

// XDSOptions configure the operator's own xDS server.
type XDSOptions struct {
	// Address the ADS server listens on, such as ":15010".
	Address string
	// TLSCertDir holds tls.crt and tls.key to serve ADS over TLS; empty serves plain text.
	// grpc-go sends its ServiceAccount token (call credentials) over TLS only.
	TLSCertDir string
	// TokenAudiences are the audiences ServiceAccount tokens presented on ADS streams must be
	// bound to (projected tokens), so that a proxy never hands the operator its API token.
	TokenAudiences []string
	// CASecret keeps the root of the built-in certificate authority.
	CASecret types.NamespacedName
	// CertTTL is the lifetime of workload certificates; ca.DefaultCertTTL when zero.
	CertTTL time.Duration
}

// SetupXDSBackend starts the built-in CA, the token authenticator and the xDS server, and
// registers the reconcilers that feed it.
func SetupXDSBackend(ctx context.Context, mgr ctrl.Manager, opts Options, xo XDSOptions) error {
	clientset, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return err
	}
	authority, err := ca.New(ctx, clientset, ca.Options{Secret: xo.CASecret, TrustDomain: opts.Settings.TrustDomain, CertTTL: xo.CertTTL})
	if err != nil {
		return fmt.Errorf("starting the xDS certificate authority: %w", err)
	}
	authenticator, err := auth.New(clientset, auth.Options{Audiences: xo.TokenAudiences})
	if err != nil {
		return err
	}
	serverOpts := server.Options{
		Address:       xo.Address,
		Settings:      opts.Settings,
		Authenticator: authenticator,
		CA:            authority,
		Log:           ctrl.Log.WithName("xds"),
	}
	if xo.TLSCertDir != "" {
		cert, err := tls.LoadX509KeyPair(filepath.Join(xo.TLSCertDir, "tls.crt"), filepath.Join(xo.TLSCertDir, "tls.key"))
		if err != nil {
			return fmt.Errorf("loading the xDS serving certificate: %w", err)
		}
		serverOpts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return SetupXDS(ctx, mgr, opts, NewXDSServer(serverOpts))
}

package controllers

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/smi-operator/smi-operator/controllers/backends"
)

// XDSOptions configure the operator's own xDS server.
type XDSOptions struct {
	// Address the ADS server listens on, such as ":15010".
	Address string
	// TLSCertDir holds tls.crt and tls.key to serve ADS over TLS; empty serves a certificate the
	// built-in CA issues for ServiceName (and Address's host, when that is an address).
	TLSCertDir string
	// Plaintext serves ADS without TLS: tokens are then refused and no secret is served.
	Plaintext bool
	// ServiceName is the Service in front of the xDS server, in CASecret's namespace.
	ServiceName string
	// TokenAudiences are the audiences ServiceAccount tokens presented on ADS streams must be
	// bound to (projected tokens), so that a proxy never hands the operator its API token.
	TokenAudiences []string
	// CASecret keeps the root of the built-in certificate authority.
	CASecret types.NamespacedName
	// CertTTL is the lifetime of workload certificates; ca.DefaultCertTTL when zero.
	CertTTL time.Duration
	// Registerer receives the xDS server's metrics; the manager's registry when nil.
	Registerer prometheus.Registerer
}

// SetupXDSBackend starts the built-in CA, the token authenticator and the xDS server, and
// registers the reconcilers that feed it.
func SetupXDSBackend(ctx context.Context, mgr ctrl.Manager, opts Options, xo XDSOptions) error {
	clientset, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return err
	}
	cfg := backends.ServerConfig{
		Address:        xo.Address,
		TokenAudiences: xo.TokenAudiences,
		CASecret:       xo.CASecret,
		CertTTL:        xo.CertTTL,
		Plaintext:      xo.Plaintext,
		// Answering nobody until the reconcilers have fed it everything (SetupXDS's syncGate).
		HoldUntilSynced: true,
		Registerer:      cmp.Or[prometheus.Registerer](xo.Registerer, metrics.Registry),
		Log:             ctrl.Log.WithName("xds"),
	}
	host, _, err := net.SplitHostPort(xo.Address)
	if err != nil {
		return fmt.Errorf("--xds-address %q: %w", xo.Address, err)
	}
	cfg.ServingNames, cfg.ServingIPs = backends.ServingNames(xo.ServiceName, xo.CASecret.Namespace, opts.Settings.ClusterDomain, host)
	if xo.Plaintext && xo.TLSCertDir != "" {
		return errors.New("--xds-insecure-plaintext and --xds-tls-cert-dir exclude each other")
	}
	if xo.TLSCertDir != "" {
		// Watched, so that a certificate renewed in place (a mounted Secret) is served.
		watcher, err := certwatcher.New(filepath.Join(xo.TLSCertDir, "tls.crt"), filepath.Join(xo.TLSCertDir, "tls.key"))
		if err != nil {
			return fmt.Errorf("loading the xDS serving certificate: %w", err)
		}
		if err := mgr.Add(watcher); err != nil {
			return err
		}
		cfg.TLS = &tls.Config{GetCertificate: watcher.GetCertificate, MinVersion: tls.VersionTLS12}
	}
	xdsServer, err := backends.NewXDSServer(ctx, clientset, opts.Settings, cfg)
	if err != nil {
		return err
	}
	return SetupXDS(ctx, mgr, opts, xdsServer)
}

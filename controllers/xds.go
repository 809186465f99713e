package controllers

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	xdsbackend "github.com/smi-operator/smi-operator/controllers/backends/xds"
)

// SetupXDSBackend starts the built-in CA, the token authenticator and the xDS server configured
// as cfg (main.go's flags), and registers the reconcilers that feed it. Its metrics go to
// registerer, the manager's registry when nil.
func SetupXDSBackend(ctx context.Context, mgr ctrl.Manager, opts Options, cfg xdsbackend.Config, registerer prometheus.Registerer) error {
	clients, err := xdsbackend.NewClients(mgr.GetConfig())
	if err != nil {
		return err
	}
	with := xdsbackend.ServerWiring{
		// Answering nobody until the reconcilers have fed it everything (SetupXDS's syncGate).
		HoldUntilSynced: true,
		Registerer:      cmp.Or[prometheus.Registerer](registerer, metrics.Registry),
		Log:             ctrl.Log.WithName("xds"),
	}
	if cfg.Plaintext && cfg.TLSCertDir != "" {
		return errors.New("--xds-insecure-plaintext and --xds-tls-cert-dir exclude each other")
	}
	if cfg.TLSCertDir != "" {
		// Watched, so that a certificate renewed in place (a mounted Secret) is served.
		watcher, err := certwatcher.New(filepath.Join(cfg.TLSCertDir, "tls.crt"), filepath.Join(cfg.TLSCertDir, "tls.key"))
		if err != nil {
			return fmt.Errorf("loading the xDS serving certificate: %w", err)
		}
		if err := mgr.Add(watcher); err != nil {
			return err
		}
		with.TLS = &tls.Config{GetCertificate: watcher.GetCertificate, MinVersion: tls.VersionTLS12}
	}
	xdsServer, err := xdsbackend.NewServer(ctx, clients, opts.Settings, cfg, with)
	if err != nil {
		return err
	}
	return SetupXDS(ctx, mgr, opts, xdsServer)
}

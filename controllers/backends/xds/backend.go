package xds

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/backends"
	"github.com/smi-operator/smi-operator/controllers/namespace"
	"github.com/smi-operator/smi-operator/controllers/service"
	"github.com/smi-operator/smi-operator/controllers/smiobject"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/xds/server"
)

// BackendOptions configure the xDS backend the Switch runs: what an SMIOperator does not say of
// the xDS server.
type BackendOptions struct {
	// Host is the address the server listens on, with spec.xds.port; empty: every address.
	Host string
	// Base holds ServiceName, the Service in front of the server (in CASecret's namespace: the
	// built-in CA's serving certificate is issued for its DNS names, and Host when that is an
	// address), and CASecret, the Secret keeping the CA root, which is in the operator's
	// namespace like the spec's TLS Secret. The spec fills the rest (ConfigFrom).
	Base Config
	// Registerer receives the servers' metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Backend is the xDS backend the Switch runs: one xDS server at a time, replaced when its
// configuration changes, draining for the swap grace period when retired.
func Backend(opts BackendOptions) backends.Backend { return &backend{opts: opts} }

type backend struct {
	opts BackendOptions
	// endpointsWatched: the Service controller watches EndpointSlices (added once, when a server
	// first runs).
	endpointsWatched bool
	// clients reach the API server for the CA, the trust bundles and the token reviews.
	clients Clients
}

func (*backend) Name() v1alpha1.Backend { return v1alpha1.BackendXDS }

// Start builds a server for the spec and listens: everything that can fail on a bad setting
// (the TLS Secret, the CA) before the running server is stopped, so that it keeps serving then.
// The server answers no proxy until Activate: until it holds every object.
func (b *backend) Start(ctx context.Context, env backends.Env, spec v1alpha1.SMIOperatorSpec, settings mesh.Settings, stopRunning func()) (backends.Instance, error) {
	if !b.endpointsWatched {
		programming := predicate.NewPredicateFuncs(func(client.Object) bool { return env.Programming() })
		if err := service.WatchEndpointSlices(ctx, env.Manager, env.Controllers.Services, programming); err != nil {
			return nil, fmt.Errorf("watching EndpointSlices: %w", err)
		}
		b.endpointsWatched = true
	}
	if b.clients.API == nil {
		clients, err := NewClients(env.Manager.GetConfig())
		if err != nil {
			return nil, err
		}
		b.clients = clients
	}
	cfg := b.configFor(spec, settings)
	srv, err := b.newServer(ctx, env, cfg)
	if err != nil {
		return nil, fmt.Errorf("the xds backend cannot run: %w", err)
	}
	// One server at a time: it holds the port. A draining one is replaced too, since it missed
	// the updates of its drain.
	stopRunning()
	lis, err := net.Listen("tcp", cfg.xds.Address)
	if err != nil {
		return nil, fmt.Errorf("the xds backend cannot run: %w", err)
	}
	runCtx, cancel := context.WithCancel(env.RunContext)
	i := &instance{config: cfg, server: srv, cancel: cancel, done: make(chan struct{}), log: env.Log, configFor: b.configFor}
	go func() {
		defer close(i.done)
		if err := srv.Serve(runCtx, lis); err != nil && runCtx.Err() == nil {
			env.Log.Error(err, "the xDS server stopped serving; starting another")
			i.failed.Store(true)
			env.Wake()
		}
	}()
	env.Log.Info("the xds backend programs the SMI objects", "address", lis.Addr().String())
	return i, nil
}

// Clean has nothing to do: a server leaves nothing in the cluster.
func (*backend) Clean(context.Context, backends.Env) error { return nil }

// instanceConfig is everything a server is built from; a change starts another. (Not the swap
// grace period: editing it must not restart the server.)
type instanceConfig struct {
	settings mesh.Settings
	xds      Config
}

func (b *backend) configFor(spec v1alpha1.SMIOperatorSpec, settings mesh.Settings) instanceConfig {
	return instanceConfig{settings: settings, xds: ConfigFrom(spec, b.opts.Host, b.opts.Base)}
}

// newServer builds a server for cfg, so that a missing TLS Secret shows in the SMIOperator's
// status rather than in a log.
func (b *backend) newServer(ctx context.Context, env backends.Env, cfg instanceConfig) (*server.Server, error) {
	var serving *tls.Config
	if cfg.xds.TLSSecretName != "" {
		tlsConfig, err := TLSFromSecret(ctx, env.Manager.GetAPIReader(), types.NamespacedName{Namespace: cfg.xds.CASecret.Namespace, Name: cfg.xds.TLSSecretName})
		if err != nil {
			return nil, err
		}
		serving = tlsConfig
	}
	srv, err := NewServer(ctx, b.clients, cfg.settings, cfg.xds, ServerWiring{
		TLS: serving, HoldUntilSynced: true, Registerer: b.opts.Registerer, Log: env.Log,
	})
	if err != nil {
		return nil, err
	}
	// Proxies that begin or stop refusing an object's resources change its status
	// (Splits and Targets read the server's rejections).
	srv.OnRejections(env.Resync)
	return srv, nil
}

// instance is one running server.
type instance struct {
	config instanceConfig
	server *server.Server
	cancel context.CancelFunc
	done   chan struct{}
	log    logr.Logger
	// failed is set when the server stopped serving on its own.
	failed atomic.Bool
	// active is set once the server held everything and was told to answer proxies; one retired
	// before that has nothing to drain.
	active atomic.Bool
	// configFor builds the configuration Fits compares with.
	configFor func(v1alpha1.SMIOperatorSpec, mesh.Settings) instanceConfig
}

func (i *instance) Splits() smiobject.Backend[*hub.TrafficSplit]   { return Splits{Server: i.server} }
func (i *instance) Targets() smiobject.Backend[*hub.TrafficTarget] { return Targets{Server: i.server} }
func (i *instance) Policies() smiobject.Backend[*policyv1alpha1.TrafficPolicy] {
	return Policies{Server: i.server}
}
func (i *instance) Namespaces() namespace.Sink { return Targets{Server: i.server} }
func (i *instance) Services() service.Sink     { return service.OnServer(i.server) }

func (i *instance) Fits(spec v1alpha1.SMIOperatorSpec, settings mesh.Settings) bool {
	return !i.failed.Load() && reflect.DeepEqual(i.config, i.configFor(spec, settings))
}

// Activate has the server answer proxies (it held them until it had every object).
func (i *instance) Activate() {
	if !i.active.Swap(true) {
		i.server.Synced()
	}
}

// Retire: the server keeps serving its last configuration for the swap grace period, so that
// proxies still connected to it keep working while they move; one never active answered no
// proxy, so it has nothing to drain.
func (i *instance) Retire(spec v1alpha1.SMIOperatorSpec) time.Time {
	if !i.active.Load() {
		i.log.Info("the xds backend is retired before it ever answered a proxy: it stops now")
		return time.Time{}
	}
	until := time.Now().Add(spec.WithDefaults().XDS.SwapGracePeriod.Duration)
	i.log.Info("the xds backend is retired: it serves its last configuration until the grace period ends", "until", until)
	return until
}

func (i *instance) Failed() bool { return i.failed.Load() }

func (i *instance) Stop() {
	i.cancel()
	<-i.done
	i.log.Info("the xDS server stopped")
}

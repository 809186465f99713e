// Package server is the operator's own xDS control plane: an ADS server on go-control-plane that
// serves what the reconcilers feed it (xds.ServiceResources per Service, xds.SplitRoutes per
// TrafficSplit, access rules per TrafficTarget) to proxyless gRPC clients and servers and to
// Envoy sidecars.
//
// # Caches
//
// Resources everybody sees the same way live in go-control-plane LinearCaches shared by all
// clients: RouteConfigurations, Clusters and ClusterLoadAssignments. A LinearCache answers named
// requests (grpc-go always names what it wants), versions each resource on its own and wakes only
// the watches of what changed, so a weight change costs one RouteConfiguration and the watches on
// it, whatever the mesh size. Resources that depend on who asks — a gRPC server's listener (its
// name is only its listening address, its RBAC is its identity's), Envoy's inbound listener and
// its secrets — are resolved per workload identity by package scoped. A MuxCache routes each
// request by type URL.
//
// # Identity
//
// Nodes say what they are and who they run as in their metadata (MetadataProxy,
// MetadataNamespace, MetadataServiceAccount). With an Authenticator, a stream that presents a
// ServiceAccount token (gRPC metadata "authorization: Bearer <token>") is checked with
// TokenReview, and a node claiming any other identity on it is refused; secrets are only ever
// served on an authenticated stream, for its own identity.
package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/scoped"
)

// Options configure the server.
type Options struct {
	// Address to listen on, such as ":15010".
	Address string
	// TLS, when set, serves ADS over TLS; otherwise in plain text (inside the cluster network).
	TLS *tls.Config
	// Settings are the mesh settings the per-identity resources are built with.
	Settings mesh.Settings
	// Authenticator checks the ServiceAccount tokens streams present; nil accepts every stream
	// as unauthenticated, and secrets are then never served.
	Authenticator Authenticator
	// CA issues the certificates served over SDS; nil serves no secrets.
	CA CertificateAuthority
	// SecretRefresh is how often served certificates are checked for renewal (and the CA's root
	// for rotation); one minute when zero.
	SecretRefresh time.Duration
	// Registerer receives the server's metrics; nil registers none.
	Registerer prometheus.Registerer
	Log        logr.Logger
}

// Authenticator turns a bearer token into the identity it proves.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Identity, error)
}

// Server is the ADS server and its desired state.
type Server struct {
	opts    Options
	metrics *metrics
	streams *streams

	routes, grpcClusters, envoyClusters, endpoints *linear
	grpcListeners, envoyListeners, secrets         *scoped.Cache
	mux                                            *cache.MuxCache

	mu              sync.RWMutex
	counter         uint64
	services        map[k8stypes.NamespacedName]*serviceEntry
	clientListeners map[string]versioned
	defaultRoutes   map[string]*routev3.RouteConfiguration
	splitRoutes     map[string]map[mesh.ObjectRef]*routev3.RouteConfiguration
	splitNames      map[mesh.ObjectRef][]string
	// splits are the programmed splits by apex and source, and splitApex each source's apex.
	splits    map[k8stypes.NamespacedName]map[mesh.ObjectRef]*mesh.Split
	splitApex map[mesh.ObjectRef]k8stypes.NamespacedName
	// outboundVersion changes whenever a Service's Envoy outbound chains do.
	outboundVersion uint64
	access          map[string]map[mesh.ObjectRef][]mesh.AccessRule
	accessScopes    map[mesh.ObjectRef][]string
	accessVersion   map[string]uint64
	// notifyScopes and notifyAllScopes collect, under mu, what unlockAndNotify tells the scoped
	// caches once mu is released.
	notifyScopes         map[string]bool
	notifyAllScopes      bool
	notifyEnvoyListeners bool

	// outbound is the Envoy outbound listener, built when asked for at outboundVersion.
	outboundMu    sync.Mutex
	outbound      versioned
	outboundBuilt uint64
}

// New returns a server with nothing to serve yet; the reconcilers fill it.
func New(opts Options) *Server {
	s := &Server{
		opts:            opts,
		metrics:         newMetrics(opts.Registerer),
		routes:          newLinear(resourcev3.RouteType),
		grpcClusters:    newLinear(resourcev3.ClusterType),
		envoyClusters:   newLinear(resourcev3.ClusterType),
		endpoints:       newLinear(resourcev3.EndpointType),
		services:        map[k8stypes.NamespacedName]*serviceEntry{},
		splits:          map[k8stypes.NamespacedName]map[mesh.ObjectRef]*mesh.Split{},
		splitApex:       map[mesh.ObjectRef]k8stypes.NamespacedName{},
		clientListeners: map[string]versioned{},
		defaultRoutes:   map[string]*routev3.RouteConfiguration{},
		splitRoutes:     map[string]map[mesh.ObjectRef]*routev3.RouteConfiguration{},
		splitNames:      map[mesh.ObjectRef][]string{},
		access:          map[string]map[mesh.ObjectRef][]mesh.AccessRule{},
		accessScopes:    map[mesh.ObjectRef][]string{},
		accessVersion:   map[string]uint64{},
		notifyScopes:    map[string]bool{},
	}
	s.streams = newStreams(opts.Authenticator, s.metrics, opts.Log)
	s.grpcListeners = scoped.New(resourcev3.ListenerType, scopeOf, (*grpcListenerSource)(s))
	s.envoyListeners = scoped.New(resourcev3.ListenerType, scopeOf, (*envoyListenerSource)(s))
	s.secrets = scoped.New(resourcev3.SecretType, scopeOf, (*secretSource)(s))
	for _, c := range xds.PassthroughClusters() {
		s.envoyClusters.set(c.Name, c)
	}
	s.mux = &cache.MuxCache{
		// Listeners and clusters differ between the two kinds of client (Envoy's come with
		// original-destination chains and SDS, gRPC's with certificate providers); routes,
		// endpoints and secrets do not.
		Classify: func(req *cache.Request) string {
			typ := req.GetTypeUrl()
			if typ == resourcev3.ListenerType || typ == resourcev3.ClusterType {
				if info, err := parseNode(req.GetNode()); err == nil && info.proxy == ProxyEnvoy {
					return ProxyEnvoy + "/" + typ
				}
			}
			return typ
		},
		Caches: map[string]cache.Cache{
			resourcev3.ListenerType:                    s.grpcListeners,
			ProxyEnvoy + "/" + resourcev3.ListenerType: s.envoyListeners,
			resourcev3.RouteType:                       s.routes.cache,
			resourcev3.ClusterType:                     s.grpcClusters.cache,
			ProxyEnvoy + "/" + resourcev3.ClusterType:  s.envoyClusters.cache,
			resourcev3.EndpointType:                    s.endpoints.cache,
			resourcev3.SecretType:                      s.secrets,
		},
	}
	return s
}

// Start serves ADS on opts.Address until ctx ends; it is a controller-runtime Runnable.
func (s *Server) Start(ctx context.Context) error {
	lis, err := net.Listen("tcp", s.opts.Address)
	if err != nil {
		return fmt.Errorf("xDS server: %w", err)
	}
	return s.Serve(ctx, lis)
}

// Serve serves ADS on lis until ctx ends.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	opts := []grpc.ServerOption{
		// Proxies keep their streams for hours; notice dead ones, and let idle ones ping.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true}),
	}
	if s.opts.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.opts.TLS)))
	}
	srv := grpc.NewServer(opts...)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, serverv3.NewServer(ctx, s.mux, s.streams))
	s.opts.Log.Info("serving xDS", "address", lis.Addr().String(), "tls", s.opts.TLS != nil)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	go s.refreshSecrets(ctx)
	select {
	case <-ctx.Done():
		srv.GracefulStop()
		return nil
	case err := <-done:
		if errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return err
	}
}

// refreshSecrets re-evaluates the SDS watches periodically: resolving them renews the
// certificates that are due, which pushes them. The CA's root is rotated on the same clock.
func (s *Server) refreshSecrets(ctx context.Context) {
	if s.opts.CA == nil {
		return
	}
	every := s.opts.SecretRefresh
	if every <= 0 {
		every = time.Minute
	}
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if _, err := s.opts.CA.Rotate(ctx); err != nil {
				s.opts.Log.Error(err, "rotating the xDS CA root")
			}
			s.secrets.Notify()
		}
	}
}

// NeedLeaderElection is true: the reconcilers that fill the server run on the leader only, so
// only the leader has anything to serve; a proxy whose connection to another replica is refused
// retries and lands on the leader.
func (s *Server) NeedLeaderElection() bool { return true }

// grpcListenerSource resolves LDS names for proxyless gRPC nodes: client listeners are shared,
// server listeners are built for the asking node's identity.
type grpcListenerSource Server

func (src *grpcListenerSource) Resolve(scope, name string) (types.Resource, string, bool) {
	s := (*Server)(src)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if v, ok := s.clientListeners[name]; ok {
		return v.resource, v.version, true
	}
	if !strings.HasPrefix(name, xds.ServerListenerNamePrefix) {
		return nil, "", false
	}
	l, err := xds.ServerListener(name, s.rulesOf(scope), s.opts.Settings)
	if err != nil {
		// A malformed server listener name: the client gets no listener (grpc-go reports the
		// resource missing) and the operator's log says why.
		s.opts.Log.Info("cannot serve a gRPC server listener", "name", name, "scope", scope, "error", err.Error())
		return nil, "", false
	}
	// Its content is a function of the name, the identity's rules and the settings: the rules'
	// version versions it.
	return l, fmt.Sprintf("access-%d", s.accessVersion[scope]), true
}

func (src *grpcListenerSource) Wildcard(string) []string {
	s := (*Server)(src)
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.clientListeners))
	for name := range s.clientListeners {
		names = append(names, name)
	}
	return names
}

// envoyListenerSource serves Envoy sidecars their two listeners: the outbound one, shared, and
// the inbound one of their identity.
type envoyListenerSource Server

func (src *envoyListenerSource) Resolve(scope, name string) (types.Resource, string, bool) {
	s := (*Server)(src)
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch name {
	case xds.OutboundListenerName:
		return s.outboundListener()
	case xds.InboundListenerName:
		l, err := xds.InboundListener(s.rulesOf(scope), s.opts.Settings)
		if err != nil {
			s.opts.Log.Error(err, "cannot build an Envoy inbound listener", "scope", scope)
			return nil, "", false
		}
		return l, fmt.Sprintf("access-%d", s.accessVersion[scope]), true
	}
	return nil, "", false
}

func (src *envoyListenerSource) Wildcard(string) []string {
	return []string{xds.InboundListenerName, xds.OutboundListenerName}
}

// outboundListener builds the outbound listener from every Service's chains, once per change
// however many sidecars ask. The caller holds s.mu for reading.
func (s *Server) outboundListener() (types.Resource, string, bool) {
	s.outboundMu.Lock()
	defer s.outboundMu.Unlock()
	if s.outbound.resource == nil || s.outboundBuilt != s.outboundVersion {
		keys := slices.SortedFunc(maps.Keys(s.services), func(a, b k8stypes.NamespacedName) int {
			return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
		})
		var chains []*listenerv3.FilterChain
		for _, k := range keys {
			chains = append(chains, s.services[k].chains...)
		}
		s.outbound = versioned{resource: xds.OutboundListener(chains), version: fmt.Sprintf("outbound-%d", s.outboundVersion)}
		s.outboundBuilt = s.outboundVersion
	}
	return s.outbound.resource, s.outbound.version, true
}

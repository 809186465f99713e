// Package server is the operator's own xDS control plane: an ADS server on go-control-plane that
// serves what the reconcilers feed it (xds.ServiceResources per Service, xds.SplitRoutes per
// TrafficSplit, xds.ApplyPolicy per TrafficPolicy, access rules per TrafficTarget) to proxyless
// gRPC clients and servers and to Envoy sidecars: for a model, what xds.Translate and
// xds.TranslateEnvoy output.
//
// # Caches
//
// Every type is served by a cache of package scoped, which resolves each requested name when it
// answers: the server keeps the model of each Service (its ports and endpoints), splits, policies
// and access rules, and builds an xDS resource only when a client asks for it, at a version the
// store keeps. Memory thus follows what clients use: 10,000 Services nobody dials cost their
// model, not four xDS resources each. Caches index watches by name, versions are compared before
// anything is built, and only what changed is built and sent, so a weight change costs one
// RouteConfiguration and the watches on it, whatever the mesh size. Resources that depend on who
// asks — a gRPC server's listener (its name is only its listening address, its RBAC is its
// identity's), Envoy's inbound listener and its secrets — are resolved per workload identity.
// A MuxCache routes each request by type URL and, for listeners and clusters, by client kind.
// With Options.HoldUntilSynced the caches answer nobody until [Server.Synced]: the operator holds
// every new server until the reconcilers have fed it everything, so that a proxy reconnecting
// after a restart keeps its configuration rather than being answered from half the data.
//
// # Identity
//
// Nodes say what they are and who they run as in their metadata (MetadataProxy,
// MetadataNamespace, MetadataServiceAccount). With an Authenticator, a stream that presents a
// ServiceAccount token (gRPC metadata "authorization: Bearer <token>") is checked with
// TokenReview, and a node claiming any other identity on it is refused. Over TLS a node may claim
// an identity only on a stream whose token proves it (without an Authenticator, on none): a
// stream without a token naming one is refused, since metadata is a claim, never a principal,
// and an identity's listeners carry its RBAC rules. A stream acts for the node
// of its first request for its whole life: a later request naming another node or identity ends it
// with PermissionDenied, and every request reaches the caches with the stream's own node, so
// nothing per identity is ever looked up by what a later request claims.
//
// # Certificates
//
// The server serves no secrets and makes no workload keys. On the same port, with the same TLS and
// token reviews, it serves Istio's IstioCertificateService (istio.io/api security/v1alpha1,
// CreateCertificate): a pod agent (package internal/agent) generates its workload's key in the
// pod and sends a CSR with its ServiceAccount token; the server signs it with its CA
// (CertificateAuthority) for exactly the SPIFFE ID of the token's ServiceAccount, and refuses a
// CSR asking for anything else, a call without a valid token, and any call in plain text. The
// response holds the leaf and the root, never a key. The agent serves the certificate to Envoy
// over SDS on its Unix socket and writes it to files for proxyless gRPC; an ADS request for
// secrets is refused. Each caller (the pod a token is bound to, or the ServiceAccount of a token
// bound to none) has a token bucket of CSRs (Options.CSRBurst, then Options.CSRRate a second), and
// each namespace another (Options.CSRNamespaceBurst, CSRNamespaceRate): past either a CSR is
// refused ResourceExhausted, so that one workload cannot keep the CA signing, take its siblings'
// share, or have more signed by making more ServiceAccounts or pods.
//
// # Rejections
//
// A proxy that refuses (NACKs) a resource keeps its last good one; the server maps what accountable
// streams refuse back to the SMI objects that program it (Rejections, OnRejections), so that
// their status says so. Refused content is not sent again until it changes, the first response
// of a subscription included. Any proven workload can refuse and accept at will, so an object is
// named to OnRejections at most once per Options.RejectionReportInterval.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	securityv1alpha1 "istio.io/api/security/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/xds/auth"
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
	// Authenticator checks the ServiceAccount tokens streams and CSRs present; nil accepts every
	// stream as unauthenticated, and signs no CSR.
	Authenticator Authenticator
	// CA signs the CSRs of pod agents (IstioCertificateService); nil signs none.
	CA CertificateAuthority
	// RootRefresh is how often the CA's root is checked for rotation; one minute when zero.
	RootRefresh time.Duration
	// CSRRate and CSRBurst limit the CSRs signed per caller, a pod or the ServiceAccount of a token
	// bound to no pod: CSRBurst at once, then CSRRate a second (DefaultCSRRate and DefaultCSRBurst
	// when zero).
	CSRRate  float64
	CSRBurst int
	// CSRNamespaceRate and CSRNamespaceBurst limit them per namespace, whatever its callers
	// (DefaultCSRNamespaceRate and DefaultCSRNamespaceBurst when zero).
	CSRNamespaceRate  float64
	CSRNamespaceBurst int
	// TrustBundles, when set, publishes the CA's trust bundle in each namespace the server is told
	// of (the pod agents' anchor); the caller has it publish again when the bundle changes
	// (OnTrustBundleChanged).
	TrustBundles TrustBundles
	// HoldUntilSynced, when set, has the server answer no proxy until Synced is called: its feeder
	// calls Synced once it has given the server every Service, split and access rule there is. A
	// proxy reconnecting to a new server (after a settings change, or a restart of the operator)
	// would otherwise be answered from half the data, and in state-of-the-world xDS a listener or
	// cluster missing from a response is a deletion; unanswered, it keeps what it has.
	HoldUntilSynced bool
	// RejectionReportInterval is the least time between two OnRejections calls naming one SMI
	// object; DefaultRejectionReportInterval when zero, none when negative.
	RejectionReportInterval time.Duration
	// Registerer receives the server's metrics; nil registers none.
	Registerer prometheus.Registerer
	Log        logr.Logger
}

// TrustBundles publishes the CA's trust bundle where a namespace's workloads read it.
type TrustBundles interface {
	// SetNamespace publishes it in the namespace (kept until the namespace goes).
	SetNamespace(ctx context.Context, ns *corev1.Namespace) error
	// DeleteNamespace forgets a namespace that is gone or going.
	DeleteNamespace(name string)
}

// Authenticator turns a bearer token into the caller it proves.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (auth.Caller, error)
}

// tokenUnchecked answers a call whose token Authenticate could not check (err does not wrap
// auth.ErrUnauthenticated) and counts it in counter by reason: Unavailable, which clients retry,
// unless the caller went away. Only the API server's failure is logged (what: the call's kind):
// the reviews in flight at their bound, or the caller gone, are the caller's doing, and whoever
// floods the reviews would flood the log too.
func tokenUnchecked(ctx context.Context, err error, counter *prometheus.CounterVec, log logr.Logger, what string) error {
	switch {
	case errors.Is(err, auth.ErrTooManyPeerReviews):
		counter.WithLabelValues("peer-reviews-busy").Inc()
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, auth.ErrTooManyReviews):
		counter.WithLabelValues("reviews-busy").Inc()
		return status.Error(codes.Unavailable, err.Error())
	case ctx.Err() != nil:
		counter.WithLabelValues("cancelled").Inc()
		return status.FromContextError(ctx.Err()).Err()
	default:
		counter.WithLabelValues("review-failed").Inc()
		log.Error(err, "cannot review the token of "+what)
		return status.Error(codes.Unavailable, "cannot check the token now: "+err.Error())
	}
}

// Server is the ADS server and its desired state.
type Server struct {
	opts    Options
	metrics *metrics
	streams *streams

	grpcListeners, envoyListeners, grpcRoutes, envoyRoutes *scoped.Cache
	grpcClusters, envoyClusters, endpoints                 *scoped.Cache
	mux                                                    *cache.MuxCache
	sources                                                sources

	mu      sync.RWMutex
	counter uint64
	// services holds every Service; byListener and byCluster find one by the name of its
	// listeners and routes ("<fqdn>:<port>") or of its clusters and load assignments.
	services   map[k8stypes.NamespacedName]*serviceEntry
	byListener map[string]*serviceEntry
	byCluster  map[string]*serviceEntry
	// splitRoutes are the split route configurations by name and source, splitNames each
	// source's names; splits the programmed splits by apex and source, splitApex each source's.
	splitRoutes map[string]map[mesh.ObjectRef]splitRoute
	splitNames  map[mesh.ObjectRef][]string
	splits      map[k8stypes.NamespacedName]map[mesh.ObjectRef]*mesh.Split
	splitApex   map[mesh.ObjectRef]k8stypes.NamespacedName
	// splitResources are the resources each split programs (splitResources), splitsByResource
	// the splits programming each: which objects a proxy's refusal concerns (rejections.go).
	splitResources   map[mesh.ObjectRef][]resourceKey
	splitsByResource map[resourceKey]map[mesh.ObjectRef]bool
	// outboundVersion changes whenever a Service, split or policy the Envoy outbound listener is
	// built from does.
	outboundVersion uint64
	// policies are the TrafficPolicies by Service and source, policyService each source's
	// Service, policyVersion the version of what they program on each Service's routes and
	// clusters (none while no policy names it).
	policies      map[k8stypes.NamespacedName]map[mesh.ObjectRef]*mesh.Policy
	policyService map[mesh.ObjectRef]k8stypes.NamespacedName
	policyVersion map[k8stypes.NamespacedName]uint64
	// access holds the access rules by destination scope and source, accessScopes each
	// source's scopes, accessVersion each scope's version.
	access        map[string]map[mesh.ObjectRef][]mesh.AccessRule
	accessScopes  map[mesh.ObjectRef][]string
	accessVersion map[string]uint64
	// unenforced holds the namespaces where access is not enforced (SetNamespace).
	unenforced map[string]bool
	pending    pending
	// onRejections is told which SMI objects' Rejections changed (OnRejections), through
	// rejectionReports.
	onRejections     atomic.Pointer[func([]mesh.ObjectRef)]
	rejectionReports *spacedReports
	// csrLimits bounds the CSRs signed per caller and per namespace.
	csrLimits *csrLimits
	// onTrustBundleChanged is told the CA's trust bundle changed (OnTrustBundleChanged).
	onTrustBundleChanged atomic.Pointer[func()]
}

// New returns a server with nothing to serve yet; the reconcilers fill it.
func New(opts Options) *Server {
	s := &Server{
		opts:             opts,
		metrics:          newMetrics(opts.Registerer),
		services:         map[k8stypes.NamespacedName]*serviceEntry{},
		byListener:       map[string]*serviceEntry{},
		byCluster:        map[string]*serviceEntry{},
		splitRoutes:      map[string]map[mesh.ObjectRef]splitRoute{},
		splitNames:       map[mesh.ObjectRef][]string{},
		splits:           map[k8stypes.NamespacedName]map[mesh.ObjectRef]*mesh.Split{},
		splitApex:        map[mesh.ObjectRef]k8stypes.NamespacedName{},
		splitResources:   map[mesh.ObjectRef][]resourceKey{},
		splitsByResource: map[resourceKey]map[mesh.ObjectRef]bool{},
		policies:         map[k8stypes.NamespacedName]map[mesh.ObjectRef]*mesh.Policy{},
		policyService:    map[mesh.ObjectRef]k8stypes.NamespacedName{},
		policyVersion:    map[k8stypes.NamespacedName]uint64{},
		access:           map[string]map[mesh.ObjectRef][]mesh.AccessRule{},
		accessScopes:     map[mesh.ObjectRef][]string{},
		accessVersion:    map[string]uint64{},
		unenforced:       map[string]bool{},
		pending:          pending{scopes: map[string]bool{}},
	}
	s.rejectionReports = newSpacedReports(opts.RejectionReportInterval, func(refs []mesh.ObjectRef) {
		if fn := s.onRejections.Load(); fn != nil {
			(*fn)(refs)
		}
	})
	s.csrLimits = newCSRLimits(csrLimit{opts.CSRRate, opts.CSRBurst}, csrLimit{opts.CSRNamespaceRate, opts.CSRNamespaceBurst})
	s.streams = newStreams(opts.Authenticator, s.metrics, opts.Log)
	s.streams.rejectionsChanged = s.rejectionsChanged
	s.streams.believeClaims = opts.TLS == nil
	s.sources = sources{
		grpcListeners: &grpcListenerSource{s: s},
		grpcRoutes:    &routeSource{s: s}, envoyRoutes: &routeSource{s: s, envoy: true},
		grpcClusters: &clusterSource{s: s}, envoyClusters: &clusterSource{s: s, envoy: true},
		endpoints: &endpointSource{s: s},
	}
	s.grpcListeners = scoped.New(resourcev3.ListenerType, scopeOf, s.sources.grpcListeners)
	s.envoyListeners = scoped.New(resourcev3.ListenerType, scopeOf, &envoyListenerSource{s: s})
	s.grpcRoutes = scoped.New(resourcev3.RouteType, scopeOf, s.sources.grpcRoutes)
	s.envoyRoutes = scoped.New(resourcev3.RouteType, scopeOf, s.sources.envoyRoutes)
	s.grpcClusters = scoped.New(resourcev3.ClusterType, scopeOf, s.sources.grpcClusters)
	s.envoyClusters = scoped.New(resourcev3.ClusterType, scopeOf, s.sources.envoyClusters)
	s.endpoints = scoped.New(resourcev3.EndpointType, scopeOf, s.sources.endpoints)
	if opts.HoldUntilSynced {
		for _, c := range s.caches() {
			c.Hold()
		}
	}
	s.mux = &cache.MuxCache{
		// Listeners, routes and clusters differ between the two kinds of client (Envoy's come
		// with original-destination chains, HTTP methods and SDS, gRPC's with certificate
		// providers); endpoints do not. No cache serves secrets: the pod agent does.
		Classify: func(req *cache.Request) string {
			typ := req.GetTypeUrl()
			if typ == resourcev3.ListenerType || typ == resourcev3.RouteType || typ == resourcev3.ClusterType {
				if info, err := parseNode(req.GetNode()); err == nil && info.proxy == ProxyEnvoy {
					return ProxyEnvoy + "/" + typ
				}
			}
			return typ
		},
		Caches: map[string]cache.Cache{
			resourcev3.ListenerType:                    s.grpcListeners,
			ProxyEnvoy + "/" + resourcev3.ListenerType: s.envoyListeners,
			resourcev3.RouteType:                       s.grpcRoutes,
			ProxyEnvoy + "/" + resourcev3.RouteType:    s.envoyRoutes,
			resourcev3.ClusterType:                     s.grpcClusters,
			ProxyEnvoy + "/" + resourcev3.ClusterType:  s.envoyClusters,
			resourcev3.EndpointType:                    s.endpoints,
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
	securityv1alpha1.RegisterIstioCertificateServiceServer(srv, &certificateService{s: s})
	s.opts.Log.Info("serving xDS", "address", lis.Addr().String(), "tls", s.opts.TLS != nil)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	go s.rotateRoot(ctx)
	// The streams' rejections clear as they close: nothing to report of a server that stops,
	// whichever way it does.
	defer s.rejectionReports.stop()
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

// rotateRoot has the CA move its root's rotation on when it is due (or adopt another replica's),
// and tells OnTrustBundleChanged: once as the server starts serving (a replica just elected
// leader holds the root it loaded when its process started, which another replica may have
// rotated since, or whose Secret may be gone), then every RootRefresh.
func (s *Server) rotateRoot(ctx context.Context) {
	if s.opts.CA == nil {
		return
	}
	every := s.opts.RootRefresh
	if every <= 0 {
		every = time.Minute
	}
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		changed, err := s.opts.CA.Rotate(ctx)
		if err != nil && ctx.Err() == nil {
			s.opts.Log.Error(err, "rotating the xDS CA root")
		}
		if f := s.onTrustBundleChanged.Load(); changed && f != nil {
			(*f)()
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// caches are the server's caches, one per type URL and kind of client.
func (s *Server) caches() []*scoped.Cache {
	return []*scoped.Cache{s.grpcListeners, s.envoyListeners, s.grpcRoutes, s.envoyRoutes,
		s.grpcClusters, s.envoyClusters, s.endpoints}
}

// Synced says the server holds everything it is to serve: with Options.HoldUntilSynced, proxies are
// answered from now on (those waiting first). Calling it again does nothing.
func (s *Server) Synced() {
	for _, c := range s.caches() {
		c.Release()
	}
}

// NeedLeaderElection is true: the reconcilers that fill the server run on the leader only, so
// only the leader has anything to serve; a proxy whose connection to another replica is refused
// retries and lands on the leader.
func (s *Server) NeedLeaderElection() bool { return true }

// OnTrustBundleChanged has f called whenever the CA's trust bundle changes (a root added ahead of
// a rotation, promoted, or expired; by this server or another replica), once the new bundle is
// the CA's: its holders should publish it.
func (s *Server) OnTrustBundleChanged(f func()) { s.onTrustBundleChanged.Store(&f) }

// TrustBundlePEM is the CA's trust bundle (every root trusted, the current one first); nil without
// a CA.
func (s *Server) TrustBundlePEM() []byte {
	if s.opts.CA == nil {
		return nil
	}
	return s.opts.CA.TrustBundlePEM()
}

// TrustBundles is what publishes the trust bundle in namespaces; nil when nothing does.
func (s *Server) TrustBundles() TrustBundles { return s.opts.TrustBundles }

// Settings are the mesh settings the server builds its resources with.
func (s *Server) Settings() mesh.Settings { return s.opts.Settings }

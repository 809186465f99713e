package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/go-logr/logr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/smi-operator/smi-operator/xds/auth"
)

// streams authenticates ADS streams, checks what their nodes claim, and counts what happens on
// them. It is the go-control-plane server's callbacks.
type streams struct {
	serverv3.CallbackFuncs
	auth    Authenticator
	metrics *metrics
	log     logr.Logger
	// rejectionsChanged hears of the resources whose rejection by a stream's proxy appeared,
	// changed or cleared; it is called without mu.
	rejectionsChanged func(rejectionChange)
	// believeClaims is set on a plain-text server: no stream can prove an identity there, and
	// the operator was told to believe what nodes claim (accountable).
	believeClaims bool

	mu   sync.Mutex
	open map[int64]*streamState
	// rejecting are the open streams whose proxy refuses something: Server.Rejections, asked on
	// every reconcile of an SMI object, looks at these, not at every stream.
	rejecting map[int64]*streamState
}

type streamState struct {
	// authenticated is the identity the stream's token proved, if it presented one.
	authenticated *Identity
	// node is the node of the stream's first request, and info what it claims: the stream acts
	// for that node, and only for it, until it ends.
	node *corev3.Node
	info *nodeInfo
	// tls is true when the stream's connection is TLS: the only kind a token or a secret travels on.
	tls bool
	// sent are the responses not yet answered, by type URL; rejected the resources the proxy
	// refused, with its error (rejections.go). Both under streams.mu.
	sent     map[string][]sentResponse
	rejected map[resourceKey]string
}

func newStreams(auth Authenticator, m *metrics, log logr.Logger) *streams {
	return &streams{auth: auth, metrics: m, log: log, open: map[int64]*streamState{}, rejecting: map[int64]*streamState{}}
}

// OnDeltaStreamOpen refuses incremental (delta) xDS: the server's caches answer
// state-of-the-world requests only, and a delta request would reach a cache that cannot classify
// it. Anyone reaching the port can open one, token or not.
func (s *streams) OnDeltaStreamOpen(context.Context, int64, string) error {
	s.metrics.rejected.WithLabelValues("delta").Inc()
	return status.Error(codes.Unimplemented, "this xDS server speaks state-of-the-world ADS only, not delta (incremental) xDS")
}

// OnStreamOpen authenticates the stream when it presents a token; a token that does not check
// out ends the stream, a stream without one stays unauthenticated (and, over TLS, may claim no
// identity: OnStreamRequest). A token on a connection that is not TLS ends the stream too: it
// was readable on the way, so it proves nothing.
func (s *streams) OnStreamOpen(ctx context.Context, id int64, _ string) error {
	state := &streamState{}
	if p, ok := peer.FromContext(ctx); ok {
		_, state.tls = p.AuthInfo.(credentials.TLSInfo)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get("authorization")) > 0 && s.auth != nil {
		if !state.tls {
			s.metrics.rejected.WithLabelValues("token-over-plaintext").Inc()
			s.log.Info("refused an xDS stream presenting a token in plain text")
			return status.Error(codes.Unauthenticated, "ServiceAccount tokens are accepted over TLS only: "+
				"connect to the xDS server with TLS (and treat the token sent in plain text as disclosed)")
		}
		token, err := auth.TokenFromContext(ctx)
		if err != nil {
			s.metrics.rejected.WithLabelValues("malformed-token").Inc()
			return status.Error(codes.Unauthenticated, err.Error())
		}
		caller, err := s.auth.Authenticate(ctx, token)
		if err != nil && !errors.Is(err, auth.ErrUnauthenticated) {
			return tokenUnchecked(ctx, err, s.metrics.rejected, s.log, "an xDS stream")
		}
		if err != nil {
			s.metrics.rejected.WithLabelValues("unauthenticated").Inc()
			s.log.Info("refused an xDS stream", "reason", err.Error())
			return status.Error(codes.Unauthenticated, err.Error())
		}
		state.authenticated = &caller.Identity
	}
	s.mu.Lock()
	s.open[id] = state
	s.mu.Unlock()
	return nil
}

// OnStreamClosed forgets the stream, and with it what its proxy refused: a proxy that is gone
// holds nothing, and one that reconnects asks afresh.
func (s *streams) OnStreamClosed(id int64, _ *corev3.Node) {
	s.mu.Lock()
	state := s.open[id]
	delete(s.open, id)
	delete(s.rejecting, id)
	s.mu.Unlock()
	if state != nil && state.info != nil {
		s.metrics.connected.WithLabelValues(state.info.proxy).Dec()
		if len(state.rejected) > 0 {
			s.rejectionsChanged(rejectionChange{identity: state.info.identity, keys: slices.Collect(maps.Keys(state.rejected))})
		}
	}
}

// OnStreamRequest binds the stream to the node of its first request (checked against the
// stream's token), ends the stream when a later request names another node, refuses requests for
// secrets (the pod agent serves them), and counts ACKs and NACKs (logging each NACK with the
// node and the error: the proxy keeps its last good configuration, and this is where an operator
// finds out why).
//
// go-control-plane adopts the node of every request that carries one, and the caches key the
// per-identity resources (secrets, a gRPC server's listener, Envoy's inbound listener) by the
// request's node. So every request must be held to the stream's own node, and the request the
// caches see carries that node, whatever the client sent.
func (s *streams) OnStreamRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	s.mu.Lock()
	state := s.open[id]
	s.mu.Unlock()
	if state == nil {
		return status.Error(codes.Internal, "request on an unknown stream")
	}
	if state.node == nil {
		info, err := parseNode(req.GetNode())
		if err != nil {
			s.metrics.rejected.WithLabelValues("bad-node").Inc()
			return status.Error(codes.InvalidArgument, err.Error())
		}
		// Node metadata is a claim, never a principal: where a token can prove an identity, an
		// identity is served only to the stream whose token proved it.
		if state.authenticated == nil && !s.believeClaims && info.identity != (Identity{}) {
			s.metrics.rejected.WithLabelValues("identity-unproven").Inc()
			s.log.Info("refused an xDS stream claiming an identity without a token", "node", req.GetNode().GetId(),
				"claimed", describe(info.identity))
			if s.auth == nil {
				return status.Errorf(codes.Unauthenticated, "node %q claims %s, which this server can take from no one: it checks no "+
					"tokens, so it serves no identity's own resources; claim no identity", req.GetNode().GetId(), describe(info.identity))
			}
			return status.Errorf(codes.Unauthenticated, "node %q claims %s without a token proving it: send the ServiceAccount's "+
				"token (\"authorization: Bearer\"; grpc-go sends it with the bootstrap's call_creds jwt_token_file when "+
				"GRPC_EXPERIMENTAL_XDS_BOOTSTRAP_CALL_CREDS=true), or claim no identity",
				req.GetNode().GetId(), describe(info.identity))
		}
		if state.authenticated != nil && *state.authenticated != info.identity {
			s.metrics.rejected.WithLabelValues("identity-mismatch").Inc()
			s.log.Info("refused an xDS stream claiming another identity", "node", req.GetNode().GetId(),
				"claimed", describe(info.identity), "authenticated", describe(*state.authenticated))
			return status.Errorf(codes.PermissionDenied, "node %q claims %s but its token is for %s",
				req.GetNode().GetId(), describe(info.identity), describe(*state.authenticated))
		}
		state.node = &corev3.Node{}
		if n := req.GetNode(); n != nil {
			state.node = proto.Clone(n).(*corev3.Node)
		}
		state.info = &info
		s.metrics.connected.WithLabelValues(info.proxy).Inc()
	} else if err := sameNode(state, req.GetNode()); err != nil {
		s.metrics.rejected.WithLabelValues("node-changed").Inc()
		s.log.Info("ended an xDS stream whose request named another node", "node", state.node.GetId(),
			"identity", describe(state.info.identity), "reason", err.Error())
		return status.Errorf(codes.PermissionDenied, "a stream acts for the node of its first request (%q, %s) only: %v",
			state.node.GetId(), describe(state.info.identity), err)
	}
	req.Node = state.node
	if req.GetTypeUrl() == resourcev3.SecretType {
		s.metrics.rejected.WithLabelValues("secrets").Inc()
		return status.Error(codes.Unimplemented, "the xDS server serves no secrets: a workload's key is made in its pod, "+
			"and its pod agent serves the certificate (SDS on its Unix socket, cluster sds-grpc)")
	}
	typ := shortType(req.GetTypeUrl())
	switch {
	case req.GetResponseNonce() == "":
		// A new subscription, not a reply to a response.
	case req.GetErrorDetail() != nil:
		s.metrics.nacks.WithLabelValues(typ).Inc()
		s.log.Info("a proxy rejected configuration; it keeps its last good one", "node", req.GetNode().GetId(),
			"identity", describe(state.info.identity), "type", typ, "version", req.GetVersionInfo(), "error", boundedDetail(req.GetErrorDetail().GetMessage()),
			"reportedOnSMIObjects", s.accountable(state))
	default:
		s.metrics.acks.WithLabelValues(typ).Inc()
	}
	if !s.accountable(state) {
		return nil
	}
	changed, reworded := s.reply(id, state, req)
	if len(changed) > 0 || len(reworded) > 0 {
		s.rejectionsChanged(rejectionChange{identity: state.info.identity, keys: changed, reworded: reworded})
	}
	return nil
}

// reply books a request of an accountable stream (streamState.reply) under s.mu, released
// however reply ends: every stream's callbacks take it.
func (s *streams) reply(id int64, state *streamState, req *discoveryv3.DiscoveryRequest) (changed, reworded []resourceKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed, reworded = state.reply(req)
	if len(state.rejected) > 0 {
		s.rejecting[id] = state
	} else {
		delete(s.rejecting, id)
	}
	return changed, reworded
}

// accountable says whether what the stream's proxy refuses is reported on SMI objects (and so
// whether the server keeps track of it): only when its token proved its identity, or on a
// plain-text server, where every claim is believed. A stream that proved nothing could otherwise
// mark any split, or any identity's TrafficTargets, rejected; its NACKs are still logged and
// counted.
func (s *streams) accountable(state *streamState) bool {
	return state.authenticated != nil || s.believeClaims
}

// sameNode says why node is not the stream's own: another id, proxy kind or identity. go-control-plane
// hands the stream's last node to requests that carry none, so those are the stream's own.
func sameNode(state *streamState, node *corev3.Node) error {
	if node == state.node {
		return nil
	}
	info, err := parseNode(node)
	switch {
	case err != nil:
		return err
	case node.GetId() != state.node.GetId():
		return fmt.Errorf("a request names node %q", node.GetId())
	case info != *state.info:
		return fmt.Errorf("a request claims %s as a %s proxy", describe(info.identity), info.proxy)
	}
	return nil
}

// OnStreamResponse counts pushes and remembers what each carried, for the proxy's reply.
func (s *streams) OnStreamResponse(_ context.Context, id int64, req *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	s.metrics.pushes.WithLabelValues(shortType(req.GetTypeUrl())).Inc()
	s.mu.Lock()
	state := s.open[id]
	s.mu.Unlock()
	if state == nil || !s.accountable(state) {
		return
	}
	// Read outside the lock every request and reconcile takes; the stream's state stays put.
	r, ok := sentResponseOf(resp)
	if !ok {
		return
	}
	s.mu.Lock()
	state.recordResponse(resp.GetTypeUrl(), r)
	s.mu.Unlock()
}

// shortType is the last part of a type URL the server serves ("envoy.config.listener.v3.Listener"
// → "Listener"), for metric labels; "other" for any other: the type URL is the client's, and a
// label per made-up type would let any client grow the metrics without bound.
func shortType(typeURL string) string {
	switch typeURL {
	case resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.SecretType:
		return typeURL[strings.LastIndex(typeURL, ".")+1:]
	}
	return "other"
}

package agent

import (
	"context"
	"errors"
	"io"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// adsProxy forwards each of Envoy's ADS streams to the operator, over TLS verified with the
// trust bundle, with the pod's ServiceAccount token read for that stream: Envoy's bootstrap
// cannot hold a token that kubelet rotates, and Envoy never sees it. What Envoy sends is
// forwarded as is: the operator checks the node's claim against the token.
type adsProxy struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	a *Agent
}

func (p *adsProxy) StreamAggregatedResources(down discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	token, err := p.a.token()
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	_, roots, err := p.a.trustBundle()
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	conn, err := p.a.dial(roots)
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	defer conn.Close()
	// A new outgoing context: nothing of what Envoy sent the agent (its metadata) goes upstream
	// but its requests.
	ctx, cancel := context.WithCancel(down.Context())
	defer cancel()
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs("authorization", "Bearer "+token))
	up, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	sendErr := make(chan error, 1)
	go func() {
		for {
			req, err := down.Recv()
			if errors.Is(err, io.EOF) {
				_ = up.CloseSend()
				return
			}
			if err != nil {
				sendErr <- err
				return
			}
			if err := up.Send(req); err != nil {
				// The upstream stream ended: Recv below says why.
				return
			}
		}
	}()
	for {
		resp, err := up.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			// The operator's status (PermissionDenied, Unauthenticated, …) reaches Envoy as is.
			return err
		}
		if err := down.Send(resp); err != nil {
			return err
		}
		select {
		case err := <-sendErr:
			return err
		default:
		}
	}
}

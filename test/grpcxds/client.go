package grpcxds

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/xds"
)

// Dial makes a client channel to xds:///target (target may carry the "xds:///" already, e.g.
// "svc.ns.svc.cluster.local:80"), with an xDS client of its own configured by bootstrap: channels
// with different node IDs, metadata or certificates coexist in one process. Its transport
// credentials are xDS client credentials: TLS as the Cluster's UpstreamTlsContext says, plaintext
// when the Cluster has no transport socket. The channel connects lazily, on the first RPC; a bad
// bootstrap shows up there too. Close it when done.
func Dial(target string, bootstrap []byte, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	resolver, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		return nil, err
	}
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(target, "xds:") {
		target = "xds:///" + target
	}
	opts = append([]grpc.DialOption{grpc.WithResolvers(resolver), grpc.WithTransportCredentials(creds)}, opts...)
	return grpc.NewClient(target, opts...)
}

// Reply is what a backend answered.
type Reply struct {
	Backend string // its name
	Addr    string // its listening address
	// ClientIdentity is the first URI SAN of the certificate the client presented, as the backend
	// verified it; "" without mTLS.
	ClientIdentity string
}

// Call makes one TestService.UnaryCall. Metadata to send goes in ctx
// (metadata.AppendToOutgoingContext).
func Call(ctx context.Context, conn grpc.ClientConnInterface, opts ...grpc.CallOption) (Reply, error) {
	resp, err := testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{}, opts...)
	if err != nil {
		return Reply{}, err
	}
	if resp.GetServerId() == "" {
		return Reply{}, errNoReply
	}
	return Reply{Backend: resp.GetServerId(), Addr: resp.GetHostname(), ClientIdentity: resp.GetUsername()}, nil
}

// WaitFor calls Call until check accepts a result (returns nil), pausing between tries, and
// returns nil then; when ctx ends first, it returns check's last complaint. Use it after changing
// xDS resources: clients and servers apply them asynchronously.
func WaitFor(ctx context.Context, conn grpc.ClientConnInterface, check func(Reply, error) error, opts ...grpc.CallOption) error {
	for {
		callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		reply, err := Call(callCtx, conn, opts...)
		cancel()
		complaint := check(reply, err)
		if complaint == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last try: %w", ctx.Err(), complaint)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// FromBackend is a WaitFor check: the call succeeded and name answered.
func FromBackend(name string) func(Reply, error) error {
	return func(r Reply, err error) error {
		switch {
		case err != nil:
			return err
		case r.Backend != name:
			return fmt.Errorf("%s answered, want %s", r.Backend, name)
		}
		return nil
	}
}

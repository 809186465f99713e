package grpcxds

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/xds"
)

// Backend is a gRPC server answering TestService.UnaryCall with its own name.
type Backend struct {
	// Name is what UnaryCall answers in ServerId.
	Name string
	// Addr is the address it listens on, "ip:port" (the port chosen when asked for 0).
	Addr string

	stop func()
	done chan struct{} // closed when Serve returns

	mu      sync.Mutex
	mode    connectivity.ServingMode
	modeErr error
	modeCh  chan struct{} // closed and replaced on every serving mode change
}

// StartBackend starts a plain gRPC server named name on addr ("ip:port"; port 0 picks one).
func StartBackend(name, addr string, opts ...grpc.ServerOption) (*Backend, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	b := newBackend(name, lis)
	b.mode = connectivity.ServingModeServing
	s := grpc.NewServer(opts...)
	testpb.RegisterTestServiceServer(s, &testService{backend: b})
	b.stop = s.Stop
	go func() { defer close(b.done); _ = s.Serve(lis) }()
	return b, nil
}

// StartXDSBackend starts an xDS-enabled gRPC server named name on addr ("ip:port"; port 0 picks
// one) with its own xDS client, configured by bootstrap. It asks the management server for the
// Listener ServerListenerName(b.Addr) and serves only once it has a valid one (WaitServing);
// until then, and whenever it has none, it accepts connections and closes them. Its credentials
// are xDS server credentials: TLS as the Listener's DownstreamTlsContext says, plaintext when the
// filter chain has no transport socket.
func StartXDSBackend(name, addr string, bootstrap []byte, opts ...grpc.ServerOption) (*Backend, error) {
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	b := newBackend(name, lis)
	b.mode = connectivity.ServingModeStarting
	opts = append([]grpc.ServerOption{
		grpc.Creds(creds),
		xds.BootstrapContentsForTesting(bootstrap),
		xds.ServingModeCallback(func(_ net.Addr, args xds.ServingModeChangeArgs) { b.setMode(args.Mode, args.Err) }),
	}, opts...)
	s, err := xds.NewGRPCServer(opts...)
	if err != nil {
		lis.Close()
		return nil, err
	}
	testpb.RegisterTestServiceServer(s, &testService{backend: b})
	b.stop = s.Stop
	go func() { defer close(b.done); _ = s.Serve(lis) }()
	return b, nil
}

func newBackend(name string, lis net.Listener) *Backend {
	return &Backend{Name: name, Addr: lis.Addr().String(), done: make(chan struct{}), modeCh: make(chan struct{})}
}

// Stop stops the server at once, closing every connection, and waits for it to be gone.
func (b *Backend) Stop() {
	b.stop()
	<-b.done
}

// Mode is the serving mode: always serving for a plain backend; for an xDS backend, what the last
// Listener update made it, with the reason when not serving.
func (b *Backend) Mode() (connectivity.ServingMode, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mode, b.modeErr
}

// WaitServing waits until the backend serves; the error says why it did not in time.
func (b *Backend) WaitServing(ctx context.Context) error {
	return b.WaitMode(ctx, connectivity.ServingModeServing)
}

// WaitMode waits until the backend's serving mode is want (e.g. not serving, after its Listener
// went away); the error says what it was instead, and why, when ctx ended first.
func (b *Backend) WaitMode(ctx context.Context, want connectivity.ServingMode) error {
	for {
		b.mu.Lock()
		mode, modeErr, changed := b.mode, b.modeErr, b.modeCh
		b.mu.Unlock()
		if mode == want {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if modeErr != nil {
				return fmt.Errorf("backend %s on %s is %v, not %v: %w (%w)", b.Name, b.Addr, mode, want, modeErr, ctx.Err())
			}
			return fmt.Errorf("backend %s on %s is %v, not %v: %w", b.Name, b.Addr, mode, want, ctx.Err())
		}
	}
}

func (b *Backend) setMode(mode connectivity.ServingMode, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mode, b.modeErr = mode, err
	close(b.modeCh)
	b.modeCh = make(chan struct{})
}

type testService struct {
	testpb.UnimplementedTestServiceServer
	backend *Backend
}

func (s *testService) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{ServerId: s.backend.Name, Hostname: s.backend.Addr, Username: peerIdentity(ctx)}, nil
}

// peerIdentity is the first URI SAN of the peer's verified certificate, "" without one.
func peerIdentity(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return ""
	}
	if uris := info.State.PeerCertificates[0].URIs; len(uris) > 0 {
		return uris[0].String()
	}
	return ""
}

// errNoReply is for a reply without a server name: not one of our backends.
var errNoReply = errors.New("the reply names no backend")

package grpcxds

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"fmt"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/smi-operator/smi-operator/xds/auth"
)

// Responses records every message a client receives on the connections dialled with its
// DialOptions (unary replies and stream messages): what a server sent it, to check afterwards.
type Responses struct {
	mu   sync.Mutex
	msgs []proto.Message
}

func (r *Responses) record(m any) {
	if p, ok := m.(proto.Message); ok {
		r.mu.Lock()
		r.msgs = append(r.msgs, proto.Clone(p))
		r.mu.Unlock()
	}
}

// DialOptions are the interceptors that record.
func (r *Responses) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			err := invoker(ctx, method, req, reply, cc, opts...)
			if err == nil {
				r.record(reply)
			}
			return err
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			s, err := streamer(ctx, desc, cc, method, opts...)
			if err != nil {
				return nil, err
			}
			return &recordingStream{ClientStream: s, r: r}, nil
		}),
	}
}

type recordingStream struct {
	grpc.ClientStream
	r *Responses
}

func (s *recordingStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil {
		s.r.record(m)
	}
	return err
}

// Len is how many messages were recorded.
func (r *Responses) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// CarryingKeys names (by type) the recorded messages that carry a private key: a PEM "PRIVATE
// KEY" block of any key, or the PKCS #8 DER or the private scalar of one of keys.
func (r *Responses) CarryingKeys(keys ...*ecdsa.PrivateKey) ([]string, error) {
	var ders [][]byte
	for _, k := range keys {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		ders = append(ders, der, k.D.Bytes())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var found []string
	for _, m := range r.msgs {
		wire, err := proto.Marshal(m)
		if err != nil {
			return nil, err
		}
		carries := bytes.Contains(wire, []byte("PRIVATE KEY"))
		for _, d := range ders {
			carries = carries || bytes.Contains(wire, d)
		}
		if carries {
			found = append(found, fmt.Sprintf("%T", m))
		}
	}
	return found, nil
}

// Tokens is an xDS server Authenticator that knows a fixed set of tokens, each bound to no pod,
// for tests without an API server.
type Tokens map[string]auth.Identity

func (t Tokens) Authenticate(_ context.Context, token string) (auth.Caller, error) {
	id, ok := t[token]
	if !ok {
		return auth.Caller{}, errUnknownToken
	}
	return auth.Caller{Identity: id}, nil
}

var errUnknownToken = fmt.Errorf("%w: unknown token", auth.ErrUnauthenticated)

// Callers is an xDS server Authenticator that knows a fixed set of tokens and whom they prove (a
// pod-bound token's pod too), for tests without an API server.
type Callers map[string]auth.Caller

func (c Callers) Authenticate(_ context.Context, token string) (auth.Caller, error) {
	if caller, ok := c[token]; ok {
		return caller, nil
	}
	return auth.Caller{}, errUnknownToken
}

// ServeLoopback serves srv (an xDS server) on a loopback port until the test ends, and returns
// its address.
func ServeLoopback(t testing.TB, srv interface {
	Serve(context.Context, net.Listener) error
}) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, lis) }()
	t.Cleanup(func() { cancel(); <-done })
	return lis.Addr().String()
}

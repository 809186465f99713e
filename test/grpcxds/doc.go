// Package grpcxds drives grpc-go's own xDS client and server against an xDS control plane, for
// end-to-end tests.
//
// Why: no Envoy binary can run on our machines, so the real data plane in tests is proxyless gRPC
// (google.golang.org/grpc/xds). This package holds what every such test needs and would otherwise
// re-derive from grpc-go's source: the bootstrap (Bootstrap, the product's), a client channel with its own
// xDS client and bootstrap (Dial; several with different identities coexist in one process),
// backends that answer with their own name, plain or xDS-enabled (StartBackend,
// StartXDSBackend), and a statistical check of how RPCs spread over backends (Distribution,
// CheckShares).
//
// The backends serve grpc.testing.TestService (from google.golang.org/grpc/interop/grpc_testing,
// so nothing is generated here): UnaryCall answers with the backend's name in ServerId, its
// listening address in Hostname and, over mTLS, the client certificate's first URI SAN in
// Username.
package grpcxds

import "github.com/smi-operator/smi-operator/xds/bootstrap"

// The bootstrap the tests' clients and servers start from is the product's (package
// xds/bootstrap, which the pod agent writes for proxyless workloads): the tests run what
// workloads run.
type (
	Bootstrap = bootstrap.GRPC
	PEMFiles  = bootstrap.PEMFiles
)

// ServerListenerTemplate names the Listener an xDS-enabled gRPC server asks for.
const ServerListenerTemplate = bootstrap.ServerListenerTemplate

// ServerListenerName is the Listener resource name a server listening on addr ("ip:port") asks for.
func ServerListenerName(addr string) string { return bootstrap.ServerListenerName(addr) }

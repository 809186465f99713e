package server

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/smi-operator/smi-operator/xds/auth"
)

// Node metadata keys a client's bootstrap sets (node.metadata), and their values.
const (
	// MetadataProxy says what kind of client the node is: ProxyGRPC (the default when absent)
	// or ProxyEnvoy.
	MetadataProxy = "smi-operator.io/proxy"
	// MetadataNamespace and MetadataServiceAccount name the workload identity the node runs as.
	// They pick the per-identity resources (gRPC server listeners, Envoy inbound listener); an
	// authenticated stream must claim the identity its token proves.
	MetadataNamespace      = "smi-operator.io/namespace"
	MetadataServiceAccount = "smi-operator.io/service-account"

	ProxyGRPC  = "grpc"
	ProxyEnvoy = "envoy"
)

// Identity is a workload identity, a Kubernetes ServiceAccount.
type Identity = auth.Identity

// scopeKey is the key of the identity's per-identity resources in the scoped caches; "" when the
// node names no identity.
func scopeKey(i Identity) string {
	if i == (Identity{}) {
		return ""
	}
	return i.String()
}

// describe names an identity in messages.
func describe(i Identity) string {
	if i == (Identity{}) {
		return "no identity"
	}
	return "ServiceAccount " + i.String()
}

// nodeInfo is what the server reads from a node.
type nodeInfo struct {
	proxy    string
	identity Identity
}

// parseNode reads the node's metadata; a node that names half an identity, an identity no
// Kubernetes ServiceAccount could have, or an unknown proxy kind, is refused rather than guessed
// at.
func parseNode(node *corev3.Node) (nodeInfo, error) {
	fields := node.GetMetadata().GetFields()
	info := nodeInfo{
		proxy: fields[MetadataProxy].GetStringValue(),
		identity: Identity{
			Namespace:      fields[MetadataNamespace].GetStringValue(),
			ServiceAccount: fields[MetadataServiceAccount].GetStringValue(),
		},
	}
	if info.proxy == "" {
		info.proxy = ProxyGRPC
	}
	if info.proxy != ProxyGRPC && info.proxy != ProxyEnvoy {
		return info, fmt.Errorf("node %q: metadata %s is %q, want %q or %q", node.GetId(), MetadataProxy, info.proxy, ProxyGRPC, ProxyEnvoy)
	}
	if (info.identity.Namespace == "") != (info.identity.ServiceAccount == "") {
		return info, fmt.Errorf("node %q: metadata %s and %s must be set together", node.GetId(), MetadataNamespace, MetadataServiceAccount)
	}
	// Names Kubernetes could have, and nothing else: on a plain-text server the claim is
	// believed, and SMI objects' status names it (Rejection). Not echoed: the text is the client's.
	if info.identity != (Identity{}) && !info.identity.Valid() {
		return info, fmt.Errorf("node %q: metadata %s and %s are not a namespace and a ServiceAccount name (RFC 1123)",
			node.GetId(), MetadataNamespace, MetadataServiceAccount)
	}
	return info, nil
}

// scopeOf is the scoped caches' ScopeFunc.
func scopeOf(node *corev3.Node) (string, error) {
	info, err := parseNode(node)
	return scopeKey(info.identity), err
}

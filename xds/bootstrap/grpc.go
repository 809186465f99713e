package bootstrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ServerListenerTemplate names the Listener an xDS-enabled gRPC server asks for; %s is its
// listening address, "ip:port" (grpc-go's server_listener_resource_name_template).
const ServerListenerTemplate = "grpc/server?xds.resource.listening_address=%s"

// ServerListenerName is the Listener resource name a server listening on addr ("ip:port") asks
// for with ServerListenerTemplate. The Listener's own address must equal addr too, or the server
// refuses it ("address … in Listener update does not match listening address").
func ServerListenerName(addr string) string {
	return strings.Replace(ServerListenerTemplate, "%s", addr, 1)
}

// PEMFiles are PEM file paths: an identity (certificate and private key) and/or roots of trust.
type PEMFiles struct {
	CertificateFile   string
	PrivateKeyFile    string
	CACertificateFile string
}

// GRPC builds a proxyless gRPC client's or server's xDS bootstrap JSON (gRFC A27 and followers; as
// parsed by grpc-go v1.84 internal/xds/bootstrap), the file GRPC_XDS_BOOTSTRAP names. The zero
// value of every optional field leaves it out.
type GRPC struct {
	// ServerURI is the xDS management server, a gRPC target such as "10.200.0.1:15010".
	ServerURI string
	// ServerFeatures default to ["xds_v3"]. grpc-go speaks only v3 and ignores it, other gRPC
	// languages' older releases required it. Features grpc-go knows: "ignore_resource_deletion"
	// (keep a deleted Listener or Cluster, gRFC A53) and "trusted_xds_server" (gRFC A81).
	ServerFeatures []string
	// ServerTLS, when set, makes the channel credentials "tls" with these files (gRFC A65): the CA
	// verifies the management server's certificate against ServerURI's host (so an IP needs an
	// IP SAN); a certificate and key make it mTLS. Unset: "insecure".
	ServerTLS *PEMFiles
	// JWTTokenFile adds call_creds [{type: jwt_token_file}] (gRFC A97): every request on the ADS
	// stream carries "authorization: Bearer <file contents>". grpc-go v1.84 honours it only when
	// the process started with GRPC_EXPERIMENTAL_XDS_BOOTSTRAP_CALL_CREDS=true (read once, at
	// init), the channel is TLS (ServerTLS set: the credentials refuse an insecure transport) and
	// the file holds a three-part JWT whose payload has an "exp" in the future (it is not verified
	// otherwise). Without the variable the field is silently ignored.
	JWTTokenFile string

	// NodeID is node.id; the management server tells clients apart by it.
	NodeID string
	// NodeCluster is node.cluster (optional).
	NodeCluster string
	// NodeMetadata is node.metadata: any JSON value per key (a protobuf Struct).
	NodeMetadata map[string]any

	// CertificateProviders are file_watcher certificate provider instances by instance name, the
	// names xDS resources refer to in certificate_provider_instance (both the identity and the
	// roots can come from one instance).
	CertificateProviders map[string]PEMFiles
	// CertificateRefresh is how often file_watcher re-reads the files (grpc-go's default: 10m).
	CertificateRefresh time.Duration

	// ServerListenerTemplate defaults to the package's ServerListenerTemplate.
	ServerListenerTemplate string
}

// JSON returns the bootstrap document.
func (b GRPC) JSON() ([]byte, error) {
	if b.ServerURI == "" {
		return nil, errors.New("bootstrap: ServerURI is required")
	}
	if b.NodeID == "" {
		return nil, errors.New("bootstrap: NodeID is required")
	}
	type creds struct {
		Type   string `json:"type"`
		Config any    `json:"config,omitempty"`
	}
	type xdsServer struct {
		ServerURI      string   `json:"server_uri"`
		ChannelCreds   []creds  `json:"channel_creds"`
		CallCreds      []creds  `json:"call_creds,omitempty"`
		ServerFeatures []string `json:"server_features,omitempty"`
	}
	type node struct {
		ID       string         `json:"id"`
		Cluster  string         `json:"cluster,omitempty"`
		Metadata map[string]any `json:"metadata,omitempty"`
	}
	type provider struct {
		PluginName string         `json:"plugin_name"`
		Config     map[string]any `json:"config"`
	}
	server := xdsServer{
		ServerURI:      b.ServerURI,
		ChannelCreds:   []creds{{Type: "insecure"}},
		ServerFeatures: b.ServerFeatures,
	}
	if server.ServerFeatures == nil {
		server.ServerFeatures = []string{"xds_v3"}
	}
	if b.ServerTLS != nil {
		server.ChannelCreds = []creds{{Type: "tls", Config: b.ServerTLS.config(0)}}
	}
	if b.JWTTokenFile != "" {
		server.CallCreds = []creds{{Type: "jwt_token_file", Config: map[string]string{"jwt_token_file": b.JWTTokenFile}}}
	}
	doc := struct {
		XDSServers           []xdsServer         `json:"xds_servers"`
		Node                 node                `json:"node"`
		CertificateProviders map[string]provider `json:"certificate_providers,omitempty"`
		ServerListener       string              `json:"server_listener_resource_name_template"`
	}{
		XDSServers:     []xdsServer{server},
		Node:           node{ID: b.NodeID, Cluster: b.NodeCluster, Metadata: b.NodeMetadata},
		ServerListener: b.ServerListenerTemplate,
	}
	if doc.ServerListener == "" {
		doc.ServerListener = ServerListenerTemplate
	}
	if len(b.CertificateProviders) > 0 {
		doc.CertificateProviders = map[string]provider{}
		for name, files := range b.CertificateProviders {
			if files.CertificateFile == "" && files.CACertificateFile == "" {
				return nil, fmt.Errorf("bootstrap: certificate provider %q needs a certificate or a CA file", name)
			}
			doc.CertificateProviders[name] = provider{PluginName: "file_watcher", Config: files.config(b.CertificateRefresh)}
		}
	}
	return json.MarshalIndent(doc, "", "  ")
}

// MustJSON is JSON for tests: it panics on an incomplete bootstrap.
func (b GRPC) MustJSON() []byte {
	out, err := b.JSON()
	if err != nil {
		panic(err)
	}
	return out
}

func (f PEMFiles) config(refresh time.Duration) map[string]any {
	cfg := map[string]any{}
	if f.CertificateFile != "" {
		cfg["certificate_file"] = f.CertificateFile
	}
	if f.PrivateKeyFile != "" {
		cfg["private_key_file"] = f.PrivateKeyFile
	}
	if f.CACertificateFile != "" {
		cfg["ca_certificate_file"] = f.CACertificateFile
	}
	if refresh > 0 {
		// A google.protobuf.Duration in JSON: seconds with an "s".
		cfg["refresh_interval"] = fmt.Sprintf("%.3fs", refresh.Seconds())
	}
	return cfg
}

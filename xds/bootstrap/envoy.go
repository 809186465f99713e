package bootstrap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	xdstranslator "github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/server"
	"github.com/smi-operator/smi-operator/xds/validate"
)

// Envoy says what an Envoy sidecar's bootstrap holds besides the pod layout: who the sidecar is.
type Envoy struct {
	// NodeID is node.id, unique per proxy: "<pod>.<namespace>".
	NodeID string
	// Namespace and ServiceAccount are the identity the node claims in its metadata; the xDS server
	// believes them only as far as the agent's token proves them.
	Namespace, ServiceAccount string
}

// Names of the bootstrap's static clusters.
const (
	// AgentCluster is the pod agent (AgentSocket), which Envoy gets its ADS stream (proxied to the
	// operator) from.
	AgentCluster = "smi-agent"
	// adminCluster is Envoy's own admin API, which the stats and readiness listeners expose a
	// path each of.
	adminCluster = "smi-envoy-admin"
)

// Build returns the Envoy bootstrap:
//   - ADS (listeners and clusters, and through them routes, endpoints and secrets) on one gRPC
//     stream to the pod agent's socket, which proxies it to the operator's xDS Service over TLS,
//     verified against the mesh's trust bundle, with the pod's current ServiceAccount token (Envoy
//     cannot renew a token it was given at start: the agent reads it anew for every stream);
//   - SDS (the workload certificate, whose key never leaves the pod) from the agent's socket too,
//     the static cluster the xDS translator's SDS config sources name;
//   - admin on 127.0.0.1:EnvoyAdminPort only; Prometheus stats on EnvoyStatsPort
//     (/stats/prometheus) and readiness on EnvoyReadinessPort (/healthz/ready), each one path of the
//     admin API and nothing else.
func (e Envoy) Build() (*bootstrapv3.Bootstrap, error) {
	if e.NodeID == "" || e.Namespace == "" || e.ServiceAccount == "" {
		return nil, errors.New("envoy bootstrap: NodeID, Namespace and ServiceAccount are required")
	}
	metadata, err := structpb.NewStruct(map[string]any{
		server.MetadataProxy:          server.ProxyEnvoy,
		server.MetadataNamespace:      e.Namespace,
		server.MetadataServiceAccount: e.ServiceAccount,
	})
	if err != nil {
		return nil, err
	}
	ads := &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
	stats, err := adminPathListener("smi-stats", EnvoyStatsPort, "/stats/prometheus", "")
	if err != nil {
		return nil, err
	}
	readiness, err := adminPathListener("smi-readiness", EnvoyReadinessPort, "/healthz/ready", "/ready")
	if err != nil {
		return nil, err
	}
	http2, err := anypb.New(&upstreamhttpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}},
	})
	if err != nil {
		return nil, err
	}
	agent := func(name string) *clusterv3.Cluster {
		return &clusterv3.Cluster{
			Name:                          name,
			ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			ConnectTimeout:                durationpb.New(time.Second),
			TypedExtensionProtocolOptions: map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": http2},
			LoadAssignment:                loadAssignment(name, pipe(AgentSocket)),
		}
	}
	b := &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: e.NodeID, Cluster: e.ServiceAccount + "." + e.Namespace, Metadata: metadata},
		Admin: &bootstrapv3.Admin{
			Address: socketAddress("127.0.0.1", EnvoyAdminPort),
		},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             corev3.ApiConfigSource_GRPC,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{
					TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: AgentCluster}},
				}},
				SetNodeOnFirstMessageOnly: true,
			},
			LdsConfig: ads,
			CdsConfig: ads,
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Listeners: []*listenerv3.Listener{stats, readiness},
			Clusters: []*clusterv3.Cluster{
				agent(AgentCluster),
				agent(xdstranslator.SDSCluster),
				{
					Name:                 adminCluster,
					ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
					ConnectTimeout:       durationpb.New(time.Second),
					LoadAssignment:       loadAssignment(adminCluster, socketAddress("127.0.0.1", EnvoyAdminPort)),
				},
			},
		},
	}
	if err := validate.Deep(b); err != nil {
		return nil, fmt.Errorf("envoy bootstrap: %w", err)
	}
	return b, nil
}

// JSON is the bootstrap as Envoy reads it from a file (`envoy -c`).
func (e Envoy) JSON() ([]byte, error) {
	b, err := e.Build()
	if err != nil {
		return nil, err
	}
	raw, err := protojson.Marshal(b)
	if err != nil {
		return nil, err
	}
	// protojson varies its whitespace on purpose; the file is read by people and golden tests too.
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// adminPathListener listens on port (every address: kubelet and Prometheus reach it from outside
// the pod) and serves path alone, from the admin API's path rewrite (or path itself).
func adminPathListener(name string, port uint32, path, rewrite string) (*listenerv3.Listener, error) {
	action := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: adminCluster}}
	if rewrite != "" {
		action.PrefixRewrite = rewrite
	}
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix: name,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: name,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    name,
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: path}},
					Action: &routev3.Route_Route{Route: action},
				}},
			}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: wellknown.Router, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	})
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddress("0.0.0.0", port),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{Name: wellknown.HTTPConnectionManager, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}},
		}},
	}, nil
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func pipe(path string) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: path}}}
}

func loadAssignment(cluster string, addr *corev3.Address) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: cluster,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: addr}},
			}},
		}},
	}
}

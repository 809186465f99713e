package xds

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	corev1 "k8s.io/api/core/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// ReasonUnsupportedProtocol: a split apex port is not TCP; proxyless gRPC clients cannot use it,
// so nothing is generated for it.
const ReasonUnsupportedProtocol = "UnsupportedProtocol"

// Output is the desired set of xDS resources for proxyless gRPC clients. Each list is sorted by
// resource name, and every RouteConfiguration, Cluster and ClusterLoadAssignment is named by a
// Listener or a route, so the four lists form one consistent snapshot.
type Output struct {
	Listeners              []*listenerv3.Listener
	RouteConfigurations    []*routev3.RouteConfiguration
	Clusters               []*clusterv3.Cluster
	ClusterLoadAssignments []*endpointv3.ClusterLoadAssignment
}

// Translate turns the mesh model and the endpoints of its Services into xDS resources for
// proxyless gRPC clients, and reports what it cannot express. The model's Service FQDNs already
// carry the cluster domain, so no settings are needed yet.
func Translate(model mesh.Model, endpoints Endpoints) (Output, []mesh.Diagnostic) {
	t := &translator{endpoints: endpoints, clusters: map[ServiceKey]string{}}
	splits := map[serviceName]*mesh.Split{}
	for i := range model.Splits {
		s := &model.Splits[i]
		splits[nameOf(s.Apex)] = s
	}
	for _, svc := range referencedServices(model) {
		split := splits[nameOf(svc)]
		for _, port := range svc.Ports {
			if port.Protocol != corev1.ProtocolTCP {
				if split != nil {
					t.diags.Warn(split.Source, smi.ConditionProgrammed, ReasonUnsupportedProtocol,
						"port %d of apex %s is %s; proxyless gRPC clients only use TCP, so it is not split", port.Port, svc.Name, port.Protocol)
				}
				continue
			}
			var routes []*routev3.Route
			if split != nil {
				routes = t.splitRoutes(split, port.Port)
			} else {
				routes = []*routev3.Route{catchAll("default", t.clusterAction(svc, port.Port))}
			}
			name := ListenerName(svc, port.Port)
			t.out.Listeners = append(t.out.Listeners, apiListener(name))
			t.out.RouteConfigurations = append(t.out.RouteConfigurations, &routev3.RouteConfiguration{
				Name: name,
				VirtualHosts: []*routev3.VirtualHost{{
					Name:    name,
					Domains: []string{name},
					Routes:  routes,
				}},
			})
		}
	}
	t.finishClusters()
	// Services were visited by namespace, name and port, but caches and clients key resources by
	// name, and "a-b.ns" sorts before "a.ns": sort by what they key on.
	sortByName(t.out.Listeners)
	sortByName(t.out.RouteConfigurations)
	return t.out, t.diags.Sorted()
}

// ListenerName is the name a proxyless gRPC client dials ("xds:///<name>") for a Service port; it
// names the Listener and its RouteConfiguration.
func ListenerName(svc mesh.Service, port int32) string {
	return svc.FQDN + ":" + strconv.Itoa(int(port))
}

// ClusterName names the Cluster and ClusterLoadAssignment of a Service port, as Istio does.
func ClusterName(svc mesh.Service, port int32) string {
	return "outbound|" + strconv.Itoa(int(port)) + "||" + svc.FQDN
}

// translator accumulates the resources of one Translate call.
type translator struct {
	endpoints Endpoints
	// clusters holds every Service port a route sends traffic to, with its cluster name.
	clusters map[ServiceKey]string
	out      Output
	diags    mesh.Diagnostics
}

type serviceName struct{ namespace, name string }

func nameOf(svc mesh.Service) serviceName {
	return serviceName{svc.Namespace, svc.Name}
}

// referencedServices returns each split's apex and backends once, sorted by namespace and name.
func referencedServices(model mesh.Model) []mesh.Service {
	byName := map[serviceName]mesh.Service{}
	for _, s := range model.Splits {
		byName[nameOf(s.Apex)] = s.Apex
		for _, b := range s.Backends {
			byName[nameOf(b.Service)] = b.Service
		}
	}
	out := make([]mesh.Service, 0, len(byName))
	for _, svc := range byName {
		out = append(out, svc)
	}
	slices.SortFunc(out, func(a, b mesh.Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// clusterAction routes to the cluster of one Service port and records that the cluster is needed.
func (t *translator) clusterAction(svc mesh.Service, port int32) *routev3.RouteAction {
	return &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: t.cluster(svc, port)}}
}

func (t *translator) cluster(svc mesh.Service, port int32) string {
	name := ClusterName(svc, port)
	t.clusters[ServiceKey{Namespace: svc.Namespace, Name: svc.Name, Port: port}] = name
	return name
}

// finishClusters writes a Cluster and a ClusterLoadAssignment for every cluster a route names.
func (t *translator) finishClusters() {
	for key, name := range t.clusters {
		t.out.Clusters = append(t.out.Clusters, edsCluster(name))
		t.out.ClusterLoadAssignments = append(t.out.ClusterLoadAssignments, loadAssignment(name, t.endpoints[key]))
	}
	sortByName(t.out.Clusters)
	slices.SortFunc(t.out.ClusterLoadAssignments, func(a, b *endpointv3.ClusterLoadAssignment) int {
		return cmp.Compare(a.ClusterName, b.ClusterName)
	})
}

// ads is where every dynamic resource comes from: the one ADS stream a gRPC client opens.
func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

// apiListener is the client-side listener grpc-go resolves a target name to. grpc-go only accepts
// RDS from ADS (or inline routes) and requires the router as the last HTTP filter.
func apiListener(name string) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    ads(),
			RouteConfigName: name,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
		}},
	}
	return &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(hcm)},
	}
}

func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig:   ads(),
			ServiceName: name,
		},
		LbPolicy: clusterv3.Cluster_ROUND_ROBIN,
	}
}

// loadAssignment groups the ready endpoints by zone, one locality each; see the package comment
// for the weights. BuildEndpoints already normalized them; doing it again costs little and makes
// hand-built Endpoints safe too.
func loadAssignment(name string, endpoints []Endpoint) *endpointv3.ClusterLoadAssignment {
	ready := normalize(endpoints)
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	for _, e := range ready {
		n := len(cla.Endpoints)
		if n == 0 || cla.Endpoints[n-1].Locality.Zone != e.Zone {
			cla.Endpoints = append(cla.Endpoints, &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{Zone: e.Zone}})
			n++
		}
		loc := cla.Endpoints[n-1]
		loc.LbEndpoints = append(loc.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address:       e.Address,
					PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: e.Port},
				}}},
			}},
			HealthStatus: corev3.HealthStatus_HEALTHY,
		})
		loc.LoadBalancingWeight = wrapperspb.UInt32(uint32(len(loc.LbEndpoints)))
	}
	return cla
}

// mustAny packs a message this package built; that cannot fail short of a broken protobuf runtime.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("xds: packing %T: %v", m, err))
	}
	return a
}

type named interface{ GetName() string }

func sortByName[T named](list []T) {
	slices.SortFunc(list, func(a, b T) int { return cmp.Compare(a.GetName(), b.GetName()) })
}

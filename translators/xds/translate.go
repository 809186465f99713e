package xds

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	corev1 "k8s.io/api/core/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Output is the desired set of xDS resources for proxyless gRPC clients. Each list is sorted by
// resource name, and every RouteConfiguration, Cluster and ClusterLoadAssignment is named by a
// Listener or a route, so the four lists form one consistent snapshot.
type Output struct {
	Listeners              []*listenerv3.Listener
	RouteConfigurations    []*routev3.RouteConfiguration
	Clusters               []*clusterv3.Cluster
	ClusterLoadAssignments []*endpointv3.ClusterLoadAssignment
}

// Resources returns o by xDS type, as go-control-plane's snapshot caches take resources.
func (o Output) Resources() map[resourcev3.Type][]types.Resource {
	res := map[resourcev3.Type][]types.Resource{}
	for _, r := range o.Listeners {
		res[resourcev3.ListenerType] = append(res[resourcev3.ListenerType], r)
	}
	for _, r := range o.RouteConfigurations {
		res[resourcev3.RouteType] = append(res[resourcev3.RouteType], r)
	}
	for _, r := range o.Clusters {
		res[resourcev3.ClusterType] = append(res[resourcev3.ClusterType], r)
	}
	for _, r := range o.ClusterLoadAssignments {
		res[resourcev3.EndpointType] = append(res[resourcev3.EndpointType], r)
	}
	return res
}

// Translate turns the mesh model, the cluster's Services and their endpoints into xDS resources for
// proxyless gRPC clients, and reports what it cannot express, of access rules
// ([AccessDiagnostics]) and policies ([PolicyDiagnostics]) too. It is [ServiceResources] for every
// Service, with [SplitRoutes] in place of the default routes of every split apex and
// [ApplyPolicy] of every policy: what the xDS server assembles piece by piece, in one call, for
// tests and the offline translate command. Server Listeners are per identity and asked
// for by name: see [ServerListener].
func Translate(model mesh.Model, services []mesh.Service, endpoints Endpoints, settings mesh.Settings) (Output, []mesh.Diagnostic) {
	return translate(model, services, endpoints, settings, true)
}

// translate is Translate, with the split routes of proxyless clients or of Envoy sidecars.
func translate(model mesh.Model, services []mesh.Service, endpoints Endpoints, settings mesh.Settings, proxyless bool) (Output, []mesh.Diagnostic) {
	splitRoutes, diags := allSplitRoutes(model, proxyless)
	diags = append(diags, AccessDiagnostics(model.AccessRules)...)
	for i := range model.Policies {
		diags = append(diags, PolicyDiagnostics(&model.Policies[i])...)
	}
	var out Output
	for _, svc := range services {
		res := ServiceResources(svc, endpoints, settings)
		for i, rc := range res.RouteConfigurations {
			if override, ok := splitRoutes[rc.Name]; ok {
				res.RouteConfigurations[i] = override
			}
		}
		for _, p := range policiesOf(&model, svc) {
			ApplyPolicy(&res, p, proxyless)
		}
		out.Listeners = append(out.Listeners, res.Listeners...)
		out.RouteConfigurations = append(out.RouteConfigurations, res.RouteConfigurations...)
		out.Clusters = append(out.Clusters, res.Clusters...)
		out.ClusterLoadAssignments = append(out.ClusterLoadAssignments, res.ClusterLoadAssignments...)
	}
	sortOutput(&out)
	return out, mesh.SortDiagnostics(diags)
}

// allSplitRoutes returns the RouteConfigurations of every split apex port, by name, unweighted
// splits' included: they send everything to the apex, and keep their backends on standby.
func allSplitRoutes(model mesh.Model, proxyless bool) (map[string]*routev3.RouteConfiguration, []mesh.Diagnostic) {
	byName := map[string]*routev3.RouteConfiguration{}
	var diags []mesh.Diagnostic
	for _, split := range slices.Concat(model.Splits, model.UnweightedSplits) {
		routes, grpcRoutes, d := SplitRoutes(split)
		if proxyless {
			routes = grpcRoutes
		}
		diags = append(diags, d...)
		for _, rc := range routes {
			byName[rc.Name] = rc
		}
	}
	return byName, diags
}

// sortOutput sorts every list by resource name: caches and clients key resources by name, and
// "a-b.ns" sorts before "a.ns".
func sortOutput(out *Output) {
	sortByName(out.Listeners)
	sortByName(out.RouteConfigurations)
	sortByName(out.Clusters)
	slices.SortFunc(out.ClusterLoadAssignments, func(a, b *endpointv3.ClusterLoadAssignment) int {
		return cmp.Compare(a.ClusterName, b.ClusterName)
	})
}

// ServiceResources returns what one Service contributes on its own to proxyless gRPC clients, for
// each TCP port: the Listener a client dials, a RouteConfiguration sending everything to the
// Service's own cluster, the Cluster (with mutual TLS when settings ask for it, accepting the
// server identities of its endpoints: [ServerIdentities]) and its ClusterLoadAssignment from the
// ready endpoints. A split apex's RouteConfigurations are then
// replaced by [SplitRoutes]; the other three never depend on a split, so a weight change touches
// one RouteConfiguration and an endpoint change one assignment. RouteConfigurations and
// ClusterLoadAssignments are the same for Envoy sidecars (see [EnvoyClusters] for their Clusters).
func ServiceResources(svc mesh.Service, endpoints Endpoints, settings mesh.Settings) Output {
	var out Output
	for _, port := range svc.Ports {
		if port.Protocol != corev1.ProtocolTCP {
			continue
		}
		name := ListenerName(svc, port.Port)
		cluster := ClusterName(svc, port.Port)
		out.Listeners = append(out.Listeners, apiListener(name))
		out.RouteConfigurations = append(out.RouteConfigurations,
			routeConfiguration(svc, port.Port, []*routev3.Route{catchAll("default", clusterAction(cluster))}))
		key := ServiceKey{Namespace: svc.Namespace, Name: svc.Name, Port: port.Port}
		c := edsCluster(cluster)
		if mtls(settings) {
			c.TransportSocket = upstreamTLS(providerContext(ServerIdentities(svc.Namespace, endpoints[key], settings)))
		}
		out.Clusters = append(out.Clusters, c)
		out.ClusterLoadAssignments = append(out.ClusterLoadAssignments, loadAssignment(cluster, endpoints[key]))
	}
	return out
}

// SplitRoutes returns the RouteConfigurations of a split's apex, one per TCP port, named like the
// apex's own so that they replace its default routes: for Envoy sidecars, and for proxyless gRPC
// clients, whose routes differ only by methods (grpc-go never sees ":method"; a match admitting
// POST, what every gRPC call is, drops its method condition, a match excluding POST is left out
// and reported). The clusters they name are the backends' own, which [ServiceResources] of each
// backend provides.
func SplitRoutes(split mesh.Split) (envoy, proxyless []*routev3.RouteConfiguration, diags []mesh.Diagnostic) {
	var d mesh.Diagnostics
	for _, port := range split.Apex.Ports {
		if port.Protocol != corev1.ProtocolTCP {
			d.Warn(split.Source, smi.ConditionProgrammed, mesh.ReasonUnsupportedProtocol,
				"port %d of apex %s is %s; proxyless gRPC clients only use TCP, so it is not split", port.Port, split.Apex.Name, port.Protocol)
			continue
		}
		envoy = append(envoy, routeConfiguration(split.Apex, port.Port, splitRoutes(&split, port.Port, false)))
		proxyless = append(proxyless, routeConfiguration(split.Apex, port.Port, splitRoutes(&split, port.Port, true)))
	}
	if len(envoy) == 0 {
		// An apex without any port never gets here (mesh.Build refuses it); one whose ports are
		// all UDP or SCTP leaves this backend nothing to split, as it does Istio.
		d.Fail(split.Source, smi.ConditionProgrammed, mesh.ReasonNoRoutablePorts,
			"the apex %q has no TCP port, the only traffic the xDS backend routes; nothing is split", split.Apex.Name)
	}
	// Only an apex a gRPC client can call needs telling: one whose every TCP port is declared
	// HTTP/1.1 (appProtocol or name "http") carries no gRPC, which needs HTTP/2.
	grpcCallable := false
	for _, port := range split.Apex.Ports {
		grpcCallable = grpcCallable || (port.Protocol == corev1.ProtocolTCP && protocolOf(port) != protocolHTTP)
	}
	for _, m := range split.Matches {
		if _, ok := forProxyless(m); !ok && grpcCallable {
			d.Warn(split.Source, smi.ConditionProgrammed, ReasonMethodsExcludePOST,
				"match %s allows only %s; gRPC calls are POST, so proxyless gRPC clients never take it (Envoy sidecars do)",
				matchName(m), strings.Join(m.Methods, ", "))
		}
	}
	return envoy, proxyless, d.Sorted()
}

// ReasonMethodsExcludePOST: an HTTPRouteGroup match of a split names methods without POST, so no
// gRPC call can match it on a proxyless client.
const ReasonMethodsExcludePOST = "MethodsExcludePOST"

// ListenerName is the name a proxyless gRPC client dials ("xds:///<name>") for a Service port; it
// names the Listener and its RouteConfiguration.
func ListenerName(svc mesh.Service, port int32) string {
	return svc.FQDN + ":" + strconv.Itoa(int(port))
}

// ClusterName names the Cluster and ClusterLoadAssignment of a Service port, as Istio does.
func ClusterName(svc mesh.Service, port int32) string {
	return "outbound|" + strconv.Itoa(int(port)) + "||" + svc.FQDN
}

// routeConfiguration is named after the Service port ([ListenerName]) and has one VirtualHost
// for every name of it: what proxyless clients dial first, then what Envoy sidecars see in the
// Host or :authority header (see hostDomains).
func routeConfiguration(svc mesh.Service, port int32, routes []*routev3.Route) *routev3.RouteConfiguration {
	name := ListenerName(svc, port)
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: hostDomains(svc, port),
			Routes:  routes,
		}},
	}
}

// hostDomains are the names a request to a Service port may carry as its host: the name
// proxyless clients dial (first), then the short name, name.namespace, name.namespace.svc, the
// FQDN and each ClusterIP, each without and with the port. grpc-go picks the virtual host by the
// dialed name alone, so the others cost it nothing; Envoy needs them because the RouteConfiguration
// is chosen by the connection's destination, and Envoy then still matches the Host header.
func hostDomains(svc mesh.Service, port int32) []string {
	p := ":" + strconv.Itoa(int(port))
	hosts := []string{svc.Name, svc.Name + "." + svc.Namespace, svc.Name + "." + svc.Namespace + ".svc", svc.FQDN}
	for _, ip := range svc.ClusterIPs {
		if addr, err := netip.ParseAddr(ip); err == nil && addr.Is6() {
			ip = "[" + ip + "]" // as a Host header writes an IPv6 address
		}
		hosts = append(hosts, ip)
	}
	out := []string{ListenerName(svc, port)}
	for _, h := range hosts {
		out = append(out, h, h+p)
	}
	// Envoy rejects a RouteConfiguration listing a domain twice.
	seen := map[string]bool{}
	return slices.DeleteFunc(out, func(d string) bool {
		dup := seen[d]
		seen[d] = true
		return dup
	})
}

// clusterAction routes to one cluster.
func clusterAction(cluster string) *routev3.RouteAction {
	return withoutTimeout(&routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}})
}

// withoutTimeout turns off Envoy's default 15 s request timeout, which would cut every gRPC stream
// and long request; grpc-go ignores the field (it reads max_stream_duration).
func withoutTimeout(a *routev3.RouteAction) *routev3.RouteAction {
	a.Timeout = durationpb.New(0)
	return a
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
	return &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(rdsConnectionManager(name))},
	}
}

// rdsConnectionManager fetches the routes named name over ADS and routes by them, without any
// other filter: what clients of a Service port run, proxyless or Envoy.
func rdsConnectionManager(name string) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    ads(),
			RouteConfigName: name,
		}},
		HttpFilters: []*hcmv3.HttpFilter{routerHTTPFilter()},
	}
}

func httpFilter(name string, config proto.Message) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(config)}}
}

func routerHTTPFilter() *hcmv3.HttpFilter {
	return httpFilter(wellknown.Router, &routerv3.Router{})
}

// hcmFilter is the network filter running an HttpConnectionManager.
func hcmFilter(hcm *hcmv3.HttpConnectionManager) *listenerv3.Filter {
	return networkFilter(wellknown.HTTPConnectionManager, hcm)
}

func networkFilter(name string, config proto.Message) *listenerv3.Filter {
	return &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(config)}}
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

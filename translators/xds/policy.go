package xds

import (
	"fmt"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	corev1 "k8s.io/api/core/v1"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// grpcChannelIDKey is the filter state grpc-go hashes a request by under ring hash: one value per
// channel, so every call of one client goes to one endpoint (gRFC A42).
const grpcChannelIDKey = "io.grpc.channel_id"

// grpcFailurePercentageThreshold stands for consecutive-error ejection on proxyless clusters.
const grpcFailurePercentageThreshold = 99

// grpcMaxRetries is the most retries grpc-go makes: it caps attempts (retries plus the first try)
// at 5.
const grpcMaxRetries = 4

// ApplyPolicy puts a TrafficPolicy on the resources of its Service that [ServiceResources]
// returned (with a split apex's [SplitRoutes] in place), for proxyless clients or, with
// proxyless false, on the clusters of [EnvoyClusters]: for each port the policy covers, the route
// settings (timeout, retries, fault, hash policy) on every route of the port's
// RouteConfiguration, the fault filter in its Listener's HttpConnectionManager when there is a
// fault, and the cluster settings (circuit breakers, outlier detection, load balancing) on its
// Cluster. The resources are changed in place: pass ones built for this call.
func ApplyPolicy(res *Output, p *mesh.Policy, proxyless bool) {
	for _, port := range PolicyPorts(p, p.Service) {
		name := ListenerName(p.Service, port.Port)
		for i, l := range res.Listeners {
			if l.Name == name && p.Fault != nil {
				res.Listeners[i] = &listenerv3.Listener{Name: name, ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(faultConnectionManager(name))}}
			}
		}
		for _, rc := range res.RouteConfigurations {
			if rc.Name == name {
				PolicyRoutes(rc, p)
			}
		}
	}
	PolicyClusters(res.Clusters, p, proxyless)
}

// PolicyClusters puts a policy's cluster settings on the clusters of the ports it covers, in
// place: proxyless ones ([ServiceResources]) or, with proxyless false, Envoy's ([EnvoyClusters]).
func PolicyClusters(clusters []*clusterv3.Cluster, p *mesh.Policy, proxyless bool) {
	for _, port := range PolicyPorts(p, p.Service) {
		for _, c := range clusters {
			if c.Name == ClusterName(p.Service, port.Port) {
				policyCluster(c, p, proxyless)
			}
		}
	}
}

// PolicyPorts are the ports of svc a policy is put on: the TCP ports it covers.
func PolicyPorts(p *mesh.Policy, svc mesh.Service) []mesh.ServicePort {
	var out []mesh.ServicePort
	for _, port := range svc.Ports {
		if covered(p, port) {
			out = append(out, port)
		}
	}
	return out
}

func covered(p *mesh.Policy, port mesh.ServicePort) bool {
	return port.Protocol == corev1.ProtocolTCP && p.Covers(port.Port)
}

// policiesOf returns the policies of svc in model.
func policiesOf(model *mesh.Model, svc mesh.Service) []*mesh.Policy {
	var out []*mesh.Policy
	for i := range model.Policies {
		if p := &model.Policies[i]; p.Service.Namespace == svc.Namespace && p.Service.Name == svc.Name {
			out = append(out, p)
		}
	}
	return out
}

// PolicyOutboundChains puts a policy on the chains of its Service on the Envoy outbound listener
// ([OutboundFilterChains]), in place: the fault filter on HTTP chains when it has a fault, the idle
// timeout on the tcp_proxy of opaque TCP chains (HTTP ones take it from their routes).
func PolicyOutboundChains(chains []*listenerv3.FilterChain, p *mesh.Policy) {
	for _, port := range p.Service.Ports {
		if !PolicyOnOutboundListener(p, port) {
			continue
		}
		name := ListenerName(p.Service, port.Port)
		for _, fc := range chains {
			switch {
			case fc.Name != name:
			case !opaqueTCP(port):
				fc.Filters = []*listenerv3.Filter{hcmFilter(faultConnectionManager(name))}
			case len(fc.Filters) == 1:
				tp := &tcpproxyv3.TcpProxy{}
				if err := fc.Filters[0].GetTypedConfig().UnmarshalTo(tp); err != nil {
					panic(fmt.Sprintf("xds: the tcp_proxy this package built does not unpack: %v", err))
				}
				tp.IdleTimeout = durationpb.New(p.IdleTimeout)
				fc.Filters = []*listenerv3.Filter{networkFilter(wellknown.TCPProxy, tp)}
			}
		}
	}
}

// PolicyOnOutboundListener says whether the policy puts anything on the Envoy outbound listener's
// chain of port of its Service (PolicyOutboundChains), when the Service has chains there
// (HasOutboundChains): the fault filter on an HTTP port, the idle timeout on an opaque TCP one.
// Elsewhere Envoy takes the policy from routes and clusters.
func PolicyOnOutboundListener(p *mesh.Policy, port mesh.ServicePort) bool {
	if !covered(p, port) {
		return false
	}
	if opaqueTCP(port) {
		return p.IdleTimeout != 0
	}
	return p.Fault != nil
}

// faultConnectionManager is rdsConnectionManager with the fault filter before the router. Its own
// configuration injects nothing: the routes' typed_per_filter_config says what to inject, so one
// listener serves every route of the port.
func faultConnectionManager(name string) *hcmv3.HttpConnectionManager {
	hcm := rdsConnectionManager(name)
	hcm.HttpFilters = append([]*hcmv3.HttpFilter{httpFilter(wellknown.Fault, &faultv3.HTTPFault{})}, hcm.HttpFilters...)
	return hcm
}

// PolicyRoutes puts a policy's route settings on every route of a RouteConfiguration, in place.
// Envoy and grpc-go read different fields for some of them, and each ignores the other's, so one
// route serves both: the timeout is both Envoy's timeout and grpc-go's max_stream_duration, and
// source-IP hashing is both Envoy's connection source IP and grpc-go's channel ID.
func PolicyRoutes(rc *routev3.RouteConfiguration, p *mesh.Policy) {
	for _, vh := range rc.VirtualHosts {
		for _, r := range vh.Routes {
			action := r.GetRoute()
			if action == nil {
				continue
			}
			if p.Timeout != 0 {
				action.Timeout = durationpb.New(p.Timeout)
				action.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(p.Timeout)}
			}
			if p.IdleTimeout != 0 {
				action.IdleTimeout = durationpb.New(p.IdleTimeout)
			}
			action.RetryPolicy = retryPolicy(p.Retries)
			action.HashPolicy = hashPolicy(p.LoadBalancer)
			if p.Fault != nil {
				if r.TypedPerFilterConfig == nil {
					r.TypedPerFilterConfig = map[string]*anypb.Any{}
				}
				r.TypedPerFilterConfig[wellknown.Fault] = mustAny(httpFault(p.Fault))
			}
		}
	}
}

func optionalDuration(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

// retryPolicy is nil without retries, and with 0 attempts: no retry policy is no retries, for
// Envoy and grpc-go (which refuses num_retries 0).
func retryPolicy(r *mesh.Retries) *routev3.RetryPolicy {
	if r == nil || r.Attempts == 0 {
		return nil
	}
	on := r.RetryOn
	if len(on) == 0 {
		on = policyv1alpha1.DefaultRetryOn
	}
	names := make([]string, len(on))
	for i, c := range on {
		names[i] = string(c)
	}
	rp := &routev3.RetryPolicy{
		RetryOn:       strings.Join(names, ","),
		NumRetries:    wrapperspb.UInt32(uint32(r.Attempts)),
		PerTryTimeout: optionalDuration(r.PerTryTimeout),
	}
	if r.BackoffBase != 0 || r.BackoffMax != 0 {
		base := r.BackoffBase
		if base == 0 {
			base = 25 * time.Millisecond // Envoy's and grpc-go's default base interval
			base = min(base, r.BackoffMax)
		}
		rp.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(base), MaxInterval: optionalDuration(r.BackoffMax)}
	}
	return rp
}

func hashPolicy(lb *mesh.LoadBalancer) []*routev3.RouteAction_HashPolicy {
	if lb == nil || (lb.Type != policyv1alpha1.LoadBalancerRingHash && lb.Type != policyv1alpha1.LoadBalancerMaglev) {
		return nil
	}
	switch {
	case lb.HashHeader != "":
		return []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: lb.HashHeader}}}}
	case lb.HashCookie != nil:
		return []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{
			Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: lb.HashCookie.Name, Ttl: optionalDuration(lb.HashCookie.TTL), Path: lb.HashCookie.Path}}}}
	}
	return []*routev3.RouteAction_HashPolicy{
		{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
			ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}},
		{PolicySpecifier: &routev3.RouteAction_HashPolicy_FilterState_{
			FilterState: &routev3.RouteAction_HashPolicy_FilterState{Key: grpcChannelIDKey}}},
	}
}

func fractionalPercent(p int32) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: uint32(p), Denominator: typev3.FractionalPercent_HUNDRED}
}

func httpFault(f *mesh.Fault) *faultv3.HTTPFault {
	out := &faultv3.HTTPFault{}
	if d := f.Delay; d != nil {
		out.Delay = &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d.Fixed)},
			Percentage:         fractionalPercent(d.Percent),
		}
	}
	if a := f.Abort; a != nil {
		out.Abort = &faultv3.FaultAbort{Percentage: fractionalPercent(a.Percent)}
		if a.HTTPStatus != 0 {
			out.Abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(a.HTTPStatus)}
		} else {
			out.Abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: a.GRPCCode}
		}
	}
	return out
}

// policyCluster puts a policy's cluster settings on a cluster, in place. Proxyless clusters get
// what grpc-go implements instead of what it does not (see PolicyDiagnostics): ring hash for
// Maglev, and failure-percentage ejection for consecutive errors.
func policyCluster(c *clusterv3.Cluster, p *mesh.Policy, proxyless bool) {
	if cb := p.CircuitBreaker; cb != nil {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority:           corev3.RoutingPriority_DEFAULT,
			MaxConnections:     uint32Value(cb.MaxConnections),
			MaxPendingRequests: uint32Value(cb.MaxPendingRequests),
			MaxRequests:        uint32Value(cb.MaxRequests),
			MaxRetries:         uint32Value(cb.MaxRetries),
		}}}
	}
	if od := p.OutlierDetection; od != nil {
		c.OutlierDetection = outlierDetection(od, proxyless)
	}
	if lb := p.LoadBalancer; lb != nil {
		switch lb.Type {
		case policyv1alpha1.LoadBalancerLeastRequest:
			c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		case policyv1alpha1.LoadBalancerRingHash:
			c.LbPolicy = clusterv3.Cluster_RING_HASH
		case policyv1alpha1.LoadBalancerMaglev:
			c.LbPolicy = clusterv3.Cluster_MAGLEV
			if proxyless {
				c.LbPolicy = clusterv3.Cluster_RING_HASH
			}
		default:
			c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
		}
	}
}

func uint32Value(n int32) *wrapperspb.UInt32Value {
	if n == 0 {
		return nil
	}
	return wrapperspb.UInt32(uint32(n))
}

// outlierDetection is Envoy's consecutive-error ejection. grpc-go implements only success-rate and
// failure-percentage ejection, so a proxyless cluster ejects instead an endpoint whose every call
// failed (more than 99%) in an interval, once it had at least as many calls as the smaller
// consecutive count.
func outlierDetection(od *mesh.OutlierDetection, proxyless bool) *clusterv3.OutlierDetection {
	out := &clusterv3.OutlierDetection{
		Interval:         optionalDuration(od.Interval),
		BaseEjectionTime: optionalDuration(od.BaseEjectionTime),
	}
	if od.MaxEjectionPercent != nil {
		out.MaxEjectionPercent = wrapperspb.UInt32(uint32(*od.MaxEjectionPercent))
	}
	if proxyless {
		volume := od.Consecutive5xx
		if g := od.ConsecutiveGatewayErrors; g != 0 && (volume == 0 || g < volume) {
			volume = g
		}
		if volume != 0 {
			// grpc-go ejects when the failure percentage is above the threshold (Envoy: at or
			// above), so 100 would never eject; above 99% is every call of fewer than 100.
			out.FailurePercentageThreshold = wrapperspb.UInt32(grpcFailurePercentageThreshold)
			out.EnforcingFailurePercentage = wrapperspb.UInt32(100)
			out.FailurePercentageMinimumHosts = wrapperspb.UInt32(1)
			out.FailurePercentageRequestVolume = wrapperspb.UInt32(uint32(volume))
		}
		return out
	}
	out.Consecutive_5Xx = uint32Value(od.Consecutive5xx)
	if od.Consecutive5xx == 0 {
		out.EnforcingConsecutive_5Xx = wrapperspb.UInt32(0) // only the ejection asked for
	}
	if od.ConsecutiveGatewayErrors != 0 {
		out.ConsecutiveGatewayFailure = uint32Value(od.ConsecutiveGatewayErrors)
		out.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(100) // Envoy's default enforces 0%
	}
	return out
}

// PolicyDiagnostics reports what of a policy the xDS backend cannot honour: on opaque TCP ports,
// route settings but the idle timeout (Envoy carries them as TCP); for proxyless gRPC clients (grpc-go), on the ports
// a gRPC client can call, the fields it does not implement and what it does instead.
func PolicyDiagnostics(p *mesh.Policy) []mesh.Diagnostic {
	var d mesh.Diagnostics
	warn := func(format string, args ...any) {
		d.Warn(p.Source, smi.ConditionProgrammed, mesh.ReasonUnsupportedPolicyField, format, args...)
	}
	grpcCallable, tcpOnly := false, []string{}
	for _, port := range p.Service.Ports {
		if port.Protocol != corev1.ProtocolTCP || !p.Covers(port.Port) {
			continue
		}
		grpcCallable = grpcCallable || protocolOf(port) != protocolHTTP
		if opaqueTCP(port) {
			tcpOnly = append(tcpOnly, fmt.Sprint(port.Port))
		}
	}
	if len(tcpOnly) > 0 && (p.Timeout != 0 || p.Retries != nil || p.Fault != nil || p.LoadBalancer != nil && p.LoadBalancer.Type != policyv1alpha1.LoadBalancerRoundRobin && p.LoadBalancer.Type != policyv1alpha1.LoadBalancerLeastRequest) {
		warn("Envoy sidecars carry port %s of Service %q as opaque TCP (neither its appProtocol nor its name says HTTP): timeout, retries, faultInjection and hashing apply to HTTP requests only, not there", strings.Join(tcpOnly, ", "), p.Service.Name)
	}
	if !grpcCallable {
		return d.Sorted()
	}
	const grpc = "proxyless gRPC clients (grpc-go)"
	if p.IdleTimeout != 0 {
		warn("idleTimeout: %s have no idle timeout per route; only Envoy sidecars apply it", grpc)
	}
	if p.Timeout != 0 && p.Fault != nil && p.Fault.Delay != nil {
		warn("timeout: %s start it after the fault's delay, so it does not cut an injected delay short; only the caller's own deadline does", grpc)
	}
	if r := p.Retries; r != nil {
		if r.PerTryTimeout != 0 {
			warn("retries.perTryTimeout: %s do not implement it; only the whole call's timeout bounds their tries", grpc)
		}
		if r.Attempts > grpcMaxRetries {
			warn("retries.attempts %d: %s retry at most %d times", r.Attempts, grpc, grpcMaxRetries)
		}
		var httpOnly []string
		for _, on := range r.RetryOn {
			switch on {
			case policyv1alpha1.RetryOn5xx, policyv1alpha1.RetryOnGatewayError, policyv1alpha1.RetryOnReset,
				policyv1alpha1.RetryOnConnectFailure, policyv1alpha1.RetryOnRetriable4xx:
				httpOnly = append(httpOnly, string(on))
			}
		}
		if len(httpOnly) > 0 && r.Attempts > 0 {
			warn("retries.retryOn %s: %s retry on gRPC status codes only (cancelled, deadline-exceeded, internal, resource-exhausted, unavailable)", strings.Join(httpOnly, ", "), grpc)
		}
	}
	if cb := p.CircuitBreaker; cb != nil && (cb.MaxConnections != 0 || cb.MaxPendingRequests != 0 || cb.MaxRetries != 0) {
		warn("circuitBreaker: %s implement maxRequests only; maxConnections, maxPendingRequests and maxRetries apply on Envoy sidecars", grpc)
	}
	if od := p.OutlierDetection; od != nil && (od.Consecutive5xx != 0 || od.ConsecutiveGatewayErrors != 0) {
		warn("outlierDetection: %s do not count consecutive errors; they eject an endpoint of which more than 99%% of the calls failed during an interval once it had that many calls (failure-percentage ejection)", grpc)
	}
	if lb := p.LoadBalancer; lb != nil {
		if lb.Type == policyv1alpha1.LoadBalancerMaglev {
			warn("loadBalancer.type Maglev: %s do not implement Maglev; they use a ring hash of the same key", grpc)
		}
		if lb.HashCookie != nil {
			warn("loadBalancer.hashKey.cookie: %s do not hash cookies; their calls are spread at random over the ring", grpc)
		}
	}
	return d.Sorted()
}

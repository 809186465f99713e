package istio

import (
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// policies programs the TrafficPolicies, after the splits so that it can merge into what they
// wrote: Istio reads one VirtualService and one DestinationRule per host, so a policy's route
// settings go into the split's VirtualService of the same host (every http route of the ports it
// covers, match routes and the catch-all included) and its cluster settings into the mTLS
// DestinationRule of the host; only a host without them gets objects of its own, one of each kind
// for all the policies of its Service (each on its own ports), labelled after the first of them.
func (t *translator) policies(policies []mesh.Policy) {
	for start := 0; start < len(policies); {
		end := start + 1
		for end < len(policies) && policies[end].Service.Namespace == policies[start].Service.Namespace &&
			policies[end].Service.Name == policies[start].Service.Name {
			end++
		}
		t.servicePolicies(policies[start:end])
		start = end
	}
}

// servicePolicies programs the policies of one Service, each covering other ports.
func (t *translator) servicePolicies(policies []mesh.Policy) {
	svc := policies[0].Service
	src := sourceOf(policies[0].Source)
	vs := t.virtualServiceOf(svc.FQDN)
	own := vs == nil
	if own {
		vs = newVirtualService(svc.Namespace, src)
		vs.Spec.Hosts = []string{svc.FQDN}
	}
	for i := range policies {
		p := &policies[i]
		if !hasRouteSettings(p) {
			continue
		}
		applied := false
		if own {
			for _, port := range svc.Ports {
				if port.Protocol == corev1.ProtocolTCP && p.Covers(port.Port) && handlingOf(port).http {
					n := uint32(port.Port)
					vs.Spec.Http = append(vs.Spec.Http, &networkingapi.HTTPRoute{
						Match: []*networkingapi.HTTPMatchRequest{{Port: n}},
						Route: []*networkingapi.HTTPRouteDestination{{Destination: destination(svc.FQDN, n)}},
					})
				}
			}
		}
		for _, r := range vs.Spec.Http {
			if routeCovered(r, p) && !IsStandby(r) {
				applyRouteSettings(r, p)
				applied = true
			}
		}
		if !applied {
			t.diags.Warn(p.Source, smi.ConditionProgrammed, mesh.ReasonUnsupportedPolicyField,
				"timeout, retries and faultInjection apply to HTTP requests, and Istio treats no port of Service %q the policy covers as HTTP; they are not programmed", svc.Name)
		}
		t.reportRouteLimits(p)
	}
	if own && len(vs.Spec.Http) > 0 {
		t.virtualServices.add(vs, policies[0].Source.Name, PolicyNameSuffix)
	}

	drs := t.destinationRulesOf(svc.FQDN)
	for i := range policies {
		p := &policies[i]
		settings := clusterSettings(p)
		if settings == nil {
			continue
		}
		if len(drs) == 0 {
			dr := newDestinationRule(svc.Namespace, src)
			dr.Spec.Host = svc.FQDN
			t.destinationRules.add(dr, policies[0].Source.Name, PolicyNameSuffix)
			drs = append(drs, dr)
		}
		for _, dr := range drs {
			mergeClusterSettings(&dr.Spec, p.Port, proto.Clone(settings).(*networkingapi.TrafficPolicy_PortTrafficPolicy))
		}
		if od := p.OutlierDetection; od != nil && od.MaxEjectionPercent != nil && *od.MaxEjectionPercent == 0 {
			t.diags.Warn(p.Source, smi.ConditionProgrammed, mesh.ReasonUnsupportedPolicyField,
				"outlierDetection.maxEjectionPercent 0: Istio reads 0 as its default (10%%), so up to that share of endpoints may still be ejected")
		}
	}
}

// Carriers are the objects of out that carry p's settings: the VirtualServices of its Service's
// host when it has route settings, its DestinationRules when it has cluster settings, whichever
// source (the policy, another policy of the Service, a split) they are labelled after.
func Carriers(out Output, p *mesh.Policy) []client.Object {
	var carriers []client.Object
	if hasRouteSettings(p) {
		for _, vs := range out.VirtualServices {
			if slices.Contains(vs.Spec.Hosts, p.Service.FQDN) {
				carriers = append(carriers, vs)
			}
		}
	}
	if clusterSettings(p) != nil {
		for _, dr := range out.DestinationRules {
			if dr.Spec.Host == p.Service.FQDN {
				carriers = append(carriers, dr)
			}
		}
	}
	return carriers
}

// PolicyNameSuffix ends the names of a policy's own objects: a split's are named after the split
// (and a backend), so that a policy and a split of one name in one namespace, each reconciled on
// its own, never want the same object.
const PolicyNameSuffix = "trafficpolicy"

// virtualServiceOf returns the VirtualService written so far for host, or nil.
func (t *translator) virtualServiceOf(host string) *networkingv1.VirtualService {
	for _, it := range t.virtualServices.items {
		if len(it.obj.Spec.Hosts) == 1 && it.obj.Spec.Hosts[0] == host {
			return it.obj
		}
	}
	return nil
}

// destinationRulesOf returns the DestinationRules written so far for host.
func (t *translator) destinationRulesOf(host string) []*networkingv1.DestinationRule {
	var out []*networkingv1.DestinationRule
	for _, it := range t.destinationRules.items {
		if it.obj.Spec.Host == host {
			out = append(out, it.obj)
		}
	}
	return out
}

func hasRouteSettings(p *mesh.Policy) bool {
	return p.Timeout != 0 || p.Retries != nil || p.Fault != nil
}

// routeCovered reports whether an http route of the Service's host carries requests to a port the
// policy covers: every route the translator writes matches on one port.
func routeCovered(r *networkingapi.HTTPRoute, p *mesh.Policy) bool {
	for _, m := range r.Match {
		if !p.Covers(int32(m.Port)) {
			return false
		}
	}
	return len(r.Match) > 0 || p.Port == 0
}

func duration(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

func percent(p int32) *networkingapi.Percent {
	return &networkingapi.Percent{Value: float64(p)}
}

// applyRouteSettings puts a policy's timeout, retries and fault on one route.
func applyRouteSettings(r *networkingapi.HTTPRoute, p *mesh.Policy) {
	r.Timeout = duration(p.Timeout)
	if rt := p.Retries; rt != nil {
		r.Retries = &networkingapi.HTTPRetry{
			Attempts:      rt.Attempts,
			PerTryTimeout: duration(rt.PerTryTimeout),
			RetryOn:       joinRetryOn(rt.RetryOn),
			Backoff:       duration(rt.BackoffBase),
		}
	}
	if f := p.Fault; f != nil {
		r.Fault = &networkingapi.HTTPFaultInjection{}
		if d := f.Delay; d != nil {
			r.Fault.Delay = &networkingapi.HTTPFaultInjection_Delay{
				HttpDelayType: &networkingapi.HTTPFaultInjection_Delay_FixedDelay{FixedDelay: durationpb.New(d.Fixed)},
				Percentage:    percent(d.Percent),
			}
		}
		if a := f.Abort; a != nil {
			r.Fault.Abort = &networkingapi.HTTPFaultInjection_Abort{Percentage: percent(a.Percent)}
			if a.HTTPStatus != 0 {
				r.Fault.Abort.ErrorType = &networkingapi.HTTPFaultInjection_Abort_HttpStatus{HttpStatus: a.HTTPStatus}
			} else {
				r.Fault.Abort.ErrorType = &networkingapi.HTTPFaultInjection_Abort_GrpcStatus{GrpcStatus: string(a.GRPCStatus)}
			}
		}
	}
}

// joinRetryOn writes retry conditions as Istio's (and Envoy's) comma-separated retry_on.
func joinRetryOn(on []policyv1alpha1.RetryOn) string {
	names := make([]string, len(on))
	for i, c := range on {
		names[i] = string(c)
	}
	return strings.Join(names, ",")
}

// reportRouteLimits reports what of the route settings Istio has no field for.
func (t *translator) reportRouteLimits(p *mesh.Policy) {
	if p.Retries != nil && p.Retries.BackoffMax != 0 {
		t.diags.Warn(p.Source, smi.ConditionProgrammed, mesh.ReasonUnsupportedPolicyField,
			"retries.backoff.maxInterval: Istio's retries have one backoff interval (the base, %s); Envoy caps it at ten times that", p.Retries.BackoffBase)
	}
}

// clusterSettings are a policy's DestinationRule settings, nil when it has none.
func clusterSettings(p *mesh.Policy) *networkingapi.TrafficPolicy_PortTrafficPolicy {
	out := &networkingapi.TrafficPolicy_PortTrafficPolicy{}
	cb := p.CircuitBreaker
	if cb == nil {
		cb = &mesh.CircuitBreaker{}
	}
	tcp := &networkingapi.ConnectionPoolSettings_TCPSettings{MaxConnections: cb.MaxConnections, IdleTimeout: duration(p.IdleTimeout)}
	http := &networkingapi.ConnectionPoolSettings_HTTPSettings{
		Http1MaxPendingRequests: cb.MaxPendingRequests, Http2MaxRequests: cb.MaxRequests, MaxRetries: cb.MaxRetries,
		IdleTimeout: duration(p.IdleTimeout),
	}
	if !proto.Equal(tcp, &networkingapi.ConnectionPoolSettings_TCPSettings{}) || !proto.Equal(http, &networkingapi.ConnectionPoolSettings_HTTPSettings{}) {
		out.ConnectionPool = &networkingapi.ConnectionPoolSettings{}
		if !proto.Equal(tcp, &networkingapi.ConnectionPoolSettings_TCPSettings{}) {
			out.ConnectionPool.Tcp = tcp
		}
		if !proto.Equal(http, &networkingapi.ConnectionPoolSettings_HTTPSettings{}) {
			out.ConnectionPool.Http = http
		}
	}
	if od := p.OutlierDetection; od != nil {
		out.OutlierDetection = &networkingapi.OutlierDetection{
			Consecutive_5XxErrors:    uint32Value(od.Consecutive5xx),
			ConsecutiveGatewayErrors: uint32Value(od.ConsecutiveGatewayErrors),
			Interval:                 duration(od.Interval),
			BaseEjectionTime:         duration(od.BaseEjectionTime),
		}
		if od.MaxEjectionPercent != nil {
			out.OutlierDetection.MaxEjectionPercent = *od.MaxEjectionPercent
		}
	}
	if lb := p.LoadBalancer; lb != nil {
		out.LoadBalancer = loadBalancer(lb)
	}
	if out.ConnectionPool == nil && out.OutlierDetection == nil && out.LoadBalancer == nil {
		return nil
	}
	return out
}

func uint32Value(n int32) *wrapperspb.UInt32Value {
	if n == 0 {
		return nil
	}
	return wrapperspb.UInt32(uint32(n))
}

// maglevTableSize is Envoy's default Maglev table size, which Istio requires to be written out (a
// prime).
const maglevTableSize = 65537

func loadBalancer(lb *mesh.LoadBalancer) *networkingapi.LoadBalancerSettings {
	switch lb.Type {
	case policyv1alpha1.LoadBalancerRoundRobin:
		return &networkingapi.LoadBalancerSettings{LbPolicy: &networkingapi.LoadBalancerSettings_Simple{Simple: networkingapi.LoadBalancerSettings_ROUND_ROBIN}}
	case policyv1alpha1.LoadBalancerLeastRequest:
		return &networkingapi.LoadBalancerSettings{LbPolicy: &networkingapi.LoadBalancerSettings_Simple{Simple: networkingapi.LoadBalancerSettings_LEAST_REQUEST}}
	}
	ch := &networkingapi.LoadBalancerSettings_ConsistentHashLB{}
	switch {
	case lb.HashHeader != "":
		ch.HashKey = &networkingapi.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName{HttpHeaderName: lb.HashHeader}
	case lb.HashCookie != nil:
		ch.HashKey = &networkingapi.LoadBalancerSettings_ConsistentHashLB_HttpCookie{HttpCookie: &networkingapi.LoadBalancerSettings_ConsistentHashLB_HTTPCookie{
			Name: lb.HashCookie.Name, Path: lb.HashCookie.Path, Ttl: duration(lb.HashCookie.TTL),
		}}
	default:
		ch.HashKey = &networkingapi.LoadBalancerSettings_ConsistentHashLB_UseSourceIp{UseSourceIp: true}
	}
	if lb.Type == policyv1alpha1.LoadBalancerMaglev {
		ch.HashAlgorithm = &networkingapi.LoadBalancerSettings_ConsistentHashLB_Maglev{Maglev: &networkingapi.LoadBalancerSettings_ConsistentHashLB_MagLev{TableSize: maglevTableSize}}
	} else {
		ch.HashAlgorithm = &networkingapi.LoadBalancerSettings_ConsistentHashLB_RingHash_{RingHash: &networkingapi.LoadBalancerSettings_ConsistentHashLB_RingHash{}}
	}
	return &networkingapi.LoadBalancerSettings{LbPolicy: &networkingapi.LoadBalancerSettings_ConsistentHash{ConsistentHash: ch}}
}

// mergeClusterSettings puts settings into a DestinationRule's traffic policy: at the top for a
// policy of every port, as port-level settings for one port. What the DestinationRule holds
// already (the TLS mode of the mtls setting) stays.
func mergeClusterSettings(spec *networkingapi.DestinationRule, port int32, s *networkingapi.TrafficPolicy_PortTrafficPolicy) {
	if spec.TrafficPolicy == nil {
		spec.TrafficPolicy = &networkingapi.TrafficPolicy{}
	}
	tp := spec.TrafficPolicy
	if port == 0 {
		tp.ConnectionPool, tp.OutlierDetection, tp.LoadBalancer = s.ConnectionPool, s.OutlierDetection, s.LoadBalancer
		return
	}
	s.Port = &networkingapi.PortSelector{Number: uint32(port)}
	tp.PortLevelSettings = append(tp.PortLevelSettings, s)
}

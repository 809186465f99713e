package mesh

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"k8s.io/apimachinery/pkg/types"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
)

// Policy is an accepted TrafficPolicy, resolved against its Service: what every backend programs
// for the clients of that Service. A zero duration or count means "not set": the backend keeps its
// own behaviour for it.
type Policy struct {
	// Source is the TrafficPolicy this came from.
	Source  ObjectRef
	Service Service
	// Port is the one Service port the policy applies to, 0 for every port.
	Port        int32
	Timeout     time.Duration
	IdleTimeout time.Duration
	Retries     *Retries
	// CircuitBreaker, OutlierDetection, Fault and LoadBalancer are nil when not set.
	CircuitBreaker   *CircuitBreaker
	OutlierDetection *OutlierDetection
	Fault            *Fault
	LoadBalancer     *LoadBalancer
}

// Covers reports whether the policy applies to port of its Service.
func (p *Policy) Covers(port int32) bool {
	return p.Port == 0 || p.Port == port
}

// Retries retries failed requests Attempts more times (0: never, the backend's default retries
// included).
type Retries struct {
	Attempts      int32
	PerTryTimeout time.Duration
	// RetryOn is sorted; empty means the backend's default.
	RetryOn     []policyv1alpha1.RetryOn
	BackoffBase time.Duration
	BackoffMax  time.Duration
}

// CircuitBreaker caps concurrent use of the Service; 0 leaves a limit unset.
type CircuitBreaker struct {
	MaxConnections, MaxPendingRequests, MaxRequests, MaxRetries int32
}

// OutlierDetection ejects failing endpoints; 0 leaves a field unset, except MaxEjectionPercent,
// which is nil when unset (0% is a setting: never eject).
type OutlierDetection struct {
	Consecutive5xx, ConsecutiveGatewayErrors int32
	Interval, BaseEjectionTime               time.Duration
	MaxEjectionPercent                       *int32
}

// Fault delays and/or aborts a share of the requests; at least one of the two is set.
type Fault struct {
	Delay *FaultDelay
	Abort *FaultAbort
}

// FaultDelay holds Percent of the requests back for Fixed.
type FaultDelay struct {
	Fixed   time.Duration
	Percent int32
}

// FaultAbort answers Percent of the requests with HTTPStatus, or (HTTPStatus 0) the gRPC status
// GRPCStatus, whose code is GRPCCode.
type FaultAbort struct {
	HTTPStatus int32
	GRPCStatus policyv1alpha1.GRPCStatus
	GRPCCode   uint32
	Percent    int32
}

// LoadBalancer is the algorithm; RingHash and Maglev hash exactly one of HashHeader, HashCookie
// and HashSourceIP.
type LoadBalancer struct {
	Type         policyv1alpha1.LoadBalancerType
	HashHeader   string
	HashCookie   *HashCookie
	HashSourceIP bool
}

// HashCookie is the cookie hashed; with a TTL, Envoy (and Istio) set it when a request lacks it.
type HashCookie struct {
	Name string
	TTL  time.Duration
	Path string
}

// Reasons of TrafficPolicies.
const (
	// ReasonUnsupportedTargetKind: a TrafficPolicy's targetRef names something other than a Service.
	ReasonUnsupportedTargetKind = "UnsupportedTargetKind"
	// ReasonServiceNotFound: the Service a TrafficPolicy targets does not exist.
	ReasonServiceNotFound = "ServiceNotFound"
	// ReasonPortNotFound: the Service a TrafficPolicy targets has no such port.
	ReasonPortNotFound = "PortNotFound"
	// ReasonInvalidPolicy: a field of a TrafficPolicy is out of range (possible only for objects
	// that never went through the API server: the CRD refuses the same).
	ReasonInvalidPolicy = "InvalidPolicy"
	// ReasonUnsupportedPolicyField (backends, Programmed=False, a warning): a backend, or one kind of
	// its clients, cannot honour a field; the message says which and what happens instead.
	ReasonUnsupportedPolicyField = "UnsupportedPolicyField"
)

// PolicyOf returns the policy that source programs, or nil when the model does not program it.
func (m *Model) PolicyOf(source ObjectRef) *Policy {
	for i := range m.Policies {
		if m.Policies[i].Source == source {
			return &m.Policies[i]
		}
	}
	return nil
}

// PolicyFor returns the policy governing port of svc, or nil.
func (m *Model) PolicyFor(svc Service, port int32) *Policy {
	for i := range m.Policies {
		p := &m.Policies[i]
		if p.Service.Namespace == svc.Namespace && p.Service.Name == svc.Name && p.Covers(port) {
			return p
		}
	}
	return nil
}

// policies resolves every TrafficPolicy; the result is sorted by namespace, Service and port.
func (b *builder) policies(in []policyv1alpha1.TrafficPolicy) []Policy {
	ordered := make([]*policyv1alpha1.TrafficPolicy, 0, len(in))
	for i := range in {
		tp := &in[i]
		ref := policyRef(tp)
		t := tp.Spec.TargetRef
		if t.Kind != "Service" || (t.Group != "" && t.Group != "core") || t.Name == "" {
			b.diags.Fail(ref, smi.ConditionAccepted, ReasonUnsupportedTargetKind,
				"targetRef names %s %q of group %q; a TrafficPolicy attaches to a Service (kind Service, core group)", t.Kind, t.Name, t.Group)
			continue
		}
		ordered = append(ordered, tp)
	}
	// Oldest first within each Service, as splits on one apex: the first claimant of a port wins
	// it, even when it turns out to be broken, so that validity never moves traffic between policies.
	slices.SortFunc(ordered, func(x, y *policyv1alpha1.TrafficPolicy) int {
		return cmp.Or(
			cmp.Compare(x.Namespace, y.Namespace),
			cmp.Compare(x.Spec.TargetRef.Name, y.Spec.TargetRef.Name),
			x.CreationTimestamp.Time.Compare(y.CreationTimestamp.Time),
			cmp.Compare(x.Name, y.Name))
	})
	type claim struct {
		port int32
		name string
	}
	claims := map[types.NamespacedName][]claim{}
	var out []Policy
	for _, tp := range ordered {
		ref := policyRef(tp)
		svc := nameOf(tp.Namespace, tp.Spec.TargetRef.Name)
		port := ptrValue(tp.Spec.TargetRef.Port)
		if i := slices.IndexFunc(claims[svc], func(c claim) bool { return c.port == 0 || port == 0 || c.port == port }); i >= 0 {
			b.diags.Fail(ref, smi.ConditionAccepted, ReasonConflicted,
				"%s is already governed by the older TrafficPolicy %q", describeTarget(svc.Name, port), claims[svc][i].name)
			continue
		}
		claims[svc] = append(claims[svc], claim{port, tp.Name})
		if p, ok := b.policy(ref, tp); ok {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(x, y Policy) int {
		return cmp.Or(cmp.Compare(x.Service.Namespace, y.Service.Namespace), cmp.Compare(x.Service.Name, y.Service.Name), cmp.Compare(x.Port, y.Port))
	})
	return out
}

func policyRef(tp *policyv1alpha1.TrafficPolicy) ObjectRef {
	return ObjectRef{Kind: policyv1alpha1.TrafficPolicyKind, Namespace: tp.Namespace, Name: tp.Name}
}

func describeTarget(service string, port int32) string {
	if port == 0 {
		return fmt.Sprintf("Service %q", service)
	}
	return fmt.Sprintf("port %d of Service %q", port, service)
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// policy resolves one TrafficPolicy that won its target. ok is false when it must not be programmed.
func (b *builder) policy(ref ObjectRef, tp *policyv1alpha1.TrafficPolicy) (Policy, bool) {
	v := policyValidator{}
	p := v.resolve(&tp.Spec)
	if len(v.problems) > 0 {
		b.diags.Fail(ref, smi.ConditionAccepted, ReasonInvalidPolicy, "%s", strings.Join(v.problems, "; "))
		return Policy{}, false
	}
	svc, found := b.services[nameOf(tp.Namespace, tp.Spec.TargetRef.Name)]
	if !found {
		b.diags.Fail(ref, smi.ConditionResolvedRefs, ReasonServiceNotFound,
			"targetRef: Service %q not found in namespace %q", tp.Spec.TargetRef.Name, tp.Namespace)
		return Policy{}, false
	}
	p.Source, p.Service, p.Port = ref, svc, ptrValue(tp.Spec.TargetRef.Port)
	if p.Port != 0 && !slices.ContainsFunc(svc.Ports, func(sp ServicePort) bool { return sp.Port == p.Port }) {
		b.diags.Fail(ref, smi.ConditionResolvedRefs, ReasonPortNotFound,
			"targetRef.port: Service %q has no port %d", svc.Name, p.Port)
		return Policy{}, false
	}
	return p, true
}

// policyValidator converts a spec, checking again what the CRD checks: objects translated offline
// or stored before the CRD had its rules never went through them, and backends must not be handed
// values they would refuse.
type policyValidator struct {
	problems []string
}

func (v *policyValidator) fail(field, format string, args ...any) {
	v.problems = append(v.problems, "spec."+field+": "+fmt.Sprintf(format, args...))
}

func (v *policyValidator) duration(field string, d *policyv1alpha1.Duration) time.Duration {
	if d == nil {
		return 0
	}
	parsed, err := time.ParseDuration(string(*d))
	if err != nil || parsed < time.Millisecond || parsed%time.Millisecond != 0 {
		v.fail(field, "%q is not a duration of at least 1ms in whole milliseconds", string(*d))
		return 0
	}
	return parsed
}

func (v *policyValidator) percent(field string, p *policyv1alpha1.Percentage) int32 {
	if p == nil {
		return int32(policyv1alpha1.DefaultFaultPercentage)
	}
	if *p < 0 || *p > 100 {
		v.fail(field, "%d is not a percentage from 0 to 100", *p)
	}
	return int32(*p)
}

func (v *policyValidator) count(field string, n *policyv1alpha1.Count) int32 {
	if n == nil {
		return 0
	}
	if *n < 1 {
		v.fail(field, "%d is below 1", *n)
	}
	return int32(*n)
}

func (v *policyValidator) resolve(spec *policyv1alpha1.TrafficPolicySpec) Policy {
	p := Policy{Timeout: v.duration("timeout", spec.Timeout), IdleTimeout: v.duration("idleTimeout", spec.IdleTimeout)}
	if r := spec.Retries; r != nil {
		p.Retries = &Retries{PerTryTimeout: v.duration("retries.perTryTimeout", r.PerTryTimeout)}
		switch {
		case r.Attempts == nil:
			v.fail("retries.attempts", "required")
		case *r.Attempts < 0 || *r.Attempts > 10:
			v.fail("retries.attempts", "%d is not from 0 to 10", *r.Attempts)
		default:
			p.Retries.Attempts = *r.Attempts
		}
		for i, on := range r.RetryOn {
			if !slices.Contains(retryConditions, on) {
				v.fail(fmt.Sprintf("retries.retryOn[%d]", i), "%q is not a retry condition", on)
			}
		}
		p.Retries.RetryOn = slices.Compact(slices.Sorted(slices.Values(r.RetryOn)))
		if bo := r.Backoff; bo != nil {
			p.Retries.BackoffBase = v.duration("retries.backoff.baseInterval", bo.BaseInterval)
			p.Retries.BackoffMax = v.duration("retries.backoff.maxInterval", bo.MaxInterval)
			if p.Retries.BackoffMax != 0 && p.Retries.BackoffMax < p.Retries.BackoffBase {
				v.fail("retries.backoff.maxInterval", "shorter than baseInterval")
			}
		}
	}
	if c := spec.CircuitBreaker; c != nil {
		p.CircuitBreaker = &CircuitBreaker{
			MaxConnections:     v.count("circuitBreaker.maxConnections", c.MaxConnections),
			MaxPendingRequests: v.count("circuitBreaker.maxPendingRequests", c.MaxPendingRequests),
			MaxRequests:        v.count("circuitBreaker.maxRequests", c.MaxRequests),
			MaxRetries:         v.count("circuitBreaker.maxRetries", c.MaxRetries),
		}
	}
	if o := spec.OutlierDetection; o != nil {
		p.OutlierDetection = &OutlierDetection{
			Consecutive5xx:           v.count("outlierDetection.consecutive5xx", o.Consecutive5xx),
			ConsecutiveGatewayErrors: v.count("outlierDetection.consecutiveGatewayErrors", o.ConsecutiveGatewayErrors),
			Interval:                 v.duration("outlierDetection.interval", o.Interval),
			BaseEjectionTime:         v.duration("outlierDetection.baseEjectionTime", o.BaseEjectionTime),
		}
		if o.MaxEjectionPercent != nil {
			pct := v.percent("outlierDetection.maxEjectionPercent", o.MaxEjectionPercent)
			p.OutlierDetection.MaxEjectionPercent = &pct
		}
	}
	if f := spec.FaultInjection; f != nil {
		p.Fault = v.fault(f)
	}
	if lb := spec.LoadBalancer; lb != nil {
		p.LoadBalancer = v.loadBalancer(lb)
	}
	return p
}

var retryConditions = []policyv1alpha1.RetryOn{
	policyv1alpha1.RetryOn5xx, policyv1alpha1.RetryOnGatewayError, policyv1alpha1.RetryOnReset,
	policyv1alpha1.RetryOnConnectFailure, policyv1alpha1.RetryOnRetriable4xx, policyv1alpha1.RetryOnCancelled,
	policyv1alpha1.RetryOnDeadlineExceeded, policyv1alpha1.RetryOnInternal, policyv1alpha1.RetryOnResourceExhausted,
	policyv1alpha1.RetryOnUnavailable,
}

func (v *policyValidator) fault(f *policyv1alpha1.FaultInjection) *Fault {
	out := &Fault{}
	if d := f.Delay; d != nil {
		out.Delay = &FaultDelay{Fixed: v.duration("faultInjection.delay.fixed", &d.Fixed), Percent: v.percent("faultInjection.delay.percentage", d.Percentage)}
	}
	if a := f.Abort; a != nil {
		out.Abort = &FaultAbort{Percent: v.percent("faultInjection.abort.percentage", a.Percentage)}
		switch {
		case (a.HTTPStatus == nil) == (a.GRPCStatus == nil):
			v.fail("faultInjection.abort", "needs exactly one of httpStatus and grpcStatus")
		case a.HTTPStatus != nil && (*a.HTTPStatus < 200 || *a.HTTPStatus > 599):
			v.fail("faultInjection.abort.httpStatus", "%d is not an HTTP status from 200 to 599", *a.HTTPStatus)
		case a.HTTPStatus != nil:
			out.Abort.HTTPStatus = *a.HTTPStatus
		default:
			code, ok := policyv1alpha1.GRPCStatusCodes[*a.GRPCStatus]
			if !ok {
				v.fail("faultInjection.abort.grpcStatus", "%q is not a gRPC status name", *a.GRPCStatus)
			}
			out.Abort.GRPCStatus, out.Abort.GRPCCode = *a.GRPCStatus, code
		}
	}
	if out.Delay == nil && out.Abort == nil {
		v.fail("faultInjection", "needs a delay, an abort or both")
	}
	return out
}

func (v *policyValidator) loadBalancer(lb *policyv1alpha1.LoadBalancer) *LoadBalancer {
	out := &LoadBalancer{Type: lb.Type}
	hashed := lb.Type == policyv1alpha1.LoadBalancerRingHash || lb.Type == policyv1alpha1.LoadBalancerMaglev
	switch {
	case !hashed && lb.Type != policyv1alpha1.LoadBalancerRoundRobin && lb.Type != policyv1alpha1.LoadBalancerLeastRequest:
		v.fail("loadBalancer.type", "%q is not RoundRobin, LeastRequest, RingHash or Maglev", lb.Type)
	case hashed != (lb.HashKey != nil):
		v.fail("loadBalancer.hashKey", "is required with type RingHash or Maglev, and only with them")
	case hashed:
		k := lb.HashKey
		n := 0
		if k.Header != "" {
			n++
			out.HashHeader = strings.ToLower(k.Header)
			if !httpguts.ValidHeaderFieldName(k.Header) {
				v.fail("loadBalancer.hashKey.header", "%q is not an HTTP header name", k.Header)
			}
		}
		if k.Cookie != nil {
			n++
			out.HashCookie = &HashCookie{Name: k.Cookie.Name, TTL: v.duration("loadBalancer.hashKey.cookie.ttl", k.Cookie.TTL), Path: k.Cookie.Path}
			if k.Cookie.Name == "" {
				v.fail("loadBalancer.hashKey.cookie.name", "required")
			}
		}
		if k.SourceIP {
			n++
			out.HashSourceIP = true
		}
		if n != 1 {
			v.fail("loadBalancer.hashKey", "needs exactly one of header, cookie and sourceIP")
		}
	}
	return out
}

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// Defaults the backends apply when a field is left out. They are defined here once; the CRD does
// not default them, so that an object shows what its author wrote.
const (
	// DefaultFaultPercentage is the share of requests a delay or abort applies to when its
	// percentage is left out: all of them.
	DefaultFaultPercentage Percentage = 100
)

// TrafficPolicy attaches resilience settings to a Service, or to one port of it: request
// timeouts, retries, circuit breaking, outlier detection, fault injection and load balancing, for
// every client of the Service in the mesh, on the Istio and the xDS backend alike. Every setting
// is optional; one left out keeps the backend's own behaviour.
//
// A Service port is governed by at most one TrafficPolicy: of policies with overlapping targets,
// the oldest wins and the others report Accepted=False, reason Conflicted.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=tpol,categories=smi-operator
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.spec.targetRef.name`,description="The Service the policy applies to"
// +kubebuilder:printcolumn:name="Port",type=integer,JSONPath=`.spec.targetRef.port`,description="The port it applies to; every port when empty"
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Programmed",type=string,JSONPath=`.status.conditions[?(@.type=="Programmed")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TrafficPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec names the target and the settings.
	Spec TrafficPolicySpec `json:"spec"`

	// Status reports whether the policy is accepted and programmed (conditions Accepted,
	// ResolvedRefs and Programmed), and what the active backend cannot honour.
	// +optional
	Status smi.Status `json:"status,omitempty"`
}

// GetStatus returns the policy's status, which the operator's reconcilers write as they write the
// SMI objects' (hub.Object).
func (p *TrafficPolicy) GetStatus() *smi.Status { return &p.Status }

// TrafficPolicyList is a list of TrafficPolicies.
//
// +kubebuilder:object:root=true
type TrafficPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TrafficPolicy `json:"items"`
}

// TrafficPolicySpec holds the target and the settings; each setting is optional.
type TrafficPolicySpec struct {
	// TargetRef is the Service of the policy's namespace the settings apply to, for every client
	// calling it, and optionally one of its ports.
	TargetRef TargetRef `json:"targetRef"`

	// Timeout bounds a whole request (or gRPC call), retries included. Proxyless gRPC clients
	// take it as the route's max_stream_duration.
	// +optional
	Timeout *Duration `json:"timeout,omitempty"`

	// IdleTimeout closes a connection (Istio, Envoy) or stream (Envoy) to the Service after this
	// long without traffic.
	// +optional
	IdleTimeout *Duration `json:"idleTimeout,omitempty"`

	// Retries retries failed requests.
	// +optional
	Retries *Retries `json:"retries,omitempty"`

	// CircuitBreaker limits how much is sent to the Service at once; what goes beyond fails fast.
	// +optional
	CircuitBreaker *CircuitBreaker `json:"circuitBreaker,omitempty"`

	// OutlierDetection ejects failing endpoints from load balancing for a while.
	// +optional
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`

	// FaultInjection delays or fails a share of the requests, to test how clients cope.
	// +optional
	FaultInjection *FaultInjection `json:"faultInjection,omitempty"`

	// LoadBalancer picks how requests are spread over the Service's endpoints.
	// +optional
	LoadBalancer *LoadBalancer `json:"loadBalancer,omitempty"`
}

// TargetRef names a Service of the policy's namespace.
// +kubebuilder:validation:XValidation:rule="self.kind == 'Service' && (!has(self.group) || size(self.group) == 0 || self.group == 'core')",message="targetRef must name a Service (kind Service of the core API group): policies attach to Services only"
type TargetRef struct {
	// Group of the target: the core API group, written "" or left out.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Group string `json:"group,omitempty"`

	// Kind of the target: Service.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`

	// Name of the Service, in the policy's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="targetRef.name must be the name of a Service (a DNS-1035 label)"
	Name string `json:"name"`

	// Port, when given, limits the policy to that port of the Service (its port number, not the
	// target port); without it the policy applies to every port.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port *int32 `json:"port,omitempty"`
}

// Duration is a non-negative span of time in Go's syntax ("500ms", "2s", "1m30s"), at least 1ms and
// in whole milliseconds, the precision Istio and Envoy work in.
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(h|m|ms)|[0-9]+([.][0-9]{1,3})?s)+$') && duration(self) >= duration('1ms')",message="must be a duration of at least 1ms in whole milliseconds, without a sign, such as 500ms, 2s or 1m30s"
type Duration string

// Count is a number of connections, requests or errors, at least 1.
// +kubebuilder:validation:Minimum=1
type Count int32

// Percentage is a share of requests, from 0 to 100.
// +kubebuilder:validation:Minimum=0
// +kubebuilder:validation:Maximum=100
type Percentage int32

// Retries retries a failed request up to Attempts more times.
// +kubebuilder:validation:XValidation:rule="!has(self.backoff) || !has(self.backoff.baseInterval) || !has(self.backoff.maxInterval) || duration(self.backoff.maxInterval) >= duration(self.backoff.baseInterval)",message="retries.backoff.maxInterval must not be shorter than retries.backoff.baseInterval"
type Retries struct {
	// Attempts is how many times a failed request is retried (not counting the first try); 0
	// turns retries off, including the backend's own default ones (Istio retries twice).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	Attempts *int32 `json:"attempts"`

	// PerTryTimeout bounds each try, the first one included.
	// +optional
	PerTryTimeout *Duration `json:"perTryTimeout,omitempty"`

	// RetryOn lists what is retried: HTTP failures (5xx, gateway-error, reset, connect-failure,
	// retriable-4xx) and gRPC status codes (cancelled, deadline-exceeded, internal,
	// resource-exhausted, unavailable). Left out, the backend's default: Istio's, or for the xDS
	// backend 5xx, connect-failure, reset and unavailable.
	// +kubebuilder:validation:MaxItems=10
	// +listType=set
	// +optional
	RetryOn []RetryOn `json:"retryOn,omitempty"`

	// Backoff spaces retries out: each waits a random time up to a bound that starts at
	// baseInterval and doubles, up to maxInterval.
	// +optional
	Backoff *Backoff `json:"backoff,omitempty"`
}

// RetryOn is a condition under which a request is retried.
// +kubebuilder:validation:Enum="5xx";gateway-error;reset;connect-failure;retriable-4xx;cancelled;deadline-exceeded;internal;resource-exhausted;unavailable
type RetryOn string

// Retry conditions: HTTP ones, then gRPC status codes.
const (
	RetryOn5xx               RetryOn = "5xx"
	RetryOnGatewayError      RetryOn = "gateway-error"
	RetryOnReset             RetryOn = "reset"
	RetryOnConnectFailure    RetryOn = "connect-failure"
	RetryOnRetriable4xx      RetryOn = "retriable-4xx"
	RetryOnCancelled         RetryOn = "cancelled"
	RetryOnDeadlineExceeded  RetryOn = "deadline-exceeded"
	RetryOnInternal          RetryOn = "internal"
	RetryOnResourceExhausted RetryOn = "resource-exhausted"
	RetryOnUnavailable       RetryOn = "unavailable"
)

// DefaultRetryOn is what the xDS backend retries when retryOn is left out (Istio keeps its own
// default). grpc-go takes only the gRPC codes of a list.
var DefaultRetryOn = []RetryOn{RetryOn5xx, RetryOnConnectFailure, RetryOnReset, RetryOnUnavailable}

// Backoff bounds the wait between retries.
type Backoff struct {
	// BaseInterval is the first bound; it doubles with each retry.
	// +optional
	BaseInterval *Duration `json:"baseInterval,omitempty"`
	// MaxInterval caps the bound; by default ten times baseInterval.
	// +optional
	MaxInterval *Duration `json:"maxInterval,omitempty"`
}

// CircuitBreaker caps what clients send to the Service at once; each limit is per client proxy.
type CircuitBreaker struct {
	// MaxConnections caps the connections to the Service.
	// +optional
	MaxConnections *Count `json:"maxConnections,omitempty"`
	// MaxPendingRequests caps the requests waiting for a connection.
	// +optional
	MaxPendingRequests *Count `json:"maxPendingRequests,omitempty"`
	// MaxRequests caps the requests (gRPC calls) in flight.
	// +optional
	MaxRequests *Count `json:"maxRequests,omitempty"`
	// MaxRetries caps the retries in flight.
	// +optional
	MaxRetries *Count `json:"maxRetries,omitempty"`
}

// OutlierDetection ejects an endpoint after consecutive failures, for baseEjectionTime times the
// number of times it was ejected.
type OutlierDetection struct {
	// Consecutive5xx ejects an endpoint after this many 5xx responses in a row (gRPC: UNAVAILABLE,
	// INTERNAL and the like, as Envoy maps them).
	// +optional
	Consecutive5xx *Count `json:"consecutive5xx,omitempty"`
	// ConsecutiveGatewayErrors ejects an endpoint after this many 502, 503 or 504 responses (or
	// connection failures) in a row.
	// +optional
	ConsecutiveGatewayErrors *Count `json:"consecutiveGatewayErrors,omitempty"`
	// Interval between ejection sweeps.
	// +optional
	Interval *Duration `json:"interval,omitempty"`
	// BaseEjectionTime is how long a first ejection lasts.
	// +optional
	BaseEjectionTime *Duration `json:"baseEjectionTime,omitempty"`
	// MaxEjectionPercent caps the share of endpoints ejected at once.
	// +optional
	MaxEjectionPercent *Percentage `json:"maxEjectionPercent,omitempty"`
}

// FaultInjection delays and/or fails requests before they reach the Service.
// +kubebuilder:validation:XValidation:rule="has(self.delay) || has(self.abort)",message="faultInjection needs a delay, an abort or both"
type FaultInjection struct {
	// Delay holds requests back before sending them on.
	// +optional
	Delay *FaultDelay `json:"delay,omitempty"`
	// Abort answers requests with an error instead of sending them on.
	// +optional
	Abort *FaultAbort `json:"abort,omitempty"`
}

// FaultDelay delays a share of the requests.
type FaultDelay struct {
	// Fixed is the delay.
	Fixed Duration `json:"fixed"`
	// Percentage of requests delayed; all of them when left out.
	// +optional
	Percentage *Percentage `json:"percentage,omitempty"`
}

// FaultAbort fails a share of the requests with an HTTP status or a gRPC status, one of the two.
// +kubebuilder:validation:XValidation:rule="has(self.httpStatus) != has(self.grpcStatus)",message="faultInjection.abort needs exactly one of httpStatus and grpcStatus"
type FaultAbort struct {
	// HTTPStatus answers with this HTTP status.
	// +kubebuilder:validation:Minimum=200
	// +kubebuilder:validation:Maximum=599
	// +optional
	HTTPStatus *int32 `json:"httpStatus,omitempty"`
	// GRPCStatus answers with this gRPC status, by its canonical name.
	// +optional
	GRPCStatus *GRPCStatus `json:"grpcStatus,omitempty"`
	// Percentage of requests aborted; all of them when left out.
	// +optional
	Percentage *Percentage `json:"percentage,omitempty"`
}

// GRPCStatus is a gRPC status code by its canonical name, OK excepted.
// +kubebuilder:validation:Enum=CANCELLED;UNKNOWN;INVALID_ARGUMENT;DEADLINE_EXCEEDED;NOT_FOUND;ALREADY_EXISTS;PERMISSION_DENIED;RESOURCE_EXHAUSTED;FAILED_PRECONDITION;ABORTED;OUT_OF_RANGE;UNIMPLEMENTED;INTERNAL;UNAVAILABLE;DATA_LOSS;UNAUTHENTICATED
type GRPCStatus string

// GRPCStatusCodes maps each GRPCStatus to its code number (google.golang.org/grpc/codes).
var GRPCStatusCodes = map[GRPCStatus]uint32{
	"CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
	"ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
	"ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14,
	"DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}

// LoadBalancer picks the load-balancing algorithm; RingHash and Maglev hash a request key
// (hashKey) so that equal keys go to the same endpoint while the endpoints stay the same.
// +kubebuilder:validation:XValidation:rule="(self.type in ['RingHash', 'Maglev']) == has(self.hashKey)",message="loadBalancer.hashKey is required with type RingHash or Maglev, and only with them"
type LoadBalancer struct {
	// Type is the algorithm.
	Type LoadBalancerType `json:"type"`
	// HashKey is what RingHash and Maglev hash.
	// +optional
	HashKey *HashKey `json:"hashKey,omitempty"`
}

// LoadBalancerType is a load-balancing algorithm.
// +kubebuilder:validation:Enum=RoundRobin;LeastRequest;RingHash;Maglev
type LoadBalancerType string

// Load-balancing algorithms.
const (
	LoadBalancerRoundRobin   LoadBalancerType = "RoundRobin"
	LoadBalancerLeastRequest LoadBalancerType = "LeastRequest"
	LoadBalancerRingHash     LoadBalancerType = "RingHash"
	LoadBalancerMaglev       LoadBalancerType = "Maglev"
)

// HashKey is one request property: a header, a cookie or the client's address.
// +kubebuilder:validation:XValidation:rule="[has(self.header), has(self.cookie), has(self.sourceIP) && self.sourceIP].exists_one(b, b)",message="loadBalancer.hashKey needs exactly one of header, cookie and sourceIP"
type HashKey struct {
	// Header hashes the value of this request header.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9!#$%&\\'*+.^_`|~-]+$')",message="loadBalancer.hashKey.header must be an HTTP header name"
	// +optional
	Header string `json:"header,omitempty"`
	// Cookie hashes the value of this cookie.
	// +optional
	Cookie *HashCookie `json:"cookie,omitempty"`
	// SourceIP hashes the client's IP address.
	// +optional
	SourceIP bool `json:"sourceIP,omitempty"`
}

// HashCookie names the cookie to hash. With a TTL, Envoy sets it when a request lacks it.
type HashCookie struct {
	// Name of the cookie.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name"`
	// TTL of the cookie Envoy sets; without it none is set.
	// +optional
	TTL *Duration `json:"ttl,omitempty"`
	// Path of the cookie Envoy sets.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Path string `json:"path,omitempty"`
}

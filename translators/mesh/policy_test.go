package mesh

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
)

func trafficPolicy(name, service string, port int32, age time.Duration, spec policyv1alpha1.TrafficPolicySpec) policyv1alpha1.TrafficPolicy {
	tp := policyv1alpha1.TrafficPolicy{ObjectMeta: meta(ns, name), Spec: spec}
	tp.CreationTimestamp = metav1.NewTime(epoch.Add(-age))
	tp.Spec.TargetRef = policyv1alpha1.TargetRef{Kind: "Service", Name: service}
	if port != 0 {
		tp.Spec.TargetRef.Port = ptr.To(port)
	}
	return tp
}

func dur(s string) *policyv1alpha1.Duration { return ptr.To(policyv1alpha1.Duration(s)) }

func TestPolicySemantics(t *testing.T) {
	services := []corev1.Service{service("web", 80, 9090)}
	web := model("web", 80, 9090)
	timeout := policyv1alpha1.TrafficPolicySpec{Timeout: dur("2s")}
	pref := func(name string) ObjectRef { return ref(policyv1alpha1.TrafficPolicyKind, name) }
	tests := []struct {
		name      string
		policies  []policyv1alpha1.TrafficPolicy
		want      []Policy
		wantDiags []Diagnostic
	}{{
		name: "every field resolved, fault percentages defaulted",
		policies: []policyv1alpha1.TrafficPolicy{trafficPolicy("p", "web", 80, 0, policyv1alpha1.TrafficPolicySpec{
			Timeout: dur("1.5s"), IdleTimeout: dur("5m"),
			Retries: &policyv1alpha1.Retries{Attempts: ptr.To[int32](3), PerTryTimeout: dur("500ms"),
				RetryOn: []policyv1alpha1.RetryOn{"unavailable", "5xx", "unavailable"},
				Backoff: &policyv1alpha1.Backoff{BaseInterval: dur("25ms"), MaxInterval: dur("250ms")}},
			CircuitBreaker:   &policyv1alpha1.CircuitBreaker{MaxRequests: ptr.To[policyv1alpha1.Count](1)},
			OutlierDetection: &policyv1alpha1.OutlierDetection{Consecutive5xx: ptr.To[policyv1alpha1.Count](2), MaxEjectionPercent: ptr.To[policyv1alpha1.Percentage](0)},
			FaultInjection: &policyv1alpha1.FaultInjection{Delay: &policyv1alpha1.FaultDelay{Fixed: "2s"},
				Abort: &policyv1alpha1.FaultAbort{GRPCStatus: ptr.To[policyv1alpha1.GRPCStatus]("UNAVAILABLE"), Percentage: ptr.To[policyv1alpha1.Percentage](30)}},
			LoadBalancer: &policyv1alpha1.LoadBalancer{Type: "RingHash", HashKey: &policyv1alpha1.HashKey{Header: "X-User"}},
		})},
		want: []Policy{{Source: pref("p"), Service: web, Port: 80, Timeout: 1500 * time.Millisecond, IdleTimeout: 5 * time.Minute,
			Retries: &Retries{Attempts: 3, PerTryTimeout: 500 * time.Millisecond, RetryOn: []policyv1alpha1.RetryOn{"5xx", "unavailable"},
				BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond},
			CircuitBreaker:   &CircuitBreaker{MaxRequests: 1},
			OutlierDetection: &OutlierDetection{Consecutive5xx: 2, MaxEjectionPercent: ptr.To[int32](0)},
			Fault: &Fault{Delay: &FaultDelay{Fixed: 2 * time.Second, Percent: 100},
				Abort: &FaultAbort{GRPCStatus: "UNAVAILABLE", GRPCCode: 14, Percent: 30}},
			LoadBalancer: &LoadBalancer{Type: "RingHash", HashHeader: "x-user"},
		}},
	}, {
		name: "the oldest policy of overlapping targets wins, even broken; disjoint ports coexist",
		policies: []policyv1alpha1.TrafficPolicy{
			trafficPolicy("old-80", "web", 80, 3*time.Hour, policyv1alpha1.TrafficPolicySpec{Timeout: dur("-1s")}),
			trafficPolicy("all-ports", "web", 0, 2*time.Hour, timeout),
			trafficPolicy("new-80", "web", 80, time.Hour, timeout),
			trafficPolicy("new-9090", "web", 9090, time.Hour, timeout),
		},
		want: []Policy{{Source: pref("new-9090"), Service: web, Port: 9090, Timeout: 2 * time.Second}},
		wantDiags: []Diagnostic{
			{pref("all-ports"), smi.ConditionAccepted, ReasonConflicted, `Service "web" is already governed by the older TrafficPolicy "old-80"`, SeverityError},
			{pref("new-80"), smi.ConditionAccepted, ReasonConflicted, `port 80 of Service "web" is already governed by the older TrafficPolicy "old-80"`, SeverityError},
			{pref("old-80"), smi.ConditionAccepted, ReasonInvalidPolicy, `spec.timeout: "-1s" is not a duration of at least 1ms in whole milliseconds`, SeverityError},
		},
	}, {
		name: "a target that is not a Service, a missing Service, a missing port",
		policies: func() []policyv1alpha1.TrafficPolicy {
			deploy := trafficPolicy("deploy", "web", 0, 0, timeout)
			deploy.Spec.TargetRef.Kind = "Deployment"
			return []policyv1alpha1.TrafficPolicy{deploy, trafficPolicy("gone", "api", 0, 0, timeout), trafficPolicy("port", "web", 8080, 0, timeout)}
		}(),
		wantDiags: []Diagnostic{
			{pref("deploy"), smi.ConditionAccepted, ReasonUnsupportedTargetKind, `targetRef names Deployment "web" of group ""; a TrafficPolicy attaches to a Service (kind Service, core group)`, SeverityError},
			{pref("gone"), smi.ConditionResolvedRefs, ReasonServiceNotFound, `targetRef: Service "api" not found in namespace "shop"`, SeverityError},
			{pref("port"), smi.ConditionResolvedRefs, ReasonPortNotFound, `targetRef.port: Service "web" has no port 8080`, SeverityError},
		},
	}, {
		name: "what the CRD refuses is refused here too, each field named",
		policies: []policyv1alpha1.TrafficPolicy{trafficPolicy("bad", "web", 0, 0, policyv1alpha1.TrafficPolicySpec{
			Retries:        &policyv1alpha1.Retries{RetryOn: []policyv1alpha1.RetryOn{"teapot"}},
			FaultInjection: &policyv1alpha1.FaultInjection{Abort: &policyv1alpha1.FaultAbort{GRPCStatus: ptr.To[policyv1alpha1.GRPCStatus]("BROKEN"), Percentage: ptr.To[policyv1alpha1.Percentage](101)}},
			LoadBalancer:   &policyv1alpha1.LoadBalancer{Type: "RingHash"},
		})},
		wantDiags: []Diagnostic{{pref("bad"), smi.ConditionAccepted, ReasonInvalidPolicy,
			`spec.retries.attempts: required; spec.retries.retryOn[0]: "teapot" is not a retry condition; ` +
				`spec.faultInjection.abort.percentage: 101 is not a percentage from 0 to 100; spec.faultInjection.abort.grpcStatus: "BROKEN" is not a gRPC status name; ` +
				`spec.loadBalancer.hashKey: is required with type RingHash or Maglev, and only with them`, SeverityError}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, diags := Build(Snapshot{Services: services, TrafficPolicies: tc.policies}, Settings{})
			if d := cmp.Diff(tc.want, m.Policies); d != "" {
				t.Errorf("policies (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantDiags, diags); d != "" {
				t.Errorf("diagnostics (-want +got):\n%s", d)
			}
		})
	}
}

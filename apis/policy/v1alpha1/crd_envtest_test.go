package v1alpha1_test

import (
	"path/filepath"
	"testing"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// controlPlane (with every CRD under config/crd/bases installed) is started by the first test
// that needs it and stopped by TestMain.
var controlPlane testenv.Lazy

func TestMain(m *testing.M) { controlPlane.Main(m) }

const durationMessage = "must be a duration of at least 1ms in whole milliseconds"

// TestCRDValidation sends the sample, and the sample with one thing wrong, to a real API server
// (dry run: nothing is stored) and checks that the CRD's schema and CEL rules accept the good ones
// and refuse each bad one with an error naming the field.
func TestCRDValidation(t *testing.T) {
	c := controlPlane.Client(t, policyv1alpha1.AddToScheme)
	set, unset := testenv.Set, testenv.Unset
	abort := func(a map[string]any) testenv.Edit { return set("spec.faultInjection", map[string]any{"abort": a}) }
	sample := filepath.Join("..", "..", "..", "config", "samples", "policy.smi-operator.io_v1alpha1_trafficpolicy.yaml")
	for _, tc := range []struct {
		name string
		edit testenv.Edit
		want string // "" when the object must be accepted, else a part of the error
	}{
		{"the sample", nil, ""},
		{"only a target", set("spec", map[string]any{"targetRef": map[string]any{"kind": "Service", "name": "bookstore"}}), ""},
		{"target in the core group", set("spec.targetRef.group", ""), ""},
		{"fractional seconds", set("spec.timeout", "1.5s"), ""},
		{"composite duration", set("spec.idleTimeout", "1h30m"), ""},
		{"retries off", set("spec.retries", map[string]any{"attempts": int64(0)}), ""},
		{"every retry condition", set("spec.retries.retryOn", []any{"5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx",
			"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}), ""},
		{"delay and abort", set("spec.faultInjection", map[string]any{
			"delay": map[string]any{"fixed": "2s", "percentage": int64(100)},
			"abort": map[string]any{"grpcStatus": "UNAVAILABLE", "percentage": int64(30)}}), ""},
		{"HTTP abort", abort(map[string]any{"httpStatus": int64(503)}), ""},
		{"least request", set("spec.loadBalancer", map[string]any{"type": "LeastRequest"}), ""},
		{"maglev by cookie", set("spec.loadBalancer", map[string]any{"type": "Maglev",
			"hashKey": map[string]any{"cookie": map[string]any{"name": "session", "ttl": "1h", "path": "/"}}}), ""},
		{"ring hash by source IP", set("spec.loadBalancer", map[string]any{"type": "RingHash", "hashKey": map[string]any{"sourceIP": true}}), ""},
		{"ejection percentage 100", set("spec.outlierDetection.maxEjectionPercent", int64(100)), ""},

		{"a Deployment as target", set("spec.targetRef.kind", "Deployment"), "targetRef must name a Service"},
		{"a Service of another group", set("spec.targetRef.group", "serving.knative.dev"), "targetRef must name a Service"},
		{"no target", unset("spec.targetRef"), "spec.targetRef: Required value"},
		{"target port 0", set("spec.targetRef.port", int64(0)), "spec.targetRef.port in body should be greater than or equal to 1"},
		{"negative timeout", set("spec.timeout", "-1s"), "spec.timeout: Invalid value: \"-1s\": " + durationMessage},
		{"negative idle timeout", set("spec.idleTimeout", "-5m"), "spec.idleTimeout: Invalid value: \"-5m\": " + durationMessage},
		{"zero timeout", set("spec.timeout", "0s"), "spec.timeout: Invalid value"},
		{"timeout in nanoseconds", set("spec.timeout", "1500000ns"), "spec.timeout: Invalid value"},
		{"timeout without a unit", set("spec.timeout", "5"), "spec.timeout: Invalid value"},
		{"negative per-try timeout", set("spec.retries.perTryTimeout", "-1s"), "spec.retries.perTryTimeout: Invalid value"},
		{"negative backoff", set("spec.retries.backoff.baseInterval", "-25ms"), "spec.retries.backoff.baseInterval: Invalid value"},
		{"backoff max below base", set("spec.retries.backoff.maxInterval", "10ms"), "retries.backoff.maxInterval must not be shorter than retries.backoff.baseInterval"},
		{"negative ejection time", set("spec.outlierDetection.baseEjectionTime", "-30s"), "spec.outlierDetection.baseEjectionTime: Invalid value"},
		{"retries without attempts", unset("spec.retries.attempts"), "spec.retries.attempts: Required value"},
		{"negative attempts", set("spec.retries.attempts", int64(-1)), "spec.retries.attempts in body should be greater than or equal to 0"},
		{"an unknown retry condition", set("spec.retries.retryOn", []any{"5xx", "teapot"}), `spec.retries.retryOn[1]: Unsupported value: "teapot"`},
		{"a gRPC status as a retry condition in upper case", set("spec.retries.retryOn", []any{"UNAVAILABLE"}), `spec.retries.retryOn[0]: Unsupported value: "UNAVAILABLE"`},
		{"ejection percentage over 100", set("spec.outlierDetection.maxEjectionPercent", int64(101)), "spec.outlierDetection.maxEjectionPercent in body should be less than or equal to 100"},
		{"delay percentage over 100", set("spec.faultInjection", map[string]any{"delay": map[string]any{"fixed": "1s", "percentage": int64(150)}}),
			"spec.faultInjection.delay.percentage in body should be less than or equal to 100"},
		{"abort percentage over 100", abort(map[string]any{"httpStatus": int64(503), "percentage": int64(101)}),
			"spec.faultInjection.abort.percentage in body should be less than or equal to 100"},
		{"negative delay", set("spec.faultInjection", map[string]any{"delay": map[string]any{"fixed": "-1s"}}), "spec.faultInjection.delay.fixed: Invalid value"},
		{"an unknown gRPC status", abort(map[string]any{"grpcStatus": "BROKEN"}), `spec.faultInjection.abort.grpcStatus: Unsupported value: "BROKEN"`},
		{"gRPC status OK", abort(map[string]any{"grpcStatus": "OK"}), `spec.faultInjection.abort.grpcStatus: Unsupported value: "OK"`},
		{"HTTP and gRPC status", abort(map[string]any{"httpStatus": int64(503), "grpcStatus": "UNAVAILABLE"}), "faultInjection.abort needs exactly one of httpStatus and grpcStatus"},
		{"abort without a status", abort(map[string]any{"percentage": int64(10)}), "faultInjection.abort needs exactly one of httpStatus and grpcStatus"},
		{"HTTP status 600", abort(map[string]any{"httpStatus": int64(600)}), "spec.faultInjection.abort.httpStatus in body should be less than or equal to 599"},
		{"empty fault injection", set("spec.faultInjection", map[string]any{}), "faultInjection needs a delay, an abort or both"},
		{"ring hash without a key", unset("spec.loadBalancer.hashKey"), "loadBalancer.hashKey is required with type RingHash or Maglev"},
		{"round robin with a key", set("spec.loadBalancer.type", "RoundRobin"), "loadBalancer.hashKey is required with type RingHash or Maglev, and only with them"},
		{"an unknown algorithm", set("spec.loadBalancer.type", "Random"), `spec.loadBalancer.type: Unsupported value: "Random"`},
		{"a hash key of two properties", set("spec.loadBalancer.hashKey.sourceIP", true), "loadBalancer.hashKey needs exactly one of header, cookie and sourceIP"},
		{"a hash key of nothing", set("spec.loadBalancer.hashKey", map[string]any{"sourceIP": false}), "loadBalancer.hashKey needs exactly one of header, cookie and sourceIP"},
		{"a header name with a space", set("spec.loadBalancer.hashKey.header", "x user"), "loadBalancer.hashKey.header must be an HTTP header name"},
		{"zero max requests", set("spec.circuitBreaker.maxRequests", int64(0)), "spec.circuitBreaker.maxRequests in body should be greater than or equal to 1"},
	} {
		testenv.CheckCreate(t, c, sample, tc.name, tc.edit, tc.want)
	}
}

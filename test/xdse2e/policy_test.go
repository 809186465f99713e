package xdse2e

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// policySpecs are the specs of TrafficPolicies on live traffic: each behaviour a policy asks for
// is observed in a real grpc-go proxyless client's calls to real backends, the policy written as
// a user writes it and served by the operator's xDS backend.
func policySpecs() {
	It("retries turn a backend failing every other call into ≥ 99% success", retriesRecoverFailures)
	It("an abort fault returns its status to every call at 100%, and to 30% of them at 30%", abortsAnswerInstead)
	It("a timeout cuts a slow backend short; an injected delay is reported as not cut", timeoutsCutSlowCalls)
	It("a circuit breaker of one request overflows under ten concurrent calls", circuitBreakerOverflows)
	It("an endpoint failing every call is ejected and traffic moves to the healthy one", outliersAreEjected)
	It("a ring hash by header keeps each header value on one backend", ringHashKeepsHeaderValues)
}

// behaviour is a server interceptor that makes a backend fail the calls fail picks (given their
// 1-based number) with UNAVAILABLE, and answer only after delay; calls counts what it saw.
type behaviour struct {
	fail  func(n int64) bool
	delay time.Duration
	calls atomic.Int64
}

func (b *behaviour) option() grpc.ServerOption {
	return grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		n := b.calls.Add(1)
		if b.delay > 0 {
			select {
			case <-time.After(b.delay):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if b.fail != nil && b.fail(n) {
			return nil, status.Error(codes.Unavailable, "failing on purpose")
		}
		return handler(ctx, req)
	})
}

// policy creates a TrafficPolicy of Service namespace/service with spec, and waits until it is
// Accepted (whether it is Programmed is each spec's to check: a warning of what a client cannot
// honour is no failure).
func (o *operator) policy(namespace, service string, spec policyv1alpha1.TrafficPolicySpec) *policyv1alpha1.TrafficPolicy {
	GinkgoHelper()
	spec.TargetRef = policyv1alpha1.TargetRef{Kind: "Service", Name: service}
	p := &policyv1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: service}, Spec: spec}
	o.create(p)
	o.waitCondition(p, smi.ConditionAccepted, metav1.ConditionTrue, "")
	return p
}

// updatePolicy changes the policy's spec with edit.
func (o *operator) updatePolicy(p *policyv1alpha1.TrafficPolicy, edit func(*policyv1alpha1.TrafficPolicySpec)) {
	GinkgoHelper()
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := o.client.Get(context.Background(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		edit(&p.Spec)
		return o.client.Update(context.Background(), p)
	})).To(Succeed())
}

// outcomes makes n calls, one after the other, and counts their status codes.
func (c *grpcClient) outcomes(ctx context.Context, n int, opts ...grpc.CallOption) map[codes.Code]int {
	GinkgoHelper()
	out := map[codes.Code]int{}
	for range n {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := grpcxds.Call(cctx, c.conn, opts...)
		cancel()
		out[status.Code(err)]++
	}
	return out
}

// waitOutcome calls until a run of 20 calls all end with code: the policy has reached the client.
func (c *grpcClient) waitOutcome(ctx context.Context, code codes.Code) {
	GinkgoHelper()
	Eventually(func() map[codes.Code]int { return c.outcomes(ctx, 20) }, time.Minute, 100*time.Millisecond).
		Should(Equal(map[codes.Code]int{code: 20}))
}

func retriesRecoverFailures() {
	ctx := context.Background()
	ns := o.namespace("policy-retries")
	flaky := &behaviour{fail: func(n int64) bool { return n%2 == 1 }}
	o.service(ns, "flaky", o.backend(ns, "flaky", 2, flaky.option()))
	c := dial(ns, "flaky", o.clientBootstrap(ns, "retries-client"))

	// Without a policy the backend's failures reach the caller: half of the calls.
	c.waitFor(ctx, grpcxds.FromBackend("flaky"))
	before := c.outcomes(ctx, 100)
	Expect(before[codes.Unavailable]).To(BeNumerically("~", 50, 1), "calls without retries: %v", before)

	o.policy(ns, "flaky", policyv1alpha1.TrafficPolicySpec{Retries: &policyv1alpha1.Retries{
		Attempts: ptr.To[int32](3), RetryOn: []policyv1alpha1.RetryOn{policyv1alpha1.RetryOnUnavailable}}})
	c.waitOutcome(ctx, codes.OK)
	seen := flaky.calls.Load()
	after := c.outcomes(ctx, 200)
	Expect(after[codes.OK]).To(BeNumerically(">=", 198), "calls with 3 retries: %v", after)
	Expect(flaky.calls.Load()-seen).To(BeNumerically(">=", 300), "the backend saw too few calls for the retries to have happened")
}

func abortsAnswerInstead() {
	ctx := context.Background()
	ns := o.namespace("policy-abort")
	b := &behaviour{}
	o.service(ns, "api", o.backend(ns, "api", 3, b.option()))
	c := dial(ns, "api", o.clientBootstrap(ns, "abort-client"))
	c.waitFor(ctx, grpcxds.FromBackend("api"))

	p := o.policy(ns, "api", policyv1alpha1.TrafficPolicySpec{FaultInjection: &policyv1alpha1.FaultInjection{
		Abort: &policyv1alpha1.FaultAbort{GRPCStatus: ptr.To[policyv1alpha1.GRPCStatus]("RESOURCE_EXHAUSTED")}}})
	c.waitOutcome(ctx, codes.ResourceExhausted)
	seen := b.calls.Load()
	Expect(c.outcomes(ctx, 100)).To(Equal(map[codes.Code]int{codes.ResourceExhausted: 100}))
	Expect(b.calls.Load()).To(Equal(seen), "aborted calls reached the backend")

	By("aborting 30% of the calls")
	o.updatePolicy(p, func(spec *policyv1alpha1.TrafficPolicySpec) {
		spec.FaultInjection.Abort.Percentage = ptr.To[policyv1alpha1.Percentage](30)
	})
	c.waitFor(ctx, grpcxds.FromBackend("api")) // some calls pass again: the new percentage arrived
	const calls = 400
	got := c.outcomes(ctx, calls)
	// Binomial(400, 0.3): mean 120, standard deviation √(400·0.3·0.7) ≈ 9.2; five of them ≈ 46.
	sd := math.Sqrt(calls * 0.3 * 0.7)
	Expect(got).To(HaveLen(2), "only OK and RESOURCE_EXHAUSTED: %v", got)
	Expect(float64(got[codes.ResourceExhausted])).To(BeNumerically("~", calls*0.3, 5*sd), "%v", got)
}

func timeoutsCutSlowCalls() {
	ctx := context.Background()
	ns := o.namespace("policy-timeout")
	o.service(ns, "slow", o.backend(ns, "slow", 4, (&behaviour{delay: 2 * time.Second}).option()))
	c := dial(ns, "slow", o.clientBootstrap(ns, "timeout-client"))
	// Not waited for with the suite's helpers: their calls' deadlines are not far above the
	// backend's 2 s. Each call here allows 5 s, so that only the policy's timeout ends one early.
	p := o.policy(ns, "slow", policyv1alpha1.TrafficPolicySpec{Timeout: ptr.To[policyv1alpha1.Duration]("500ms")})
	Eventually(func() error {
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := grpcxds.Call(cctx, c.conn)
		if status.Code(err) != codes.DeadlineExceeded {
			return fmt.Errorf("call: %v, want DEADLINE_EXCEEDED", err)
		}
		if took := time.Since(start); took >= 2*time.Second {
			return fmt.Errorf("the call took %v: the timeout did not cut it", took)
		}
		return nil
	}, time.Minute).Should(Succeed())

	// grpc-go runs the fault filter's delay before max_stream_duration applies, so a policy
	// timeout does not end an injected delay (translators/xds/policy_grpc_test.go shows it): the
	// policy says so instead of pretending.
	By("adding a 2s delay fault: the status says the timeout does not cut it")
	o.updatePolicy(p, func(spec *policyv1alpha1.TrafficPolicySpec) {
		spec.FaultInjection = &policyv1alpha1.FaultInjection{Delay: &policyv1alpha1.FaultDelay{Fixed: "2s"}}
	})
	o.waitCondition(p, smi.ConditionProgrammed, metav1.ConditionFalse, mesh.ReasonUnsupportedPolicyField)
	got := &policyv1alpha1.TrafficPolicy{}
	Expect(o.client.Get(ctx, client.ObjectKeyFromObject(p), got)).To(Succeed())
	Expect(meta.FindStatusCondition(got.Status.Conditions, smi.ConditionProgrammed).Message).To(ContainSubstring("delay"))
}

func circuitBreakerOverflows() {
	ctx := context.Background()
	ns := o.namespace("policy-circuit-breaker")
	o.service(ns, "busy", o.backend(ns, "busy", 5, (&behaviour{delay: 300 * time.Millisecond}).option()))
	c := dial(ns, "busy", o.clientBootstrap(ns, "breaker-client"))
	c.waitFor(ctx, grpcxds.FromBackend("busy"))
	concurrent := func() map[codes.Code]int {
		var mu sync.Mutex
		out := map[codes.Code]int{}
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				_, err := grpcxds.Call(ctx, c.conn)
				mu.Lock()
				out[status.Code(err)]++
				mu.Unlock()
			})
		}
		wg.Wait()
		return out
	}
	Expect(concurrent()).To(Equal(map[codes.Code]int{codes.OK: 10}), "without a circuit breaker")

	o.policy(ns, "busy", policyv1alpha1.TrafficPolicySpec{CircuitBreaker: &policyv1alpha1.CircuitBreaker{MaxRequests: ptr.To[policyv1alpha1.Count](1)}})
	Eventually(concurrent, time.Minute).Should(And(HaveKey(codes.OK), HaveKey(codes.Unavailable), HaveLen(2)))
}

func outliersAreEjected() {
	ctx := context.Background()
	ns := o.namespace("policy-outliers")
	broken, healthy := &behaviour{fail: func(int64) bool { return true }}, &behaviour{}
	o.service(ns, "api", o.backend(ns, "broken", 6, broken.option()), o.backend(ns, "healthy", 7, healthy.option()))
	c := dial(ns, "api", o.clientBootstrap(ns, "outlier-client"))
	c.waitFor(ctx, grpcxds.FromBackend("healthy"))
	// Without outlier detection the broken endpoint keeps its share, once its connection is up.
	c.waitFor(ctx, func(_ grpcxds.Reply, err error) error {
		if status.Code(err) != codes.Unavailable {
			return fmt.Errorf("no call failed on the broken endpoint yet (last: %v)", err)
		}
		return nil
	})

	o.policy(ns, "api", policyv1alpha1.TrafficPolicySpec{OutlierDetection: &policyv1alpha1.OutlierDetection{
		Consecutive5xx: ptr.To[policyv1alpha1.Count](3), Interval: ptr.To[policyv1alpha1.Duration]("200ms"),
		BaseEjectionTime: ptr.To[policyv1alpha1.Duration]("30s"), MaxEjectionPercent: ptr.To[policyv1alpha1.Percentage](50)}})
	c.waitOutcome(ctx, codes.OK)
	Expect(c.outcomes(ctx, 100)).To(Equal(map[codes.Code]int{codes.OK: 100}))
}

func ringHashKeepsHeaderValues() {
	ctx := context.Background()
	ns := o.namespace("policy-ring-hash")
	o.service(ns, "api", o.backend(ns, "one", 8), o.backend(ns, "two", 9))
	c := dial(ns, "api", o.clientBootstrap(ns, "hash-client"))
	c.waitFor(ctx, grpcxds.FromBackend("one"))
	c.waitFor(ctx, grpcxds.FromBackend("two"))

	o.policy(ns, "api", policyv1alpha1.TrafficPolicySpec{LoadBalancer: &policyv1alpha1.LoadBalancer{
		Type: policyv1alpha1.LoadBalancerRingHash, HashKey: &policyv1alpha1.HashKey{Header: "x-user"}}})
	// Round robin alternates whatever the header: once each value stays put, the hash is in force.
	sticky := func() error {
		seen := map[string]bool{}
		for user := range 20 {
			uctx := metadata.AppendToOutgoingContext(ctx, "x-user", fmt.Sprint("user-", user))
			first := ""
			for range 10 {
				r, err := grpcxds.Call(uctx, c.conn)
				if err != nil {
					return err
				}
				if first == "" {
					first = r.Backend
				} else if r.Backend != first {
					return fmt.Errorf("user-%d went to %s, then to %s", user, first, r.Backend)
				}
			}
			seen[first] = true
		}
		if len(seen) != 2 {
			return fmt.Errorf("20 header values all went to %v; want both backends used", seen)
		}
		return nil
	}
	Eventually(sticky, time.Minute).Should(Succeed())
}

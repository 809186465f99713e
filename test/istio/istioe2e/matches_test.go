package istioe2e

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/smi-operator/smi-operator/test/grpcxds"
)

// TestSplitMatchesOnIstiod: with a TrafficSplit's matches (v1alpha3 and v1alpha4), istiod splits
// only the requests its HTTPRouteGroup matches — by header (exact and regex), by path (a literal,
// emitted as a prefix, and a regex) — and the rest stay on the apex; editing the group moves the
// traffic. Each step changes where one kind of call goes, so waiting for that shows istiod has it.
func TestSplitMatchesOnIstiod(t *testing.T) {
	m := start(t)
	for _, version := range []string{"v1alpha3", "v1alpha4"} {
		t.Run(version, func(t *testing.T) {
			ns := m.namespace(t, "matches-"+version)
			c := m.apexAndBackends(t, ns)
			m.matchesFollowed(t, version, ns, c, []matchStep{
				{"header, exact", []any{headerMatch("yes")}, []context.Context{canaryCall}, []context.Context{plainCall, notCanaryCall}},
				{"another method's path", []any{pathMatch(`/grpc\.testing\.TestService/EmptyCall`)}, nil, []context.Context{plainCall, canaryCall}},
				{"literal path", []any{pathMatch(`/grpc\.testing\.TestService/UnaryCall`)}, []context.Context{plainCall, canaryCall}, nil},
				{"header, regex", []any{headerMatch("y[a-z]s")}, []context.Context{canaryCall}, []context.Context{plainCall, notCanaryCall}},
				{"path regex", []any{pathMatch(`/grpc\.testing\.TestService/Un[a-z]+Call`)}, []context.Context{plainCall, canaryCall}, nil},
			})
			m.istiodFindsNothingWrong(t, ns)
		})
	}
}

// The calls a match step makes: without metadata, with x-canary: yes, and with an x-canary that
// a header regex of "yes" must not match (regexes match the whole value).
var (
	plainCall     = context.Background()
	canaryCall    = metadata.AppendToOutgoingContext(plainCall, "x-canary", "yes")
	notCanaryCall = metadata.AppendToOutgoingContext(plainCall, "x-canary", "yes, no")
)

// headerMatch is an HTTPRouteGroup match of x-canary against the regex re.
func headerMatch(re string) map[string]any {
	return map[string]any{"name": "header", "headers": []any{map[string]any{"x-canary": re}}}
}

// pathMatch is an HTTPRouteGroup match of the path against the regex re.
func pathMatch(re string) map[string]any { return map[string]any{"name": "path", "pathRegex": re} }

// matchStep is one state of the HTTPRouteGroup "canary": its matches, the calls the split takes
// and those left on the apex.
type matchStep struct {
	what                  string
	matches               []any
	matching, notMatching []context.Context
}

// matchesFollowed creates the HTTPRouteGroup "canary" with the first step's matches and a 50/50
// TrafficSplit of version taking it in namespace, then edits the group step by step, and checks
// after each edit that c's matching calls split and the others stay on the apex. Each step should
// change where one kind of call goes, so that waiting for that shows the mesh has it.
func (m *meshEnv) matchesFollowed(t *testing.T, version, namespace string, c grpc.ClientConnInterface, steps []matchStep) {
	t.Helper()
	group := m.createSMI(t, "specs.smi-spec.io/v1alpha4", "HTTPRouteGroup", namespace, "canary",
		map[string]any{"matches": steps[0].matches})
	m.split(t, version, namespace, "apex", 50, 50, "canary")
	for i, step := range steps {
		if i > 0 {
			m.patchSpec(t, group, map[string]any{"matches": step.matches})
		}
		for _, calls := range step.matching {
			wait(t, calls, func(ctx context.Context) error { return grpcxds.WaitFor(ctx, c, notFrom("apex")) })
		}
		for _, calls := range step.notMatching {
			wait(t, calls, func(ctx context.Context) error { return grpcxds.WaitOnly(ctx, c, "apex", 50) })
		}
		for _, calls := range step.matching {
			shares(t, calls, c, map[string]float64{"v1": 50, "v2": 50})
		}
		for _, calls := range step.notMatching {
			shares(t, calls, c, map[string]float64{"apex": 1})
		}
		t.Logf("%s %v: %d kinds of call split, %d on the apex", step.what, step.matches, len(step.matching), len(step.notMatching))
	}
}

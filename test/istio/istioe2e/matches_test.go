package istioe2e

import (
	"context"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/smi-operator/smi-operator/test/grpcxds"
)

// TestSplitMatchesOnIstiod: with a TrafficSplit's matches (v1alpha3 and v1alpha4), istiod splits
// only the requests its HTTPRouteGroup matches — by header (exact and regex), by path (a literal,
// emitted as a prefix, and a regex) — and the rest stay on the apex; editing the group moves the
// traffic. Each step changes where one kind of call goes, so waiting for that shows istiod has it.
func TestSplitMatchesOnIstiod(t *testing.T) {
	m := start(t)
	ctx := context.Background()
	canary := metadata.AppendToOutgoingContext(ctx, "x-canary", "yes")
	notCanary := metadata.AppendToOutgoingContext(ctx, "x-canary", "yes, no") // header regexes match the whole value
	header := func(re string) map[string]any {
		return map[string]any{"name": "header", "headers": []any{map[string]any{"x-canary": re}}}
	}
	path := func(re string) map[string]any { return map[string]any{"name": "path", "pathRegex": re} }
	steps := []struct {
		what                  string
		match                 map[string]any
		matching, notMatching []context.Context
	}{
		{"header, exact", header("yes"), []context.Context{canary}, []context.Context{ctx, notCanary}},
		{"another method's path", path(`/grpc\.testing\.TestService/EmptyCall`), nil, []context.Context{ctx, canary}},
		{"literal path", path(`/grpc\.testing\.TestService/UnaryCall`), []context.Context{ctx, canary}, nil},
		{"header, regex", header("y[a-z]s"), []context.Context{canary}, []context.Context{ctx, notCanary}},
		{"path regex", path(`/grpc\.testing\.TestService/Un[a-z]+Call`), []context.Context{ctx, canary}, nil},
	}
	for _, version := range []string{"v1alpha3", "v1alpha4"} {
		t.Run(version, func(t *testing.T) {
			ns := m.namespace(t, "matches-"+version)
			c := m.apexAndBackends(t, ns)
			group := m.createSMI(t, "specs.smi-spec.io/v1alpha4", "HTTPRouteGroup", ns, "canary",
				map[string]any{"matches": []any{steps[0].match}})
			m.split(t, version, ns, "apex", 50, 50, "canary")
			for i, step := range steps {
				if i > 0 {
					m.patchSpec(t, group, map[string]any{"matches": []any{step.match}})
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
				t.Logf("%s %v: %d kinds of call split, %d on the apex", step.what, step.match, len(step.matching), len(step.notMatching))
			}
			m.istiodFindsNothingWrong(t, ns)
		})
	}
}

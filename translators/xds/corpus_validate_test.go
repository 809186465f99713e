package xds

import (
	"testing"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/test/corpus"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// TestEveryInputValidates runs every input the repository has (package test/corpus: the golden
// cases of both translators, translate's cases and every fuzz corpus entry), unvalidated, through
// mesh.Build and every xDS output: the proxyless resources, the Envoy sidecars' resources, and the
// per-identity server and inbound listeners. Every resource, and every message packed in it, must
// pass go-control-plane's ValidateAll: a client rejects a resource that does not, and with it the
// whole update (an empty safe_regex is one: the route configuration of its Service is lost). Every
// safe_regex must also be within Envoy's default RE2 program size, which Envoy checks on its own.
func TestEveryInputValidates(t *testing.T) {
	cases, err := corpus.All("../..")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 60 {
		t.Fatalf("only %d inputs: the corpus is not being found", len(cases))
	}
	var resources, regexes int
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			all := corpusMessages(t, c)
			for _, m := range all {
				validateDeep(t, m)
				// What ValidateAll does not check and Envoy does when it compiles the regex:
				// its default RE2 program-size limit (smi.MaxRegexProgramSize).
				eachRegex(m, func(re string) {
					regexes++
					if size := smi.RegexProgramSize(re); size > smi.MaxRegexProgramSize {
						t.Errorf("%T: safe_regex %.100q has an RE2 program of about %d, over Envoy's default %d", m, re, size, smi.MaxRegexProgramSize)
					}
				})
			}
			resources += len(all)
		})
	}
	// The corpus must reach the regex matchers, or the test proves little.
	if resources == 0 || regexes == 0 {
		t.Errorf("%d resources, %d safe_regexes: the corpus exercises nothing", resources, regexes)
	}
}

// corpusMessages is every xDS resource one corpus input yields: the proxyless resources, the Envoy
// sidecars' resources, and the server and inbound listeners of every identity with access rules.
func corpusMessages(t *testing.T, c corpus.Case) []proto.Message {
	t.Helper()
	model, _ := mesh.Build(c.Snapshot, c.Settings)
	services := servicesOf(c.Snapshot, c.Settings)
	endpoints := BuildEndpoints(c.Snapshot.Services, c.EndpointSlices, c.Pods)
	var all []proto.Message
	out, _ := Translate(model, services, endpoints, c.Settings)
	envoy, _ := TranslateEnvoy(model, services, endpoints, c.Settings)
	for _, o := range []Output{out, envoy} {
		all = appendMessages(all, o.Listeners)
		all = appendMessages(all, o.RouteConfigurations)
		all = appendMessages(all, o.Clusters)
		all = appendMessages(all, o.ClusterLoadAssignments)
	}
	for _, r := range model.AccessRules {
		rules := RulesFor(model.AccessRules, r.Destination.Namespace, r.Destination.ServiceAccount)
		server, err := ServerListener(goldenServerListener, rules, c.Settings)
		if err != nil {
			t.Fatalf("ServerListener for %s/%s: %v", r.Destination.Namespace, r.Destination.ServiceAccount, err)
		}
		inbound, err := InboundListener(rules, c.Settings)
		if err != nil {
			t.Fatalf("InboundListener for %s/%s: %v", r.Destination.Namespace, r.Destination.ServiceAccount, err)
		}
		all = append(all, server, inbound)
	}
	return all
}

func appendMessages[T proto.Message](all []proto.Message, msgs []T) []proto.Message {
	for _, m := range msgs {
		all = append(all, m)
	}
	return all
}

// eachRegex calls f with the regex of every RegexMatcher in m, at any depth, Anys unpacked.
func eachRegex(m proto.Message, f func(string)) {
	walkMessages(m, func(m proto.Message) bool {
		if r, ok := m.(*matcherv3.RegexMatcher); ok {
			f(r.GetRegex())
			return false
		}
		return true
	})
}

// walkMessages calls f on m and on every message inside it, at any depth, Anys unpacked (the
// Any itself is not passed to f); f returning false skips what is inside that message.
func walkMessages(m proto.Message, f func(proto.Message) bool) {
	if a, ok := m.(*anypb.Any); ok {
		if inner, err := a.UnmarshalNew(); err == nil {
			walkMessages(inner, f)
		}
		return
	}
	if !f(m) {
		return
	}
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				walkMessages(v.List().Get(i).Message().Interface(), f)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				walkMessages(mv.Message().Interface(), f)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			walkMessages(v.Message().Interface(), f)
		}
		return true
	})
}

package xds

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/smi-operator/smi-operator/test/corpus"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// TestEveryInputValidates runs every input the repository has (package test/corpus: the golden
// cases of both translators, translate's cases and every fuzz corpus entry), unvalidated, through
// mesh.Build and every xDS output: the proxyless resources, the Envoy sidecars' resources, and the
// per-identity server and inbound listeners. Every resource, and every message packed in it, must
// pass go-control-plane's ValidateAll: a client rejects a resource that does not, and with it the
// whole update (an empty safe_regex is one: the route configuration of its Service is lost).
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
			model, _ := mesh.Build(c.Snapshot, c.Settings)
			services := make([]mesh.Service, len(c.Snapshot.Services))
			for i := range c.Snapshot.Services {
				services[i] = mesh.ServiceOf(&c.Snapshot.Services[i], c.Settings)
			}
			endpoints := BuildEndpoints(c.Snapshot.Services, c.EndpointSlices)
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
			for _, m := range all {
				validateDeep(t, m)
				if containsSafeRegex(t, m) {
					regexes++
				}
			}
			resources += len(all)
		})
	}
	// The corpus must reach the regex matchers, or the test proves little.
	if resources == 0 || regexes == 0 {
		t.Errorf("%d resources, %d with a safe_regex: the corpus exercises nothing", resources, regexes)
	}
}

func appendMessages[T proto.Message](all []proto.Message, msgs []T) []proto.Message {
	for _, m := range msgs {
		all = append(all, m)
	}
	return all
}

// containsSafeRegex reports whether m, with the messages packed in its Anys, holds a safe_regex.
func containsSafeRegex(t *testing.T, m proto.Message) bool {
	raw, err := protojson.Marshal(m) // expands Anys of linked-in types
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(raw), `"safeRegex"`)
}

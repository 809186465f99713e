package e2e

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// malformed is an object the cluster must refuse, with the field the refusal must name and a
// fragment of the reason. Some are refused by the CRD schema (OpenAPI and CEL), the rest by the
// validating webhook: the test does not care which, only that the user is told where and why.
type malformed struct {
	yaml, field, reason string
}

const (
	splitV1 = "apiVersion: split.smi-spec.io/v1alpha1\nkind: TrafficSplit\nmetadata: {name: bad}\n"
	splitV2 = "apiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\nmetadata: {name: bad}\n"
	splitV3 = "apiVersion: split.smi-spec.io/v1alpha3\nkind: TrafficSplit\nmetadata: {name: bad}\n"
	splitV4 = "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: bad}\n"
	ttV1    = "apiVersion: access.smi-spec.io/v1alpha1\nkind: TrafficTarget\nmetadata: {name: bad}\n"
	ttV2    = "apiVersion: access.smi-spec.io/v1alpha2\nkind: TrafficTarget\nmetadata: {name: bad}\n"
	ttV3    = "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: bad}\n"
	hrgV1   = "apiVersion: specs.smi-spec.io/v1alpha1\nkind: HTTPRouteGroup\nmetadata: {name: bad}\n"
	hrgV2   = "apiVersion: specs.smi-spec.io/v1alpha2\nkind: HTTPRouteGroup\nmetadata: {name: bad}\n"
	hrgV3   = "apiVersion: specs.smi-spec.io/v1alpha3\nkind: HTTPRouteGroup\nmetadata: {name: bad}\n"
	hrgV4   = "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: bad}\n"
	tcpV4   = "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {name: bad}\n"
	udpV4   = "apiVersion: specs.smi-spec.io/v1alpha4\nkind: UDPRoute\nmetadata: {name: bad}\n"

	twoBackends = "  - {service: b, weight: 1}\n"
	sa          = "    kind: ServiceAccount\n    name: api\n"
)

var malformedObjects = map[string]malformed{
	// TrafficSplit
	"v1alpha2 negative weight": {splitV2 + "spec:\n  service: a\n  backends:\n  - {service: b, weight: -1}\n",
		"spec.backends[0].weight", "greater than or equal to 0"},
	"v1alpha4 negative weight": {splitV4 + "spec:\n  service: a\n  backends:\n  - {service: b, weight: 1}\n  - {service: c, weight: -5}\n",
		"spec.backends[1].weight", "greater than or equal to 0"},
	"v1alpha3 fractional weight": {splitV3 + "spec:\n  service: a\n  backends:\n  - {service: b, weight: 1.5}\n",
		"spec.backends[0].weight", "must be of type integer"},
	"v1alpha4 weight as a string": {splitV4 + "spec:\n  service: a\n  backends:\n  - {service: b, weight: \"50\"}\n",
		"spec.backends[0].weight", "must be of type integer"},
	"v1alpha4 missing weight": {splitV4 + "spec:\n  service: a\n  backends:\n  - {service: b}\n",
		"spec.backends[0].weight", "Required value"},
	"v1alpha1 negative quantity": {splitV1 + "spec:\n  service: a\n  backends:\n  - {service: b, weight: \"-500m\"}\n",
		"spec.backends[0].weight", "non-negative quantity"},
	"v1alpha1 weight that is no quantity": {splitV1 + "spec:\n  service: a\n  backends:\n  - {service: b, weight: heavy}\n",
		"spec.backends[0].weight", "should match"},
	"v1alpha1 weight with a huge exponent": {splitV1 + "spec:\n  service: a\n  backends:\n  - {service: b, weight: \"1e-999999999\"}\n",
		"spec.backends[0].weight", "exponent"},
	"v1alpha1 weight too large to convert": {splitV1 + "spec:\n  service: a\n  backends:\n  - {service: b, weight: 10E}\n",
		"spec.backends[0].weight", ""},
	"v1alpha4 empty backends": {splitV4 + "spec:\n  service: a\n  backends: []\n",
		"spec.backends", "at least 1 items"},
	"v1alpha4 missing apex service": {splitV4 + "spec:\n  backends:\n" + twoBackends,
		"spec.service", "Required value"},
	"v1alpha2 empty apex service": {splitV2 + "spec:\n  service: \"\"\n  backends:\n" + twoBackends,
		"spec.service", "at least 1 chars"},
	"v1alpha4 empty backend service": {splitV4 + "spec:\n  service: a\n  backends:\n  - {service: \"\", weight: 1}\n",
		"spec.backends[0].service", "at least 1 chars"},
	"v1alpha4 duplicate backends": {splitV4 + "spec:\n  service: a\n  backends:\n  - {service: b, weight: 1}\n  - {service: b, weight: 2}\n",
		"spec.backends[1]", "Duplicate value"},
	"v1alpha1 missing spec": {splitV1,
		"spec", "Required value"},
	"v1alpha3 match of a kind that is no HTTPRouteGroup": {splitV3 + "spec:\n  service: a\n  backends:\n" + twoBackends + "  matches:\n  - {kind: TCPRoute, name: r}\n",
		"spec.matches[0].kind", "Unsupported value"},
	"v1alpha4 match from another API group": {splitV4 + "spec:\n  service: a\n  backends:\n" + twoBackends + "  matches:\n  - {kind: HTTPRouteGroup, apiGroup: example.com, name: r}\n",
		"spec.matches[0].apiGroup", ""},

	// TrafficTarget
	"v1alpha3 destination that is no ServiceAccount": {ttV3 + "spec:\n  destination:\n    kind: Pod\n    name: api\n",
		"spec.destination.kind", "Unsupported value"},
	"v1alpha3 destination in another namespace": {ttV3 + "spec:\n  destination:\n" + sa + "    namespace: elsewhere\n",
		"spec.destination.namespace", "namespace"},
	"v1alpha1 destination in another namespace": {ttV1 + "destination:\n" + sa + "    namespace: elsewhere\nsources: []\nspecs: []\n",
		"destination.namespace", "namespace"},
	"v1alpha3 rule of an unknown kind": {ttV3 + "spec:\n  destination:\n" + sa + "  rules:\n  - {kind: GRPCRoute, name: r}\n",
		"spec.rules[0].kind", "Unsupported value"},
	"v1alpha1 spec of an unknown kind": {ttV1 + "destination:\n" + sa + "sources: []\nspecs:\n- {kind: Ingress, name: r}\n",
		"specs[0].kind", "Unsupported value"},
	"v1alpha3 source that is no ServiceAccount": {ttV3 + "spec:\n  destination:\n" + sa + "  sources:\n  - {kind: Group, name: devs}\n",
		"spec.sources[0].kind", "Unsupported value"},
	"v1alpha3 source without a name": {ttV3 + "spec:\n  destination:\n" + sa + "  sources:\n  - {kind: ServiceAccount, name: \"\"}\n",
		"spec.sources[0].name", "at least 1 chars"},
	"v1alpha2 destination port out of range": {ttV2 + "spec:\n  destination:\n" + sa + "    port: 70000\n",
		"spec.destination.port", "less than or equal to 65535"},
	"v1alpha3 missing destination": {ttV3 + "spec:\n  sources:\n  - {kind: ServiceAccount, name: a}\n",
		"spec.destination", "Required value"},
	"v1alpha3 the same rule twice": {ttV3 + "spec:\n  destination:\n" + sa + "  rules:\n  - {kind: TCPRoute, name: r}\n  - {kind: TCPRoute, name: r}\n",
		"spec.rules[1].name", "Duplicate value"},

	// HTTPRouteGroup
	"v1alpha4 path regex that does not compile": {hrgV4 + "spec:\n  matches:\n  - {name: m, pathRegex: \"/api/(v1\"}\n",
		"spec.matches[0].pathRegex", "missing closing )"},
	"v1alpha1 path regex that does not compile": {hrgV1 + "matches:\n- {name: m, pathRegex: \"[a-\"}\n",
		"matches[0].pathRegex", "missing closing ]"},
	"v1alpha3 path regex RE2 cannot run": {hrgV3 + "spec:\n  matches:\n  - {name: m, pathRegex: \"/(?=admin)\"}\n",
		"spec.matches[0].pathRegex", "invalid or unsupported Perl syntax"},
	"v1alpha4 unknown method": {hrgV4 + "spec:\n  matches:\n  - {name: m, methods: [FETCH]}\n",
		"spec.matches[0].methods[0]", "Unsupported value"},
	"v1alpha4 match without a name": {hrgV4 + "spec:\n  matches:\n  - {pathRegex: /a}\n",
		"spec.matches[0].name", "Required value"},
	"v1alpha4 two matches with one name": {hrgV4 + "spec:\n  matches:\n  - {name: m, pathRegex: /a}\n  - {name: m, pathRegex: /b}\n",
		"spec.matches[1]", "Duplicate value"},
	"v1alpha3 header entry with two headers": {hrgV3 + "spec:\n  matches:\n  - name: m\n    headers:\n    - {a: x, b: y}\n",
		"spec.matches[0].headers[0]", "at most 1"},
	"v1alpha2 headers written as a map": {hrgV2 + "matches:\n- name: m\n  headers: {user-agent: x}\n",
		"matches[0].headers", "must be of type array"},
	"v1alpha4 header regex that does not compile": {hrgV4 + "spec:\n  matches:\n  - name: m\n    headers:\n    - {user-agent: \"*Firefox\"}\n",
		"spec.matches[0].headers[0][user-agent]", "missing argument to repetition operator"},
	"v1alpha4 the same header twice": {hrgV4 + "spec:\n  matches:\n  - name: m\n    headers:\n    - {cookie: a}\n    - {cookie: b}\n",
		"spec.matches[0].headers[1]", "cookie"},

	// TCPRoute and UDPRoute
	"v1alpha4 TCP port 0": {tcpV4 + "spec:\n  matches:\n    ports: [0]\n",
		"spec.matches.ports[0]", "greater than or equal to 1"},
	"v1alpha4 TCP port listed twice": {tcpV4 + "spec:\n  matches:\n    ports: [80, 80]\n",
		"spec.matches.ports[1]", "Duplicate value"},
	"v1alpha4 UDP port out of range": {udpV4 + "spec:\n  matches:\n    ports: [53, 70000]\n",
		"spec.matches.ports[1]", "less than or equal to 65535"},
}

var _ = Describe("Malformed SMI objects", func() {
	for name, tc := range malformedObjects {
		It("refuses "+name+", naming "+tc.field, func(ctx SpecContext) {
			obj := &unstructured.Unstructured{}
			Expect(yaml.Unmarshal([]byte(tc.yaml), &obj.Object)).To(Succeed())
			obj.SetNamespace(newNamespace(ctx))
			err := k8sClient.Create(ctx, obj)
			Expect(err).To(HaveOccurred(), "the cluster accepted %s", tc.yaml)
			Expect(apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)).To(BeTrue(), "refusal should be Invalid, got %v", err)
			Expect(err.Error()).To(ContainSubstring(tc.field+":"), "the message must name the field")
			Expect(err.Error()).To(ContainSubstring(tc.reason))
		})
	}
})

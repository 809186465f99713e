package istio

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// updateGolden rewrites the golden files from the current output instead of comparing.
var updateGolden = os.Getenv("UPDATE_GOLDEN") != ""

// TestGolden runs every testdata/<case>.yaml through mesh.Build and Translate and compares the
// result with testdata/<case>.golden.yaml: the generated objects as YAML documents, then the
// diagnostics of both steps as a comment block, so a golden file can be applied as it is.
//
// A case file holds SMI objects of any served version, Services and workloads, and optionally
// one document of kind Settings with mesh.Settings' fields (trustDomain, clusterDomain, access,
// mtls).
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cases := slices.DeleteFunc(inputs, func(p string) bool { return strings.HasSuffix(p, ".golden.yaml") })
	if len(cases) == 0 {
		t.Fatal("no test cases in testdata")
	}
	for _, in := range cases {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			snap, settings := loadCase(t, in, false)
			got := translateCase(t, snap, settings, filepath.Base(in))
			// The cache lists objects in no particular order; the output must not care.
			reversed, _ := loadCase(t, in, true)
			if d := cmp.Diff(got, translateCase(t, reversed, settings, filepath.Base(in))); d != "" {
				t.Errorf("output depends on input order (-in order +reversed):\n%s", d)
			}

			golden := filepath.Join("testdata", name+".golden.yaml")
			if updateGolden {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run UPDATE_GOLDEN=1 go test ./translators/istio/ to create it)", err)
			}
			if d := cmp.Diff(string(want), got); d != "" {
				t.Errorf("%s differs (-golden +got); if the change is intended, refresh with UPDATE_GOLDEN=1:\n%s", golden, d)
			}
		})
	}
}

func TestGoldenFilesHaveInputs(t *testing.T) {
	goldens, err := filepath.Glob(filepath.Join("testdata", "*.golden.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range goldens {
		if _, err := os.Stat(strings.TrimSuffix(g, ".golden.yaml") + ".yaml"); err != nil {
			t.Errorf("stale golden file %s: %v", g, err)
		}
	}
}

// settingsDocument is the test-only document that sets mesh.Settings.
type settingsDocument struct {
	Kind string `json:"kind"`
	mesh.Settings
}

var decoder = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{smi.AddToScheme, corev1.AddToScheme, appsv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	// Strict: a misspelt field in a case must fail the case, not silently test something else.
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}()

// loadCase reads a case file into a snapshot, adding its documents in reverse when asked.
func loadCase(t *testing.T, path string, reverse bool) (mesh.Snapshot, mesh.Settings) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs [][]byte
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, doc)
	}
	if reverse {
		slices.Reverse(docs)
	}

	var snap mesh.Snapshot
	var settings mesh.Settings
	for _, doc := range docs {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		switch {
		case tm.Kind == "" && tm.APIVersion == "":
			continue // comments only
		case tm.Kind == "Settings":
			var s settingsDocument
			if err := yaml.UnmarshalStrict(doc, &s); err != nil {
				t.Fatalf("%s: Settings: %v", path, err)
			}
			if err := s.Settings.Validate(); err != nil {
				t.Fatalf("%s: Settings: %v", path, err)
			}
			settings = s.Settings
			continue
		}
		obj, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if err := snap.Add(obj); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return snap, settings
}

// translateCase builds, translates, checks the invariants and renders the result.
func translateCase(t *testing.T, snap mesh.Snapshot, settings mesh.Settings, input string) string {
	t.Helper()
	model, buildDiags := mesh.Build(snap, settings)
	out, diags := Translate(model, settings)
	checkOutput(t, out, diags, settings)

	var b strings.Builder
	fmt.Fprintf(&b, "# Generated by TestGolden from %s; refresh with UPDATE_GOLDEN=1 go test ./translators/istio/\n", input)
	for _, obj := range out.Objects() {
		y, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatalf("marshal %s %s: %v", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	writeDiagnostics(&b, "mesh.Build", buildDiags)
	writeDiagnostics(&b, "istio.Translate", diags)
	return b.String()
}

func writeDiagnostics(b *strings.Builder, step string, diags []mesh.Diagnostic) {
	fmt.Fprintf(b, "# %s diagnostics:\n", step)
	if len(diags) == 0 {
		b.WriteString("#   none\n")
	}
	for _, d := range diags {
		fmt.Fprintf(b, "#   %s\n", d)
	}
}

// checkOutput asserts what must hold for any input, beyond what a golden file shows at a glance.
func checkOutput(t *testing.T, out Output, diags []mesh.Diagnostic, settings mesh.Settings) {
	t.Helper()
	for _, d := range diags {
		if strings.TrimSpace(d.Message) == "" || d.Condition != smi.ConditionProgrammed {
			t.Errorf("diagnostic %v: want a message and condition %s", d, smi.ConditionProgrammed)
		}
	}
	if !slices.Equal(diags, mesh.SortDiagnostics(diags)) {
		t.Errorf("diagnostics are not sorted and unique")
	}
	seen := map[string]bool{}
	for _, obj := range out.Objects() {
		gvk := obj.GetObjectKind().GroupVersionKind()
		id := fmt.Sprintf("%s %s/%s", gvk.Kind, obj.GetNamespace(), obj.GetName())
		if seen[id] {
			t.Errorf("%s generated twice", id)
		}
		seen[id] = true
		checkMeta(t, id, obj)
		checkRoundTrip(t, id, obj)
	}
	for _, kindSorted := range [][]client.Object{appendObjects(nil, out.VirtualServices), appendObjects(nil, out.DestinationRules),
		appendObjects(nil, out.AuthorizationPolicies), appendObjects(nil, out.PeerAuthentications)} {
		if !slices.IsSortedFunc(kindSorted, func(a, b client.Object) int {
			return strings.Compare(a.GetNamespace()+"/"+a.GetName(), b.GetNamespace()+"/"+b.GetName())
		}) {
			t.Errorf("objects of one kind are not sorted by namespace/name")
		}
	}
	if !settings.MTLS && len(out.DestinationRules) > 0 {
		t.Errorf("DestinationRules without mTLS: %d", len(out.DestinationRules))
	}
	if !settings.Enforcing() && len(out.PeerAuthentications) > 0 {
		t.Errorf("PeerAuthentications in permissive mode: %d", len(out.PeerAuthentications))
	}
	for _, vs := range out.VirtualServices {
		checkVirtualService(t, vs.Name, &vs.Spec)
	}
	for _, ap := range out.AuthorizationPolicies {
		checkAuthorizationPolicy(t, ap.Name, ap.Labels, &ap.Spec, settings)
	}
	for _, pa := range out.PeerAuthentications {
		if len(pa.Spec.GetSelector().GetMatchLabels()) == 0 || pa.Spec.GetMtls().GetMode() != securityapi.PeerAuthentication_MutualTLS_STRICT {
			t.Errorf("PeerAuthentication %s: want a workload selector and STRICT, got %v", pa.Name, &pa.Spec)
		}
	}
}

func checkMeta(t *testing.T, id string, obj client.Object) {
	t.Helper()
	gvk := obj.GetObjectKind().GroupVersionKind()
	if gvk.Group == "" || gvk.Version == "" || gvk.Kind == "" {
		t.Errorf("%s: apiVersion/kind not set: %v", id, gvk)
	}
	if obj.GetNamespace() == "" {
		t.Errorf("%s: no namespace", id)
	}
	if msgs := validation.IsDNS1123Subdomain(obj.GetName()); len(msgs) > 0 || len(obj.GetName()) > smi.MaxNameLength {
		t.Errorf("%s: name is not a DNS-1123 name of at most %d characters: %v", id, smi.MaxNameLength, msgs)
	}
	labels := obj.GetLabels()
	if labels[smi.LabelManagedBy] != smi.ManagedByValue || labels[smi.LabelSourceKind] == "" || labels[smi.LabelSourceName] == "" {
		t.Errorf("%s: labels %v lack the managed-by or source labels", id, labels)
	}
	for k, v := range labels {
		if msgs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...); len(msgs) > 0 {
			t.Errorf("%s: label %s=%s: %v", id, k, v, msgs)
		}
	}
	if len(obj.GetOwnerReferences()) > 0 {
		t.Errorf("%s: owner references are the controller's job", id)
	}
}

// checkRoundTrip decodes the JSON of obj back into its type: what the controller sends is what
// the Istio types (and so the API server's schema) read back.
func checkRoundTrip(t *testing.T, id string, obj client.Object) {
	t.Helper()
	first, err := json.Marshal(obj)
	if err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	back := reflect.New(reflect.TypeOf(obj).Elem()).Interface()
	if err := json.Unmarshal(first, back); err != nil {
		t.Fatalf("%s: decoding own JSON: %v", id, err)
	}
	second, err := json.Marshal(back)
	if err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	if !bytes.Equal(first, second) {
		t.Errorf("%s: JSON round trip changed the object:\n%s\n%s", id, first, second)
	}
}

func checkVirtualService(t *testing.T, name string, spec *networkingapi.VirtualService) {
	t.Helper()
	if len(spec.Hosts) != 1 || (len(spec.Http) == 0 && len(spec.Tcp) == 0) {
		t.Errorf("VirtualService %s: want one host and some route, got %v", name, spec)
	}
	check := func(route string, weights []int32) {
		sum := int32(0)
		for _, w := range weights {
			if w < 0 {
				t.Errorf("VirtualService %s %s: negative weight %d", name, route, w)
			}
			sum += w
		}
		// A lone destination without weight (the catch-all to the apex) gets everything.
		if sum != 100 && !(len(weights) == 1 && weights[0] == 0) {
			t.Errorf("VirtualService %s %s: weights %v do not sum to 100", name, route, weights)
		}
	}
	for i, r := range spec.Http {
		var weights []int32
		for _, d := range r.Route {
			weights = append(weights, d.Weight)
		}
		check(fmt.Sprintf("http[%d]", i), weights)
		for _, m := range r.Match {
			if m.Port == 0 {
				t.Errorf("VirtualService %s http[%d]: match without port", name, i)
			}
		}
	}
	for i, r := range spec.Tcp {
		var weights []int32
		for _, d := range r.Route {
			weights = append(weights, d.Weight)
		}
		check(fmt.Sprintf("tcp[%d]", i), weights)
	}
}

// checkAuthorizationPolicy guards against the ways a policy could open more than SMI allows.
func checkAuthorizationPolicy(t *testing.T, name string, labels map[string]string, spec *securityapi.AuthorizationPolicy, settings mesh.Settings) {
	t.Helper()
	if name == DefaultDenyName {
		if !settings.Enforcing() || labels[smi.LabelSourceKind] != smi.NamespaceSourceKind || !proto.Equal(spec, &securityapi.AuthorizationPolicy{}) {
			t.Errorf("%s: want an empty spec from a Namespace source in enforcing mode only, got %v %v", name, labels, spec)
		}
		return
	}
	// An ALLOW policy without selector would apply to the whole namespace.
	if spec.GetAction() != securityapi.AuthorizationPolicy_ALLOW || len(spec.GetSelector().GetMatchLabels()) == 0 {
		t.Errorf("AuthorizationPolicy %s: want ALLOW with a workload selector, got %v", name, spec)
	}
	for i, r := range spec.Rules {
		// A rule without from, or a from without principals, would allow any source.
		if len(r.From) == 0 {
			t.Errorf("AuthorizationPolicy %s rules[%d]: no from", name, i)
		}
		for _, f := range r.From {
			if len(f.GetSource().GetPrincipals()) == 0 {
				t.Errorf("AuthorizationPolicy %s rules[%d]: from without principals", name, i)
			}
		}
	}
}

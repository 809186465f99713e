package gamma

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/internal/golden"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// TestGolden runs every testdata/<case>.yaml through mesh.Build and Translate and compares the
// result with testdata/<case>.golden.yaml: the routes as YAML documents, then the diagnostics of
// both steps (the SMI objects' conditions) as a comment block, so a golden file can be applied as
// it is. Case files are described in package internal/golden.
func TestGolden(t *testing.T) {
	golden.Run(t, ".yaml", func(t *testing.T, c golden.Case) string {
		model, buildDiags := mesh.Build(c.Snapshot, c.Settings)
		out, diags := Translate(model, c.Settings)
		checkOutput(t, model, out, diags)

		return golden.TranslatorDocument(t, "gamma", c.Input, out.Objects(), buildDiags, diags)
	})
}

// checkOutput asserts what must hold for any input, beyond what a golden file shows at a glance.
func checkOutput(t *testing.T, model mesh.Model, out Output, diags []mesh.Diagnostic) {
	t.Helper()
	failed := map[mesh.ObjectRef]bool{}
	for _, d := range diags {
		failed[d.Object] = failed[d.Object] || d.Severity == mesh.SeverityError
	}
	// Every TrafficTarget is reported: access is never silently accepted.
	for _, r := range model.AccessRules {
		if !failed[r.Source] {
			t.Errorf("%s: no Programmed=False diagnostic, though this backend enforces no access", r.Source)
		}
	}
	splits := map[string]mesh.Split{}
	for _, s := range model.Splits {
		splits[s.Source.Namespace+"/"+smi.ShortName(s.Source.Name)] = s // as the source-name label holds it
	}
	golden.CheckOutput(t, out.Objects(), diags, func(id string, obj client.Object) {
		checkMeta(t, id, obj)
		s, ok := splits[obj.GetNamespace()+"/"+obj.GetLabels()[smi.LabelSourceName]]
		if !ok || failed[s.Source] {
			t.Errorf("%s: from %v, which is not a programmed split", id, obj.GetLabels())
			return
		}
		checkRoutes(t, id, s, obj)
	})
}

// checkMeta adds to golden.CheckOutput's checks what holds for routes: the Gateway API's group
// and version, and a TrafficSplit as their source.
func checkMeta(t *testing.T, id string, obj client.Object) {
	t.Helper()
	if gv := obj.GetObjectKind().GroupVersionKind().GroupVersion().String(); gv != gatewayv1.GroupVersion.String() {
		t.Errorf("%s: apiVersion %s", id, gv)
	}
	if kind := obj.GetLabels()[smi.LabelSourceKind]; kind != smi.TrafficSplitKind {
		t.Errorf("%s: source kind %q, want %s", id, kind, smi.TrafficSplitKind)
	}
}

// checkRoutes asserts that a route's only parent is the split's apex on a port it has, that
// every backend is a Service of the split on that port with a weight in the CRD's range, and
// that the last rule of a route with matches (but for a standby rule after it) sends the rest to
// the apex.
func checkRoutes(t *testing.T, id string, s mesh.Split, obj client.Object) {
	t.Helper()
	var parents []gatewayv1.ParentReference
	var rules [][]gatewayv1.BackendRef
	var matched, standbyRule []bool
	switch r := obj.(type) {
	case *gatewayv1.HTTPRoute:
		parents = r.Spec.ParentRefs
		for _, rule := range r.Spec.Rules {
			refs := refsOf(rule.BackendRefs, func(b gatewayv1.HTTPBackendRef) gatewayv1.BackendRef { return b.BackendRef })
			// Every request: what the CRD defaults a rule without matches to, written out.
			everyRequest := equality.Semantic.DeepEqual(rule.Matches, matchAnyRequest())
			rules, matched = append(rules, refs), append(matched, !everyRequest)
			standbyRule = append(standbyRule, len(rule.Matches) == 1 && rule.Matches[0].Path != nil && ptrValue(rule.Matches[0].Path.Value) == mesh.StandbyPath)
		}
	case *gatewayv1.GRPCRoute:
		parents = r.Spec.ParentRefs
		for _, rule := range r.Spec.Rules {
			refs := refsOf(rule.BackendRefs, func(b gatewayv1.GRPCBackendRef) gatewayv1.BackendRef { return b.BackendRef })
			rules, matched = append(rules, refs), append(matched, len(rule.Matches) > 0)
			standbyRule = append(standbyRule, len(rule.Matches) == 1 && rule.Matches[0].Method != nil && ptrValue(rule.Matches[0].Method.Service) == mesh.StandbyService)
		}
	case *gatewayv1.TCPRoute:
		parents = r.Spec.ParentRefs
		for _, rule := range r.Spec.Rules {
			rules, matched, standbyRule = append(rules, rule.BackendRefs), append(matched, false), append(standbyRule, false)
		}
	default:
		t.Fatalf("%s: unexpected type %T", id, obj)
	}
	if len(parents) != 1 || ptrValue(parents[0].Group) != "" || ptrValue(parents[0].Kind) != serviceKind ||
		string(parents[0].Name) != s.Apex.Name || parents[0].Port == nil {
		t.Fatalf("%s: want the apex Service %s with a port as the only parent, got %+v", id, s.Apex.Name, parents)
	}
	port := int32(*parents[0].Port)
	if !slices.ContainsFunc(s.Apex.Ports, func(p mesh.ServicePort) bool { return p.Port == port }) {
		t.Errorf("%s: parent port %d is not a port of the apex", id, port)
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no rules", id)
	}
	for i, refs := range rules {
		if len(refs) == 0 || len(refs) > maxBackendRefs {
			t.Errorf("%s rules[%d]: %d backendRefs", id, i, len(refs))
		}
		for _, ref := range refs {
			known := slices.ContainsFunc(s.Backends, func(b mesh.Backend) bool { return b.Name == string(ref.Name) }) || string(ref.Name) == s.Apex.Name
			if ptrValue(ref.Group) != "" || ptrValue(ref.Kind) != serviceKind || !known || ref.Port == nil || int32(*ref.Port) != port {
				t.Errorf("%s rules[%d]: backendRef %+v is not a Service of the split on port %d", id, i, ref.BackendObjectReference, port)
			}
			if ref.Weight != nil && (*ref.Weight <= 0 || *ref.Weight > maxTotalWeight) {
				t.Errorf("%s rules[%d]: weight %d out of (0, %d]", id, i, *ref.Weight, maxTotalWeight)
			}
		}
	}
	if len(s.Matches) > 0 {
		// The catch-all to the apex ends the rules, but for the standby rule after it.
		end := len(rules) - 1
		if standbyRule[end] {
			end--
		}
		last := rules[end]
		if matched[end] || len(last) != 1 || string(last[0].Name) != s.Apex.Name || last[0].Weight == nil || *last[0].Weight != 1 {
			t.Errorf("%s: the last rule but the standby rule is not a catch-all to the apex: %+v", id, last)
		}
	}
}

func refsOf[B any](backends []B, ref func(B) gatewayv1.BackendRef) []gatewayv1.BackendRef {
	out := make([]gatewayv1.BackendRef, len(backends))
	for i, b := range backends {
		out[i] = ref(b)
	}
	return out
}

func ptrValue[T ~string](p *T) string {
	if p == nil {
		return "<nil>"
	}
	return string(*p)
}

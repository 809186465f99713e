package linkerd

import (
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/apis/linkerd"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/internal/golden"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// TestGolden runs every testdata/<case>.yaml through mesh.Build and Translate and compares the
// result with testdata/<case>.golden.yaml: the Linkerd objects as YAML documents, then the
// diagnostics of both steps as a comment block. Case files are described in package
// internal/golden.
func TestGolden(t *testing.T) {
	golden.Run(t, ".yaml", func(t *testing.T, c golden.Case) string {
		model, buildDiags := mesh.Build(c.Snapshot, c.Settings)
		out, diags := Translate(model, c.Settings)
		checkOutput(t, model, out, diags)

		return golden.TranslatorDocument(t, "linkerd", c.Input, out.Objects(), buildDiags, diags)
	})
}

// checkOutput asserts what must hold for any input: every object comes from an accepted
// TrafficTarget, and every reference between the objects resolves to one generated beside it.
func checkOutput(t *testing.T, model mesh.Model, out Output, diags []mesh.Diagnostic) {
	t.Helper()
	targets := map[string]bool{}
	for _, r := range model.AccessRules {
		targets[r.Source.Namespace+"/"+smi.ShortName(r.Source.Name)] = true
	}
	written := map[string]bool{}
	for _, obj := range out.Objects() {
		written[obj.GetObjectKind().GroupVersionKind().Kind+" "+obj.GetNamespace()+"/"+obj.GetName()] = true
	}
	resolves := func(id, kind, namespace, name string) {
		if !written[kind+" "+namespace+"/"+name] {
			t.Errorf("%s references %s %s/%s, which is not generated", id, kind, namespace, name)
		}
	}
	golden.CheckOutput(t, out.Objects(), diags, func(id string, obj client.Object) {
		if obj.GetObjectKind().GroupVersionKind().Group != linkerd.Group || obj.GetLabels()[smi.LabelSourceKind] != smi.TrafficTargetKind ||
			!targets[obj.GetNamespace()+"/"+obj.GetLabels()[smi.LabelSourceName]] {
			t.Errorf("%s: not a Linkerd object of an accepted TrafficTarget: %v", id, obj.GetLabels())
		}
		switch o := obj.(type) {
		case *linkerd.HTTPRoute:
			if len(o.Spec.ParentRefs) != 1 || len(o.Spec.Rules) == 0 || len(o.Spec.Rules) > maxRules {
				t.Errorf("%s: want one parent and 1-%d rules: %+v", id, maxRules, o.Spec)
			}
			resolves(id, linkerd.ServerKind, o.Namespace, string(o.Spec.ParentRefs[0].Name))
			for _, r := range o.Spec.Rules {
				if len(r.Matches) == 0 || len(r.Matches) > maxMatchesPerRule {
					t.Errorf("%s: a rule of %d matches", id, len(r.Matches))
				}
			}
		case *linkerd.AuthorizationPolicy:
			resolves(id, o.Spec.TargetRef.Kind, o.Namespace, o.Spec.TargetRef.Name)
			for _, a := range o.Spec.RequiredAuthenticationRefs {
				resolves(id, a.Kind, o.Namespace, a.Name)
			}
		case *linkerd.MeshTLSAuthentication:
			if len(o.Spec.IdentityRefs) == 0 {
				t.Errorf("%s: no identity (Linkerd refuses it)", id)
			}
		}
	})
}

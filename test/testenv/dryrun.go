package testenv

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/test/corpus"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// DryRunCreate builds the model of every case, has translate turn it into objects, and creates
// each object on the API server c reaches (dry run, strict field validation), each namespace
// created first, reporting each refusal as a test error. Objects
// of a source whose name is no DNS subdomain are skipped: they come from inputs read leniently
// (translate's malformed case), whose SMI object the API server refuses itself. It returns the
// objects created by kind, so that a test can check its inputs exercise every kind.
func DryRunCreate(t *testing.T, c client.Client, cases []corpus.Case, translate func(mesh.Model, mesh.Settings) []client.Object) map[string]int {
	t.Helper()
	ctx := context.Background()
	counts := map[string]int{}
	namespaces := map[string]bool{}
	for _, cs := range cases {
		model, _ := mesh.Build(cs.Snapshot, cs.Settings)
		for _, obj := range translate(model, cs.Settings) {
			if len(validation.IsDNS1123Subdomain(obj.GetLabels()[smi.LabelSourceName])) > 0 {
				continue
			}
			if ns := obj.GetNamespace(); !namespaces[ns] {
				if err := EnsureNamespace(ctx, c, ns); err != nil {
					t.Fatal(err)
				}
				namespaces[ns] = true
			}
			kind := obj.GetObjectKind().GroupVersionKind().Kind
			counts[kind]++
			if err := c.Create(ctx, obj.DeepCopyObject().(client.Object), client.DryRunAll, client.FieldValidation("Strict")); err != nil {
				t.Errorf("%s: the API server refuses %s %s/%s: %v", cs.Name, kind, obj.GetNamespace(), obj.GetName(), err)
			}
		}
	}
	return counts
}

// EnsureNamespace creates the namespace name unless it exists.
func EnsureNamespace(ctx context.Context, c client.Client, name string) error {
	ns := &corev1.Namespace{}
	ns.Name = name
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

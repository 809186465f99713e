package testenv

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/internal/objectjson"
	"github.com/smi-operator/smi-operator/test/corpus"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// DryRunCreate builds the model of every case, has translate turn it into objects, and creates
// each object on the API server c reaches (dry run, strict field validation), each namespace
// created first, reporting each refusal as a test error, and each object whose spec the server
// would store otherwise than it is written. Objects
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
			diff, err := StoredSpecDiff(ctx, c, obj)
			if err != nil {
				t.Errorf("%s: %s %s/%s: %v", cs.Name, kind, obj.GetNamespace(), obj.GetName(), err)
				continue
			}
			if diff != "" {
				t.Errorf("%s: the API server stores %s %s/%s otherwise than it is written (a default of its CRD left out: "+
					"the operator would find it never as wanted, and apply it again after each change someone else makes) "+
					"(-written +stored):\n%s", cs.Name, kind, obj.GetNamespace(), obj.GetName(), diff)
			}
		}
	}
	return counts
}

// StoredSpecDiff creates obj on the API server c reaches (dry run, strict field validation) and
// compares its spec as the server would store it with the spec written, as JSON (-written
// +stored): "" when the server would store it as written. The error is the server's refusal,
// or says the specs could not be compared.
func StoredSpecDiff(ctx context.Context, c client.Client, obj client.Object) (string, error) {
	stored := obj.DeepCopyObject().(client.Object)
	if err := c.Create(ctx, stored, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
		return "", fmt.Errorf("the API server refuses it: %w", err)
	}
	diff, err := specDiff(obj, stored)
	if err != nil {
		return "", fmt.Errorf("comparing the spec written with the one stored: %w", err)
	}
	return diff, nil
}

// specDiff compares the specs of written and stored as JSON.
func specDiff(written, stored client.Object) (string, error) {
	w, err := objectjson.Unstructured(written)
	if err != nil {
		return "", err
	}
	s, err := objectjson.Unstructured(stored)
	if err != nil {
		return "", err
	}
	return cmp.Diff(w.Object["spec"], s.Object["spec"]), nil
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

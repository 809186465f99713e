package linkerd

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/apis/linkerd"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/test/corpus"
	"github.com/smi-operator/smi-operator/test/testenv"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// controlPlane is started by the first test that needs it and stopped by TestMain.
var controlPlane testenv.Lazy

func TestMain(m *testing.M) { controlPlane.Main(m) }

// TestAPIServerAcceptsEveryObject runs every input of the repository (package test/corpus) and
// this package's cases through mesh.Build and Translate, and creates every object (dry run, strict
// field validation) on a real API server with Linkerd's policy CRDs installed from the linkerd2
// module (testenv.InstallLinkerdPolicyCRDs): their schemas are Linkerd's own validation, and an
// object they refuse would enforce nothing. An object they must refuse is refused, so the check
// is not vacuous. Skipped when the CRDs cannot be had (the module proxy refuses the module, and
// testenv.LinkerdCRDsEnv is not set).
func TestAPIServerAcceptsEveryObject(t *testing.T) {
	if _, err := testenv.LinkerdPolicyCRDDir(); errors.Is(err, testenv.ErrLinkerdCRDsUnavailable) {
		t.Skip(err)
	}
	env := controlPlane.Get(t)
	c := controlPlane.Client(t, linkerd.AddToScheme, corev1.AddToScheme)
	if err := testenv.InstallLinkerdPolicyCRDs(env.Config); err != nil {
		t.Fatal(err)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cases, err := corpus.All(root, "translators/linkerd/testdata")
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	namespaces := map[string]bool{}
	counts := map[string]int{}
	for _, cs := range cases {
		model, _ := mesh.Build(cs.Snapshot, cs.Settings)
		out, _ := Translate(model, cs.Settings)
		for _, obj := range out.Objects() {
			if len(validation.IsDNS1123Subdomain(obj.GetLabels()[smi.LabelSourceName])) > 0 {
				continue // read leniently (translate's malformed case): the API server refuses the SMI object itself
			}
			if ns := obj.GetNamespace(); !namespaces[ns] {
				createNamespace(t, c, ns)
				namespaces[ns] = true
			}
			kind := obj.GetObjectKind().GroupVersionKind().Kind
			counts[kind]++
			if err := c.Create(ctx, obj.DeepCopyObject().(client.Object), client.DryRunAll, client.FieldValidation("Strict")); err != nil {
				t.Errorf("%s: the API server refuses %s %s/%s: %v", cs.Name, kind, obj.GetNamespace(), obj.GetName(), err)
			}
		}
	}
	t.Logf("objects created (dry run) by kind: %v", counts)
	for _, kind := range []string{linkerd.ServerKind, linkerd.HTTPRouteKind, linkerd.MeshTLSAuthenticationKind, linkerd.AuthorizationPolicyKind} {
		if counts[kind] == 0 {
			t.Errorf("no %s was created: the inputs exercise none", kind)
		}
	}

	// A MeshTLSAuthentication without identities: the CRD's oneOf refuses it.
	bad := &linkerd.MeshTLSAuthentication{}
	bad.Namespace, bad.Name = "shop", "nobody"
	createNamespace(t, c, "shop")
	if err := c.Create(ctx, bad, client.DryRunAll); !apierrors.IsInvalid(err) {
		t.Errorf("a MeshTLSAuthentication without identities: got %v, want the CRD's refusal", err)
	}
}

func createNamespace(t *testing.T, c client.Client, name string) {
	t.Helper()
	ns := &corev1.Namespace{}
	ns.Name = name
	if err := c.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(errors.Join(errors.New("creating namespace "+name), err))
	}
}

package linkerd

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/apis/linkerd"
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
	counts := testenv.DryRunCreate(t, c, cases, objects)
	t.Logf("objects created (dry run) by kind: %v", counts)
	for _, kind := range []string{linkerd.ServerKind, linkerd.HTTPRouteKind, linkerd.MeshTLSAuthenticationKind, linkerd.AuthorizationPolicyKind} {
		if counts[kind] == 0 {
			t.Errorf("no %s was created: the inputs exercise none", kind)
		}
	}

	// A MeshTLSAuthentication without identities: the CRD's oneOf refuses it.
	bad := &linkerd.MeshTLSAuthentication{}
	bad.Namespace, bad.Name = "shop", "nobody"
	if err := testenv.EnsureNamespace(context.Background(), c, "shop"); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, bad, client.DryRunAll); !apierrors.IsInvalid(err) {
		t.Errorf("a MeshTLSAuthentication without identities: got %v, want the CRD's refusal", err)
	}
}

// objects is Translate's output as testenv.DryRunCreate takes it.
func objects(model mesh.Model, settings mesh.Settings) []client.Object {
	out, _ := Translate(model, settings)
	return out.Objects()
}

package gamma

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/smi-operator/smi-operator/test/corpus"
	"github.com/smi-operator/smi-operator/test/testenv"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// controlPlane is started by the first test that needs it, so the package's other tests run
// without one, and stopped by TestMain.
var controlPlane testenv.Lazy

func TestMain(m *testing.M) { controlPlane.Main(m) }

// TestAPIServerAcceptsEveryRoute runs every input of the repository (package test/corpus: the
// translators' golden cases, translate's cases, every fuzz corpus entry) and this package's
// cases through mesh.Build and Translate, and creates every route (dry run, strict field
// validation) on a real API server with the Gateway API CRDs of the module installed, first the
// standard channel, then the experimental one: their schemas and CEL rules are the spec's own
// validation, and a route they refuse would silently program nothing. A route the CRDs must
// refuse is refused, so the check is not vacuous.
func TestAPIServerAcceptsEveryRoute(t *testing.T) {
	env := controlPlane.Get(t)
	c := controlPlane.Client(t, gatewayv1.Install, corev1.AddToScheme)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cases, err := corpus.All(root, "translators/gamma/testdata")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 60 {
		t.Fatalf("only %d inputs: the corpus is not being found", len(cases))
	}

	ctx := context.Background()
	for _, channel := range []string{testenv.GatewayAPIStandard, testenv.GatewayAPIExperimental} {
		t.Run(channel, func(t *testing.T) {
			if err := testenv.InstallGatewayAPICRDs(env.Config, channel); err != nil {
				t.Fatal(err)
			}
			crd := &unstructured.Unstructured{}
			crd.SetAPIVersion("apiextensions.k8s.io/v1")
			crd.SetKind("CustomResourceDefinition")
			if err := c.Get(ctx, client.ObjectKey{Name: "httproutes.gateway.networking.k8s.io"}, crd); err != nil ||
				crd.GetAnnotations()["gateway.networking.k8s.io/channel"] != channel {
				t.Fatalf("the HTTPRoute CRD is not of the %s channel: %v %v", channel, crd.GetAnnotations(), err)
			}
			counts := testenv.DryRunCreate(t, c, cases, objects)
			t.Logf("routes created (dry run) by kind: %v", counts)
			for _, kind := range []string{"HTTPRoute", "GRPCRoute", "TCPRoute"} {
				if counts[kind] == 0 {
					t.Errorf("no %s was created: the corpus exercises none", kind)
				}
			}

			// A backendRef to a Service without a port: the CRD's CEL rule refuses it.
			bad := &gatewayv1.HTTPRoute{}
			bad.Namespace, bad.Name = "shop", "no-backend-port"
			bad.Spec.ParentRefs = []gatewayv1.ParentReference{{Name: "web"}}
			bad.Spec.Rules = []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: serviceRef("web-v1", 80, 1)}}}}
			bad.Spec.Rules[0].BackendRefs[0].Port = nil
			if err := testenv.EnsureNamespace(context.Background(), c, "shop"); err != nil {
				t.Fatal(err)
			}
			err := c.Create(ctx, bad, client.DryRunAll)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "Must have port for Service reference") {
				t.Errorf("a backendRef without port: got %v, want the CRD's refusal", err)
			}
			// A rule without matches, and a backendRef without weight: the CRD defaults both, so
			// the check of what is stored is not vacuous either.
			defaulted := &gatewayv1.HTTPRoute{}
			defaulted.Namespace, defaulted.Name = "shop", "defaults-left-out"
			defaulted.Spec.ParentRefs = []gatewayv1.ParentReference{{Name: "web"}}
			defaulted.Spec.Rules = []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: serviceRef("web-v1", 80, 1)}}}}
			defaulted.Spec.Rules[0].BackendRefs[0].Weight = nil
			diff, err := testenv.StoredSpecDiff(ctx, c, defaulted)
			if err != nil || !strings.Contains(diff, "matches") || !strings.Contains(diff, "weight") {
				t.Errorf("a route leaving the CRD's defaults out: diff %q, %v; want the stored matches and weight told apart", diff, err)
			}
		})
	}
}

// objects is Translate's output as testenv.DryRunCreate takes it.
func objects(model mesh.Model, settings mesh.Settings) []client.Object {
	out, _ := Translate(model, settings)
	return out.Objects()
}

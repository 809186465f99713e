package translate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/cmd/translate/manifest"
	"github.com/smi-operator/smi-operator/controllers"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// controlPlane is started by the first test that needs it, so the package's other tests run
// without one, and stopped by TestMain.
var controlPlane testenv.Lazy

func TestMain(m *testing.M) { controlPlane.Main(m) }

// apiServerCases are objects of every SMI kind whose fate translate must tell as the cluster
// does, beyond schemaCases: every sample of config/samples (accepted), and one refusal of each
// stage a create goes through: decoding (unknown fields), metadata, the OpenAPI schema, list
// keys, CEL (alone, and skipped after an error that blocks it), the validating webhook.
var apiServerCases = []struct{ name, doc string }{
	{"unknown field", split("v1alpha4", `[{service: web-v1, weight: 1}]`) + "extra: 1\n"},
	{"unknown nested field", split("v1alpha4", `[{service: web-v1, weight: 1, wieght: 2}]`)},
	{"name not a subdomain", strings.Replace(split("v1alpha4", `[{service: web-v1, weight: 1}]`), "name: web,", "name: Web_Split,", 1)},
	{"labels not a map", strings.Replace(split("v1alpha4", `[{service: web-v1, weight: 1}]`), "namespace: shop}", "namespace: shop, labels: [a]}", 1)},
	{"status is dropped", split("v1alpha4", `[{service: web-v1, weight: 1}]`) + "status: {observedGeneration: -1}\n"},
	{"weight as a string", split("v1alpha2", `[{service: web-v1, weight: "5"}]`)},
	{"negative weight", split("v1alpha3", `[{service: web-v1, weight: -1}]`)},
	{"v1alpha1 negative quantity (CEL)", split("v1alpha1", `[{service: web-v1, weight: "-1"}]`)},
	{"v1alpha1 CEL skipped after a missing field", split("v1alpha1", `[{service: web-v1, weight: "-1"}, {weight: "1"}]`)},
	{"backend twice", split("v1alpha4", `[{service: web-v1, weight: 1}, {service: web-v1, weight: 2}]`)},
	{"no backends", split("v1alpha4", `[]`)},
	{"TCPRoute port out of range", "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {name: db, namespace: shop}\n" +
		"spec: {matches: {ports: [0, 70000]}}\n"},
	{"TrafficTarget without destination", "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: t, namespace: shop}\n" +
		"spec: {sources: [{kind: ServiceAccount, name: a}], rules: [{kind: TCPRoute, name: db}]}\n"},
	{"regex the webhook refuses", routeGroup("m", `[{user-agent: "(?!x)"}]`)},
}

// TestAgreesWithAPIServer sends each of schemaCases and apiServerCases to a real API server
// with the SMI CRDs and webhooks (a dry-run create, as kubectl apply --dry-run=server) and reads
// it offline, and checks that both refuse the same objects with the same messages: the field
// errors of the API server's 422 line for line, or its one message (a 400 for a decoding error)
// ending with what translate prints.
func TestAgreesWithAPIServer(t *testing.T) {
	c := apiServer(t)
	cases := apiServerCases
	for _, tc := range schemaCases {
		cases = append(cases, struct{ name, doc string }{tc.name, tc.doc})
	}
	samples, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "*.smi-spec.io_*.yaml"))
	if err != nil || len(samples) < 16 {
		t.Fatalf("samples: %v, %v", samples, err)
	}
	for _, path := range samples {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, struct{ name, doc string }{filepath.Base(path), string(data)})
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newReader("shop", false)
			r.file("case.yaml", []byte(tc.doc))
			var offline []string
			for _, rep := range r.reports {
				if rep.level == levelError {
					offline = append(offline, rep.text)
				}
			}

			docs := manifest.Split([]byte(tc.doc))
			if len(docs) != 1 || docs[0].JSON == nil {
				t.Fatalf("want one document, got %+v", docs)
			}
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(docs[0].JSON); err != nil {
				t.Fatal(err)
			}
			u.SetNamespace("shop")
			// Strict field validation, as kubectl's default --validate=strict asks for.
			server, status := serverErrors(c.Create(context.Background(), u, client.DryRunAll, client.FieldValidation("Strict")))

			switch {
			case server == nil && status == "":
				if len(offline) > 0 || len(r.objects) != 1 {
					t.Errorf("the API server accepts it; translate refuses it: %q", offline)
				}
			case server != nil:
				if d := cmp.Diff(server, offline); d != "" {
					t.Errorf("errors differ (-API server +translate):\n%s", d)
				}
			case len(offline) != 1 || !strings.HasSuffix(status, ": "+offline[0]):
				t.Errorf("the API server says %q; translate %q", status, offline)
			}
			if len(offline) > 0 && len(r.objects) > 0 {
				t.Errorf("refused, yet %d objects accepted", len(r.objects))
			}
		})
	}
}

// serverErrors reads the API server's answer to a create: nil and "" when it accepted the
// object; each field error as "<field>: <message>" when it names them (422, from the schema or
// a webhook); else its message.
func serverErrors(err error) ([]string, string) {
	if err == nil {
		return nil, ""
	}
	status, ok := errors.AsType[*apierrors.StatusError](err)
	if !ok || status.ErrStatus.Details == nil || len(status.ErrStatus.Details.Causes) == 0 {
		return nil, err.Error()
	}
	var out []string
	for _, cause := range status.ErrStatus.Details.Causes {
		out = append(out, cause.Field+": "+cause.Message)
	}
	return out, ""
}

// apiServer starts the control plane with the SMI CRDs and serves the operator's conversion and
// validation webhooks to it, and returns a client with the namespace "shop" created.
func apiServer(t *testing.T) client.Client {
	t.Helper()
	env := controlPlane.Get(t)
	server := env.WebhookServer()
	for path, handler := range controllers.Webhooks() {
		server.Register(path, handler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = server.Start(ctx) }()
	for deadline := time.Now().Add(30 * time.Second); server.StartedChecker()(nil) != nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the webhook server did not start")
		}
	}
	c, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{}
	ns.Name = "shop"
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return c
}

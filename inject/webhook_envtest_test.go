package inject_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers"
	"github.com/smi-operator/smi-operator/inject"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// warnings records the API server's warnings to a client.
type warnings struct {
	mu   sync.Mutex
	seen []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, message string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, message)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.seen
	w.seen = nil
	return out
}

// TestWebhookOnAPIServer creates pods through a real API server with the operator's webhook
// configuration (config/webhook/injection.yaml) installed and the webhook served as main.go
// serves it, the SMIOperator selecting xds: the API server stores them injected (and accepts what
// the templates add: native sidecars, their probes), or untouched, or refuses them, as the pod,
// its namespace and the backend say.
func TestWebhookOnAPIServer(t *testing.T) {
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme: controllers.NewScheme(), Metrics: metricsserver.Options{BindAddress: "0"}, WebhookServer: env.WebhookServer(),
	})
	if err != nil {
		t.Fatal(err)
	}
	const operatorNS, image = "smi-operator-system", "registry.example/smi-operator:test"
	controllers.SetupInjection(mgr, controllers.InjectionOptions{Namespace: operatorNS, XDSService: "smi-operator-xds", OperatorImage: image})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for mgr.GetWebhookServer().StartedChecker()(nil) != nil {
		time.Sleep(50 * time.Millisecond)
	}

	seen := &warnings{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandlerWithContext = seen
	c, err := client.New(cfg, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	for name, labels := range map[string]map[string]string{
		"shop":     {v1alpha1.InjectLabel: v1alpha1.InjectEnabled},
		"plain":    nil,
		"off":      {v1alpha1.InjectLabel: v1alpha1.InjectDisabled},
		operatorNS: nil,
	} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}); err != nil {
			t.Fatal(err)
		}
	}
	op := &v1alpha1.SMIOperator{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SingletonName}, Spec: v1alpha1.SMIOperatorSpec{
		Backend: v1alpha1.BackendXDS, TrustDomain: "corp.example", XDS: v1alpha1.XDSSpec{Port: 15012, Injection: v1alpha1.InjectionSpec{ExcludeOutboundPorts: []int32{5432}}},
	}}
	if err := c.Create(ctx, op); err != nil {
		t.Fatal(err)
	}

	create := func(t *testing.T, namespace string, annotations map[string]string, hostNetwork bool) (*corev1.Pod, error) {
		t.Helper()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, GenerateName: "pod-", Annotations: annotations},
			Spec:       corev1.PodSpec{HostNetwork: hostNetwork, Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
		}
		return pod, c.Create(ctx, pod)
	}
	names := func(cs []corev1.Container) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	injected := func(t *testing.T, pod *corev1.Pod, template string) {
		t.Helper()
		want := []string{inject.InitContainerName, inject.AgentContainerName, inject.ProxyContainerName}
		if template == v1alpha1.ProxyGRPC {
			want = []string{inject.AgentContainerName}
		}
		if got := names(pod.Spec.InitContainers); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("init containers %v, want %v", got, want)
		}
		if got := pod.Annotations[v1alpha1.InjectedAnnotation]; got != template {
			t.Errorf("annotation %s = %q, want %q", v1alpha1.InjectedAnnotation, got, template)
		}
		for _, ic := range pod.Spec.InitContainers {
			// The agent asks for spiffe://<trustDomain>/...: another domain than the CA's is refused.
			if ic.Name == inject.AgentContainerName && (ic.Image != image || !slices.Contains(ic.Args, "--xds-address=smi-operator-xds."+operatorNS+".svc:15012") || !slices.Contains(ic.Args, "--trust-domain=corp.example")) {
				t.Errorf("agent %s %v: want image %s, the spec's xDS port and trust domain", ic.Image, ic.Args, image)
			}
			if ic.Name == inject.InitContainerName && !strings.Contains(strings.Join(ic.Args, " "), "--exclude-outbound-ports=5432") {
				t.Errorf("capture %v: want the SMIOperator's excluded outbound port", ic.Args)
			}
		}
	}
	untouched := func(t *testing.T, pod *corev1.Pod) {
		t.Helper()
		if len(pod.Spec.InitContainers) != 0 || len(pod.Spec.Containers) != 1 || pod.Annotations[v1alpha1.InjectedAnnotation] != "" {
			t.Errorf("pod changed: init %v, containers %v, annotations %v", names(pod.Spec.InitContainers), names(pod.Spec.Containers), pod.Annotations)
		}
	}

	t.Run("a labelled namespace's pod gets the envoy template", func(t *testing.T) {
		pod, err := create(t, "shop", nil, false)
		if err != nil {
			t.Fatal(err)
		}
		injected(t, pod, v1alpha1.ProxyEnvoy)
	})
	t.Run("proxyless gRPC", func(t *testing.T) {
		pod, err := create(t, "shop", map[string]string{v1alpha1.ProxyAnnotation: v1alpha1.ProxyGRPC}, false)
		if err != nil {
			t.Fatal(err)
		}
		injected(t, pod, v1alpha1.ProxyGRPC)
		if env := pod.Spec.Containers[0].Env; len(env) == 0 || env[0].Name != "GRPC_XDS_BOOTSTRAP" {
			t.Errorf("app env %v, want GRPC_XDS_BOOTSTRAP", env)
		}
	})
	t.Run("a pod of an unlabelled namespace that opts in", func(t *testing.T) {
		pod, err := create(t, "plain", map[string]string{v1alpha1.InjectLabel: "true"}, false)
		if err != nil {
			t.Fatal(err)
		}
		injected(t, pod, v1alpha1.ProxyEnvoy)
	})
	for _, tc := range []struct {
		name        string
		namespace   string
		annotations map[string]string
		hostNetwork bool
	}{
		{"a pod that opts out", "shop", map[string]string{v1alpha1.InjectLabel: "false"}, false},
		{"an unlabelled namespace's pod", "plain", nil, false},
		{"a disabled namespace's pod that opts in", "off", map[string]string{v1alpha1.InjectLabel: "true"}, false},
		{"a host-network pod", "shop", nil, true},
		{"kube-system", "kube-system", map[string]string{v1alpha1.InjectLabel: "true"}, false},
		{"the operator's namespace", operatorNS, map[string]string{v1alpha1.InjectLabel: "true"}, false},
		{"an injected pod again", "shop", map[string]string{v1alpha1.InjectedAnnotation: v1alpha1.ProxyEnvoy}, false},
	} {
		t.Run(tc.name+" is left alone", func(t *testing.T) {
			pod, err := create(t, tc.namespace, tc.annotations, tc.hostNetwork)
			if err != nil {
				t.Fatal(err)
			}
			if tc.annotations[v1alpha1.InjectedAnnotation] != "" {
				if len(pod.Spec.InitContainers) != 0 {
					t.Errorf("re-injected: %v", names(pod.Spec.InitContainers))
				}
				return
			}
			untouched(t, pod)
		})
	}
	for _, tc := range []struct {
		name        string
		namespace   string
		annotations map[string]string
		want        string
	}{
		{"a misspelt switch", "shop", map[string]string{v1alpha1.InjectLabel: "ture"}, `annotation smi-operator.io/inject: "ture"`},
		{"a misspelt switch in an unlabelled namespace", "plain", map[string]string{v1alpha1.InjectLabel: "yes"}, `annotation smi-operator.io/inject: "yes"`},
		{"an unknown template", "shop", map[string]string{v1alpha1.ProxyAnnotation: "linkerd"}, `annotation smi-operator.io/proxy: "linkerd"`},
		{"a port list with a name", "shop", map[string]string{v1alpha1.ExcludeInboundPortsAnnotation: "22,ssh"}, `annotation smi-operator.io/exclude-inbound-ports: "ssh" is not a port`},
	} {
		t.Run(tc.name+" is refused, naming the annotation", func(t *testing.T) {
			_, err := create(t, tc.namespace, tc.annotations, false)
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want Forbidden containing %q", err, tc.want)
			}
		})
	}

	t.Run("with backend istio, a labelled namespace's pod is admitted unchanged, with a warning", func(t *testing.T) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(op), op); err != nil {
			t.Fatal(err)
		}
		op.Spec.Backend = v1alpha1.BackendIstio
		if err := c.Update(ctx, op); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			seen.take()
			pod, err := create(t, "shop", nil, false)
			if err != nil {
				t.Fatal(err)
			}
			if pod.Annotations[v1alpha1.InjectedAnnotation] == "" {
				untouched(t, pod)
				if w := strings.Join(seen.take(), "\n"); !strings.Contains(w, "selects backend istio") {
					t.Errorf("warnings %q, want one saying the backend is istio", w)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("still injected 30s after the SMIOperator selected istio")
			}
			time.Sleep(100 * time.Millisecond) // the webhook reads the SMIOperator from its cache
		}
	})
}

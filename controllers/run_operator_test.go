package controllers_test

import (
	"context"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers"
	"github.com/smi-operator/smi-operator/controllers/backends"
	xdsbackend "github.com/smi-operator/smi-operator/controllers/backends/xds"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// The namespaces runOperator makes: the operator's, and the one of its Services and split.
const runOperatorNS, runShopNS = "smi-operator", "shop"

// operatorRun is an operator running on a control plane of its own (runOperator).
type operatorRun struct {
	env *testenv.Env
	c   client.Client
	ctx context.Context
	// split is shop/web, 90:10 to web-v1 and web-v2.
	split *hub.TrafficSplit
}

// runOperator starts a control plane, lets the SMIOperator CRD take the name of the backend that
// more returns, when not nil (a backend that exists only in a test, as a real new backend adds
// its name to the API), creates the namespaces smi-operator and shop, in shop the Services web, web-v1 and web-v2
// (port 80), and starts the operator (SetupFromResource, the backend registered through
// MoreBackends), then creates the split shop/web. Everything stops when the test ends.
func runOperator(t *testing.T, g Gomega, more func(ctrl.Manager) backends.Backend) operatorRun {
	return runOperatorOn(t, g, testenv.Options{}, more)
}

// runOperatorOn is runOperator on a control plane started with opts.
func runOperatorOn(t *testing.T, g Gomega, opts testenv.Options, more func(ctrl.Manager) backends.Backend) operatorRun {
	testLogs.to(t)
	t.Cleanup(func() { testLogs.to(nil) }) // registered first, so it runs after the manager stopped
	env, err := testenv.Start(opts)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(env.Config, client.Options{Scheme: controllers.NewScheme()})
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	for _, name := range []string{runOperatorNS, runShopNS} {
		g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	}
	for _, name := range []string{"web", "web-v1", "web-v2"} {
		g.Expect(c.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: runShopNS, Name: name},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		})).To(Succeed())
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme: controllers.NewScheme(), Metrics: metricsserver.Options{BindAddress: "0"}, WebhookServer: env.WebhookServer(),
		// Each test of the package runs an operator: their controllers share names.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	g.Expect(err).NotTo(HaveOccurred())
	var registered []backends.Backend
	if more != nil {
		registered = append(registered, more(mgr))
		allowBackendInCRD(ctx, g, c, registered[0].Name())
	}
	controllers.SetupWebhooks(mgr)
	g.Expect(controllers.SetupFromResource(ctx, mgr, controllers.ResourceOptions{
		MaxConcurrentReconciles: 2, Namespace: runOperatorNS, XDSHost: "127.0.0.1",
		XDS: xdsbackend.Config{
			ServiceName: "smi-operator-xds",
			CASecret:    types.NamespacedName{Namespace: runOperatorNS, Name: "smi-operator-xds-ca"},
		},
		MoreBackends: registered,
	})).To(Succeed())
	managerDone := make(chan error, 1)
	go func() { managerDone <- mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-managerDone })
	g.Eventually(func() error { return mgr.GetWebhookServer().StartedChecker()(nil) }).Should(Succeed())
	split := &hub.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: runShopNS, Name: "web"},
		Spec: splitv1alpha4.TrafficSplitSpec{Service: "web", Backends: []splitv1alpha4.TrafficSplitBackend{
			{Service: "web-v1", Weight: 90}, {Service: "web-v2", Weight: 10},
		}},
	}
	g.Expect(c.Create(ctx, split)).To(Succeed())
	return operatorRun{env: env, c: c, ctx: ctx, split: split}
}

// testLogs is where the operators the tests run log: into the test running one now, else nowhere.
// controller-runtime's logger takes the first logger it is given for the whole process, so it
// cannot be one test's (a later test, or -count > 1, would log into a test that has completed,
// which panics).
var testLogs = func() *currentTest {
	w := &currentTest{}
	ctrl.SetLogger(zap.New(zap.WriteTo(w), zap.UseDevMode(true)))
	return w
}()

// currentTest writes into the log of the test it is pointed to, if any.
type currentTest struct {
	mu sync.Mutex
	t  *testing.T
}

func (c *currentTest) to(t *testing.T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *currentTest) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t != nil {
		c.t.Log(string(p))
	}
	return len(p), nil
}

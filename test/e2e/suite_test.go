// Package e2e runs the operator's webhooks and (as backends land) its controllers against a real
// kube-apiserver and etcd, with the generated CRDs installed.
package e2e

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers"
	"github.com/smi-operator/smi-operator/test/testenv"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

var (
	env       *testenv.Env
	k8sClient client.Client
	cancelMgr context.CancelFunc
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "smi-operator e2e")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	// Reconciles run on 2 shared cores next to the API server: give them time.
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	var err error
	env, err = testenv.Start(testenv.Options{})
	Expect(err).NotTo(HaveOccurred())

	operatorConfig := rest.CopyConfig(env.Config)
	operatorConfig.Wrap(operatorWrites.Wrap)
	mgr, err := ctrl.NewManager(operatorConfig, ctrl.Options{
		Scheme:        controllers.NewScheme(),
		Metrics:       metricsserver.Options{BindAddress: "0"},
		WebhookServer: env.WebhookServer(),
	})
	Expect(err).NotTo(HaveOccurred())
	controllers.SetupWebhooks(mgr)

	var ctx context.Context
	ctx, cancelMgr = context.WithCancel(context.Background())
	Expect(controllers.SetupIstio(ctx, mgr, controllers.Options{
		Settings:                mesh.Settings{Access: mesh.AccessEnforcing, AccessNamespaces: accessNamespaces},
		MaxConcurrentReconciles: 4,
	})).To(Succeed())
	Expect(controllers.SetupOperatorStatus(mgr, v1alpha1.BackendIstio)).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	Eventually(func() error { return mgr.GetWebhookServer().StartedChecker()(nil) }).Should(Succeed())

	// A client that bypasses the manager's cache: tests read exactly what the API server returns.
	k8sClient, err = client.New(env.Config, client.Options{Scheme: controllers.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
})

// accessNamespaces is the default selector of the namespaces where access applies, narrowed by a
// label a test sets to take its namespace out.
const accessNamespaces = mesh.DefaultAccessNamespaces + "," + accessOffLabel + "!=off"

const accessOffLabel = "e2e.smi-operator.io/access"

// operatorWrites counts the operator's write requests, so a test can check that it sent none.
var operatorWrites = &testenv.WriteCounter{}

var _ = AfterSuite(func() {
	if cancelMgr != nil {
		cancelMgr()
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

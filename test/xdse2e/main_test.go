// Package xdse2e runs the operator with its xDS backend against a real kube-apiserver and etcd,
// and drives real grpc-go xDS clients and servers through it. Everything runs inside a network
// namespace of the test's own (package test/netns), so that EndpointSlices can hold addresses
// gRPC servers really listen on (the API server refuses loopback ones).
package xdse2e

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/smi-operator/smi-operator/controllers"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/test/testenv"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

func TestMain(m *testing.M) { os.Exit(netns.Run(fixtureRun{m})) }

// fixtureRun runs the tests and then stops the shared operator, inside the namespace.
type fixtureRun struct{ m *testing.M }

func (r fixtureRun) Run() int {
	code := r.m.Run()
	if op != nil {
		op.stop()
	}
	return code
}

// xdsPort is where the operator serves ADS, on netns.Addr(1).
const xdsPort = 15010

// operator is the control plane, the operator (webhooks and xDS backend) and a client.
type operator struct {
	env    *testenv.Env
	client client.Client
	xds    *server.Server
	ca     *ca.Authority
	cancel context.CancelFunc
	done   chan struct{}
}

var (
	op      *operator
	opErr   error
	opStart sync.Once
)

// start returns the shared operator, starting it on first use; tests that need it call it after
// netns.Require.
func start(t *testing.T) *operator {
	t.Helper()
	netns.Require(t)
	opStart.Do(func() { op, opErr = newOperator() })
	if opErr != nil {
		t.Fatal(opErr)
	}
	return op
}

func newOperator() (*operator, error) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true), zap.Level(zapLevel())))
	env, err := testenv.Start(testenv.Options{APIServerFlags: netns.APIServerFlags()})
	if err != nil {
		return nil, err
	}
	authority, err := newAuthority(env)
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	settings := mesh.Settings{Access: mesh.AccessEnforcing}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:        controllers.NewScheme(),
		Cache:         controllers.CacheOptions(),
		Metrics:       metricsserver.Options{BindAddress: "0"},
		WebhookServer: env.WebhookServer(),
	})
	if err != nil {
		return nil, err
	}
	controllers.SetupWebhooks(mgr)
	ctx, cancel := context.WithCancel(context.Background())
	xdsServer := controllers.NewXDSServer(server.Options{
		Address:  netns.HostPort(1, xdsPort),
		Settings: settings,
		Log:      ctrl.Log.WithName("xds"),
	})
	if err := controllers.SetupXDS(ctx, mgr, controllers.Options{Settings: settings, MaxConcurrentReconciles: 4}, xdsServer); err != nil {
		cancel()
		return nil, err
	}
	o := &operator{env: env, xds: xdsServer, ca: authority, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(o.done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for mgr.GetWebhookServer().StartedChecker()(nil) != nil {
		if time.Now().After(deadline) {
			o.stop()
			return nil, fmt.Errorf("the webhook server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	o.client, err = client.New(env.Config, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		o.stop()
		return nil, err
	}
	return o, nil
}

// newAuthority starts the xDS backend's certificate authority, its root in a Secret of the
// operator's namespace.
func newAuthority(env *testenv.Env) (*ca.Authority, error) {
	clientset, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	_, err = clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	return ca.New(ctx, clientset, ca.Options{
		Secret:      types.NamespacedName{Namespace: operatorNamespace, Name: "smi-operator-xds-ca"},
		TrustDomain: "cluster.local",
	})
}

const operatorNamespace = "smi-operator-system"

func (o *operator) stop() {
	o.cancel()
	<-o.done
	_ = o.env.Stop()
}

// zapLevel keeps the operator's logs to errors unless XDS_E2E_VERBOSE is set.
func zapLevel() zapcore.Level {
	if os.Getenv("XDS_E2E_VERBOSE") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel
}

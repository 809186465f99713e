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

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/smi-operator/smi-operator/controllers"
	xdsbackend "github.com/smi-operator/smi-operator/controllers/backends/xds"
	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/test/testenv"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

// The suite's proxyless workloads send their bootstrap's token (call_creds), as injected pods do:
// the operators serving TLS serve a node's identity only to a stream whose token proves it.
func TestMain(m *testing.M) {
	os.Exit(grpcxds.RunWithCallCreds(func() int { return netns.Run(m) }))
}

// TestXDSE2E runs the suite, inside the network namespace (or skips it and says why, as
// netns.Require does, when there is none).
func TestXDSE2E(t *testing.T) {
	netns.Require(t)
	RegisterFailHandler(Fail)
	RunSpecs(t, "smi-operator xDS e2e")
}

// The specs of each file run in file order, each file's in declaration order (Ginkgo shuffles
// only top-level containers, and here there is one): no spec depends on another's leftovers, but
// the shared SMIOperator and swapNamespace are used in turn by the backend swap specs, which are
// Ordered.
var _ = Describe("the xDS backend", func() {
	Describe("access", accessSpecs)
	Describe("the pod agent", agentSpecs)
	Describe("gRPC C-core", ccoreSpecs)
	Describe("diagnostics", diagnosticsSpecs)
	Describe("grpc-js", grpcJSSpecs)
	Describe("policies", policySpecs)
	Describe("rejections", rejectionsSpecs)
	Describe("secrets", secretsSpecs)
	Describe("secure naming", secureNamingSpecs)
	Describe("splits", splitSpecs)
	Describe("the SMIOperator's backend", Ordered, ContinueOnFailure, swapSpecs)
})

var _ = BeforeSuite(func() {
	var err error
	o, err = newOperator()
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if o != nil {
		o.stop()
	}
})

// xdsPort is where the operator serves ADS, on netns.Addr(1); permissiveXDSPort where the
// permissive operator, which programs permissiveNamespace only, does; plainEnforcingXDSPort
// where the plain-text enforcing operator, which programs plainEnforcingNamespaces only, does.
const (
	xdsPort               = 15010
	permissiveXDSPort     = 15011
	permissiveNamespace   = "permissive-mode"
	plainEnforcingXDSPort = 15013
)

// plainEnforcingNamespaces are programmed by an enforcing operator serving xDS in plain text:
// for the xDS-enabled servers, the mutual-TLS clients and the secure-naming clients of gRPC
// libraries that reach no TLS xDS server (gRPC C-core 1.51, grpc-js-xds 1.14.1), one namespace
// for each check of each library, whose access rules must be enforced.
var plainEnforcingNamespaces = []string{ccoreServerNamespace, grpcJSServerNamespace, ccoreClientNamespace, grpcJSClientNamespace,
	ccoreNamingNamespace, grpcJSNamingNamespace}

// operator is the control plane, the operator (webhooks and xDS backend) and a client.
type operator struct {
	env      *testenv.Env
	client   client.Client
	ca       *ca.Authority
	webhooks webhook.Server
	ctx      context.Context
	cancel   context.CancelFunc
	done     []chan struct{}
	mu       sync.Mutex // guards done, which startSwapOperator appends to
}

// o is the shared operator, started before the specs run and stopped after them.
var o *operator

// accessNamespaces is the enforcing operator's selector of the namespaces where access applies:
// the default, narrowed by a label a test sets to take its namespace out.
const accessNamespaces = mesh.DefaultAccessNamespaces + "," + accessOffLabel + "!=off"

const accessOffLabel = "xdse2e.smi-operator.io/access"

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
	// Three operators share the API server: an enforcing one for every namespace but
	// permissiveNamespace, plainEnforcingNamespaces (and swapNamespace, see startSwapOperator),
	// a permissive one for permissiveNamespace only (settings are the operator's, so one
	// operator cannot show both), and an enforcing one serving xDS in plain text for
	// plainEnforcingNamespaces only. Each has its own xDS server.
	elsewhere := []string{permissiveNamespace, swapNamespace}
	elsewhere = append(elsewhere, plainEnforcingNamespaces...)
	var notNamespace, notName []fields.Selector
	for _, ns := range elsewhere {
		notNamespace = append(notNamespace, fields.OneTermNotEqualSelector("metadata.namespace", ns))
		notName = append(notName, fields.OneTermNotEqualSelector("metadata.name", ns))
	}
	enforcingCache := controllers.CacheOptions()
	enforcingCache.DefaultFieldSelector = fields.AndSelectors(notNamespace...)
	permissiveCache := controllers.CacheOptions()
	permissiveCache.DefaultNamespaces = map[string]cache.Config{permissiveNamespace: {}}
	plainEnforcingCache := controllers.CacheOptions()
	plainEnforcingCache.DefaultNamespaces = map[string]cache.Config{}
	for _, ns := range plainEnforcingNamespaces {
		plainEnforcingCache.DefaultNamespaces[ns] = cache.Config{}
	}
	// Namespaces are cluster-scoped: the selectors above do not apply to them; by name, each
	// operator sees the Namespaces of the objects it sees (the API server labels each with its
	// name: a set of names is a label selector, not a field one).
	enforcingCache.ByObject[&corev1.Namespace{}] = cache.ByObject{Field: fields.AndSelectors(notName...)}
	permissiveCache.ByObject[&corev1.Namespace{}] = cache.ByObject{Field: fields.OneTermEqualSelector("metadata.name", permissiveNamespace)}
	plainEnforcingNames, err := labels.NewRequirement(mesh.NamespaceNameLabel, selection.In, plainEnforcingNamespaces)
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	plainEnforcingCache.ByObject[&corev1.Namespace{}] = cache.ByObject{Label: labels.NewSelector().Add(*plainEnforcingNames)}
	ctx, cancel := context.WithCancel(context.Background())
	o := &operator{env: env, ca: authority, ctx: ctx, cancel: cancel}
	for _, op := range []struct {
		settings mesh.Settings
		cache    cache.Options
		port     uint16
		webhooks bool
	}{
		{mesh.Settings{Access: mesh.AccessEnforcing, TrustDomain: "cluster.local", ClusterDomain: "cluster.local", AccessNamespaces: accessNamespaces},
			enforcingCache, xdsPort, true},
		{mesh.Settings{Access: mesh.AccessPermissive, MTLS: true}, permissiveCache, permissiveXDSPort, false},
		{mesh.Settings{Access: mesh.AccessEnforcing}, plainEnforcingCache, plainEnforcingXDSPort, false},
	} {
		opts := ctrl.Options{Scheme: controllers.NewScheme(), Cache: op.cache, Metrics: metricsserver.Options{BindAddress: "0"},
			// Both operators run controllers of the same names in this one process.
			Controller: config.Controller{SkipNameValidation: ptr.To(true)}}
		registry := prometheus.NewRegistry()
		if op.webhooks {
			opts.WebhookServer = env.WebhookServer()
		}
		mgr, err := ctrl.NewManager(env.Config, opts)
		if err != nil {
			cancel()
			return nil, err
		}
		if op.webhooks {
			controllers.SetupWebhooks(mgr)
			o.webhooks = mgr.GetWebhookServer()
		}
		ctrlOpts := controllers.Options{Settings: op.settings, MaxConcurrentReconciles: 4}
		if op.webhooks {
			// The enforcing operator is wired as main.go's --backend=xds does, with its defaults:
			// TLS with a serving certificate of the built-in CA (its root the Secret o.ca uses),
			// tokens reviewed by the API server, secrets served.
			err = controllers.SetupXDSBackend(ctx, mgr, ctrlOpts, xdsbackend.Config{
				Address:        netns.HostPort(1, op.port),
				TokenAudiences: []string{tokenAudience},
				CASecret:       types.NamespacedName{Namespace: operatorNamespace, Name: xdsCASecret},
				ServiceName:    xdsServiceName,
			}, registry)
		} else {
			// The others serve in plain text, the explicit opt-out: no tokens, no secrets (their
			// clients' certificates come from files).
			err = controllers.SetupXDS(ctx, mgr, ctrlOpts, server.New(server.Options{
				Address:    netns.HostPort(1, op.port),
				Settings:   op.settings,
				Registerer: registry, // one per server: each would register the same metrics
				Log:        ctrl.Log.WithName("xds"),
			}))
		}
		if err != nil {
			cancel()
			return nil, err
		}
		done := make(chan struct{})
		o.done = append(o.done, done)
		go func() {
			defer close(done)
			if err := mgr.Start(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "manager:", err)
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for o.webhooks.StartedChecker()(nil) != nil {
		if time.Now().After(deadline) {
			o.stop()
			return nil, fmt.Errorf("the webhook server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Tests dial the xDS servers at once: wait until all listen.
	for _, port := range []uint16{xdsPort, permissiveXDSPort, plainEnforcingXDSPort} {
		if err := listening(netns.HostPort(1, port), time.Until(deadline)); err != nil {
			o.stop()
			return nil, fmt.Errorf("the xDS server did not start: %w", err)
		}
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
		Secret:      types.NamespacedName{Namespace: operatorNamespace, Name: xdsCASecret},
		TrustDomain: "cluster.local",
	})
}

// operatorNamespace holds the xDS CA's root in the Secret xdsCASecret; xdsServiceName is the
// Service the xDS servers' certificates are issued for (with the address they listen on).
const (
	operatorNamespace = "smi-operator-system"
	xdsCASecret       = "smi-operator-xds-ca"
	xdsServiceName    = "smi-operator-xds"
)

// tokenAudience is what ServiceAccount tokens presented to the xDS server must be bound to.
const tokenAudience = "smi-operator-xds"

func (o *operator) stop() {
	o.cancel()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, done := range o.done {
		<-done
	}
	_ = o.env.Stop()
}

// swapNamespace is the namespace of the third operator, whose SMIOperator resource chooses the
// backend; it serves xDS, when it does, on swapXDSPort.
const (
	swapNamespace = "backend-swap"
	swapXDSPort   = 15012
)

var (
	swapStart sync.Once
	swapErr   error
	// swapStop stops the swap operator running now and waits until it has.
	swapStop func()
)

// startSwapOperator starts, once, an operator that runs the backend the SMIOperator "default"
// selects (controllers.SetupFromResource, as main.go's default --backend=resource does),
// programming swapNamespace only.
func (o *operator) startSwapOperator() {
	GinkgoHelper()
	swapStart.Do(func() { swapErr = o.newSwapOperator() })
	Expect(swapErr).NotTo(HaveOccurred())
}

func (o *operator) newSwapOperator() error {
	cacheOpts := controllers.CacheOptions()
	cacheOpts.DefaultNamespaces = map[string]cache.Config{swapNamespace: {}}
	cacheOpts.ByObject[&corev1.Namespace{}] = cache.ByObject{Field: fields.OneTermEqualSelector("metadata.name", swapNamespace)}
	mgr, err := ctrl.NewManager(o.env.Config, ctrl.Options{
		Scheme: controllers.NewScheme(), Cache: cacheOpts, Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return err
	}
	err = controllers.SetupFromResource(o.ctx, mgr, controllers.ResourceOptions{
		MaxConcurrentReconciles: 4,
		Namespace:               operatorNamespace,
		XDSHost:                 netns.Addr(1).String(),
		XDS: xdsbackend.Config{
			ServiceName: xdsServiceName,
			CASecret:    types.NamespacedName{Namespace: operatorNamespace, Name: xdsCASecret}, // the root o.ca issues from
		},
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		return err
	}
	done := make(chan struct{})
	o.mu.Lock()
	o.done = append(o.done, done)
	o.mu.Unlock()
	ctx, cancel := context.WithCancel(o.ctx)
	swapStop = func() { cancel(); <-done }
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "swap operator manager:", err)
		}
	}()
	return nil
}

// restartSwapOperator stops the swap operator and starts a new one, as a restarted operator
// process would: nothing is kept but what the API server holds.
func (o *operator) restartSwapOperator() {
	GinkgoHelper()
	o.startSwapOperator()
	swapStop()
	Expect(o.newSwapOperator()).To(Succeed())
}

// zapLevel keeps the operator's logs to errors unless XDS_E2E_VERBOSE is set.
func zapLevel() zapcore.Level {
	if os.Getenv("XDS_E2E_VERBOSE") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel
}

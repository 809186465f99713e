// Command smi-operator reconciles Service Mesh Interface objects into the configuration of the
// chosen mesh backend, and serves the SMI CRDs' conversion and validation webhooks.
package main

import (
	"cmp"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/cmd/agent"
	"github.com/smi-operator/smi-operator/cmd/iptables"
	"github.com/smi-operator/smi-operator/cmd/translate"
	"github.com/smi-operator/smi-operator/controllers"
	xdsbackend "github.com/smi-operator/smi-operator/controllers/backends/xds"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/xds/ca"
)

// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// defaultGCPercent applies when GOGC is not set: the operator's heap is mostly long-lived
// caches (informers, the xDS server's model) that every collection keeps, so collecting at +50%
// instead of Go's +100% costs little CPU and saves about a quarter of the memory at 10,000
// Services (README, Performance). GOGC, when set, wins.
const defaultGCPercent = 50

// backendFromResource is --backend's default: the SMIOperator resource chooses.
const backendFromResource = "resource"

// fixedBackendFlags configure a backend chosen by --backend; with the resource choosing, its spec
// holds them instead.
var fixedBackendFlags = []string{
	"trust-domain", "cluster-domain", "access-mode", "access-namespace-selector", "mtls",
	"xds-address", "xds-tls-cert-dir", "xds-insecure-plaintext", "xds-token-audiences", "xds-cert-ttl",
}

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if len(os.Args) > 1 && os.Args[1] == "translate" {
		os.Exit(translate.Main(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "iptables" {
		os.Exit(iptables.Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		os.Exit(agent.Main(os.Args[2:], os.Getenv, os.Stderr))
	}
	var (
		metricsAddr, probeAddr        string
		pprofAddr                     string
		metricsSecure, enableHTTP2    bool
		leaderElect                   bool
		webhookPort                   int
		certDir, certName, keyName    string
		certRotation, enableWebhooks  bool
		webhookService, webhookSecret string
		webhookConfigName             string
		mutatingWebhookConfigName     string
		agentImage                    string
		backend                       string
		settings                      mesh.Settings
		workers, qps, burst           int
		xdsConfig                     xdsbackend.Config
		xdsAudiences, xdsCASecret     string
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443", "Address the metrics endpoint binds to; \"0\" disables it.")
	flag.BoolVar(&metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS, with authentication and authorization through the API server.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz endpoints bind to.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "Address to serve Go's /debug/pprof on; empty (the default) serves nothing.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so that only one replica reconciles at a time.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false, "Serve HTTP/2 on the metrics and webhook servers. Off by default: HTTP/2 "+
		"Rapid Reset and Stream Cancellation (CVE-2023-44487, CVE-2023-39325) make it a denial-of-service risk.")
	flag.IntVar(&webhookPort, "webhook-port", 9443, "Port the conversion and validation webhooks listen on.")
	flag.StringVar(&certDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Folder holding the webhook serving certificate.")
	flag.StringVar(&certName, "webhook-cert-name", "tls.crt", "Webhook serving certificate file name in --webhook-cert-dir.")
	flag.StringVar(&keyName, "webhook-cert-key", "tls.key", "Webhook serving key file name in --webhook-cert-dir.")
	flag.BoolVar(&enableWebhooks, "enable-webhooks", true, "Serve the SMI conversion and validation webhooks. Off only when running "+
		"outside the cluster, where its API server cannot call them.")
	flag.BoolVar(&certRotation, "cert-rotation", true, "Issue and rotate the webhook serving certificate in a Secret, and inject its CA "+
		"into the webhook configuration and the SMI CRDs. Turn off when OLM or cert-manager provides the certificate.")
	flag.StringVar(&webhookService, "webhook-service-name", "smi-operator-webhook-service", "Service in front of the webhook server (certificate DNS name).")
	flag.StringVar(&webhookSecret, "webhook-secret-name", "smi-operator-webhook-server-cert", "Secret holding the rotated webhook certificate.")
	flag.StringVar(&webhookConfigName, "validating-webhook-configuration", "smi-operator-validating-webhook-configuration", "ValidatingWebhookConfiguration to inject the CA into.")
	flag.StringVar(&mutatingWebhookConfigName, "mutating-webhook-configuration", "smi-operator-mutating-webhook-configuration", "MutatingWebhookConfiguration (pod injection) to inject the CA into.")
	flag.StringVar(&agentImage, "agent-image", "", "Image injected pods run the traffic capture and the pod agent from, when the SMIOperator's spec.xds.injection.agentImage is empty; empty: the operator's own (read from its pod).")
	flag.StringVar(&backend, "backend", backendFromResource, "Mesh backend to program: resource (the SMIOperator named default selects it "+
		"and holds its settings, and editing it swaps backends), or fixed: istio, xds (the operator's own xDS server) with the settings of "+
		"the flags below, or none (webhooks only).")
	// Every default a flag shares with the SMIOperator API is the API's (v1alpha1.Default*).
	flag.StringVar(&xdsConfig.Address, "xds-address", fmt.Sprintf(":%d", v1alpha1.DefaultXDSPort), "Address the xDS (ADS) server listens on, with --backend=xds.")
	flag.StringVar(&xdsConfig.TLSCertDir, "xds-tls-cert-dir", "", "Folder holding tls.crt and tls.key to serve xDS over TLS; empty serves a certificate the built-in CA issues for --xds-service-name.")
	flag.BoolVar(&xdsConfig.Plaintext, "xds-insecure-plaintext", false, "Serve xDS without TLS (tokens are then refused and no secret is served): only for proxyless clients that need no secrets.")
	flag.StringVar(&xdsConfig.ServiceName, "xds-service-name", "smi-operator-xds", "Service in front of the xDS server, in the operator's namespace (the built-in serving certificate's DNS names).")
	flag.StringVar(&xdsAudiences, "xds-token-audiences", v1alpha1.DefaultTokenAudience, "Comma-separated audiences the ServiceAccount tokens proxies present must be bound to.")
	flag.StringVar(&xdsCASecret, "xds-ca-secret", "smi-operator-xds-ca", "Secret in the operator's namespace (POD_NAMESPACE) keeping the xDS CA root.")
	flag.DurationVar(&xdsConfig.CARootTTL, "xds-ca-root-ttl", ca.DefaultRootTTL, "Lifetime of a root the xDS CA makes; a root is rotated with a third of it left, and a new root signs only after min(1h, a sixth of it) in the trust bundle.")
	flag.DurationVar(&xdsConfig.CertTTL, "xds-cert-ttl", v1alpha1.DefaultCertificateTTL, "Lifetime of the workload certificates served over SDS; renewed at half-life.")
	settings.BindFlags(flag.CommandLine)
	flag.IntVar(&workers, "max-concurrent-reconciles", 8, "Reconciles run in parallel per controller.")
	flag.IntVar(&qps, "kube-api-qps", 100, "Requests per second to the API server, sustained.")
	flag.IntVar(&burst, "kube-api-burst", 200, "Requests to the API server allowed in a burst.")
	logOpts := zap.Options{Development: false}
	logOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&logOpts)))
	log := ctrl.Log.WithName("setup")
	ctx := ctrl.SetupSignalHandler()

	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: metricsSecure, TLSOpts: tlsOpts}
	if metricsSecure {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	if backend == backendFromResource {
		var set []string
		flag.Visit(func(f *flag.Flag) {
			if slices.Contains(fixedBackendFlags, f.Name) {
				set = append(set, "--"+f.Name)
			}
		})
		if len(set) > 0 {
			log.Error(nil, "these flags configure a backend fixed by --backend; with the SMIOperator resource choosing the backend, set them in its spec",
				"flags", set)
			os.Exit(1)
		}
	}
	if err := settings.Validate(); err != nil {
		log.Error(err, "invalid mesh settings")
		os.Exit(1)
	}
	restConfig := controllers.ClientConfig(ctrl.GetConfigOrDie(), float32(qps), burst)

	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 controllers.NewScheme(),
		Metrics:                metricsOpts,
		Cache:                  controllers.CacheOptions(),
		HealthProbeBindAddress: probeAddr,
		PprofBindAddress:       pprofAddr,
		LeaderElection:         leaderElect,
		LeaderElectionID:       "smi-operator.smi-operator.io",
		WebhookServer: webhook.NewServer(webhook.Options{
			Port: webhookPort, CertDir: certDir, CertName: certName, KeyName: keyName, TLSOpts: tlsOpts,
		}),
	})
	if err != nil {
		log.Error(err, "unable to create the manager")
		os.Exit(1)
	}

	certsReady := make(chan struct{})
	if enableWebhooks && certRotation {
		namespace := os.Getenv("POD_NAMESPACE")
		if namespace == "" {
			log.Error(nil, "--cert-rotation needs the POD_NAMESPACE environment variable (set from the downward API)")
			os.Exit(1)
		}
		err = controllers.AddCertRotator(mgr, controllers.CertRotation{
			Secret:                  types.NamespacedName{Namespace: namespace, Name: webhookSecret},
			DNSName:                 webhookService + "." + namespace + ".svc",
			CertDir:                 certDir,
			ValidatingWebhookConfig: webhookConfigName,
			MutatingWebhookConfig:   mutatingWebhookConfigName,
			Ready:                   certsReady,
		})
		if err != nil {
			log.Error(err, "unable to set up webhook certificate rotation")
			os.Exit(1)
		}
	} else {
		close(certsReady)
	}

	// The operator's namespace: the xDS CA root and TLS Secret live there.
	namespace := cmp.Or(os.Getenv("POD_NAMESPACE"), "smi-operator-system")
	if enableWebhooks {
		controllers.SetupWebhooks(mgr)
		injection := controllers.InjectionOptions{Namespace: namespace, XDSService: xdsConfig.ServiceName, OperatorImage: agentImage}
		if backend != backendFromResource {
			// A fixed backend: its xDS settings are the flags'.
			port, err := portOf(xdsConfig.Address)
			if err != nil {
				log.Error(err, "invalid --xds-address")
				os.Exit(1)
			}
			injection.Fixed = &v1alpha1.SMIOperatorSpec{Backend: v1alpha1.Backend(backend), XDS: v1alpha1.XDSSpec{
				Port: port, TokenAudiences: strings.Split(xdsAudiences, ","),
			}}
		}
		controllers.SetupInjection(mgr, injection)
	}
	switch backend {
	case backendFromResource:
		err = controllers.SetupFromResource(ctx, mgr, controllers.ResourceOptions{
			MaxConcurrentReconciles: workers,
			Namespace:               namespace,
			XDS: xdsbackend.Config{
				ServiceName: xdsConfig.ServiceName,
				CASecret:    types.NamespacedName{Namespace: namespace, Name: xdsCASecret},
				CARootTTL:   xdsConfig.CARootTTL,
			},
		})
	case "istio":
		err = controllers.SetupIstio(ctx, mgr, controllers.Options{Settings: settings, MaxConcurrentReconciles: workers})
	case "xds":
		xdsConfig.TokenAudiences = strings.Split(xdsAudiences, ",")
		xdsConfig.CASecret = types.NamespacedName{Namespace: namespace, Name: xdsCASecret}
		err = controllers.SetupXDSBackend(ctx, mgr, controllers.Options{Settings: settings, MaxConcurrentReconciles: workers}, xdsConfig, nil)
	case "none":
	default:
		err = fmt.Errorf("unknown --backend %q: use resource, istio, xds or none", backend)
	}
	if err != nil {
		log.Error(err, "unable to set up the backend")
		os.Exit(1)
	}
	if backend == "istio" || backend == "xds" {
		if err := controllers.SetupOperatorStatus(mgr, v1alpha1.Backend(backend)); err != nil {
			log.Error(err, "unable to set up the SMIOperator status")
			os.Exit(1)
		}
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up the health check")
		os.Exit(1)
	}
	// Ready once the webhook server answers TLS, which it can only do once its certificate exists.
	if err := mgr.AddReadyzCheck("readyz", func(req *http.Request) error {
		select {
		case <-certsReady:
			if !enableWebhooks {
				return nil
			}
			return mgr.GetWebhookServer().StartedChecker()(req)
		default:
			return errors.New("webhook certificate not issued yet")
		}
	}); err != nil {
		log.Error(err, "unable to set up the readiness check")
		os.Exit(1)
	}

	log.Info("starting the manager")
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "the manager stopped with an error")
		os.Exit(1)
	}
}

// portOf is the port of a listening address such as ":15010".
func portOf(address string) (int32, error) {
	_, port, err := net.SplitHostPort(address)
	if err != nil {
		return 0, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	return int32(p), err
}

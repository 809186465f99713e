// Package agent is the `smi-operator agent` command, the pod agent of an injected pod (package
// internal/agent says what it does): it obtains and renews the workload's certificate with a CSR
// (the key never leaves the pod) and hands it to the proxy.
//
//	smi-operator agent --proxy envoy|grpc --xds-address host:port [--trust-domain cluster.local]
//	    [--token-file …] [--trust-bundle-file …] [--workload-dir …] [--health-address :15020]
//
// The pod is named by the environment, as the downward API sets it: POD_NAME, POD_NAMESPACE,
// SERVICE_ACCOUNT and INSTANCE_IP.
package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/internal/agent"
	"github.com/smi-operator/smi-operator/xds/bootstrap"
	"github.com/smi-operator/smi-operator/xds/server"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitFail  = 1
	ExitUsage = 2
)

// Main runs the command with args (those after "agent") until SIGTERM or SIGINT, and returns its
// exit code.
func Main(args []string, getenv func(string) string, stderr io.Writer) int {
	opts, health, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "smi-operator agent: %v\nRun 'smi-operator agent -h' for usage.\n", err)
		return ExitUsage
	}
	opts.Log = zap.New(zap.WriteTo(stderr))
	a, err := agent.New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "smi-operator agent: %v\n", err)
		return ExitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if health != "" {
		lis, err := net.Listen("tcp", health)
		if err != nil {
			fmt.Fprintf(stderr, "smi-operator agent: health: %v\n", err)
			return ExitFail
		}
		srv := &http.Server{Handler: a.HealthHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(lis) }()
		defer srv.Close()
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "smi-operator agent: %v\n", err)
		return ExitFail
	}
	return ExitOK
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (agent.Options, string, error) {
	fs := flag.NewFlagSet("smi-operator agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := agent.Options{Paths: agent.DefaultPaths()}
	var workloadDir, health string
	fs.StringVar(&opts.Proxy, "proxy", "", `what the certificate is for: "envoy" (SDS and an ADS proxy on the agent's socket, Envoy's bootstrap) or "grpc" (files and the gRPC bootstrap)`)
	fs.StringVar(&opts.XDSAddress, "xds-address", "", "the operator's xDS Service, host:port (its certificate service, and the proxy's management server)")
	fs.StringVar(&opts.TrustDomain, "trust-domain", v1alpha1.DefaultTrustDomain, "the trust domain of the workload's SPIFFE ID (the SMIOperator's spec.trustDomain)")
	fs.StringVar(&opts.Paths.TokenFile, "token-file", bootstrap.TokenFile, "the ServiceAccount token projected for the xDS audience")
	fs.StringVar(&opts.Paths.TrustBundleFile, "trust-bundle-file", bootstrap.TrustBundleFile, "the mesh's trust bundle (the ConfigMap "+bootstrap.TrustBundleConfigMap+")")
	fs.StringVar(&workloadDir, "workload-dir", bootstrap.WorkloadDir, "where the certificate, key, bundle, bootstraps and socket go")
	fs.StringVar(&health, "health-address", ":"+strconv.Itoa(bootstrap.AgentPort), `where /healthz/ready is served; "" serves none`)
	if err := fs.Parse(args); err != nil {
		return opts, "", err
	}
	if fs.NArg() > 0 {
		return opts, "", fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if opts.Proxy != server.ProxyEnvoy && opts.Proxy != server.ProxyGRPC {
		return opts, "", fmt.Errorf("--proxy %q: want %q or %q", opts.Proxy, server.ProxyEnvoy, server.ProxyGRPC)
	}
	if opts.XDSAddress == "" {
		return opts, "", errors.New("--xds-address is required")
	}
	opts.Paths = opts.Paths.InDir(workloadDir)
	opts.PodName, opts.PodNamespace = getenv("POD_NAME"), getenv("POD_NAMESPACE")
	opts.ServiceAccount, opts.InstanceIP = getenv("SERVICE_ACCOUNT"), getenv("INSTANCE_IP")
	for _, v := range []struct{ name, value string }{{"POD_NAME", opts.PodName}, {"POD_NAMESPACE", opts.PodNamespace}, {"SERVICE_ACCOUNT", opts.ServiceAccount}} {
		if v.value == "" {
			return opts, "", fmt.Errorf("the environment variable %s is required (downward API)", v.name)
		}
	}
	return opts, health, nil
}

// Package bootstrap is what a workload on the built-in mesh starts from: the layout of an injected
// pod (where the pod agent reads its token and trust bundle and writes the workload's certificate
// and bootstraps), the proxyless gRPC bootstrap (GRPC) and the Envoy sidecar's (Envoy). The
// injection webhook mounts the paths, the pod agent writes the files, the proxies read them: all
// three take them from here.
package bootstrap

// Paths inside an injected pod.
const (
	// WorkloadDir is the in-memory volume the agent shares with the proxy (envoy template) or with
	// the app (grpc template): the workload's certificate, key and trust bundle, the bootstraps, and
	// the agent's socket.
	WorkloadDir = "/var/run/smi-operator/workload"
	// CertChainFile, KeyFile and RootCertFile are the workload's certificate chain (leaf first), its
	// private key (generated in the pod, never sent) and the mesh's trust bundle, PEM, as proxyless
	// gRPC's file_watcher certificate provider reads them.
	CertChainFile = WorkloadDir + "/cert-chain.pem"
	KeyFile       = WorkloadDir + "/key.pem"
	RootCertFile  = WorkloadDir + "/root-cert.pem"
	// GRPCBootstrapFile is the proxyless gRPC bootstrap; GRPC_XDS_BOOTSTRAP names it in the app's
	// containers.
	GRPCBootstrapFile = WorkloadDir + "/grpc-bootstrap.json"
	// EnvoyBootstrapFile is the Envoy sidecar's bootstrap (`envoy -c`).
	EnvoyBootstrapFile = WorkloadDir + "/envoy-bootstrap.json"
	// AgentSocket is the agent's Unix socket, Envoy's only control-plane connection: its SDS server
	// (the workload certificate, from memory) and its ADS proxy (to the operator's xDS Service,
	// over TLS, with the pod's current ServiceAccount token).
	AgentSocket = WorkloadDir + "/agent.sock"

	// TokenDir holds the ServiceAccount token projected for the xDS audience (TokenFile).
	TokenDir  = "/var/run/secrets/smi-operator/xds-token"
	TokenFile = TokenDir + "/token"
	// TrustDir holds the mesh's trust bundle (TrustBundleFile), the key TrustBundleKey of the
	// ConfigMap TrustBundleConfigMap the operator keeps in every namespace: what the agent verifies
	// the xDS server with before it has a certificate of its own.
	TrustDir             = "/var/run/secrets/smi-operator/trust"
	TrustBundleConfigMap = "smi-operator-ca-root"
	TrustBundleKey       = "root-cert.pem"
	TrustBundleFile      = TrustDir + "/" + TrustBundleKey
)

// Ports inside an injected pod. The capture (package internal/capture) leaves the inbound ones
// alone.
const (
	// EnvoyAdminPort is Envoy's admin API, on 127.0.0.1 only: it can stop the proxy and dump its
	// configuration, secrets included.
	EnvoyAdminPort = 15000
	// AgentPort is the agent's health (/healthz/ready: the workload certificate is on disk and
	// valid), for the pod's startup probe.
	AgentPort = 15020
	// EnvoyReadinessPort answers /healthz/ready with Envoy's own readiness.
	EnvoyReadinessPort = 15021
	// EnvoyStatsPort serves Envoy's Prometheus stats at /stats/prometheus.
	EnvoyStatsPort = 15090
)

// Package agent is the pod agent, `smi-operator agent`: the node-identity half of the built-in
// mesh's control plane, as Istio's pilot-agent is istiod's. It runs in every injected pod, next to
// the proxy (an Envoy sidecar) or the app (a proxyless gRPC workload), and
//
//   - proves the pod's identity: it generates the workload's private key (ECDSA P-256) in memory,
//     sends only a CSR for its SPIFFE ID (spiffe://<trust domain>/ns/<namespace>/sa/<service
//     account>) to the operator's IstioCertificateService (package xds/server), with the pod's
//     ServiceAccount token projected for the xDS audience, over TLS verified with the mesh's trust
//     bundle (the ConfigMap the operator keeps in every namespace). The key never leaves the pod;
//   - renews the certificate at half its life, with a new key each time; a failed renewal is
//     retried with exponential backoff while the current certificate is kept. Between renewals it
//     reads the trust bundle file again (every 30s), so that a root the operator added when its
//     CA rotated reaches the proxy without waiting for a renewal;
//   - hands the certificate to the proxy. For proxyless gRPC (ProxyGRPC) it writes the
//     certificate chain, the key (0640: the app reads it as a member of the pod's fsGroup) and
//     the trust bundle to files, each written to a temporary file and renamed, so that grpc's
//     file_watcher never reads half a file, and the gRPC
//     bootstrap that names them (xds/bootstrap.GRPC: the operator over TLS, the token as
//     call_creds). For Envoy (ProxyEnvoy) it serves, on a Unix socket in the volume it shares
//     with Envoy, SDS (the secrets "default" and "ROOTCA", pushed again on every renewal) and an ADS
//     proxy: each Envoy stream is forwarded to the operator over TLS with
//     "authorization: Bearer <token>", the token read anew for every stream (kubelet rotates it;
//     Envoy could not), and it writes Envoy's bootstrap (xds/bootstrap.Envoy);
//   - answers /healthz/ready on its health address (bootstrap.AgentPort): 200 once it holds a valid
//     certificate and has written what the proxy reads, 503 before: the pod's startup probe, so
//     that the app starts only once its identity exists.
//
// The paths are the pod layout of package xds/bootstrap; Paths puts them in another directory for
// tests.
package agent

// Package ca is the certificate authority of the operator's own xDS backend: it issues the
// short-lived X.509-SVIDs (one SPIFFE URI SAN) that pod agents obtain with a CSR and hand to Envoy
// sidecars over SDS and to proxyless gRPC clients through their certificate provider files, so that workloads can talk
// mTLS and the RBAC built from TrafficTargets can match their identities. It exists because that
// backend must work without Istio, cert-manager or SPIRE in the cluster.
//
// # Root
//
// The root CA lives in one Kubernetes Secret of type kubernetes.io/tls (tls.crt and tls.key: the
// current root; ca.crt: the trust bundle). [New] loads it, or creates it when it does not exist;
// when two replicas start together, the one whose Create loses re-reads and adopts the winner's
// root. The Secret is the only shared state, so every replica signs with the same root and hands
// out the same bundle.
//
// [Authority.Rotate], called periodically by the caller (this package starts no goroutines),
// re-reads the Secret and replaces the root once it has less than a third of its lifetime left,
// in two steps, because a peer refuses a certificate of a root it has not read yet: the new root
// first joins the trust bundle only (next.crt, next.key), the old one still signing; once it has
// been there for Options.RootPropagation (an hour: ConfigMap propagation to every pod and the
// agents' re-reads take a few minutes) it signs. The old root stays in the trust bundle until it
// expires, so a peer still holding a certificate of the old root keeps being trusted while
// everybody renews. The state of a rotation is all in the Secret (the new root's NotBefore is when
// it joined the bundle), so any replica takes it over. Each step is written with Update on the
// resourceVersion that was read: of two replicas rotating at once one wins, the other gets a
// conflict, re-reads, and adopts the winner's step instead of making another.
//
// A Secret deleted while an Authority runs is created again by its next Rotate as step 1 of a
// rotation: the root it holds goes on signing and a new root joins the bundle, signing after
// RootPropagation, so that no peer meets a certificate of a root it has not read. An Authority
// that starts without the Secret can only make a root that signs at once; that is also the way
// to stop signing with a root at once, after its key leaked: stop every replica (scale the
// operator to zero), delete the Secret, start them again. A replica still running would write
// the Secret back with the leaked root. The bundle it writes back holds the roots it trusted,
// a root that was staged in the deleted Secret among them, until they expire.
//
// # Workload certificates
//
// [Authority.Sign] signs the public key of a workload's certificate signing request for one SPIFFE
// ID of the form spiffe://<trust domain>/ns/<namespace>/sa/<service account>, the identity Istio
// uses, so that source principals read the same on both backends: the workload (its pod agent)
// generates its key and sends only the CSR, so no workload key is ever made or held by the
// operator. The CSR's signature must check out and its one subject alternative name must be that
// ID ([CheckCSR]); anything else (another trust domain, another path, query, port,
// percent-encoding, a DNS name beside it) is refused: the certificate is what the data plane's
// RBAC trusts, and the caller derives the ID from an authenticated ServiceAccount token (package
// xds/auth; the xDS server's IstioCertificateService). Certificates are backdated five minutes for
// clock skew, live the configured CertTTL, never outlive the root, and are renewed by their holder
// at half their lifetime. [Authority.Issue] generates the key itself: for a process that is the
// workload (tests, tools), never for one to be sent away.
//
// # Serving certificates
//
// [Authority.IssueServing] signs a server-authentication-only certificate for DNS names and IP
// addresses: the xDS server's own, so that proxies verify the server with the same trust bundle
// their workload certificates come with. It carries no SPIFFE ID.
//
// The certificate chain holds the leaf only: leaves are signed by the root directly, and the root
// reaches peers through the trust bundle.
//
// # Client
//
// The Authority talks to the API server through a [kubernetes.Interface], not the manager's
// cached client: it reads one Secret now and then, and a Secret informer would need list and watch
// on Secrets and keep every Secret of the namespace in memory.
//
// Its RBAC marker (in authority.go) grants access to Secrets in the operator's own namespace only
// (a Role, not a ClusterRole), so the CA Secret must live there, e.g.
// smi-operator-system/smi-operator-xds-ca.
package ca

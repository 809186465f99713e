package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SingletonName is the only name an SMIOperator may have: there is one per cluster.
const SingletonName = "default"

// Backend names the mesh the operator programs from the SMI objects.
// +kubebuilder:validation:Enum=istio;xds;gamma
type Backend string

// Backends.
const (
	// BackendIstio writes Istio VirtualServices, DestinationRules, AuthorizationPolicies and
	// PeerAuthentications. Istio must be installed.
	BackendIstio Backend = "istio"
	// BackendXDS serves Envoy sidecars and proxyless gRPC clients from the operator's own xDS
	// server and certificate authority. Nothing else has to be installed.
	BackendXDS Backend = "xds"
	// BackendGamma writes Gateway API routes (HTTPRoutes, GRPCRoutes, TCPRoutes whose parent is
	// the split's apex Service) for a mesh that reads them (GAMMA: Linkerd, Istio, Cilium, Kuma,
	// Consul). The Gateway API's HTTPRoute and GRPCRoute CRDs must be installed; without
	// TCPRoute's (standard channel from v1.6), splits of TCP ports say they are not programmed.
	// TrafficTargets are enforced as spec.gamma.accessPolicy says.
	BackendGamma Backend = "gamma"
)

// GammaAccessPolicy names what enforces TrafficTargets while the backend is gamma: the Gateway
// API has no authorization standard, so access is each mesh's own policy resources.
// +kubebuilder:validation:Enum=none;istio;linkerd
type GammaAccessPolicy string

// Access policies of the gamma backend.
const (
	// GammaAccessPolicyNone enforces nothing: every TrafficTarget reports Programmed=False
	// AccessNotEnforced, never silently accepted.
	GammaAccessPolicyNone GammaAccessPolicy = "none"
	// GammaAccessPolicyIstio writes the AuthorizationPolicies and PeerAuthentications the istio
	// backend writes for TrafficTargets (and its allow-nothing baselines): for Istio reading the
	// routes. Istio's security CRDs must be installed.
	GammaAccessPolicyIstio GammaAccessPolicy = "istio"
	// GammaAccessPolicyLinkerd writes Linkerd's policy resources (Servers, MeshTLSAuthentications,
	// AuthorizationPolicies, policy.linkerd.io HTTPRoutes): for Linkerd reading the routes.
	// Linkerd's CRDs (2.15 or later) must be installed.
	GammaAccessPolicyLinkerd GammaAccessPolicy = "linkerd"
)

// AccessMode says how far SMI's deny-by-default reaches; the values are mesh.AccessMode's.
// +kubebuilder:validation:Enum=Enforcing;Permissive
type AccessMode string

// Access modes.
const (
	// AccessEnforcing is SMI's model: what no TrafficTarget allows is denied.
	AccessEnforcing AccessMode = "Enforcing"
	// AccessPermissive restricts only what TrafficTargets name (Istio) or nothing, reporting
	// what enforcing would deny (xDS); for adopting SMI one service at a time.
	AccessPermissive AccessMode = "Permissive"
)

// SMIOperator selects and configures the mesh backend that the operator programs from SMI objects,
// and reports which backend is active and how the SMI objects fared. It is a cluster singleton
// named "default"; the operator acts on no other.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=smiop
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Backend",type=string,JSONPath=`.spec.backend`,description="The backend asked for"
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.activeBackend`,description="The backend programmed now"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Programmed",type=integer,JSONPath=`.status.smiObjects.programmed`,priority=1,description="SMI objects programmed"
// +kubebuilder:printcolumn:name="Problems",type=integer,JSONPath=`.status.smiObjects.withProblems`,priority=1,description="SMI objects with a False condition"
// +kubebuilder:printcolumn:name="Rejected",type=integer,JSONPath=`.status.smiObjects.rejectedByProxies`,priority=1,description="SMI objects whose configuration xDS proxies refused"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'default'",message="SMIOperator is a cluster singleton: its name must be 'default'"
type SMIOperator struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec selects the backend and holds its settings. Every field has a default, so an empty spec
	// (or none) runs the Istio backend with the operator's flag defaults.
	// +kubebuilder:default={}
	// +optional
	Spec SMIOperatorSpec `json:"spec,omitempty"`

	// Status reports the active backend and the SMI objects' state.
	// +optional
	Status SMIOperatorStatus `json:"status,omitempty"`
}

// SMIOperatorSpec is the operator's configuration. The defaults equal main.go's flag defaults.
type SMIOperatorSpec struct {
	// Backend is the mesh the SMI objects are programmed into: istio (Istio's own objects), xds
	// (the operator's built-in xDS server) or gamma (Gateway API routes, for meshes that read
	// them; TrafficTargets enforced as gamma.accessPolicy says). Changing it swaps backends on the
	// running operator; see xds.swapGracePeriod.
	// +kubebuilder:default=istio
	// +optional
	Backend Backend `json:"backend,omitempty"`

	// TrustDomain of the workloads' SPIFFE identities, spiffe://<trustDomain>/ns/<ns>/sa/<sa>: the
	// source principals of Istio AuthorizationPolicies, and the identities in the certificates the
	// xDS backend issues. Lower-case letters, digits, '.', '-' and '_' (SPIFFE ID syntax).
	// +kubebuilder:default="cluster.local"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9._-]+$')",message="trustDomain must be a SPIFFE trust domain: lower-case letters, digits, '.', '-' and '_' only, without a scheme such as spiffe://"
	// +optional
	TrustDomain string `json:"trustDomain,omitempty"`

	// ClusterDomain is the DNS domain of the cluster's Services (<svc>.<ns>.svc.<clusterDomain>).
	// +kubebuilder:default="cluster.local"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="clusterDomain must be a DNS subdomain (lower-case letters, digits, '-' and '.'), such as cluster.local"
	// +optional
	ClusterDomain string `json:"clusterDomain,omitempty"`

	// AccessMode says what happens to traffic that no TrafficTarget mentions. Enforcing is SMI's
	// deny-by-default; Permissive restricts only what TrafficTargets name (Istio) or nothing while
	// reporting what would be denied (xDS), for adopting SMI one service at a time.
	// +kubebuilder:default=Enforcing
	// +optional
	AccessMode AccessMode `json:"accessMode,omitempty"`

	// AccessNamespaceSelector selects the namespaces SMI access applies to: in Enforcing mode,
	// every workload there accepts only what TrafficTargets allow, whether or not a TrafficTarget
	// lives in its namespace (the Istio backend keeps an allow-nothing AuthorizationPolicy named
	// smi-default-deny in each; the xDS backend denies in its sidecars and gRPC servers).
	// Elsewhere a TrafficTarget still restricts its destination as in Permissive mode. Unset, every
	// namespace but kube-system, kube-public, kube-node-lease and istio-system (Istio's root
	// namespace, where a policy would apply to the whole mesh: the Istio backend never writes the
	// baseline there); {} selects every namespace.
	// +optional
	AccessNamespaceSelector *metav1.LabelSelector `json:"accessNamespaceSelector,omitempty"`

	// MTLS asks for mutual TLS to TrafficSplit backends: the Istio backend writes an ISTIO_MUTUAL
	// DestinationRule per backend; the xDS backend puts TLS on proxyless clusters and listeners
	// (which it does in Enforcing mode anyway, since RBAC principals are only proven by client
	// certificates). A top-level field rather than an Istio one because both backends read it.
	// +kubebuilder:default=false
	// +optional
	MTLS bool `json:"mtls,omitempty"`

	// XDS configures the operator's own xDS server. Read only while the backend is xds (or while
	// it drains after a swap away from xds); keeping it set with backend istio is allowed, so
	// swapping back and forth is a one-field change.
	// +kubebuilder:default={}
	// +optional
	XDS XDSSpec `json:"xds,omitempty"`

	// Gamma configures the gamma backend. Read only while the backend is gamma; keeping it set
	// with another backend is allowed, as xds is.
	// +kubebuilder:default={}
	// +optional
	Gamma GammaSpec `json:"gamma,omitempty"`
}

// GammaSpec configures the gamma (Gateway API) backend.
type GammaSpec struct {
	// AccessPolicy says what enforces TrafficTargets, which the Gateway API cannot express: none
	// (each TrafficTarget reports Programmed=False AccessNotEnforced), istio (the
	// AuthorizationPolicies and PeerAuthentications the istio backend writes, with the same
	// deny-by-default baselines; Istio's security CRDs must be installed, else the SMIOperator
	// reports BackendUnavailable) or linkerd (Linkerd's Servers, MeshTLSAuthentications,
	// AuthorizationPolicies and policy HTTPRoutes; Linkerd's CRDs must be installed, else
	// BackendUnavailable; deny-by-default beyond the ports TrafficTargets name is Linkerd's
	// default inbound policy, which the operator does not set).
	// +kubebuilder:default=none
	// +optional
	AccessPolicy GammaAccessPolicy `json:"accessPolicy,omitempty"`
}

// XDSSpec configures the xDS (ADS) server that Envoy sidecars and proxyless gRPC clients connect to.
// +kubebuilder:validation:XValidation:rule="!(has(self.insecurePlaintext) && self.insecurePlaintext && has(self.tls))",message="tls and insecurePlaintext exclude each other: a serving certificate is only used over TLS"
type XDSSpec struct {
	// Port the xDS server listens on, on every address of the operator's pod. The ports of the
	// operator's health probes (8081), metrics (8443) and webhook server (9443) are taken.
	// +kubebuilder:default=15010
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:validation:XValidation:rule="!(self in [8081, 8443, 9443])",message="port 8081, 8443 and 9443 are the operator's health probe, metrics and webhook ports; pick another xDS port"
	// +optional
	Port int32 `json:"port,omitempty"`

	// TLS serves xDS with the certificate in a Secret. Without it (and without insecurePlaintext)
	// xDS is served over TLS with a certificate the built-in CA issues for the operator's xds
	// Service (smi-operator-xds.<namespace>.svc and its other names), renewed daily: proxies
	// verify it with the CA's trust bundle.
	// +optional
	TLS *XDSTLS `json:"tls,omitempty"`

	// InsecurePlaintext serves xDS without TLS: anyone on the path can read and change the
	// configuration proxies receive. Only for proxyless gRPC clients that need no secrets (their
	// certificates come from files): on a plain-text connection ServiceAccount tokens are refused
	// and no certificate or key is ever sent.
	// +kubebuilder:default=false
	// +optional
	InsecurePlaintext bool `json:"insecurePlaintext,omitempty"`

	// TokenAudiences are the audiences the ServiceAccount tokens proxies present must be bound to
	// (projected tokens), so that a proxy never hands the operator its Kubernetes API token.
	// +kubebuilder:default={"smi-operator-xds"}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=set
	// +optional
	TokenAudiences []string `json:"tokenAudiences,omitempty"`

	// CertificateTTL is the lifetime of the workload certificates the built-in CA issues over SDS;
	// they are renewed at half-life. From 1m (shorter would renew faster than proxies can pick the
	// certificates up) to 8760h (the CA root's lifetime, which no certificate may outlive).
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1m') && duration(self) <= duration('8760h')",message="certificateTTL must be a duration from 1m to 8760h, such as 1h or 90m"
	// +optional
	CertificateTTL *metav1.Duration `json:"certificateTTL,omitempty"`

	// SwapGracePeriod is how long the xDS server keeps serving after the backend is switched from
	// xds to istio, so that proxies still connected to it keep their configuration until Istio's
	// sidecars take over. 0s stops it at once; at most 24h.
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+)$') && duration(self) <= duration('24h')",message="swapGracePeriod must be a duration from 0s to 24h, such as 5m"
	// +optional
	SwapGracePeriod *metav1.Duration `json:"swapGracePeriod,omitempty"`

	// Injection configures the sidecars the operator injects into the pods of namespaces labelled
	// smi-operator.io/inject=enabled (and pods annotated smi-operator.io/inject: "true"): the
	// images, the proxy's resources, and the ports and CIDRs no injected pod's traffic capture
	// takes, besides each pod's own annotations. Applied when a pod is created.
	// +kubebuilder:default={}
	// +optional
	Injection InjectionSpec `json:"injection,omitempty"`
}

// InjectionSpec configures injected sidecars.
type InjectionSpec struct {
	// EnvoyImage runs the Envoy sidecar (template envoy).
	// +kubebuilder:default="docker.io/envoyproxy/envoy:v1.36.2"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +optional
	EnvoyImage string `json:"envoyImage,omitempty"`

	// AgentImage runs the traffic capture init container and the pod agent: an image of this
	// operator (they are its iptables and agent commands). Empty: the image the operator runs
	// from.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	AgentImage string `json:"agentImage,omitempty"`

	// ProxyResources are the Envoy sidecar's resource requests and limits.
	// +kubebuilder:default={}
	// +optional
	ProxyResources ProxyResources `json:"proxyResources,omitempty"`

	// ExcludeInboundPorts are never captured inbound in any injected pod (besides 15020, 15021
	// and 15090, the proxy's own, and the pod's smi-operator.io/exclude-inbound-ports).
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	// +listType=set
	// +optional
	ExcludeInboundPorts []int32 `json:"excludeInboundPorts,omitempty"`

	// ExcludeOutboundPorts are destination ports never captured outbound in any injected pod
	// (besides the pod's smi-operator.io/exclude-outbound-ports).
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	// +listType=set
	// +optional
	ExcludeOutboundPorts []int32 `json:"excludeOutboundPorts,omitempty"`

	// ExcludeOutboundCIDRs are destinations never captured outbound in any injected pod (besides
	// the pod's smi-operator.io/exclude-outbound-cidrs), such as the cloud's metadata server.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:XValidation:rule="isCIDR(self)",message="must be a CIDR such as 10.0.0.0/8 or fd00::/8"
	// +listType=set
	// +optional
	ExcludeOutboundCIDRs []string `json:"excludeOutboundCIDRs,omitempty"`
}

// ProxyResources are a sidecar's resource requests and limits.
type ProxyResources struct {
	// +kubebuilder:default="100m"
	// +optional
	CPURequest *resource.Quantity `json:"cpuRequest,omitempty"`
	// +kubebuilder:default="128Mi"
	// +optional
	MemoryRequest *resource.Quantity `json:"memoryRequest,omitempty"`
	// CPULimit is unset by default: a throttled proxy slows every request of its pod.
	// +optional
	CPULimit *resource.Quantity `json:"cpuLimit,omitempty"`
	// +kubebuilder:default="1Gi"
	// +optional
	MemoryLimit *resource.Quantity `json:"memoryLimit,omitempty"`
}

// XDSTLS names the serving certificate of the xDS server.
type XDSTLS struct {
	// SecretName is a Secret of type kubernetes.io/tls (tls.crt, tls.key) in the operator's
	// namespace, read through the API, so a renewed certificate is picked up without a restart.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="secretName must be the name of a Secret (a DNS subdomain)"
	// +required
	SecretName string `json:"secretName"`
}

// SMIOperatorStatus is what the operator observed and did.
type SMIOperatorStatus struct {
	// ObservedGeneration is the metadata.generation the status was computed from.
	// +kubebuilder:validation:Minimum=0
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready (the backend asked for is active and programming), Progressing (a swap or
	// a new generation is being applied), Degraded (some SMI objects could not be programmed in
	// full). Each carries the generation it was computed from.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ActiveBackend is the backend the SMI objects are programmed into now. It differs from
	// spec.backend while a swap is under way.
	// +optional
	ActiveBackend Backend `json:"activeBackend,omitempty"`

	// Draining is the backend swapped out that still serves until its grace period ends (the xDS
	// server after a swap to istio). Kept in the status so that the deadline survives a restart
	// of the operator.
	// +optional
	Draining *DrainingBackend `json:"draining,omitempty"`

	// SMIObjects counts the SMI objects by their conditions.
	// +optional
	SMIObjects *ObjectCounts `json:"smiObjects,omitempty"`
}

// DrainingBackend is a backend that keeps serving for a while after a swap.
type DrainingBackend struct {
	// Backend that is draining.
	// +required
	Backend Backend `json:"backend"`
	// Until is when it stops serving.
	// +required
	Until metav1.Time `json:"until"`
}

// ObjectCounts counts SMI objects (TrafficSplits and TrafficTargets) by state.
type ObjectCounts struct {
	// Programmed is the number of SMI objects whose Programmed condition is True.
	// +kubebuilder:validation:Minimum=0
	Programmed int32 `json:"programmed"`
	// WithProblems is the number of SMI objects with a False Accepted, ResolvedRefs or Programmed
	// condition; an object can be programmed and have problems (a backend dropped, say).
	// +kubebuilder:validation:Minimum=0
	WithProblems int32 `json:"withProblems"`
	// RejectedByProxies is the number of SMI objects, among those with problems, whose
	// configuration xDS proxies refused (Programmed=False, reason RejectedByProxies): those proxies
	// keep their last good configuration.
	// +kubebuilder:validation:Minimum=0
	// +optional
	RejectedByProxies int32 `json:"rejectedByProxies"` // optional for operators older than it; written at 0 too, for the printer column

}

// SMIOperatorList is a list of SMIOperators.
//
// +kubebuilder:object:root=true
type SMIOperatorList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SMIOperator `json:"items"`
}

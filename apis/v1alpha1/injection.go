package v1alpha1

// The label and annotations that put a pod on the built-in mesh (backend xds): the injection
// webhook reads them when a pod is created.
const (
	// InjectLabel on a Namespace, set to InjectEnabled, injects its pods. On a pod, as an
	// annotation, "true" or "false" decides for that pod and wins over its namespace's label.
	InjectLabel   = "smi-operator.io/inject"
	InjectEnabled = "enabled"
	// InjectDisabled on a Namespace keeps its pods out, whatever their annotation says; the
	// webhook is not even called for them.
	InjectDisabled = "disabled"
	// ProxyAnnotation picks the template: ProxyEnvoy (the default: an Envoy sidecar, with the
	// pod's traffic captured) or ProxyGRPC (proxyless gRPC: the pod agent writes the bootstrap
	// and certificates the app's gRPC library reads; nothing is captured).
	ProxyAnnotation = "smi-operator.io/proxy"
	ProxyEnvoy      = "envoy"
	ProxyGRPC       = "grpc"
	// The traffic capture of one pod (template envoy), added to the SMIOperator's
	// spec.xds.injection: comma-separated ports, "*" for every port (include only), and
	// comma-separated CIDRs.
	IncludeInboundPortsAnnotation  = "smi-operator.io/include-inbound-ports"
	ExcludeInboundPortsAnnotation  = "smi-operator.io/exclude-inbound-ports"
	ExcludeOutboundPortsAnnotation = "smi-operator.io/exclude-outbound-ports"
	ExcludeOutboundCIDRsAnnotation = "smi-operator.io/exclude-outbound-cidrs"
	// InjectedAnnotation is set on an injected pod to the template it got: a pod that has it is
	// never injected again.
	InjectedAnnotation = "smi-operator.io/injected"
)

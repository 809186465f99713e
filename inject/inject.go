// Package inject puts pods on the built-in mesh (backend xds) when they are created, as Istio's
// sidecar injector does: Decide reads a pod's namespace label and annotations (v1alpha1.InjectLabel
// and the others), Pod adds what the chosen template needs, and Webhook is the mutating admission
// webhook that does both with the SMIOperator's settings.
//
// Template envoy: an init container running `smi-operator iptables` (the traffic capture of package
// internal/capture: it needs NET_ADMIN and NET_RAW, nothing else), then two native sidecars (init
// containers with restartPolicy Always: they start before the app, in order, and stop after it):
// the pod agent (`smi-operator agent`), which holds the workload's key and certificate and is
// Envoy's only control-plane connection, and Envoy itself, as UID/GID 1337, from the bootstrap
// the agent writes. Each sidecar's startup probe holds the next container back until it is ready,
// so the app starts with its traffic already going through a ready proxy.
//
// Template grpc (proxyless gRPC): the pod agent alone, writing the workload's certificate files
// and the gRPC bootstrap, and GRPC_XDS_BOOTSTRAP in every app container; nothing is captured.
//
// The layout (paths, ports) is package xds/bootstrap's, which the agent and the proxies read too.
package inject

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/internal/capture"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/xds/bootstrap"
)

// Config is what an injected pod is given besides its own annotations.
type Config struct {
	// Injection is the SMIOperator's spec.xds.injection, defaults filled in.
	Injection v1alpha1.InjectionSpec
	// AgentImage runs the capture and the agent: Injection.AgentImage when set, else the
	// operator's own image.
	AgentImage string
	// XDSAddress is the operator's xDS Service, "host:port", which the agent connects to.
	XDSAddress string
	// TokenAudience is the audience of the ServiceAccount token projected for the agent (and the
	// app's gRPC library), one the xDS server accepts.
	TokenAudience string
	// TrustDomain is the SMIOperator's spec.trustDomain: the agent asks the CA for
	// spiffe://<TrustDomain>/ns/<ns>/sa/<sa>, and the CA refuses any other domain than its own.
	TrustDomain string
}

// Names of what Pod adds.
const (
	InitContainerName  = "smi-init"
	AgentContainerName = "smi-agent"
	ProxyContainerName = "smi-proxy"
	WorkloadVolume     = "smi-workload"
	TokenVolume        = "smi-xds-token"
	TrustVolume        = "smi-trust"
)

// tokenLifetime is how long the projected xDS token lives; kubelet renews it at 80%.
const tokenLifetime = 3600

// Decision is what Decide found for a pod: whether to inject, which template, and its capture
// settings read from its annotations.
type Decision struct {
	// Template is v1alpha1.ProxyEnvoy or v1alpha1.ProxyGRPC; empty: the pod is left alone.
	Template string
	// Why the pod is left alone, for the webhook's log.
	Why     string
	Capture capture.Config
}

// Decide says whether a pod, about to be created in a namespace labelled nsLabels, is injected and
// how. The pod's annotation wins over its namespace's label, except InjectDisabled. Host-network pods, kube-system, the
// operator's own namespace and pods already injected are always left alone. A malformed
// annotation is an error naming it: a typo must not silently leave a workload outside the mesh.
func Decide(pod *corev1.Pod, namespace string, nsLabels map[string]string, operatorNamespace string, settings v1alpha1.InjectionSpec) (Decision, error) {
	annotations := pod.Annotations
	want := nsLabels[v1alpha1.InjectLabel] == v1alpha1.InjectEnabled
	if v, ok := annotations[v1alpha1.InjectLabel]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil || (v != "true" && v != "false") {
			return Decision{}, fmt.Errorf("annotation %s: %q is neither \"true\" nor \"false\"", v1alpha1.InjectLabel, v)
		}
		want = b
	}
	switch {
	case nsLabels[v1alpha1.InjectLabel] == v1alpha1.InjectDisabled:
		return Decision{Why: "namespace labelled " + v1alpha1.InjectLabel + "=" + v1alpha1.InjectDisabled}, nil
	case !want:
		return Decision{Why: "not asked for"}, nil
	case annotations[v1alpha1.InjectedAnnotation] != "":
		return Decision{Why: "already injected"}, nil
	case pod.Spec.HostNetwork:
		return Decision{Why: "host network: its traffic is the node's"}, nil
	case namespace == "kube-system" || namespace == operatorNamespace:
		return Decision{Why: "namespace " + namespace + " is never injected"}, nil
	}
	template := cmp.Or(annotations[v1alpha1.ProxyAnnotation], v1alpha1.ProxyEnvoy)
	if template != v1alpha1.ProxyEnvoy && template != v1alpha1.ProxyGRPC {
		return Decision{}, fmt.Errorf("annotation %s: %q is neither %q nor %q", v1alpha1.ProxyAnnotation, template, v1alpha1.ProxyEnvoy, v1alpha1.ProxyGRPC)
	}
	c, err := captureOf(annotations, settings)
	if err != nil {
		return Decision{}, err
	}
	if template == v1alpha1.ProxyGRPC {
		for _, a := range captureAnnotations {
			if _, ok := annotations[a]; ok {
				return Decision{}, fmt.Errorf("annotation %s: a proxyless gRPC pod (%s: %s) has no traffic capture to configure", a, v1alpha1.ProxyAnnotation, v1alpha1.ProxyGRPC)
			}
		}
	}
	return Decision{Template: template, Capture: c}, nil
}

var captureAnnotations = []string{
	v1alpha1.IncludeInboundPortsAnnotation, v1alpha1.ExcludeInboundPortsAnnotation,
	v1alpha1.ExcludeOutboundPortsAnnotation, v1alpha1.ExcludeOutboundCIDRsAnnotation,
}

// captureOf is the pod's traffic capture: the annotations' on top of the SMIOperator's.
func captureOf(annotations map[string]string, settings v1alpha1.InjectionSpec) (capture.Config, error) {
	c := capture.Config{
		ProxyUID: capture.DefaultProxyUID, ProxyGID: capture.DefaultProxyGID,
		OutboundPort: capture.DefaultOutboundPort, InboundPort: capture.DefaultInboundPort,
	}
	var err error
	if v, ok := annotations[v1alpha1.IncludeInboundPortsAnnotation]; ok {
		if c.IncludeInboundPorts, err = capture.ParsePorts(v, "annotation "+v1alpha1.IncludeInboundPortsAnnotation, true); err != nil {
			return c, err
		}
	}
	if c.ExcludeInboundPorts, err = capture.ParsePorts(annotations[v1alpha1.ExcludeInboundPortsAnnotation], "annotation "+v1alpha1.ExcludeInboundPortsAnnotation, false); err != nil {
		return c, err
	}
	if c.ExcludeOutboundPorts, err = capture.ParsePorts(annotations[v1alpha1.ExcludeOutboundPortsAnnotation], "annotation "+v1alpha1.ExcludeOutboundPortsAnnotation, false); err != nil {
		return c, err
	}
	if c.ExcludeOutboundCIDRs, err = capture.ParseCIDRs(annotations[v1alpha1.ExcludeOutboundCIDRsAnnotation], "annotation "+v1alpha1.ExcludeOutboundCIDRsAnnotation); err != nil {
		return c, err
	}
	for _, p := range settings.ExcludeInboundPorts {
		c.ExcludeInboundPorts = append(c.ExcludeInboundPorts, uint16(p))
	}
	for _, p := range settings.ExcludeOutboundPorts {
		c.ExcludeOutboundPorts = append(c.ExcludeOutboundPorts, uint16(p))
	}
	for _, s := range settings.ExcludeOutboundCIDRs {
		p, err := netip.ParsePrefix(s)
		if err != nil { // the CRD's CEL rule refuses it; kept out rather than failing every pod
			continue
		}
		c.ExcludeOutboundCIDRs = append(c.ExcludeOutboundCIDRs, p)
	}
	return c, nil
}

// Pod adds the containers, volumes and annotations of the decision's template to pod.
func Pod(pod *corev1.Pod, d Decision, cfg Config) {
	// The projected token needs the ServiceAccount named, which the API server's ServiceAccount
	// admission does for pods that name none, though not always before webhooks are called.
	pod.Spec.ServiceAccountName = mesh.ServiceAccountOf(pod.Spec)
	agent := agentContainer(d.Template, cfg)
	var sidecars []corev1.Container
	if d.Template == v1alpha1.ProxyEnvoy {
		sidecars = []corev1.Container{initContainer(d.Capture, cfg), agent, proxyContainer(cfg)}
	} else {
		sidecars = []corev1.Container{agent}
		// The app reads the key the agent writes (mode 0640): both are in the pod's fsGroup,
		// which the volume's files get. A pod that sets its own keeps it.
		if pod.Spec.SecurityContext == nil {
			pod.Spec.SecurityContext = &corev1.PodSecurityContext{}
		}
		if pod.Spec.SecurityContext.FSGroup == nil {
			pod.Spec.SecurityContext.FSGroup = ptr.To[int64](capture.DefaultProxyGID)
		}
		for i := range pod.Spec.Containers {
			c := &pod.Spec.Containers[i]
			c.Env = append(c.Env,
				corev1.EnvVar{Name: "GRPC_XDS_BOOTSTRAP", Value: bootstrap.GRPCBootstrapFile},
				// grpc-go reads the bootstrap's call_creds (the xDS token) only with this set.
				corev1.EnvVar{Name: "GRPC_EXPERIMENTAL_XDS_BOOTSTRAP_CALL_CREDS", Value: "true"},
			)
			c.VolumeMounts = append(c.VolumeMounts,
				corev1.VolumeMount{Name: WorkloadVolume, MountPath: bootstrap.WorkloadDir, ReadOnly: true},
				corev1.VolumeMount{Name: TokenVolume, MountPath: bootstrap.TokenDir, ReadOnly: true},
			)
		}
	}
	// Ours first: the capture must be in place, and the proxy ready, before any of the pod's own
	// init containers opens a connection.
	pod.Spec.InitContainers = append(sidecars, pod.Spec.InitContainers...)
	pod.Spec.Volumes = append(pod.Spec.Volumes,
		corev1.Volume{Name: WorkloadVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: ptr.To(resource.MustParse("16Mi")),
		}}},
		corev1.Volume{Name: TokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: cfg.TokenAudience, ExpirationSeconds: ptr.To[int64](tokenLifetime), Path: strings.TrimPrefix(bootstrap.TokenFile, bootstrap.TokenDir+"/"),
			}}},
		}}},
		corev1.Volume{Name: TrustVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: bootstrap.TrustBundleConfigMap},
		}}},
	)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[v1alpha1.InjectedAnnotation] = d.Template
	if _, ok := pod.Annotations["kubectl.kubernetes.io/default-container"]; !ok && len(pod.Spec.Containers) > 0 {
		// kubectl logs and exec pick the app, not a sidecar.
		pod.Annotations["kubectl.kubernetes.io/default-container"] = pod.Spec.Containers[0].Name
	}
}

// initContainer installs the capture (`smi-operator iptables`) with exactly the flags the decision
// says, so that the pod spec shows what was captured.
func initContainer(c capture.Config, cfg Config) corev1.Container {
	args := []string{"iptables",
		"--proxy-uid=" + strconv.Itoa(int(c.ProxyUID)), "--proxy-gid=" + strconv.Itoa(int(c.ProxyGID)),
		"--outbound-port=" + strconv.Itoa(int(c.OutboundPort)), "--inbound-port=" + strconv.Itoa(int(c.InboundPort)),
		"--include-inbound-ports=" + portList(c.IncludeInboundPorts),
		"--exclude-inbound-ports=" + portList(c.ExcludeInboundPorts),
		"--exclude-outbound-ports=" + portList(c.ExcludeOutboundPorts),
		"--exclude-outbound-cidrs=" + cidrList(c.ExcludeOutboundCIDRs),
	}
	return corev1.Container{
		Name:  InitContainerName,
		Image: cfg.AgentImage,
		Args:  args,
		SecurityContext: &corev1.SecurityContext{
			// Root in the pod's network namespace only: NET_ADMIN and NET_RAW, nothing else.
			RunAsUser: ptr.To[int64](0), RunAsNonRoot: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}, Drop: []corev1.Capability{"ALL"}},
			AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
		},
		Resources: smallResources(),
	}
}

// agentContainer is the pod agent, a native sidecar whose startup probe passes once it holds the
// workload certificate (and has written the proxy's bootstrap).
func agentContainer(template string, cfg Config) corev1.Container {
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	return corev1.Container{
		Name:          AgentContainerName,
		Image:         cfg.AgentImage,
		Args:          []string{"agent", "--proxy=" + template, "--xds-address=" + cfg.XDSAddress, "--trust-domain=" + cfg.TrustDomain},
		RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		Env: []corev1.EnvVar{
			field("POD_NAME", "metadata.name"), field("POD_NAMESPACE", "metadata.namespace"),
			field("SERVICE_ACCOUNT", "spec.serviceAccountName"), field("INSTANCE_IP", "status.podIP"),
		},
		Ports: []corev1.ContainerPort{{Name: "smi-agent", ContainerPort: bootstrap.AgentPort}},
		VolumeMounts: []corev1.VolumeMount{
			{Name: WorkloadVolume, MountPath: bootstrap.WorkloadDir},
			{Name: TokenVolume, MountPath: bootstrap.TokenDir, ReadOnly: true},
			{Name: TrustVolume, MountPath: bootstrap.TrustDir, ReadOnly: true},
		},
		StartupProbe:    readyProbe(bootstrap.AgentPort),
		SecurityContext: proxySecurityContext(),
		Resources:       smallResources(),
	}
}

// proxyContainer is Envoy, a native sidecar ready once Envoy says so.
func proxyContainer(cfg Config) corev1.Container {
	r := cfg.Injection.ProxyResources
	resources := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for _, q := range []struct {
		list corev1.ResourceList
		name corev1.ResourceName
		q    *resource.Quantity
	}{
		{resources.Requests, corev1.ResourceCPU, r.CPURequest}, {resources.Requests, corev1.ResourceMemory, r.MemoryRequest},
		{resources.Limits, corev1.ResourceCPU, r.CPULimit}, {resources.Limits, corev1.ResourceMemory, r.MemoryLimit},
	} {
		if q.q != nil {
			q.list[q.name] = *q.q
		}
	}
	return corev1.Container{
		Name:          ProxyContainerName,
		Image:         cfg.Injection.EnvoyImage,
		Args:          []string{"-c", bootstrap.EnvoyBootstrapFile, "--log-level", "warning"},
		RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		Ports:         []corev1.ContainerPort{{Name: "http-envoy-prom", ContainerPort: bootstrap.EnvoyStatsPort}},
		VolumeMounts:  []corev1.VolumeMount{{Name: WorkloadVolume, MountPath: bootstrap.WorkloadDir}},
		StartupProbe:  readyProbe(bootstrap.EnvoyReadinessPort),
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(bootstrap.EnvoyReadinessPort)}},
			PeriodSeconds: 5, FailureThreshold: 3,
		},
		SecurityContext: proxySecurityContext(),
		Resources:       resources,
	}
}

// readyProbe polls /healthz/ready every second for up to ten minutes: a sidecar's startup probe,
// which holds the next container back.
func readyProbe(port int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(port)}},
		PeriodSeconds: 1, FailureThreshold: 600,
	}
}

// proxySecurityContext runs a sidecar as the UID/GID the capture exempts, with nothing else.
func proxySecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsUser: ptr.To[int64](capture.DefaultProxyUID), RunAsGroup: ptr.To[int64](capture.DefaultProxyGID), RunAsNonRoot: ptr.To(true),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}, AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem: ptr.To(true),
	}
}

func smallResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
	}
}

// portList writes ports as the iptables command reads them; nil (every port) is "*".
func portList(ports []uint16) string {
	if ports == nil {
		return "*"
	}
	sorted := slices.Clone(ports)
	slices.Sort(sorted)
	var out []string
	for _, p := range slices.Compact(sorted) {
		out = append(out, strconv.Itoa(int(p)))
	}
	return strings.Join(out, ",")
}

func cidrList(cidrs []netip.Prefix) string {
	out := make([]string, len(cidrs))
	for i, c := range cidrs {
		out[i] = c.String()
	}
	return strings.Join(out, ",")
}

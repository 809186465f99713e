package inject

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
)

// WebhookPath is where the webhook is served (config/webhook/injection.yaml refers to it).
const WebhookPath = "/inject-pod"

// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=smi-operator.io,resources=smioperators,verbs=get;list;watch

// Webhook injects pods as they are created (Decide, Pod). It injects only while the backend is xds:
// with Istio the pod would get a proxy nobody serves (Istio's own injection is the way there),
// so it is admitted unchanged with a warning saying why.
type Webhook struct {
	// Reader reads Namespaces (their label) and is handed to Spec.
	Reader client.Reader
	// Spec is the SMIOperator's spec, defaults filled in, whose backend and spec.xds say whether
	// and how pods are injected.
	Spec func(ctx context.Context) (v1alpha1.SMIOperatorSpec, error)
	// OperatorNamespace is never injected; the xDS Service (XDSService) is there.
	OperatorNamespace string
	XDSService        string
	// OperatorImage is the image the operator runs from: the agent's when spec.xds.injection
	// does not name one.
	OperatorImage func(ctx context.Context) (string, error)
	Log           logr.Logger
}

var _ admission.Handler = (*Webhook)(nil)

// Handle implements admission.Handler.
func (w *Webhook) Handle(ctx context.Context, req admission.Request) admission.Response {
	pod := &corev1.Pod{}
	if err := json.Unmarshal(req.Object.Raw, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	ns := &corev1.Namespace{}
	if err := w.Reader.Get(ctx, client.ObjectKey{Name: req.Namespace}, ns); err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("reading namespace %s: %w", req.Namespace, err))
	}
	spec, err := w.Spec(ctx)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	d, err := Decide(pod, req.Namespace, ns.Labels, w.OperatorNamespace, spec.XDS.Injection)
	if err != nil {
		return admission.Denied(err.Error())
	}
	if d.Template == "" {
		return admission.Allowed(d.Why)
	}
	if spec.Backend != v1alpha1.BackendXDS {
		return admission.Allowed("").WithWarnings(fmt.Sprintf("smi-operator: the pod is not injected: the SMIOperator selects backend %s, and pods get smi-operator's sidecars only with backend %s", spec.Backend, v1alpha1.BackendXDS))
	}
	cfg := Config{
		Injection:     spec.XDS.Injection,
		AgentImage:    spec.XDS.Injection.AgentImage,
		XDSAddress:    net.JoinHostPort(w.XDSService+"."+w.OperatorNamespace+".svc", strconv.Itoa(int(spec.XDS.Port))),
		TokenAudience: spec.XDS.TokenAudiences[0],
		TrustDomain:   spec.TrustDomain,
	}
	if cfg.AgentImage == "" {
		if cfg.AgentImage, err = w.OperatorImage(ctx); err != nil {
			// Refused rather than admitted outside the mesh, which the pod asked to be on.
			return admission.Denied("smi-operator cannot inject the pod: " + err.Error() + "; set spec.xds.injection.agentImage in the SMIOperator")
		}
	}
	Pod(pod, d, cfg)
	injected, err := json.Marshal(pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	w.Log.V(1).Info("injecting", "namespace", req.Namespace, "pod", pod.Name, "generateName", pod.GenerateName, "template", d.Template)
	return admission.PatchResponseFromRaw(req.Object.Raw, injected)
}

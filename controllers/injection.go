package controllers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/inject"
)

// InjectionOptions configure the pod injection webhook.
type InjectionOptions struct {
	// Namespace is the operator's: never injected, and where the xDS Service is.
	Namespace  string
	XDSService string
	// Fixed is the spec of an operator whose backend --backend fixes (its xDS port and token
	// audiences from its flags); nil: the SMIOperator's.
	Fixed *v1alpha1.SMIOperatorSpec
	// OperatorImage is the image the agent runs from when the spec names none; empty: the image of
	// the operator's own pod (POD_NAMESPACE, POD_NAME), read once.
	OperatorImage string
}

// SetupInjection registers the pod injection webhook (inject.WebhookPath).
func SetupInjection(mgr ctrl.Manager, opts InjectionOptions) {
	w := &inject.Webhook{
		Reader:            mgr.GetClient(),
		OperatorNamespace: opts.Namespace,
		XDSService:        opts.XDSService,
		Log:               ctrl.Log.WithName("inject"),
		Spec: func(ctx context.Context) (v1alpha1.SMIOperatorSpec, error) {
			if opts.Fixed != nil {
				return opts.Fixed.WithDefaults(), nil
			}
			return smiOperatorSpec(ctx, mgr.GetClient())
		},
		OperatorImage: (&ownImage{reader: mgr.GetAPIReader(), image: opts.OperatorImage}).get,
	}
	mgr.GetWebhookServer().Register(inject.WebhookPath, &webhook.Admission{Handler: w})
}

// smiOperatorSpec is the SMIOperator's spec with its defaults; without one, the defaults (the
// istio backend: nothing is injected).
func smiOperatorSpec(ctx context.Context, c client.Reader) (v1alpha1.SMIOperatorSpec, error) {
	op := &v1alpha1.SMIOperator{}
	err := c.Get(ctx, client.ObjectKey{Name: v1alpha1.SingletonName}, op)
	if apierrors.IsNotFound(err) {
		return v1alpha1.SMIOperatorSpec{}.WithDefaults(), nil
	}
	return op.Spec.WithDefaults(), err
}

// ownImage is the image of the operator's container, read from its own pod.
type ownImage struct {
	reader client.Reader
	mu     sync.Mutex
	image  string
}

func (o *ownImage) get(ctx context.Context) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.image != "" {
		return o.image, nil
	}
	namespace, name := os.Getenv("POD_NAMESPACE"), os.Getenv("POD_NAME")
	if namespace == "" || name == "" {
		return "", errors.New("the operator does not run in a pod (POD_NAMESPACE and POD_NAME unset), so its image is unknown")
	}
	pod := &corev1.Pod{}
	if err := o.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, pod); err != nil {
		return "", fmt.Errorf("reading the operator's pod for its image: %w", err)
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == managerContainer {
			o.image = c.Image
			return o.image, nil
		}
	}
	return "", fmt.Errorf("the operator's pod %s/%s has no container %q", namespace, name, managerContainer)
}

// managerContainer is the operator's container in its Deployment (config/manager).
const managerContainer = "manager"

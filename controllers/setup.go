// Package controllers wires the operator's parts into a controller-runtime manager: the scheme, the
// SMI webhooks, the webhook certificate rotation, and (as backends land) the reconcilers.
package controllers

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/conversion"
	"github.com/smi-operator/smi-operator/apis/smi/validation"
)

// ConversionPath is where the SMI CRDs' conversion webhook is served (config/crd refers to it).
const ConversionPath = "/convert"

// NewScheme returns the scheme the operator's clients and caches use.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntimeMust(clientgoscheme.AddToScheme(s))
	utilruntimeMust(apiextensionsv1.AddToScheme(s))
	utilruntimeMust(smi.AddToScheme(s))
	return s
}

func utilruntimeMust(err error) {
	if err != nil {
		panic(err)
	}
}

// SetupWebhooks registers the SMI conversion and validation webhooks on the manager's webhook server.
func SetupWebhooks(mgr ctrl.Manager) {
	server := mgr.GetWebhookServer()
	server.Register(ConversionPath, conversion.NewWebhookHandler())
	server.Register(validation.WebhookPath, validation.NewWebhook())
}

package controllers

import (
	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;list;watch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=update;patch,resourceNames=smi-operator-validating-webhook-configuration
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,verbs=get;list;watch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,verbs=update;patch,resourceNames=smi-operator-mutating-webhook-configuration
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=update;patch,resourceNames=trafficsplits.split.smi-spec.io;traffictargets.access.smi-spec.io;httproutegroups.specs.smi-spec.io;tcproutes.specs.smi-spec.io

// CertRotation configures the webhook serving certificate when neither OLM nor cert-manager issues it.
type CertRotation struct {
	Secret                  types.NamespacedName // where the CA and serving certificate are kept
	DNSName                 string               // the webhook Service's DNS name
	CertDir                 string               // where the webhook server reads the certificate
	ValidatingWebhookConfig string               // configurations whose caBundle is injected
	MutatingWebhookConfig   string
	Ready                   chan struct{} // closed once the certificate is in CertDir
}

// AddCertRotator issues and rotates the webhook certificate with open-policy-agent/cert-controller
// and injects its CA into the validating and mutating webhook configurations and the SMI CRDs'
// conversion config.
func AddCertRotator(mgr ctrl.Manager, c CertRotation) error {
	webhooks := []rotator.WebhookInfo{{Name: c.ValidatingWebhookConfig, Type: rotator.Validating}, {Name: c.MutatingWebhookConfig, Type: rotator.Mutating}}
	for _, crd := range smi.ConvertedCRDNames {
		webhooks = append(webhooks, rotator.WebhookInfo{Name: crd, Type: rotator.CRDConversion})
	}
	return rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:      c.Secret,
		CertDir:        c.CertDir,
		CAName:         "smi-operator-ca",
		CAOrganization: "smi-operator",
		DNSName:        c.DNSName,
		IsReady:        c.Ready,
		Webhooks:       webhooks,
		// Webhooks must keep serving on every replica, not only the leader.
		RequireLeaderElection: false,
	})
}

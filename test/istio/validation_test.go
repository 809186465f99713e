package istio

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/schema/gvk"
	"istio.io/istio/pkg/config/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"

	"github.com/smi-operator/smi-operator/test/corpus"
	istiotranslator "github.com/smi-operator/smi-operator/translators/istio"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// TestEveryInputPassesIstioValidation runs every input of the repository (package test/corpus: the
// golden cases of both translators, translate's cases and every fuzz corpus entry), unvalidated,
// through mesh.Build and the Istio translator, and every VirtualService, DestinationRule,
// AuthorizationPolicy and PeerAuthentication through istiod's own validation, the code its
// validating webhook runs. An error fails the test: istiod would refuse the object, and what it
// programs would silently not be. So does a warning: none is expected of what the operator emits.
func TestEveryInputPassesIstioValidation(t *testing.T) {
	cases, err := corpus.All("../..")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 60 {
		t.Fatalf("only %d inputs: the corpus is not being found", len(cases))
	}
	counts := map[string]int{}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			for _, settings := range []mesh.Settings{c.Settings, withMTLS(c.Settings)} {
				model, _ := mesh.Build(c.Snapshot, settings)
				out, _ := istiotranslator.Translate(model, settings)
				for _, obj := range out.Objects() {
					cfg, validate := configOf(t, obj)
					kind := cfg.GroupVersionKind.Kind
					counts[kind]++
					warning, err := validate(cfg)
					if err != nil {
						t.Errorf("istiod refuses %s %s/%s: %v\n%s", kind, cfg.Namespace, cfg.Name, err, short(cfg.Spec))
					}
					if warning != nil {
						t.Errorf("istiod warns about %s %s/%s: %v\n%s", kind, cfg.Namespace, cfg.Name, warning, short(cfg.Spec))
					}
				}
			}
		})
	}
	t.Logf("validated objects by kind: %v", counts)
	for _, kind := range []string{"VirtualService", "DestinationRule", "AuthorizationPolicy", "PeerAuthentication"} {
		if counts[kind] == 0 {
			t.Errorf("no %s was validated: the corpus exercises none", kind)
		}
	}
}

// withMTLS turns mutual TLS on, which adds DestinationRules and PeerAuthentications.
func withMTLS(s mesh.Settings) mesh.Settings {
	s.MTLS = true
	return s
}

// configOf turns an object of the translator into the config.Config istiod validates, and picks
// the validator istiod's webhook uses for its kind.
func configOf(t *testing.T, obj client.Object) (config.Config, validation.ValidateFunc) {
	t.Helper()
	meta := config.Meta{Name: obj.GetName(), Namespace: obj.GetNamespace(), Labels: obj.GetLabels(), Annotations: obj.GetAnnotations()}
	var spec proto.Message
	var validate validation.ValidateFunc
	switch o := obj.(type) {
	case *networkingv1.VirtualService:
		meta.GroupVersionKind, spec, validate = gvk.VirtualService, &o.Spec, validation.ValidateVirtualService
	case *networkingv1.DestinationRule:
		meta.GroupVersionKind, spec, validate = gvk.DestinationRule, &o.Spec, validation.ValidateDestinationRule
	case *securityv1.AuthorizationPolicy:
		meta.GroupVersionKind, spec, validate = gvk.AuthorizationPolicy, &o.Spec, validation.ValidateAuthorizationPolicy
	case *securityv1.PeerAuthentication:
		meta.GroupVersionKind, spec, validate = gvk.PeerAuthentication, &o.Spec, validation.ValidatePeerAuthentication
	default:
		t.Fatalf("%T: no Istio validation for this kind", obj)
	}
	return config.Config{Meta: meta, Spec: spec}, validate
}

// short renders a spec for a failure message, cut short: regexes in it may be long.
func short(spec config.Spec) string {
	s := fmt.Sprint(spec)
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return strings.TrimSpace(s)
}

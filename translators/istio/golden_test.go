package istio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/internal/golden"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// TestGolden runs every testdata/<case>.yaml through mesh.Build and Translate and compares the
// result with testdata/<case>.golden.yaml: the generated objects as YAML documents, then the
// diagnostics of both steps as a comment block, so a golden file can be applied as it is.
// Case files are described in package internal/golden.
func TestGolden(t *testing.T) {
	golden.Run(t, ".yaml", func(t *testing.T, c golden.Case) string {
		return translateCase(t, c.Snapshot, c.Settings, c.Input)
	})
}

// translateCase builds, translates, checks the invariants and renders the result.
func translateCase(t *testing.T, snap mesh.Snapshot, settings mesh.Settings, input string) string {
	t.Helper()
	model, buildDiags := mesh.Build(snap, settings)
	out, diags := Translate(model, settings)
	checkOutput(t, out, diags, settings)
	checkEveryClusterNamed(t, model, out)

	return golden.TranslatorDocument(t, "istio", input, out.Objects(), buildDiags, diags)
}

// checkOutput asserts what must hold for any input, beyond what a golden file shows at a glance.
func checkOutput(t *testing.T, out Output, diags []mesh.Diagnostic, settings mesh.Settings) {
	t.Helper()
	golden.CheckOutput(t, out.Objects(), diags, func(id string, obj client.Object) { checkRoundTrip(t, id, obj) })
	// Istio reads one VirtualService and one DestinationRule per host: a policy merges into the
	// split's, and without mTLS only policies write DestinationRules.
	hosts := map[string]bool{}
	for _, vs := range out.VirtualServices {
		for _, h := range vs.Spec.Hosts {
			if hosts[vs.Namespace+"/"+h] {
				t.Errorf("two VirtualServices for host %s", h)
			}
			hosts[vs.Namespace+"/"+h] = true
		}
	}
	for _, dr := range out.DestinationRules {
		if !settings.MTLS && dr.Labels[smi.LabelSourceKind] != policyv1alpha1.TrafficPolicyKind {
			t.Errorf("DestinationRule %s without mTLS, not from a TrafficPolicy", dr.Name)
		}
	}
	if !settings.Enforcing() && len(out.PeerAuthentications) > 0 {
		t.Errorf("PeerAuthentications in permissive mode: %d", len(out.PeerAuthentications))
	}
	for _, vs := range out.VirtualServices {
		checkVirtualService(t, vs.Name, &vs.Spec)
	}
	for _, ap := range out.AuthorizationPolicies {
		checkAuthorizationPolicy(t, ap.Name, ap.Labels, &ap.Spec, settings)
	}
	for _, pa := range out.PeerAuthentications {
		if len(pa.Spec.GetSelector().GetMatchLabels()) == 0 || pa.Spec.GetMtls().GetMode() != securityapi.PeerAuthentication_MutualTLS_STRICT {
			t.Errorf("PeerAuthentication %s: want a workload selector and STRICT, got %v", pa.Name, &pa.Spec)
		}
	}
}

// checkEveryClusterNamed: on every HTTP port of a split's VirtualService, each Service the split
// may send requests to (its backends, the apex) is named by a route with a positive weight, and a
// route naming it comes before any catch-all of the port (istiod hands proxyless clients no route
// after one). A proxyless gRPC client then holds every cluster a weight change can move it to.
func checkEveryClusterNamed(t *testing.T, model mesh.Model, out Output) {
	t.Helper()
	for _, s := range append(slices.Clone(model.Splits), model.UnweightedSplits...) {
		for _, obj := range out.From(smi.TrafficSplitKind, s.Source.Name) {
			vs, ok := obj.(*networkingv1.VirtualService)
			if !ok {
				continue
			}
			named := map[uint32]map[string]bool{} // by port: the hosts routes before its catch-all name
			caughtAll := map[uint32]bool{}
			for _, r := range vs.Spec.Http {
				port := r.Match[0].Port
				if named[port] == nil {
					named[port] = map[string]bool{}
				}
				for _, d := range r.Route {
					if !caughtAll[port] && (d.Weight > 0 || len(r.Route) == 1) {
						named[port][d.Destination.Host] = true
					}
				}
				for _, m := range r.Match {
					caughtAll[port] = caughtAll[port] || (m.Uri == nil && len(m.Headers) == 0 && m.Method == nil)
				}
			}
			for port, hosts := range named {
				for _, want := range append(fqdns(s.Backends), s.Apex.FQDN) {
					if !hosts[want] {
						t.Errorf("VirtualService %s, port %d: no route up to the catch-all names %s; its routes: %v", vs.Name, port, want, vs.Spec.Http)
					}
				}
			}
		}
	}
}

// checkRoundTrip decodes the JSON of obj back into its type: what the controller sends is what
// the Istio types (and so the API server's schema) read back.
func checkRoundTrip(t *testing.T, id string, obj client.Object) {
	t.Helper()
	first, err := json.Marshal(obj)
	if err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	back := reflect.New(reflect.TypeOf(obj).Elem()).Interface()
	if err := json.Unmarshal(first, back); err != nil {
		t.Fatalf("%s: decoding own JSON: %v", id, err)
	}
	second, err := json.Marshal(back)
	if err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	if !bytes.Equal(first, second) {
		t.Errorf("%s: JSON round trip changed the object:\n%s\n%s", id, first, second)
	}
}

func checkVirtualService(t *testing.T, name string, spec *networkingapi.VirtualService) {
	t.Helper()
	if len(spec.Hosts) != 1 || (len(spec.Http) == 0 && len(spec.Tcp) == 0) {
		t.Errorf("VirtualService %s: want one host and some route, got %v", name, spec)
	}
	check := func(route string, weights []int32) {
		sum := int32(0)
		for _, w := range weights {
			if w < 0 {
				t.Errorf("VirtualService %s %s: negative weight %d", name, route, w)
			}
			sum += w
		}
		// A lone destination without weight (the catch-all to the apex) gets everything.
		if sum != 100 && !(len(weights) == 1 && weights[0] == 0) {
			t.Errorf("VirtualService %s %s: weights %v do not sum to 100", name, route, weights)
		}
	}
	for i, r := range spec.Http {
		var weights []int32
		for _, d := range r.Route {
			weights = append(weights, d.Weight)
		}
		check(fmt.Sprintf("http[%d]", i), weights)
		for _, m := range r.Match {
			if m.Port == 0 {
				t.Errorf("VirtualService %s http[%d]: match without port", name, i)
			}
		}
	}
	for i, r := range spec.Tcp {
		var weights []int32
		for _, d := range r.Route {
			weights = append(weights, d.Weight)
		}
		check(fmt.Sprintf("tcp[%d]", i), weights)
	}
}

// checkAuthorizationPolicy guards against the ways a policy could open more than SMI allows.
func checkAuthorizationPolicy(t *testing.T, name string, labels map[string]string, spec *securityapi.AuthorizationPolicy, settings mesh.Settings) {
	t.Helper()
	if name == DefaultDenyName {
		// Allow-nothing: no selector (the whole namespace), ALLOW, and one rule no request matches.
		nobody := &securityapi.AuthorizationPolicy{Rules: []*securityapi.Rule{{
			From: []*securityapi.Rule_From{{Source: &securityapi.Source{Principals: []string{NobodyPrincipal}}}},
		}}}
		if !settings.Enforcing() || labels[smi.LabelSourceKind] != smi.NamespaceSourceKind || !proto.Equal(spec, nobody) {
			t.Errorf("%s: want the allow-nothing spec from a Namespace source in enforcing mode only, got %v %v", name, labels, spec)
		}
		return
	}
	// An ALLOW policy without selector would apply to the whole namespace.
	if spec.GetAction() != securityapi.AuthorizationPolicy_ALLOW || len(spec.GetSelector().GetMatchLabels()) == 0 {
		t.Errorf("AuthorizationPolicy %s: want ALLOW with a workload selector, got %v", name, spec)
	}
	for i, r := range spec.Rules {
		// A rule without from, or a from without principals, would allow any source.
		if len(r.From) == 0 {
			t.Errorf("AuthorizationPolicy %s rules[%d]: no from", name, i)
		}
		for _, f := range r.From {
			if len(f.GetSource().GetPrincipals()) == 0 {
				t.Errorf("AuthorizationPolicy %s rules[%d]: from without principals", name, i)
			}
		}
	}
}

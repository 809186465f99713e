package xdse2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/test/netns"
)

// TestEachBackendProgramsWithItsOwnSettings: a trust domain changed along with the backend
// belongs to the new backend. While that one cannot start, the backend that keeps running keeps
// programming with the settings it runs with: an SMI object edited meanwhile gets principals in
// the old trust domain, not a mix of the new trust domain and the old backend.
func TestEachBackendProgramsWithItsOwnSettings(t *testing.T) {
	o := start(t)
	o.startSwapOperator(t)
	ctx := context.Background()
	ns := swapNamespace
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, // TestBackendSwap may have made it
		&hub.HTTPRouteGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ledger-api"},
			Spec:       specsv1alpha4.HTTPRouteGroupSpec{Matches: []specsv1alpha4.HTTPMatch{{Name: "all", PathRegex: ".*"}}},
		},
		workload(ns, "ledger"),
	} {
		if err := o.client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	target := &hub.TrafficTarget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "auditors-read-the-ledger"},
		Spec: accessv1alpha3.TrafficTargetSpec{
			Destination: accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: "ledger", Namespace: ns},
			Sources:     []accessv1alpha3.IdentityBindingSubject{{Kind: "ServiceAccount", Name: "auditor", Namespace: ns}},
			Rules:       []accessv1alpha3.TrafficTargetRule{{Kind: smi.HTTPRouteGroupKind, Name: "ledger-api"}},
		},
	}
	o.create(t, target)
	t.Cleanup(func() { _ = o.client.Delete(context.Background(), target) })

	op := &v1alpha1.SMIOperator{
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SingletonName},
		Spec:       v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendIstio, XDS: v1alpha1.XDSSpec{Port: swapXDSPort}},
	}
	o.create(t, op)
	t.Cleanup(func() { _ = o.client.Delete(context.Background(), op) })
	o.waitOperator(t, "istio", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendIstio) })
	o.waitPolicyPrincipals(t, target, []string{"cluster.local/ns/" + ns + "/sa/auditor"}, "example.org")

	// To xds in another trust domain, on a port the enforcing operator's xDS server holds: xds
	// cannot start, Istio keeps running as it was.
	patch := func(obj client.Object, patch string) {
		t.Helper()
		if err := o.client.Patch(ctx, obj, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
			t.Fatal(err)
		}
	}
	patch(op, fmt.Sprintf(`{"spec":{"backend":"xds","trustDomain":"example.org","xds":{"port":%d}}}`, xdsPort))
	o.waitOperator(t, "xds unavailable, istio kept", func(op *v1alpha1.SMIOperator) error {
		ready := meta.FindStatusCondition(op.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Reason != v1alpha1.ReasonBackendUnavailable || ready.ObservedGeneration != op.Generation {
			return fmt.Errorf("Ready = %+v, want BackendUnavailable", ready)
		}
		if op.Status.ActiveBackend != v1alpha1.BackendIstio {
			return fmt.Errorf("active backend %q, want istio", op.Status.ActiveBackend)
		}
		return nil
	})
	patch(target, `{"spec":{"sources":[{"kind":"ServiceAccount","name":"auditor","namespace":"`+ns+`"},`+
		`{"kind":"ServiceAccount","name":"clerk","namespace":"`+ns+`"}]}}`)
	o.waitPolicyPrincipals(t, target, []string{"cluster.local/ns/" + ns + "/sa/auditor", "cluster.local/ns/" + ns + "/sa/clerk"}, "example.org")

	// Once xds can start, it takes over and Istio's objects go.
	patch(op, fmt.Sprintf(`{"spec":{"xds":{"port":%d}}}`, swapXDSPort))
	o.waitOperator(t, "xds", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	if err := o.client.Delete(ctx, op); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, netns.HostPort(1, swapXDSPort))
}

// waitPolicyPrincipals waits until the AuthorizationPolicies generated from target name every
// principal in want and none containing never, or fails after 30 s.
func (o *operator) waitPolicyPrincipals(t *testing.T, target *hub.TrafficTarget, want []string, never string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := o.policyPrincipals(target, want, never)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (o *operator) policyPrincipals(target *hub.TrafficTarget, want []string, never string) error {
	policies := &securityv1.AuthorizationPolicyList{}
	if err := o.client.List(context.Background(), policies, client.InNamespace(target.Namespace),
		client.MatchingLabels(smi.SourceLabels(smi.TrafficTargetKind, target.Name))); err != nil {
		return err
	}
	if len(policies.Items) == 0 {
		return fmt.Errorf("no AuthorizationPolicy generated from %s", target.Name)
	}
	for _, p := range policies.Items {
		js, err := json.Marshal(&p.Spec)
		if err != nil {
			return err
		}
		if strings.Contains(string(js), never) {
			return fmt.Errorf("AuthorizationPolicy %s names %q: %s", p.Name, never, js)
		}
		for _, principal := range want {
			if !strings.Contains(string(js), `"`+principal+`"`) {
				return fmt.Errorf("AuthorizationPolicy %s does not name %q: %s", p.Name, principal, js)
			}
		}
	}
	return nil
}

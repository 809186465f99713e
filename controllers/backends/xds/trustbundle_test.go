package xds

import (
	"context"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/smi-operator/smi-operator/xds/bootstrap"
)

// TestTrustBundles: each namespace gets the ConfigMap of the trust bundle, controlled by its
// Namespace; a namespace reconciled again costs no write, a new bundle (the root rotated) is
// written everywhere by Republish, and a ConfigMap of that name the operator does not control is
// left alone.
func TestTrustBundles(t *testing.T) {
	ctx := context.Background()
	foreign := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "theirs", Name: bootstrap.TrustBundleConfigMap},
		Data: map[string]string{"mine": "yes"}}
	client := kubefake.NewClientset(foreign)
	bundle := "ROOT-1"
	tb := NewTrustBundles(client, func() []byte { return []byte(bundle) }, logr.Discard())
	shop := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", UID: "uid-shop"}}
	theirs := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "theirs", UID: "uid-theirs"}}
	for _, ns := range []*corev1.Namespace{shop, theirs} {
		if err := tb.SetNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	get := func(ns string) *corev1.ConfigMap {
		t.Helper()
		cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, bootstrap.TrustBundleConfigMap, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return cm
	}
	cm := get("shop")
	if cm.Data[bootstrap.TrustBundleKey] != "ROOT-1" || cm.Labels[managedByLabel] != "smi-operator" {
		t.Errorf("ConfigMap %v %v", cm.Labels, cm.Data)
	}
	if ref := metav1.GetControllerOf(cm); ref == nil || ref.Kind != "Namespace" || ref.UID != "uid-shop" {
		t.Errorf("controller %v, want the Namespace", ref)
	}
	if got := get("theirs"); got.Data["mine"] != "yes" || got.Data[bootstrap.TrustBundleKey] != "" {
		t.Errorf("a ConfigMap the operator does not control was changed: %v", got.Data)
	}

	writes := func() int {
		n := 0
		for _, a := range client.Actions() {
			if a.GetVerb() == "patch" || a.GetVerb() == "create" {
				n++
			}
		}
		return n
	}
	before := writes()
	if err := tb.SetNamespace(ctx, shop); err != nil {
		t.Fatal(err)
	}
	if writes() != before {
		t.Error("a namespace reconciled again with the same bundle was written again")
	}
	bundle = "ROOT-2\nROOT-1"
	if err := tb.Republish(ctx); err != nil {
		t.Fatal(err)
	}
	if got := get("shop").Data[bootstrap.TrustBundleKey]; got != bundle {
		t.Errorf("after Republish: %q, want the new bundle", got)
	}
	if got := get("theirs"); got.Data[bootstrap.TrustBundleKey] != "" {
		t.Error("Republish wrote a ConfigMap the operator does not control")
	}
}

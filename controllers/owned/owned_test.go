package owned

import (
	"context"
	"slices"
	"testing"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/controllers/unobserved"
)

// TestDeleteAllGenerated: retiring the Istio backend deletes what the operator generated in every
// namespace, and nothing else: not an object merely labelled like ours (without our controller),
// nor someone else's; and
// it forgets its writes to them, so that they are written again if the backend comes back.
func TestDeleteAllGenerated(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := networkingv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	controller := []metav1.OwnerReference{{APIVersion: "split.smi-spec.io/v1alpha4", Kind: "TrafficSplit", Name: "web", UID: "1", Controller: ptr.To(true)}}
	vs := func(ns, name string, labels map[string]string, owners []metav1.OwnerReference) *networkingv1.VirtualService {
		return &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, OwnerReferences: owners}}
	}
	ours := smi.SourceLabels(smi.TrafficSplitKind, "web")
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		vs("shop", "web", ours, controller),
		vs("bank", "web", ours, controller),
		vs("shop", "web-trafficpolicy", smi.SourceLabels(policyv1alpha1.TrafficPolicyKind, "web"),
			[]metav1.OwnerReference{{APIVersion: "policy.smi-operator.io/v1alpha1", Kind: policyv1alpha1.TrafficPolicyKind, Name: "web", UID: "3", Controller: ptr.To(true)}}),
		vs("shop", "labelled-by-hand", map[string]string{smi.LabelManagedBy: smi.ManagedByValue}, nil),
		vs("shop", "labels-copied", ours, nil),
		vs("shop", "labels-copied-by-a-deployment", ours, []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "2", Controller: ptr.To(true)}}),
		vs("shop", "someone-elses", map[string]string{"app": "web"}, controller),
	).Build()
	writes := &unobserved.Writes{}
	key := unobserved.Key{Kind: networkingv1.SchemeGroupVersion.WithKind("VirtualService").String(), Namespace: "shop", Name: "web"}
	content := unobserved.Hash("spec")
	writes.Begin(key, content, "")
	w := Writer{Client: c, Reader: c, Scheme: scheme, Unobserved: writes}

	n, err := w.DeleteAllGenerated(context.Background(), c, []client.ObjectList{&networkingv1.VirtualServiceList{}})
	if err != nil {
		t.Fatal(err)
	}
	left := &networkingv1.VirtualServiceList{}
	if err := c.List(context.Background(), left); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range left.Items {
		names = append(names, o.Namespace+"/"+o.Name)
	}
	slices.Sort(names)
	want := []string{"shop/labelled-by-hand", "shop/labels-copied", "shop/labels-copied-by-a-deployment", "shop/someone-elses"}
	if n != 3 || !slices.Equal(names, want) {
		t.Errorf("deleted %d, left %v; want 3 deleted and %v left", n, names, want)
	}
	if !writes.Begin(key, content, "") {
		t.Error("the write to a deleted object is still remembered: it would not be written again")
	}
}

package owned

import (
	"context"
	"slices"
	"testing"

	networkingapi "istio.io/api/networking/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"

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

// TestLastWrittenTrustsTheGenerationItMatched: once an object's spec was found as last written,
// its later updates at the same generation (status, annotations: the API server moves the
// generation with every spec change) are left as recorded without hashing the spec again; but
// not an object recreated under the name (another UID, its generation counting anew), nor one
// of a kind without a generation, nor anything after the record was written anew.
func TestLastWrittenTrustsTheGenerationItMatched(t *testing.T) {
	vs := func(uid string, generation int64, host string) *networkingv1.VirtualService {
		return &networkingv1.VirtualService{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: types.UID(uid), Generation: generation,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "split.smi-spec.io/v1alpha4", Kind: "TrafficSplit", Name: "web", UID: "split", Controller: ptr.To(true)}}},
			Spec: networkingapi.VirtualService{Hosts: []string{host}},
		}
	}
	summaryOf := func(host string) summary {
		want, err := wantedOf(networkingv1.SchemeGroupVersion.WithKind("VirtualService"), vs("", 0, host))
		if err != nil {
			t.Fatal(err)
		}
		return want.summary
	}
	key := unobserved.Key{Kind: "VirtualService", Namespace: "shop", Name: "web"}
	l := &LastWritten{}
	l.record(key, summaryOf("a"))
	steps := []struct {
		name string
		obj  *networkingv1.VirtualService
		want bool
	}{
		{"the write's own event", vs("u1", 1, "a"), true},
		// Not an API server's doing: shows the spec is not hashed again at that generation.
		{"an update at the generation matched", vs("u1", 1, "b"), true},
		{"a spec change", vs("u1", 2, "b"), false},
		{"recreated by someone else with another spec", vs("u2", 1, "b"), false},
		{"the write's own event, again", vs("u1", 1, "a"), true},
		{"a kind without a generation, as written", vs("u1", 0, "a"), true},
		{"a kind without a generation, changed", vs("u1", 0, "b"), false},
	}
	for _, step := range steps {
		if got := l.leftAsRecorded(key, step.obj); got != step.want {
			t.Errorf("%s: leftAsRecorded = %v, want %v", step.name, got, step.want)
		}
	}
	l.record(key, summaryOf("b"))
	if l.leftAsRecorded(key, vs("u1", 1, "a")) {
		t.Error("after a new record: the generation matched by the old one was trusted")
	}
}

// BenchmarkChangesToCorrectOfAStatusUpdate is the watch filter's cost for an update that moves
// neither spec nor generation (istiod writing a VirtualService's status), as each of the object's
// watch sources pays it.
func BenchmarkChangesToCorrectOfAStatusUpdate(b *testing.B) {
	scheme := runtime.NewScheme()
	if err := networkingv1.AddToScheme(scheme); err != nil {
		b.Fatal(err)
	}
	obj := &networkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "u1", Generation: 3,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "split.smi-spec.io/v1alpha4", Kind: "TrafficSplit", Name: "web", UID: "split", Controller: ptr.To(true)}}},
		Spec: networkingapi.VirtualService{Hosts: []string{"web.shop.svc.cluster.local"}, Http: []*networkingapi.HTTPRoute{{
			Route: []*networkingapi.HTTPRouteDestination{
				{Destination: &networkingapi.Destination{Host: "web-v1.shop.svc.cluster.local"}, Weight: 90},
				{Destination: &networkingapi.Destination{Host: "web-v2.shop.svc.cluster.local"}, Weight: 10},
			},
		}}},
	}
	want, err := wantedOf(networkingv1.SchemeGroupVersion.WithKind("VirtualService"), obj)
	if err != nil {
		b.Fatal(err)
	}
	w := Writer{Scheme: scheme, LastWritten: &LastWritten{}}
	w.LastWritten.record(want.key(), want.summary)
	changes := w.ChangesToCorrect()
	e := event.UpdateEvent{ObjectOld: obj, ObjectNew: obj}
	b.ReportAllocs()
	for b.Loop() {
		if changes.Update(e) {
			b.Fatal("a status update passed")
		}
	}
}

// TestSyncFindingAsWantedKeepsTheGenerationMatched: a reconcile whose Sync finds the object as
// wanted leaves what the watch filter matched, so the object's next status update is not hashed
// again.
func TestSyncFindingAsWantedKeepsTheGenerationMatched(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := networkingv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := policyv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).Build()
	w := Writer{Client: c, Reader: c, APIReader: c, Scheme: scheme, LastWritten: &LastWritten{}}
	source := &policyv1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "policy"}}
	wanted := func() []client.Object {
		return []client.Object{&networkingv1.VirtualService{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Labels: smi.SourceLabels(policyv1alpha1.TrafficPolicyKind, "web")},
			Spec:       networkingapi.VirtualService{Hosts: []string{"web.shop.svc.cluster.local"}},
		}}
	}
	sync := func() {
		t.Helper()
		if _, err := w.Sync(context.Background(), source, wanted(), nil); err != nil {
			t.Fatal(err)
		}
	}
	sync() // creates it
	stored := &networkingv1.VirtualService{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: "web"}, stored); err != nil {
		t.Fatal(err)
	}
	stored.Generation = 1 // the fake client keeps none
	key := unobservedKey(networkingv1.SchemeGroupVersion.WithKind("VirtualService"), stored)
	if !w.LastWritten.leftAsRecorded(key, stored) {
		t.Fatal("the created object is not left as recorded")
	}
	sync() // finds it as wanted
	// Not an API server's doing (its spec moved, its generation did not): shows what was matched
	// is trusted without hashing.
	changed := stored.DeepCopy()
	changed.Spec.Hosts = []string{"other"}
	if !w.LastWritten.leftAsRecorded(key, changed) {
		t.Error("after a Sync that found the object as wanted, the generation matched was forgotten")
	}
}

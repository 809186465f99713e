package istio

import (
	"context"
	"fmt"
	"strings"
	"testing"

	networkingapi "istio.io/api/networking/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/controllers/owned"
)

// listsRecorded is a reader that records each List not narrowed by HostIndex.
type listsRecorded struct {
	client.Reader
	lists     int
	unindexed []string
}

func (r *listsRecorded) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	o := &client.ListOptions{}
	o.ApplyOptions(opts)
	r.lists++
	if o.FieldSelector == nil || len(o.FieldSelector.Requirements()) != 1 || o.FieldSelector.Requirements()[0].Field != HostIndex {
		r.unindexed = append(r.unindexed, fmt.Sprintf("%T (fields %v)", list, o.FieldSelector))
	}
	return r.Reader.List(ctx, list, opts...)
}

// TestHostsTakenReadsOnlyObjectsNamingTheHost: a policy's reconcile finds the VirtualServices and
// DestinationRules of others that hold its Service's host, wherever they are and however they
// name it, through HostIndex: never by listing every one of the cluster, which grows with the mesh
// and runs on every policy reconcile. The operator's own objects, and VirtualServices bound to
// gateways only, hold nothing.
func TestHostsTakenReadsOnlyObjectsNamingTheHost(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := networkingv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	vs := func(namespace, name string, hosts ...string) *networkingv1.VirtualService {
		return &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
			Spec: networkingapi.VirtualService{Hosts: hosts}}
	}
	dr := func(namespace, name, host string) *networkingv1.DestinationRule {
		return &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
			Spec: networkingapi.DestinationRule{Host: host}}
	}
	gatewayOnly := vs("shop", "edge", "web")
	gatewayOnly.Spec.Gateways = []string{"ingress"}
	generated := vs("shop", "a-split", "web")
	generated.Labels = map[string]string{smi.LabelSourceKind: smi.TrafficSplitKind}
	generated.OwnerReferences = []metav1.OwnerReference{{APIVersion: "split.smi-spec.io/v1alpha4", Kind: "TrafficSplit", Name: "a-split", UID: "1", Controller: ptr.To(true)}}
	objects := []client.Object{
		vs("shop", "short-name", "web"),
		vs("other", "fqdn", "example.com", "web.shop.svc.cluster.local"),
		vs("other", "short-name-elsewhere", "web"), // another namespace's web
		dr("shop", "rule", "web.shop.svc.cluster.local"),
		gatewayOnly,
		generated,
	}
	for i := range 50 {
		objects = append(objects, vs("unrelated", fmt.Sprintf("vs-%d", i), fmt.Sprintf("svc-%d", i)),
			dr("unrelated", fmt.Sprintf("dr-%d", i), fmt.Sprintf("svc-%d.unrelated.svc.cluster.local", i)))
	}
	builder := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objects...)
	for _, kind := range hostKinds {
		builder = builder.WithIndex(kind, HostIndex, hostIndexKeys)
	}
	reader := &listsRecorded{Reader: builder.Build()}
	b := Policies{Writer: owned.Writer{Reader: reader}}

	carriers := []client.Object{
		&networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
			Spec: networkingapi.VirtualService{Hosts: []string{"web.shop.svc.cluster.local"}}},
		&networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
			Spec: networkingapi.DestinationRule{Host: "web.shop.svc.cluster.local"}},
		// Two splits sharing the backend each write its DestinationRule: one list of the kind.
		&networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "other-web"},
			Spec: networkingapi.DestinationRule{Host: "web.shop.svc.cluster.local"}},
	}
	taken, err := b.hostsTaken(context.Background(), carriers)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(taken, "\n")
	for _, want := range []string{"VirtualService shop/short-name", "VirtualService other/fqdn", "DestinationRule shop/rule"} {
		if !strings.Contains(got, want) {
			t.Errorf("hostsTaken = %q; want it to name %s", taken, want)
		}
	}
	if len(taken) != 3 {
		t.Errorf("hostsTaken = %q; want exactly the 3 objects holding web.shop's host", taken)
	}
	if reader.lists != 2 {
		t.Errorf("hostsTaken sent %d lists for 3 carriers of 2 kinds, want one per kind", reader.lists)
	}
	if len(reader.unindexed) > 0 {
		t.Errorf("hostsTaken listed %v without an index: every object of the cluster", reader.unindexed)
	}
}

// TestHostsTakenSkipsACarrierNamingNoService: a carrier whose host names no Service (the
// translator makes none, but nothing in the types forbids it) has no Service to look up, so it
// takes no host and does not stop the carriers after it from being looked up; one with such a
// host beside its Service's is looked up by the Service's.
func TestHostsTakenSkipsACarrierNamingNoService(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := networkingv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	theirs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "theirs"},
		Spec: networkingapi.VirtualService{Hosts: []string{"web"}}}
	builder := fake.NewClientBuilder().WithScheme(scheme).WithObjects(theirs)
	for _, kind := range hostKinds {
		builder = builder.WithIndex(kind, HostIndex, hostIndexKeys)
	}
	b := Policies{Writer: owned.Writer{Reader: builder.Build()}}
	carriers := []client.Object{
		&networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "external"},
			Spec: networkingapi.VirtualService{Hosts: []string{"example.com"}}},
		&networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
			Spec: networkingapi.VirtualService{Hosts: []string{"example.com", "web.shop.svc.cluster.local"}}},
	}
	taken, err := b.hostsTaken(context.Background(), carriers)
	if err != nil {
		t.Fatal(err)
	}
	if len(taken) != 1 || !strings.Contains(taken[0], "VirtualService shop/theirs") {
		t.Errorf("hostsTaken = %q; want shop/theirs, which holds web.shop's host", taken)
	}
}

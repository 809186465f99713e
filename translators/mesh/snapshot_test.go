package mesh

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha1"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
)

func TestSnapshotAddSortsObjectsByKind(t *testing.T) {
	ts := trafficSplit("canary", "web", 0, backend("web-v1", 1))
	tt := trafficTarget("tt", sa(ns, "server"), nil, rule("TCPRoute", "db"))
	g := httpRouteGroup("g")
	tcp, udp := tcpRoute("db", 5432), udpRoute("dns", 53)
	svc := service("web", 80)
	dep := deployment("web", "web")
	sts := appsv1.StatefulSet{ObjectMeta: meta(ns, "db")}
	ds := appsv1.DaemonSet{ObjectMeta: meta(ns, "agent")}

	var got Snapshot
	for _, obj := range []runtime.Object{&ts, &tt, &g, &tcp, &udp, &svc, &dep, &sts, &ds} {
		if err := got.Add(obj); err != nil {
			t.Fatalf("Add(%T): %v", obj, err)
		}
	}
	want := Snapshot{
		TrafficSplits:   []splitv1alpha4.TrafficSplit{ts},
		TrafficTargets:  []accessv1alpha3.TrafficTarget{tt},
		HTTPRouteGroups: []specsv1alpha4.HTTPRouteGroup{g},
		TCPRoutes:       []specsv1alpha4.TCPRoute{tcp},
		UDPRoutes:       []specsv1alpha4.UDPRoute{udp},
		Services:        []corev1.Service{svc},
		Deployments:     []appsv1.Deployment{dep},
		StatefulSets:    []appsv1.StatefulSet{sts},
		DaemonSets:      []appsv1.DaemonSet{ds},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("snapshot (-want +got):\n%s", d)
	}
}

// TestSnapshotMerge: snapshots collected for several objects make one holding each object once,
// the first copy of it kept.
func TestSnapshotMerge(t *testing.T) {
	web, api := service("web", 80), service("api", 80)
	webAgain := service("web", 8080)
	otherNS := service("web", 80)
	otherNS.Namespace = "elsewhere"
	split := trafficSplit("canary", "web", 0, backend("web-v1", 1))
	got := Snapshot{Services: []corev1.Service{web}, TrafficSplits: []splitv1alpha4.TrafficSplit{split}}
	got.Merge(Snapshot{Services: []corev1.Service{webAgain, api, otherNS}, TrafficSplits: []splitv1alpha4.TrafficSplit{split}})
	want := Snapshot{Services: []corev1.Service{web, api, otherNS}, TrafficSplits: []splitv1alpha4.TrafficSplit{split}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("merged snapshot (-want +got):\n%s", d)
	}
}

// TestSnapshotMergeCoversEveryKind: for every kind a Snapshot holds (every field, found by
// reflection, so that a kind added later without its line in Merge fails here), Merge adds an
// object the snapshot lacks and not one of a namespace and name it holds.
func TestSnapshotMergeCoversEveryKind(t *testing.T) {
	// objects is a snapshot with, in every field, one object per name, in namespace ns.
	objects := func(names ...string) Snapshot {
		var out Snapshot
		v := reflect.ValueOf(&out).Elem()
		for i := range v.NumField() {
			field := v.Field(i)
			for _, name := range names {
				item := reflect.New(field.Type().Elem())
				obj, ok := item.Interface().(metav1.Object)
				if !ok {
					t.Fatalf("Snapshot.%s holds %v, not Kubernetes objects", v.Type().Field(i).Name, field.Type().Elem())
				}
				obj.SetNamespace(ns)
				obj.SetName(name)
				obj.SetLabels(map[string]string{"from": strings.Join(names, ",")})
				field.Set(reflect.Append(field, item.Elem()))
			}
		}
		return out
	}
	got := objects("a")
	got.Merge(objects("a", "b"))
	v := reflect.ValueOf(got)
	for i := range v.NumField() {
		field := v.Field(i)
		var held []string
		for j := range field.Len() {
			obj := field.Index(j).Addr().Interface().(metav1.Object)
			held = append(held, obj.GetName()+" from "+obj.GetLabels()["from"])
		}
		if want := []string{"a from a", "b from a,b"}; !slices.Equal(held, want) {
			t.Errorf("merged %s: %v, want %v (the one held kept, the one lacking added)", v.Type().Field(i).Name, held, want)
		}
	}
}

func TestSnapshotAddRejectsOtherObjects(t *testing.T) {
	var s Snapshot
	if err := s.Add(&corev1.Pod{}); err == nil {
		t.Error("Add(Pod) succeeded; want an error")
	}
}

func TestSnapshotAddConvertsOlderVersions(t *testing.T) {
	one, half := resource.MustParse("1"), resource.MustParse("500m")
	old := &splitv1alpha1.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "canary"},
		Spec: splitv1alpha1.TrafficSplitSpec{Service: "web", Backends: []splitv1alpha1.TrafficSplitBackend{
			{Service: "web-v1", Weight: &one}, {Service: "web-v2", Weight: &half},
		}},
	}
	var got Snapshot
	if err := got.Add(old); err != nil {
		t.Fatalf("Add(v1alpha1 TrafficSplit): %v", err)
	}
	if len(got.TrafficSplits) != 1 {
		t.Fatalf("got %d TrafficSplits, want 1", len(got.TrafficSplits))
	}
	// v1alpha1 weights are quantities: 1 and 500m split 2:1.
	backends := got.TrafficSplits[0].Spec.Backends
	if len(backends) != 2 || backends[0].Weight != 2*backends[1].Weight || backends[1].Weight == 0 {
		t.Errorf("backends %+v, want web-v1 twice the weight of web-v2", backends)
	}
}

func TestServiceAccountOf(t *testing.T) {
	tests := []struct {
		name string
		spec corev1.PodSpec
		want string
	}{
		{"named", corev1.PodSpec{ServiceAccountName: "api"}, "api"},
		{"only the deprecated field", corev1.PodSpec{DeprecatedServiceAccount: "legacy"}, "legacy"},
		{"the new field wins", corev1.PodSpec{ServiceAccountName: "api", DeprecatedServiceAccount: "legacy"}, "api"},
		{"neither", corev1.PodSpec{}, "default"},
	}
	for _, tc := range tests {
		if got := ServiceAccountOf(tc.spec); got != tc.want {
			t.Errorf("%s: ServiceAccountOf = %q, want %q", tc.name, got, tc.want)
		}
	}
}

package controllers

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
)

// TestTrimKeepsWhatTheBackendsRead: the cache transforms drop what nothing reads and keep
// every field the model and the xDS translator use.
func TestTrimKeepsWhatTheBackendsRead(t *testing.T) {
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "web-abc", Namespace: "shop",
			Labels:        map[string]string{discoveryv1.LabelServiceName: "web"},
			Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("grpc"), Port: ptr.To(int32(8080))}},
		Endpoints: []discoveryv1.Endpoint{{
			Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}, Zone: ptr.To("a"),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "web-1", UID: "u1", ResourceVersion: "7", APIVersion: "v1"},
			NodeName:  ptr.To("node-1"),
			Hints:     &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "a"}}},
		}},
	}
	out, err := trimEndpointSlice(slice)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*discoveryv1.EndpointSlice)
	e := got.Endpoints[0]
	if got.Annotations != nil || got.ManagedFields != nil || e.NodeName != nil || e.Hints != nil ||
		e.TargetRef.ResourceVersion != "" || e.TargetRef.APIVersion != "" {
		t.Errorf("left what nothing reads: %+v", got)
	}
	if got.Labels[discoveryv1.LabelServiceName] != "web" || *got.Ports[0].Port != 8080 || e.Addresses[0] != "10.0.0.1" ||
		!*e.Conditions.Ready || *e.Zone != "a" ||
		*e.TargetRef != (corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "web-1", UID: "u1"}) {
		t.Errorf("dropped what the xDS translator reads: %+v", got)
	}

	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Annotations: map[string]string{"a": "b"}},
		Spec: corev1.ServiceSpec{ClusterIPs: []string{"10.96.0.1"}, Ports: []corev1.ServicePort{{Name: "grpc", Port: 80, AppProtocol: ptr.To("grpc")}},
			Selector: map[string]string{"app": "web"}},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}}},
	}
	outSvc, _ := trimService(svc)
	gotSvc := outSvc.(*corev1.Service)
	if gotSvc.Annotations != nil || len(gotSvc.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("left what nothing reads: %+v", gotSvc)
	}
	if gotSvc.Spec.ClusterIPs[0] != "10.96.0.1" || gotSvc.Spec.Ports[0].Port != 80 || gotSvc.Spec.Selector["app"] != "web" {
		t.Errorf("dropped what the backends read: %+v", gotSvc.Spec)
	}
}

// TestTrimWorkloadKeepsTheModelsInput: a trimmed workload gives the model the same workloads and
// access rules as the whole one.
func TestTrimWorkloadKeepsTheModelsInput(t *testing.T) {
	labels := map[string]string{"app": "vault"}
	whole := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "vault", Namespace: "bank", Labels: labels,
			Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"sidecar": "yes"}},
				Spec:       corev1.PodSpec{ServiceAccountName: "vault", Containers: []corev1.Container{{Name: "vault", Image: "example.com/vault"}}},
			},
		},
		Status: appsv1.DeploymentStatus{Replicas: 3},
	}
	target := accessv1alpha3.TrafficTarget{
		ObjectMeta: metav1.ObjectMeta{Name: "tellers", Namespace: "bank"},
		Spec: accessv1alpha3.TrafficTargetSpec{
			Destination: accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: "vault", Namespace: "bank"},
			Sources:     []accessv1alpha3.IdentityBindingSubject{{Kind: "ServiceAccount", Name: "teller", Namespace: "bank"}},
		},
	}
	model := func(d *appsv1.Deployment) mesh.Model {
		m, _ := mesh.Build(mesh.Snapshot{Deployments: []appsv1.Deployment{*d}, TrafficTargets: []accessv1alpha3.TrafficTarget{target}},
			mesh.Settings{Access: mesh.AccessEnforcing})
		return m
	}
	want := model(whole)
	out, err := trimWorkload(whole.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	trimmed := out.(*appsv1.Deployment)
	if len(trimmed.Spec.Template.Spec.Containers) != 0 || trimmed.Annotations != nil || trimmed.Spec.Template.Annotations != nil || trimmed.Status.Replicas != 0 {
		t.Errorf("left what nothing reads: %+v", trimmed)
	}
	if d := cmp.Diff(want, model(trimmed)); d != "" {
		t.Errorf("the model differs once the workload is trimmed (-whole +trimmed):\n%s", d)
	}
	if len(want.AccessRules) == 0 {
		t.Fatal("the fixture gives no access rule: the comparison shows nothing")
	}
}

// TestTrimPodKeepsTheEndpointsIdentity: trimmed Pods and EndpointSlices give the xDS translator
// the same endpoints, with the same ServiceAccounts, as whole ones.
func TestTrimPodKeepsTheEndpointsIdentity(t *testing.T) {
	svc := corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "grpc", Port: 80}}}}
	pod := func(name, uid string, spec corev1.PodSpec) corev1.Pod {
		spec.Containers = []corev1.Container{{Name: "app", Image: "example.com/app"}}
		return corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: types.UID(uid), Labels: map[string]string{"app": "web"},
				OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-1"}}},
			Spec:   spec,
			Status: corev1.PodStatus{PodIP: "10.0.0.1", Phase: corev1.PodRunning},
		}
	}
	pods := []corev1.Pod{
		pod("web-a", "ua", corev1.PodSpec{ServiceAccountName: "web"}),
		pod("web-b", "ub", corev1.PodSpec{DeprecatedServiceAccount: "legacy"}),
		pod("web-c", "uc", corev1.PodSpec{}),
	}
	slice := discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-abc", Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("grpc"), Port: ptr.To(int32(8080))}},
	}
	for i, p := range pods {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{fmt.Sprintf("10.0.0.%d", i+1)}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: p.Name, UID: p.UID, ResourceVersion: "3"},
		})
	}
	want := xds.BuildEndpoints([]corev1.Service{svc}, []discoveryv1.EndpointSlice{slice}, pods)
	var trimmedPods []corev1.Pod
	for _, p := range pods {
		out, err := trimPod(p.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		trimmed := out.(*corev1.Pod)
		if trimmed.Labels != nil || trimmed.OwnerReferences != nil || len(trimmed.Spec.Containers) != 0 || trimmed.Status.PodIP != "" {
			t.Errorf("left what nothing reads: %+v", trimmed)
		}
		trimmedPods = append(trimmedPods, *trimmed)
	}
	trimmedSlice, err := trimEndpointSlice(slice.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	got := xds.BuildEndpoints([]corev1.Service{svc}, []discoveryv1.EndpointSlice{*trimmedSlice.(*discoveryv1.EndpointSlice)}, trimmedPods)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("the endpoints differ once trimmed (-whole +trimmed):\n%s", d)
	}
	var accounts []string
	for _, e := range want[xds.ServiceKey{Namespace: "shop", Name: "web", Port: 80}] {
		accounts = append(accounts, e.ServiceAccount)
	}
	if d := cmp.Diff([]string{"web", "legacy", "default"}, accounts); d != "" {
		t.Errorf("ServiceAccounts of the endpoints (-want +got):\n%s", d)
	}
}

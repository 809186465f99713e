package controllers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
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
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "web-1"}, NodeName: ptr.To("node-1"),
			Hints: &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "a"}}},
		}},
	}
	out, err := trimEndpointSlice(slice)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*discoveryv1.EndpointSlice)
	e := got.Endpoints[0]
	if got.Annotations != nil || got.ManagedFields != nil || e.TargetRef != nil || e.NodeName != nil || e.Hints != nil {
		t.Errorf("left what nothing reads: %+v", got)
	}
	if got.Labels[discoveryv1.LabelServiceName] != "web" || *got.Ports[0].Port != 8080 || e.Addresses[0] != "10.0.0.1" ||
		!*e.Conditions.Ready || *e.Zone != "a" {
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

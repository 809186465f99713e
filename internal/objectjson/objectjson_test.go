package objectjson

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

func maglev(size uint64) *networkingapi.LoadBalancerSettings {
	return &networkingapi.LoadBalancerSettings{LbPolicy: &networkingapi.LoadBalancerSettings_ConsistentHash{
		ConsistentHash: &networkingapi.LoadBalancerSettings_ConsistentHashLB{
			HashKey:       &networkingapi.LoadBalancerSettings_ConsistentHashLB_UseSourceIp{UseSourceIp: true},
			HashAlgorithm: &networkingapi.LoadBalancerSettings_ConsistentHashLB_Maglev{Maglev: &networkingapi.LoadBalancerSettings_ConsistentHashLB_MagLev{TableSize: size}},
		},
	}}
}

// Istio's marshalers write uint64 fields as strings, which the DestinationRule CRD's `type:
// integer` refuses; what the operator sends must carry numbers, in lists too.
func TestIstioUint64FieldsBecomeNumbers(t *testing.T) {
	dr := &networkingv1.DestinationRule{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.istio.io/v1", Kind: "DestinationRule"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", ResourceVersion: "7"},
		Spec: networkingapi.DestinationRule{
			Host:          "web",
			TrafficPolicy: &networkingapi.TrafficPolicy{LoadBalancer: maglev(65537)},
		},
	}
	dr.Spec.TrafficPolicy.PortLevelSettings = []*networkingapi.TrafficPolicy_PortTrafficPolicy{
		{Port: &networkingapi.PortSelector{Number: 8080}, LoadBalancer: maglev(131)},
	}
	u, err := Unstructured(dr)
	if err != nil {
		t.Fatal(err)
	}
	got, found, err := unstructured.NestedFieldNoCopy(u.Object, "spec", "trafficPolicy", "loadBalancer", "consistentHash", "maglev", "tableSize")
	if err != nil || !found || got != int64(65537) {
		t.Errorf("tableSize = %#v (found %v, %v), want int64 65537", got, found, err)
	}
	ports, _, _ := unstructured.NestedSlice(u.Object, "spec", "trafficPolicy", "portLevelSettings")
	if len(ports) != 1 {
		t.Fatalf("portLevelSettings = %v", ports)
	}
	got, _, _ = unstructured.NestedFieldNoCopy(ports[0].(map[string]any), "loadBalancer", "consistentHash", "maglev", "tableSize")
	if got != int64(131) {
		t.Errorf("port-level tableSize = %#v, want int64 131", got)
	}
	if n, _, _ := unstructured.NestedFieldNoCopy(ports[0].(map[string]any), "port", "number"); n != int64(8080) {
		t.Errorf("port number = %#v, want int64 8080", n)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(u.Object, "metadata", "resourceVersion"); found {
		t.Error("resourceVersion is the server's, sent anyway")
	}
}

// envoyCluster marshals as protojson does, as Istio's specs do, for a wrapper field.
type envoyCluster struct{ *clusterv3.Cluster }

func (c envoyCluster) MarshalJSON() ([]byte, error) { return protojson.Marshal(c.Cluster) }

type protoSpecObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              envoyCluster `json:"spec"`
}

func (o *protoSpecObject) DeepCopyObject() runtime.Object { c := *o; return &c }

func TestUInt64ValueWrappersBecomeNumbers(t *testing.T) {
	obj := &protoSpecObject{Spec: envoyCluster{&clusterv3.Cluster{
		Name: "c",
		LbConfig: &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
			MinimumRingSize: wrapperspb.UInt64(1024),
		}},
	}}}
	u, err := Unstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "ringHashLbConfig", "minimumRingSize")
	if got != int64(1024) {
		t.Errorf("minimumRingSize = %#v, want int64 1024", got)
	}
}

// Objects without protobuf specs keep their JSON; strings that look like numbers stay strings.
func TestPlainObjectsUnchanged(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{"n": "65537"}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		Status:     corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}}},
	}
	u, err := Unstructured(svc)
	if err != nil {
		t.Fatal(err)
	}
	if a := u.GetAnnotations()["n"]; a != "65537" {
		t.Errorf("annotation = %q", a)
	}
	if _, found := u.Object["status"]; found {
		t.Error("status sent with the object")
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(u.Object, "metadata", "creationTimestamp"); found {
		t.Error("creationTimestamp sent")
	}
}

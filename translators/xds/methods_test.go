package xds

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

// TestMethodsExcludePOSTOnlyWhereGRPCCanCall: a split match that excludes POST is reported for an
// apex a proxyless gRPC client can call (a gRPC, HTTP/2 or undeclared port), not for one whose
// every port is declared HTTP/1.1, which carries no gRPC: there the warning would mark a split
// Programmed=False for a client that cannot exist.
func TestMethodsExcludePOSTOnlyWhereGRPCCanCall(t *testing.T) {
	port := func(name, appProtocol string) mesh.ServicePort {
		return mesh.ServicePort{Name: name, Port: 8080, Protocol: corev1.ProtocolTCP, AppProtocol: appProtocol}
	}
	for _, tc := range []struct {
		name  string
		ports []mesh.ServicePort
		warns bool
	}{
		{"port named grpc", []mesh.ServicePort{port("grpc", "")}, true},
		{"appProtocol grpc", []mesh.ServicePort{port("api", "grpc")}, true},
		{"undeclared port", []mesh.ServicePort{port("api", "")}, true},
		{"port named http", []mesh.ServicePort{port("http", "")}, false},
		{"appProtocol http", []mesh.ServicePort{port("web", "http")}, false},
		{"an HTTP/1.1 port and an undeclared one", []mesh.ServicePort{port("http", ""), {Name: "api", Port: 9090, Protocol: corev1.ProtocolTCP}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			split := mesh.Split{
				Source:   mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "canary"},
				Apex:     mesh.Service{Namespace: "shop", Name: "web", FQDN: "web.shop.svc.cluster.local", Ports: tc.ports},
				Backends: []mesh.Backend{{Service: mesh.Service{Namespace: "shop", Name: "web-v2", FQDN: "web-v2.shop.svc.cluster.local", Ports: tc.ports}, Weight: 1}},
				Matches:  []mesh.HTTPMatch{{Group: "routes", Name: "metrics", Methods: []string{"GET"}}},
			}
			_, _, diags := SplitRoutes(split)
			warned := false
			for _, d := range diags {
				warned = warned || d.Reason == ReasonMethodsExcludePOST
			}
			if warned != tc.warns {
				t.Errorf("MethodsExcludePOST reported: %v, want %v (%v)", warned, tc.warns, diags)
			}
		})
	}
}

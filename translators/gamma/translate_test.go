package gamma

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

func TestRoutesFor(t *testing.T) {
	tests := []struct {
		port mesh.ServicePort
		want portRoutes
	}{
		{mesh.ServicePort{Name: "grpc"}, portRoutes{grpc: true}},
		{mesh.ServicePort{Name: "grpc-api"}, portRoutes{grpc: true}},
		{mesh.ServicePort{Name: "api", AppProtocol: "grpc"}, portRoutes{grpc: true}},
		{mesh.ServicePort{Name: "grpc", AppProtocol: "http"}, portRoutes{http: true}}, // appProtocol first
		{mesh.ServicePort{Name: "http-web"}, portRoutes{http: true}},
		{mesh.ServicePort{AppProtocol: "kubernetes.io/h2c"}, portRoutes{http: true}},
		{mesh.ServicePort{Name: "tcp-db"}, portRoutes{tcp: true}},
		{mesh.ServicePort{Name: "https"}, portRoutes{tcp: true}},
		{mesh.ServicePort{Name: "web"}, portRoutes{http: true, tcp: true}},
		{mesh.ServicePort{}, portRoutes{http: true, tcp: true}},
	}
	for _, tc := range tests {
		tc.port.Protocol = corev1.ProtocolTCP
		if got := routesFor(tc.port); got != tc.want {
			t.Errorf("routesFor(%+v) = %+v, want %+v", tc.port, got, tc.want)
		}
	}
}

func TestExactPathValid(t *testing.T) {
	for path, want := range map[string]bool{
		"/login": true, "/a/b-c_d.e~f": true, "/%41": true, "/": true,
		"": false, "login": false, "/a//b": false, "/a/./b": false, "/a/../b": false, "/a/..": false, "/a/.": false,
		"/a%2fb": false, "/a%2Fb": false, "/a#b": false, "/a b": false, "/a?b": false, "/%4": false,
	} {
		if got := exactPathValid(path); got != want {
			t.Errorf("exactPathValid(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestGRPCMethod(t *testing.T) {
	tests := []struct {
		name            string
		path            mesh.PathMatch
		service, method string
		ok, none        bool
	}{
		{name: "any path", path: mesh.PathMatch{Kind: mesh.PathAny}, ok: true, none: true},
		{name: "prefix /", path: mesh.PathMatch{Kind: mesh.PathPrefix, Literal: "/"}, ok: true, none: true},
		{name: "exact", path: mesh.PathMatch{Kind: mesh.PathExact, Literal: "/pkg.Svc/Do"}, service: "pkg.Svc", method: "Do", ok: true},
		{name: "service prefix", path: mesh.PathMatch{Kind: mesh.PathPrefix, Literal: "/pkg.Svc/"}, service: "pkg.Svc", ok: true},
		{name: "method prefix", path: mesh.PathMatch{Kind: mesh.PathPrefix, Literal: "/pkg.Svc/Do"}},
		{name: "service name prefix", path: mesh.PathMatch{Kind: mesh.PathPrefix, Literal: "/pkg."}},
		{name: "exact service only", path: mesh.PathMatch{Kind: mesh.PathExact, Literal: "/pkg.Svc"}},
		{name: "exact with a third segment", path: mesh.PathMatch{Kind: mesh.PathExact, Literal: "/pkg.Svc/Do/x"}},
		{name: "invalid service", path: mesh.PathMatch{Kind: mesh.PathExact, Literal: "/pkg-x/Do"}},
		{name: "regex", path: mesh.PathMatch{Kind: mesh.PathRegex, Regex: "/pkg\\.Svc/.*"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := grpcMethod(tc.path)
			switch {
			case ok != tc.ok:
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			case !ok || tc.none:
				if m != nil {
					t.Errorf("got %+v, want no method match", m)
				}
			case ptrValue(m.Service) != tc.service || ptrValue(m.Method) != nonEmpty(tc.method):
				t.Errorf("got service %s method %s, want %q %q", ptrValue(m.Service), ptrValue(m.Method), tc.service, tc.method)
			}
		})
	}
}

func nonEmpty(s string) string {
	if s == "" {
		return "<nil>"
	}
	return s
}

func TestTranslateEmptyModel(t *testing.T) {
	out, diags := Translate(mesh.Model{}, mesh.Settings{})
	if len(out.Objects()) != 0 || len(diags) != 0 {
		t.Errorf("empty model gave %d objects and diagnostics %v", len(out.Objects()), diags)
	}
}

// TestEveryRouteNamesEveryServiceOfItsSplit: whatever the weights, each HTTPRoute and GRPCRoute
// of a split names with a positive weight every Service the split may route to (its backends and
// its apex), so that a proxyless gRPC client holds their clusters before a change sends calls
// there (the standby rule).
func TestEveryRouteNamesEveryServiceOfItsSplit(t *testing.T) {
	port := func(name string, appProtocol string) mesh.ServicePort {
		return mesh.ServicePort{Name: name, Port: 80, Protocol: corev1.ProtocolTCP, AppProtocol: appProtocol}
	}
	service := func(name string) mesh.Service {
		return mesh.Service{Namespace: "shop", Name: name, FQDN: name + ".shop.svc.cluster.local",
			Ports: []mesh.ServicePort{port("grpc", "grpc")}}
	}
	for _, weights := range [][2]int{{1, 0}, {0, 1}, {3, 1}} {
		for _, proto := range []string{"grpc", "http"} {
			apex := service("web")
			apex.Ports = []mesh.ServicePort{port(proto, proto)}
			split := mesh.Split{Source: mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "web"}, Apex: apex,
				Backends: []mesh.Backend{{Service: service("web-v1"), Weight: weights[0]}, {Service: service("web-v2"), Weight: weights[1]}}}
			out, _ := Translate(mesh.Model{Splits: []mesh.Split{split}}, mesh.Settings{})
			for _, r := range out.Objects() {
				named := map[string]bool{}
				switch r := r.(type) {
				case *gatewayv1.HTTPRoute:
					for _, rule := range r.Spec.Rules {
						for _, ref := range rule.BackendRefs {
							named[string(ref.Name)] = named[string(ref.Name)] || *ref.Weight > 0
						}
					}
				case *gatewayv1.GRPCRoute:
					for _, rule := range r.Spec.Rules {
						for _, ref := range rule.BackendRefs {
							named[string(ref.Name)] = named[string(ref.Name)] || *ref.Weight > 0
						}
					}
				default:
					continue
				}
				for _, svc := range []string{"web", "web-v1", "web-v2"} {
					if !named[svc] {
						t.Errorf("weights %v, %s: %T %s names no %s with a positive weight", weights, proto, r, r.GetName(), svc)
					}
				}
			}
		}
	}
}

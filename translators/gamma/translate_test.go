package gamma

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

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

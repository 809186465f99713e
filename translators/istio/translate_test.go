package istio

import (
	"maps"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

func TestHandlingOf(t *testing.T) {
	tests := []struct {
		name string
		port mesh.ServicePort
		want portHandling
	}{
		{"name http", mesh.ServicePort{Name: "http"}, httpPort},
		{"name prefix http-", mesh.ServicePort{Name: "http-web"}, httpPort},
		{"name http2", mesh.ServicePort{Name: "http2"}, httpPort},
		{"name grpc-web is grpc", mesh.ServicePort{Name: "grpc-web"}, httpPort},
		{"name h2c", mesh.ServicePort{Name: "h2c-api"}, httpPort},
		{"name is case-insensitive", mesh.ServicePort{Name: "HTTP-admin"}, httpPort},
		{"name tcp", mesh.ServicePort{Name: "tcp-postgres"}, tcpPort},
		{"name https is TLS, routed as TCP", mesh.ServicePort{Name: "https"}, tcpPort},
		{"name mysql", mesh.ServicePort{Name: "mysql"}, tcpPort},
		{"prefix must end at a dash", mesh.ServicePort{Name: "httpx"}, sniffedPort},
		{"no name: sniffed", mesh.ServicePort{}, sniffedPort},
		{"unknown name: sniffed", mesh.ServicePort{Name: "web"}, sniffedPort},
		{"appProtocol wins over the name", mesh.ServicePort{Name: "http", AppProtocol: "tcp"}, tcpPort},
		{"appProtocol kubernetes.io/h2c", mesh.ServicePort{Name: "api", AppProtocol: "kubernetes.io/h2c"}, httpPort},
		{"appProtocol kubernetes.io/wss is TLS", mesh.ServicePort{AppProtocol: "kubernetes.io/wss"}, tcpPort},
		{"unknown appProtocol falls back to the name", mesh.ServicePort{Name: "grpc", AppProtocol: "example.com/custom"}, httpPort},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.port.Protocol = corev1.ProtocolTCP
			if got := handlingOf(tc.port); got != tc.want {
				t.Errorf("handlingOf(%+v) = %+v, want %+v", tc.port, got, tc.want)
			}
		})
	}
}

func TestPathValue(t *testing.T) {
	tests := []struct {
		name   string
		path   mesh.PathMatch
		want   string
		wantOK bool
	}{
		{"exact", mesh.PathMatch{Kind: mesh.PathExact, Literal: "/login"}, "/login", true},
		{"prefix", mesh.PathMatch{Kind: mesh.PathPrefix, Literal: "/api/"}, "/api/*", true},
		{"regex", mesh.PathMatch{Kind: mesh.PathRegex, Regex: "/v[0-9]"}, "", false},
		{"a star in a literal would be a wildcard", mesh.PathMatch{Kind: mesh.PathExact, Literal: "/a*"}, "", false},
		{"a star in a prefix would be a template", mesh.PathMatch{Kind: mesh.PathPrefix, Literal: "/a/*/b"}, "", false},
		{"empty exact path", mesh.PathMatch{Kind: mesh.PathExact}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := pathValue(tc.path)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("pathValue(%+v) = %q, %v; want %q, %v", tc.path, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestHeaderValue(t *testing.T) {
	tests := []struct {
		name   string
		header mesh.HeaderMatch
		want   string
		wantOK bool
	}{
		{"present", mesh.HeaderMatch{Kind: mesh.HeaderPresent}, "*", true},
		{"exact", mesh.HeaderMatch{Kind: mesh.HeaderExact, Literal: "1"}, "1", true},
		{"prefix", mesh.HeaderMatch{Kind: mesh.HeaderPrefix, Literal: "Bearer "}, "Bearer *", true},
		{"suffix", mesh.HeaderMatch{Kind: mesh.HeaderSuffix, Literal: "Android"}, "*Android", true},
		{"regex", mesh.HeaderMatch{Kind: mesh.HeaderRegex, Regex: ".*x.*"}, "", false},
		{"a star in a literal would be a wildcard", mesh.HeaderMatch{Kind: mesh.HeaderExact, Literal: "a*"}, "", false},
		{"empty exact value", mesh.HeaderMatch{Kind: mesh.HeaderExact}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := headerValue(tc.header)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("headerValue(%+v) = %q, %v; want %q, %v", tc.header, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestTranslateEmptyModel(t *testing.T) {
	out, diags := Translate(mesh.Model{}, mesh.Settings{MTLS: true})
	if len(out.Objects()) != 0 || len(diags) != 0 {
		t.Errorf("empty model gave %d objects and diagnostics %v", len(out.Objects()), diags)
	}
}

// TestTranslateIsPure: the model is not changed, and the output shares nothing with it, so the
// controller may edit what it gets (owner references) without touching the next translation.
func TestTranslateIsPure(t *testing.T) {
	web := mesh.Service{Namespace: "shop", Name: "web", FQDN: "web.shop.svc.cluster.local",
		Ports: []mesh.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}
	model := mesh.Model{
		Splits: []mesh.Split{{Source: mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "canary"},
			Apex: web, Backends: []mesh.Backend{{Service: web, Weight: 1}}}},
		AccessRules: []mesh.AccessRule{{
			Source:      mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "tt"},
			Destination: mesh.Identity{Namespace: "shop", ServiceAccount: "web", SPIFFEID: "spiffe://cluster.local/ns/shop/sa/web"},
			Sources:     []mesh.Identity{{Namespace: "shop", ServiceAccount: "a", SPIFFEID: "spiffe://cluster.local/ns/shop/sa/a"}},
			TCP:         mesh.PortSet{Ports: []int32{80}},
			Workloads:   []mesh.Workload{{Kind: "Deployment", Name: "web", Selector: map[string]string{"app": "web"}}},
		}},
	}
	settings := mesh.Settings{MTLS: true}
	before := cloneModel(model)
	out, _ := Translate(model, settings)
	if d := cmp.Diff(before, model); d != "" {
		t.Errorf("Translate changed its model (-before +after):\n%s", d)
	}
	for _, ap := range out.AuthorizationPolicies {
		if ap.Spec.Selector != nil {
			ap.Spec.Selector.MatchLabels["app"] = "changed"
		}
	}
	for _, pa := range out.PeerAuthentications {
		pa.Spec.Selector.MatchLabels["app"] = "changed"
	}
	if d := cmp.Diff(before, model); d != "" {
		t.Errorf("output shares selectors with the model (-before +after):\n%s", d)
	}
}

func cloneModel(m mesh.Model) mesh.Model {
	out := mesh.Model{Splits: slices.Clone(m.Splits), AccessRules: slices.Clone(m.AccessRules)}
	for i := range out.AccessRules {
		ws := slices.Clone(out.AccessRules[i].Workloads)
		for j := range ws {
			ws[j].Selector = maps.Clone(ws[j].Selector)
		}
		out.AccessRules[i].Workloads = ws
	}
	return out
}

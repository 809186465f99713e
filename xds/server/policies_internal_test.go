package server

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
)

// TestPolicyChangesOnlyItsServicesVersions: a TrafficPolicy set, changed, moved and removed
// changes the versions of the routes and clusters of its Service (and of the Service it left),
// of its gRPC client listeners and of the Envoy outbound listener only where a fault or an idle
// timeout puts something on them, and of nothing else: what the caches rebuild and push. The same
// policy again changes nothing.
func TestPolicyChangesOnlyItsServicesVersions(t *testing.T) {
	s := New(Options{Log: logr.Discard()})
	service := func(name, ip string) mesh.Service {
		return mesh.Service{Namespace: "shop", Name: name, FQDN: name + ".shop.svc.cluster.local", ClusterIPs: []string{ip},
			Ports: []mesh.ServicePort{{Name: "grpc", Port: 80, Protocol: corev1.ProtocolTCP, AppProtocol: "grpc"},
				{Name: "tcp", Port: 5432, Protocol: corev1.ProtocolTCP}}}
	}
	web, db := service("web", "10.96.0.10"), service("db", "10.96.0.20")
	for _, svc := range []mesh.Service{web, db} {
		s.SetService(k8stypes.NamespacedName{Namespace: "shop", Name: svc.Name}, svc, nil)
	}
	// versions are every resource's version, by source and name.
	versions := func() map[string]string {
		out := map[string]string{"envoy-listener outbound": versionOf("outbound-", s.outboundVersion)}
		record := func(kind, name string, version func(scope, name string) (string, bool)) {
			v, ok := version("", name)
			if !ok {
				t.Fatalf("no %s %s", kind, name)
			}
			out[kind+" "+name] = v
		}
		for _, svc := range []mesh.Service{web, db} {
			for _, port := range []int32{80, 5432} {
				listener, cluster := xds.ListenerName(svc, port), xds.ClusterName(svc, port)
				record("grpc-listener", listener, s.sources.grpcListeners.Version)
				record("grpc-route", listener, s.sources.grpcRoutes.Version)
				record("envoy-route", listener, s.sources.envoyRoutes.Version)
				record("grpc-cluster", cluster, s.sources.grpcClusters.Version)
				record("envoy-cluster", cluster, s.sources.envoyClusters.Version)
				record("endpoints", cluster, s.sources.endpoints.Version)
			}
		}
		return out
	}
	routesAndClusters := func(svc mesh.Service) []string {
		var out []string
		for _, port := range []int32{80, 5432} {
			listener, cluster := xds.ListenerName(svc, port), xds.ClusterName(svc, port)
			out = append(out, "grpc-route "+listener, "envoy-route "+listener, "grpc-cluster "+cluster, "envoy-cluster "+cluster)
		}
		return out
	}
	source := mesh.ObjectRef{Kind: policyv1alpha1.TrafficPolicyKind, Namespace: "shop", Name: "p"}
	fault := &mesh.Fault{Abort: &mesh.FaultAbort{HTTPStatus: 503, Percent: 100}}
	for _, step := range []struct {
		name   string
		policy *mesh.Policy
		want   []string
	}{
		{"retries on web", &mesh.Policy{Source: source, Service: web, Retries: &mesh.Retries{Attempts: 2}},
			routesAndClusters(web)},
		{"the same again", &mesh.Policy{Source: source, Service: web, Retries: &mesh.Retries{Attempts: 2}}, nil},
		{"a fault on web's gRPC port", &mesh.Policy{Source: source, Service: web, Port: 80, Fault: fault},
			append(routesAndClusters(web), "grpc-listener "+xds.ListenerName(web, 80), "envoy-listener outbound")},
		{"a fault of another status", &mesh.Policy{Source: source, Service: web, Port: 80, Fault: &mesh.Fault{Abort: &mesh.FaultAbort{HTTPStatus: 500, Percent: 100}}},
			routesAndClusters(web)},
		{"moved to db, with an idle timeout", &mesh.Policy{Source: source, Service: db, IdleTimeout: time.Minute},
			append(append(routesAndClusters(web), routesAndClusters(db)...), "grpc-listener "+xds.ListenerName(web, 80), "envoy-listener outbound")},
		{"removed", nil, append(routesAndClusters(db), "envoy-listener outbound")},
		{"removed again", nil, nil},
	} {
		before := versions()
		s.SetPolicy(source, step.policy)
		after := versions()
		var changed []string
		for name, v := range after {
			if before[name] != v {
				changed = append(changed, name)
			}
		}
		slices.Sort(changed)
		if want := slices.Sorted(slices.Values(step.want)); !slices.Equal(changed, want) {
			t.Errorf("%s: changed versions %v, want %v", step.name, changed, want)
		}
	}
	if len(s.policies) != 0 || len(s.policyService) != 0 || len(s.policyVersion) != 0 {
		t.Errorf("the server still holds policies %v, by source %v, versions %v: none is set",
			slices.Collect(maps.Keys(s.policies)), s.policyService, s.policyVersion)
	}
}

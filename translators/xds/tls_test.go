package xds

import (
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/smi-operator/smi-operator/test/corpus"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// TestBuildEndpointsTakesEachEndpointsPodIdentity: an endpoint's ServiceAccount is its Pod's,
// and none when the Pod cannot be told for sure.
func TestBuildEndpointsTakesEachEndpointsPodIdentity(t *testing.T) {
	svc := corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
	pod := func(ns, name, uid string, spec corev1.PodSpec) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}, Spec: spec}
	}
	pods := []corev1.Pod{
		pod("shop", "named", "u1", corev1.PodSpec{ServiceAccountName: "web"}),
		pod("shop", "deprecated-field", "u2", corev1.PodSpec{DeprecatedServiceAccount: "legacy"}),
		pod("shop", "no-account", "u3", corev1.PodSpec{}),
		pod("shop", "recreated", "new-uid", corev1.PodSpec{ServiceAccountName: "web"}),
		pod("elsewhere", "other-namespace", "u5", corev1.PodSpec{ServiceAccountName: "web"}),
	}
	for _, tc := range []struct {
		name string
		ref  *corev1.ObjectReference
		want string
	}{
		{"serviceAccountName", &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "named", UID: "u1"}, "web"},
		{"UID left out", &corev1.ObjectReference{Kind: "Pod", Name: "named"}, "web"},
		{"the deprecated serviceAccount", &corev1.ObjectReference{Kind: "Pod", Name: "deprecated-field"}, "legacy"},
		{"neither: default", &corev1.ObjectReference{Kind: "Pod", Name: "no-account"}, "default"},
		{"no reference", nil, ""},
		{"not a Pod", &corev1.ObjectReference{Kind: "Node", Name: "named"}, ""},
		{"a Pod not known yet", &corev1.ObjectReference{Kind: "Pod", Name: "absent"}, ""},
		{"a Pod known with another UID", &corev1.ObjectReference{Kind: "Pod", Name: "recreated", UID: "old-uid"}, ""},
		{"a Pod of another namespace", &corev1.ObjectReference{Kind: "Pod", Namespace: "elsewhere", Name: "other-namespace"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slice := discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Namespace: "shop", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{{Port: ptr.To(int32(8080))}},
				Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, TargetRef: tc.ref}},
			}
			got := BuildEndpoints([]corev1.Service{svc}, []discoveryv1.EndpointSlice{slice}, pods)
			eps := got[ServiceKey{Namespace: "shop", Name: "web", Port: 80}]
			if len(eps) != 1 || eps[0].ServiceAccount != tc.want {
				t.Errorf("endpoints %+v, want one running as %q", eps, tc.want)
			}
		})
	}
}

// TestServerIdentities: the SPIFFE IDs of the known ServiceAccounts of the endpoints a client may
// be sent to, each once, in the settings' trust domain; the match-nothing one when none is known.
func TestServerIdentities(t *testing.T) {
	ready := func(addr, sa string) Endpoint {
		return Endpoint{Address: addr, Port: 80, Ready: true, ServiceAccount: sa}
	}
	for _, tc := range []struct {
		name      string
		endpoints []Endpoint
		settings  mesh.Settings
		want      []string
	}{
		{"no endpoints", nil, mesh.Settings{}, []string{NobodySPIFFEID}},
		{"no endpoint's Pod known", []Endpoint{ready("10.0.0.1", ""), ready("10.0.0.2", "")}, mesh.Settings{}, []string{NobodySPIFFEID}},
		{"two accounts, one twice, one endpoint unknown",
			[]Endpoint{ready("10.0.0.3", "web"), ready("10.0.0.1", "web-canary"), ready("10.0.0.2", "web"), ready("10.0.0.4", "")},
			mesh.Settings{}, []string{"spiffe://cluster.local/ns/shop/sa/web", "spiffe://cluster.local/ns/shop/sa/web-canary"}},
		{"a not-ready endpoint gets no traffic, its identity is not accepted",
			[]Endpoint{ready("10.0.0.1", "web"), {Address: "10.0.0.2", Port: 80, ServiceAccount: "intruder"}},
			mesh.Settings{}, []string{"spiffe://cluster.local/ns/shop/sa/web"}},
		{"trust domain", []Endpoint{ready("10.0.0.1", "web")}, mesh.Settings{TrustDomain: "example.org"},
			[]string{"spiffe://example.org/ns/shop/sa/web"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, ServerIdentities("shop", tc.endpoints, tc.settings)); d != "" {
				t.Errorf("ServerIdentities (-want +got):\n%s", d)
			}
		})
	}
}

// TestEveryTLSClusterAcceptsItsEndpointsIdentities (secure naming) runs every input of the
// repository (package test/corpus) through both translations: every cluster with mutual TLS,
// proxyless or Envoy's, accepts exactly the server identities of its endpoints (ServerIdentities),
// as exact matches in match_subject_alt_names, the one field every client reads, and never an
// empty list, which Envoy and gRPC read as "any certificate of the mesh".
func TestEveryTLSClusterAcceptsItsEndpointsIdentities(t *testing.T) {
	cases, err := corpus.All("../..")
	if err != nil {
		t.Fatal(err)
	}
	var known, nobody int
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			model, _ := mesh.Build(c.Snapshot, c.Settings)
			endpoints := BuildEndpoints(c.Snapshot.Services, c.EndpointSlices, c.Pods)
			want := map[string][]string{}
			services := make([]mesh.Service, len(c.Snapshot.Services))
			for i := range c.Snapshot.Services {
				svc := mesh.ServiceOf(&c.Snapshot.Services[i], c.Settings)
				services[i] = svc
				for _, p := range svc.Ports {
					want[ClusterName(svc, p.Port)] = ServerIdentities(svc.Namespace, endpoints[ServiceKey{Namespace: svc.Namespace, Name: svc.Name, Port: p.Port}], c.Settings)
				}
			}
			grpc, _ := Translate(model, services, endpoints, c.Settings)
			envoy, _ := TranslateEnvoy(model, services, endpoints, c.Settings)
			for _, cl := range slices.Concat(grpc.Clusters, envoy.Clusters) {
				if cl.TransportSocket == nil {
					continue
				}
				got := clusterSANs(t, cl)
				if d := cmp.Diff(want[cl.Name], got); d != "" || len(got) == 0 {
					t.Errorf("cluster %s accepts %v, want its endpoints' identities (-want +got):\n%s", cl.Name, got, d)
				}
				if slices.Equal(got, []string{NobodySPIFFEID}) {
					nobody++
				} else {
					known++
				}
			}
		})
	}
	if known == 0 || nobody == 0 {
		t.Errorf("%d TLS clusters with known server identities, %d with none: the corpus does not exercise both", known, nobody)
	}
}

// clusterSANs are the exact SAN matches of a cluster's upstream TLS, failing the test on any
// other kind of matcher or on match_typed_subject_alt_names, which Envoy before 1.21 and every
// gRPC library ignore.
func clusterSANs(t *testing.T, c *clusterv3.Cluster) []string {
	t.Helper()
	var tlsContext tlsv3.UpstreamTlsContext
	if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&tlsContext); err != nil {
		t.Fatalf("cluster %s: %v", c.Name, err)
	}
	common := tlsContext.GetCommonTlsContext()
	validation := common.GetValidationContext()
	if combined := common.GetCombinedValidationContext(); combined != nil {
		validation = combined.GetDefaultValidationContext()
	}
	if len(validation.GetMatchTypedSubjectAltNames()) != 0 {
		t.Errorf("cluster %s sets match_typed_subject_alt_names", c.Name)
	}
	var out []string
	for _, m := range validation.GetMatchSubjectAltNames() {
		if m.GetExact() == "" || m.GetIgnoreCase() {
			t.Errorf("cluster %s: SAN matcher %v is not an exact one", c.Name, m)
		}
		out = append(out, m.GetExact())
	}
	return out
}

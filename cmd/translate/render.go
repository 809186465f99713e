package translate

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/smi-operator/smi-operator/cmd/translate/manifest"
	"github.com/smi-operator/smi-operator/translators/istio"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
)

// writeIstio writes the Istio objects as a YAML stream, each as the operator applies it
// (controllers/owned): its JSON without status and the metadata the server owns. The owner
// reference the operator adds is left out: it needs the UID the API server gives the SMI object.
func writeIstio(w *bytes.Buffer, out istio.Output) error {
	return manifest.Write(w, out.Objects())
}

// xdsDocument is the JSON the xDS backend renders to: what the operator's xDS server would serve.
type xdsDocument struct {
	// GRPC is what proxyless gRPC clients get besides the shared resources (--proxy=grpc or all).
	GRPC *proxyDocument `json:"grpc,omitempty"`
	// Envoy is what Envoy sidecars get besides the shared resources (--proxy=envoy or all).
	Envoy *proxyDocument `json:"envoy,omitempty"`
	// RouteConfigurations and ClusterLoadAssignments are the same for both kinds of clients.
	RouteConfigurations    []any `json:"routeConfigurations"`
	ClusterLoadAssignments []any `json:"clusterLoadAssignments"`
	// Identities are the destinations of TrafficTargets, sorted; AnyOtherIdentity is what every
	// other workload identity gets.
	Identities       []identityDocument `json:"identities"`
	AnyOtherIdentity identityDocument   `json:"anyOtherIdentity"`
}

type proxyDocument struct {
	Listeners []any `json:"listeners"`
	Clusters  []any `json:"clusters"`
}

// identityDocument holds the pieces served per workload identity.
type identityDocument struct {
	Identity string `json:"identity"`
	SPIFFEID string `json:"spiffeID,omitempty"`
	// TrafficTargets are those whose rules make up the identity's RBAC, as namespace/name.
	TrafficTargets []string `json:"trafficTargets"`
	// GRPCServerListeners are the Listeners proxyless gRPC servers running as the identity get,
	// one per listening address 0.0.0.0:<port>.
	GRPCServerListeners []any `json:"grpcServerListeners,omitempty"`
	// EnvoyInboundListener is the inbound listener of its Envoy sidecars.
	EnvoyInboundListener any `json:"envoyInboundListener,omitempty"`
}

// defaultGRPCServerPort is the port of the gRPC server Listener rendered for an identity whose
// TrafficTargets name no port, unless --grpc-server-ports says otherwise.
const defaultGRPCServerPort = 8080

// endpointInputs are the inputs the model does not take and the xDS translator does: the
// EndpointSlices, and the Pods their endpoints name.
type endpointInputs struct {
	slices []discoveryv1.EndpointSlice
	pods   []corev1.Pod
}

// writeXDS writes the xDS resources as one JSON document and returns the backend's diagnostics.
func writeXDS(w *bytes.Buffer, model mesh.Model, snap mesh.Snapshot, in endpointInputs, opts options) ([]mesh.Diagnostic, error) {
	services := make([]mesh.Service, len(snap.Services))
	for i := range snap.Services {
		services[i] = mesh.ServiceOf(&snap.Services[i], opts.settings)
	}
	endpoints := xds.BuildEndpoints(snap.Services, in.slices, in.pods)
	grpc, envoy := opts.proxy != proxyEnvoy, opts.proxy != proxyGRPC
	var doc xdsDocument
	var diags []mesh.Diagnostic
	var err error
	p := &protoJSON{}
	// Translate and TranslateEnvoy report the same diagnostics and share RouteConfigurations and
	// ClusterLoadAssignments.
	if grpc {
		out, d := xds.Translate(model, services, endpoints, opts.settings)
		diags = d
		doc.RouteConfigurations, doc.ClusterLoadAssignments = messages(p, out.RouteConfigurations), messages(p, out.ClusterLoadAssignments)
		doc.GRPC = &proxyDocument{Listeners: messages(p, out.Listeners), Clusters: messages(p, out.Clusters)}
	}
	if envoy {
		out, d := xds.TranslateEnvoy(model, services, endpoints, opts.settings)
		diags = d
		doc.RouteConfigurations, doc.ClusterLoadAssignments = messages(p, out.RouteConfigurations), messages(p, out.ClusterLoadAssignments)
		doc.Envoy = &proxyDocument{Listeners: messages(p, out.Listeners), Clusters: messages(p, out.Clusters)}
	}

	type identity struct{ namespace, serviceAccount string }
	var ids []identity
	spiffe := map[identity]string{}
	for _, r := range model.AccessRules {
		id := identity{r.Destination.Namespace, r.Destination.ServiceAccount}
		if _, ok := spiffe[id]; !ok {
			ids = append(ids, id)
			spiffe[id] = r.Destination.SPIFFEID
		}
	}
	slices.SortFunc(ids, func(a, b identity) int {
		return cmp.Or(cmp.Compare(a.namespace, b.namespace), cmp.Compare(a.serviceAccount, b.serviceAccount))
	})
	doc.Identities = []identityDocument{}
	for _, id := range ids {
		rules := xds.RulesFor(model.AccessRules, id.namespace, id.serviceAccount)
		d := identityDocument{Identity: id.namespace + "/" + id.serviceAccount, SPIFFEID: spiffe[id], TrafficTargets: []string{}}
		for _, r := range rules {
			if t := r.Source.Namespace + "/" + r.Source.Name; !slices.Contains(d.TrafficTargets, t) {
				d.TrafficTargets = append(d.TrafficTargets, t)
			}
		}
		// An identity with rules is enforced wherever it runs, as the server builds it.
		if err = identityPieces(p, &d, rules, grpc, envoy, opts); err != nil {
			return diags, err
		}
		doc.Identities = append(doc.Identities, d)
	}
	doc.AnyOtherIdentity = identityDocument{Identity: "any identity no TrafficTarget names", TrafficTargets: []string{}}
	if err = identityPieces(p, &doc.AnyOtherIdentity, nil, grpc, envoy, opts); err != nil {
		return diags, err
	}

	if p.err != nil {
		return diags, p.err
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // regexes and paths read as written: & < > stay as they are
	enc.SetIndent("", "  ")
	return diags, enc.Encode(doc)
}

// identityPieces renders the Listeners of one identity, whose access rules are rules.
func identityPieces(p *protoJSON, d *identityDocument, rules []mesh.AccessRule, grpc, envoy bool, opts options) error {
	if grpc {
		d.GRPCServerListeners = []any{}
		for _, port := range serverPorts(rules, opts.grpcServerPorts) {
			l, err := xds.ServerListener(xds.ServerListenerName("0.0.0.0", port), rules, opts.settings)
			if err != nil {
				return fmt.Errorf("gRPC server Listener of %s: %w", d.Identity, err)
			}
			d.GRPCServerListeners = append(d.GRPCServerListeners, p.message(l))
		}
	}
	if envoy {
		l, err := xds.InboundListener(rules, opts.settings)
		if err != nil {
			return fmt.Errorf("Envoy inbound listener of %s: %w", d.Identity, err)
		}
		d.EnvoyInboundListener = p.message(l)
	}
	return nil
}

// serverPorts are the ports to render gRPC server Listeners for: those given, else every port
// the rules name (HTTP ports scoped by TCPRoutes, TCP ports), else defaultGRPCServerPort.
func serverPorts(rules []mesh.AccessRule, given []uint32) []uint32 {
	if len(given) > 0 {
		return given
	}
	var ports []uint32
	for _, r := range rules {
		for _, p := range slices.Concat(r.HTTPPorts.Ports, r.TCP.Ports) {
			if p > 0 && !slices.Contains(ports, uint32(p)) {
				ports = append(ports, uint32(p))
			}
		}
	}
	if len(ports) == 0 {
		return []uint32{defaultGRPCServerPort}
	}
	slices.Sort(ports)
	return ports
}

// protoJSON turns xDS resources into JSON values, remembering the first error.
type protoJSON struct {
	err error
}

func messages[T proto.Message](p *protoJSON, msgs []T) []any {
	out := make([]any, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, p.message(m))
	}
	return out
}

// message is m's protojson as a JSON value, so that the document's encoder lays it out: protojson's
// own whitespace is deliberately unstable, encoding/json's (with sorted keys) is not.
func (p *protoJSON) message(m proto.Message) any {
	raw, err := protojson.Marshal(m)
	if err != nil {
		p.err = cmp.Or(p.err, err)
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // numbers as written, whatever their size
	var v any
	if err := dec.Decode(&v); err != nil {
		p.err = cmp.Or(p.err, err)
	}
	return v
}

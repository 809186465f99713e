package linkerd

import (
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/smi-operator/smi-operator/apis/linkerd"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/translators/gamma"
	"github.com/smi-operator/smi-operator/translators/internal/objectlist"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Reasons this translator reports, beyond package mesh's and gamma's.
const (
	// ReasonPortsNotDeclared (a warning): a rule on every port of its destination, which Linkerd
	// enforces only on the ports a Server names: those the workload's pod template declares.
	ReasonPortsNotDeclared = "PortsNotDeclared"
	// ReasonDefaultDenyNotWritten (a warning, enforcing mode): SMI's deny-by-default for the
	// workloads and ports no TrafficTarget names is Linkerd's default inbound policy, which no
	// policy resource sets.
	ReasonDefaultDenyNotWritten = "DefaultDenyNotWritten"
)

// Linkerd's limits of an HTTPRoute: matches in a rule, rules in a route, headers in a match.
const (
	maxMatchesPerRule = 8
	maxRules          = 16
	maxHeaderMatches  = 16
)

// Output is the desired set of Linkerd policy objects. Each list is sorted by namespace, then
// name.
type Output struct {
	Servers                []*linkerd.Server
	HTTPRoutes             []*linkerd.HTTPRoute
	MeshTLSAuthentications []*linkerd.MeshTLSAuthentication
	AuthorizationPolicies  []*linkerd.AuthorizationPolicy
}

// Objects returns every object of o, kind by kind in the order of o's fields: what an object
// references comes before it.
func (o Output) Objects() []client.Object {
	var out []client.Object
	out = objectlist.Append(out, o.Servers)
	out = objectlist.Append(out, o.HTTPRoutes)
	out = objectlist.Append(out, o.MeshTLSAuthentications)
	return objectlist.Append(out, o.AuthorizationPolicies)
}

// Translate turns the model's access rules into Linkerd policy objects and reports what Linkerd
// cannot express. The model must come from mesh.Build with the same settings. Splits and
// TrafficPolicies are not its business (package gamma writes the routes).
func Translate(model mesh.Model, settings mesh.Settings) (Output, []mesh.Diagnostic) {
	t := &translator{servers: map[string]bool{}}
	for i := range model.AccessRules {
		t.accessRule(&model.AccessRules[i], settings)
	}
	objectlist.Sort(t.out.Servers)
	objectlist.Sort(t.out.HTTPRoutes)
	objectlist.Sort(t.out.MeshTLSAuthentications)
	objectlist.Sort(t.out.AuthorizationPolicies)
	return t.out, t.diags.Sorted()
}

// translator accumulates the objects of one Translate call.
type translator struct {
	out   Output
	diags mesh.Diagnostics
	// servers are the names of the Servers written, namespace/name: two rules of one destination
	// share them.
	servers map[string]bool
}

// accessRule writes, for each destination workload, a Server per port the rule opens, and lets
// the sources (one MeshTLSAuthentication) in: through an AuthorizationPolicy on the Server for
// TCP, through an HTTPRoute of the rule's matches and an AuthorizationPolicy on it for HTTP. A
// Server denies whatever no AuthorizationPolicy allows, so a rule without sources still writes
// its Servers: its ports accept nothing.
func (t *translator) accessRule(r *mesh.AccessRule, settings mesh.Settings) {
	if !r.UDP.Empty() {
		t.diags.Warn(r.Source, smi.ConditionProgrammed, mesh.ReasonUDPNotEnforced,
			"the UDP rules (%s) are not enforced: Linkerd proxies TCP only, "+
				"so UDP traffic to ServiceAccount %q is neither allowed nor denied by this TrafficTarget", r.UDP.String(), r.Destination.ServiceAccount)
	}
	if settings.Enforcing() {
		t.diags.Warn(r.Source, smi.ConditionProgrammed, ReasonDefaultDenyNotWritten,
			"this TrafficTarget's ports of ServiceAccount %s/%s deny what it does not allow, but SMI's deny-by-default for "+
				"the workloads and ports no TrafficTarget names is Linkerd's default inbound policy, which no policy resource sets: "+
				"annotate namespace %q (or its workloads) with config.linkerd.io/default-inbound-policy: deny, or install Linkerd with that default",
			r.Destination.Namespace, r.Destination.ServiceAccount, r.Destination.Namespace)
	}
	rules, fits := t.httpRules(r)
	authn := t.meshTLSAuthentication(r)
	for _, w := range r.Workloads {
		for _, port := range t.ports(r, w, r.TCP) {
			server := t.server(r.Source, w, port)
			t.authorize(r, authn, w, port, linkerd.ServerKind, server)
		}
		if !fits {
			continue
		}
		for _, port := range t.ports(r, w, r.HTTPPorts) {
			server := t.server(r.Source, w, port)
			route := &linkerd.HTTPRoute{
				TypeMeta:   metav1.TypeMeta{APIVersion: linkerd.HTTPRouteVersion.String(), Kind: linkerd.HTTPRouteKind},
				ObjectMeta: objectMeta(r.Source, ruleName(r.Source, w, port)),
			}
			route.Spec.ParentRefs = []gatewayv1.ParentReference{{
				Group: ptr.To(gatewayv1.Group(linkerd.Group)), Kind: ptr.To(gatewayv1.Kind(linkerd.ServerKind)), Name: gatewayv1.ObjectName(server),
			}}
			for _, rule := range rules {
				route.Spec.Rules = append(route.Spec.Rules, *rule.DeepCopy())
			}
			t.out.HTTPRoutes = append(t.out.HTTPRoutes, route)
			t.authorize(r, authn, w, port, linkerd.HTTPRouteKind, route.Name)
		}
	}
}

// httpRules are the HTTPRoute rules of r's matches, at most maxMatchesPerRule each. fits is false,
// reported, when Linkerd's limits cannot hold them: no HTTP is then allowed, rather than some.
func (t *translator) httpRules(r *mesh.AccessRule) (_ []linkerd.HTTPRouteRule, fits bool) {
	if r.HTTPPorts.Empty() {
		return nil, true
	}
	var matches []gatewayv1.HTTPRouteMatch
	for _, m := range r.HTTP {
		if len(m.Headers) > maxHeaderMatches {
			t.diags.Warn(r.Source, smi.ConditionProgrammed, gamma.ReasonRouteLimitExceeded,
				"%s has %d headers, and a Linkerd HTTPRoute match holds at most %d; no HTTP request to ServiceAccount %q is allowed rather than more",
				m.Describe(), len(m.Headers), maxHeaderMatches, r.Destination.ServiceAccount)
			return nil, false
		}
		ms, _ := gamma.HTTPRouteMatches(m)
		matches = append(matches, ms...)
	}
	if len(matches) > maxMatchesPerRule*maxRules {
		t.diags.Warn(r.Source, smi.ConditionProgrammed, gamma.ReasonRouteLimitExceeded,
			"%d route matches (one per method of each HTTPRouteGroup match), and a Linkerd HTTPRoute holds at most %d; "+
				"no HTTP request to ServiceAccount %q is allowed rather than more", len(matches), maxMatchesPerRule*maxRules, r.Destination.ServiceAccount)
		return nil, false
	}
	var out []linkerd.HTTPRouteRule
	for c := range slices.Chunk(matches, maxMatchesPerRule) {
		out = append(out, linkerd.HTTPRouteRule{Matches: c})
	}
	return out, true
}

// ports resolves ports on w: every port is every port w's pod template declares, reported, since
// a Server names one port and w's pods may listen on others.
func (t *translator) ports(r *mesh.AccessRule, w mesh.Workload, ports mesh.PortSet) []int32 {
	if !ports.All {
		return ports.Ports
	}
	if len(w.Ports) == 0 {
		t.diags.Warn(r.Source, smi.ConditionProgrammed, ReasonPortsNotDeclared,
			"the rule applies to every port of %s %q, which declares no container port: Linkerd enforces access on the ports Servers name, "+
				"so none of this rule holds for its pods, which accept what Linkerd's default inbound policy allows; declare the ports, or name them with a TCPRoute",
			w.Kind, w.Name)
		return nil
	}
	t.diags.Warn(r.Source, smi.ConditionProgrammed, ReasonPortsNotDeclared,
		"the rule applies to every port of %s %q: Linkerd enforces access on the ports Servers name, so on the ports its pod template declares (%s); "+
			"on any other its pods accept what Linkerd's default inbound policy allows",
		w.Kind, w.Name, mesh.PortSet{Ports: w.Ports}.String())
	return w.Ports
}

// server writes, once, the Server of w's port and returns its name. Every rule of w's
// ServiceAccount names the same Server (Linkerd uses one Server per pod port), so its name
// depends on the workload and port alone; the rule that writes it first controls it, the others
// only reference it.
func (t *translator) server(src mesh.ObjectRef, w mesh.Workload, port int32) string {
	name := ServerName(w, port)
	if key := src.Namespace + "/" + name; !t.servers[key] {
		t.servers[key] = true
		s := &linkerd.Server{
			TypeMeta:   metav1.TypeMeta{APIVersion: linkerd.ServerVersion.String(), Kind: linkerd.ServerKind},
			ObjectMeta: objectMeta(src, name),
		}
		s.Spec = linkerd.ServerSpec{
			PodSelector:   &metav1.LabelSelector{MatchLabels: w.Selector},
			Port:          intstr.FromInt32(port),
			ProxyProtocol: linkerd.ProxyProtocolUnknown,
		}
		t.out.Servers = append(t.out.Servers, s)
	}
	return name
}

// ServerName is the name of the Server of a workload's port: <kind>-<workload>-<port>, shortened.
// Unique: the kind and the port hold no "-".
func ServerName(w mesh.Workload, port int32) string {
	return smi.ShortName(strings.ToLower(w.Kind) + "-" + w.Name + "-" + strconv.Itoa(int(port)))
}

// ruleName names the HTTPRoute and AuthorizationPolicy of src on w's port.
func ruleName(src mesh.ObjectRef, w mesh.Workload, port int32) string {
	return smi.ShortName(src.Name + "-" + strings.ToLower(w.Kind) + "-" + w.Name + "-" + strconv.Itoa(int(port)))
}

// meshTLSAuthentication writes the sources of r as one MeshTLSAuthentication and returns its name;
// "" when r has no source (Linkerd refuses one without identities, and nothing is allowed).
func (t *translator) meshTLSAuthentication(r *mesh.AccessRule) string {
	if len(r.Sources) == 0 {
		return ""
	}
	a := &linkerd.MeshTLSAuthentication{
		TypeMeta:   metav1.TypeMeta{APIVersion: linkerd.AuthorizationVersion.String(), Kind: linkerd.MeshTLSAuthenticationKind},
		ObjectMeta: objectMeta(r.Source, smi.ShortName(r.Source.Name)),
	}
	for _, s := range r.Sources {
		// A reference, not an identity string: Linkerd turns it into the identity of its own trust
		// domain, which the operator need not know.
		a.Spec.IdentityRefs = append(a.Spec.IdentityRefs, linkerd.ObjectReference{Kind: serviceAccountKind, Name: s.ServiceAccount, Namespace: s.Namespace})
	}
	t.out.MeshTLSAuthentications = append(t.out.MeshTLSAuthentications, a)
	return a.Name
}

const serviceAccountKind = "ServiceAccount"

// authorize writes the AuthorizationPolicy letting authn's clients use target (a Server or an
// HTTPRoute of w's port); none without sources.
func (t *translator) authorize(r *mesh.AccessRule, authn string, w mesh.Workload, port int32, kind, target string) {
	if authn == "" {
		return
	}
	ap := &linkerd.AuthorizationPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: linkerd.AuthorizationVersion.String(), Kind: linkerd.AuthorizationPolicyKind},
		ObjectMeta: objectMeta(r.Source, ruleName(r.Source, w, port)),
	}
	ap.Spec.TargetRef = linkerd.ObjectReference{Group: linkerd.Group, Kind: kind, Name: target}
	ap.Spec.RequiredAuthenticationRefs = []linkerd.ObjectReference{{Group: linkerd.Group, Kind: linkerd.MeshTLSAuthenticationKind, Name: authn}}
	t.out.AuthorizationPolicies = append(t.out.AuthorizationPolicies, ap)
}

// objectMeta is the metadata of an object generated from src.
func objectMeta(src mesh.ObjectRef, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: src.Namespace, Name: name, Labels: smi.SourceLabels(src.Kind, src.Name)}
}

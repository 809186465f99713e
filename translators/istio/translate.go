package istio

import (
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/translators/internal/objectlist"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// DefaultDenyName names the allow-nothing AuthorizationPolicy of enforcing mode.
const DefaultDenyName = "smi-default-deny"

// Output is the desired set of Istio objects. Each list is sorted by namespace, then name.
type Output struct {
	VirtualServices       []*networkingv1.VirtualService
	DestinationRules      []*networkingv1.DestinationRule
	AuthorizationPolicies []*securityv1.AuthorizationPolicy
	PeerAuthentications   []*securityv1.PeerAuthentication
}

// Objects returns every object of o, kind by kind in the order of o's fields.
func (o Output) Objects() []client.Object {
	out := make([]client.Object, 0, len(o.VirtualServices)+len(o.DestinationRules)+len(o.AuthorizationPolicies)+len(o.PeerAuthentications))
	out = objectlist.Append(out, o.VirtualServices)
	out = objectlist.Append(out, o.DestinationRules)
	out = objectlist.Append(out, o.AuthorizationPolicies)
	return objectlist.Append(out, o.PeerAuthentications)
}

// From returns the objects generated from the object of kind (smi.TrafficSplitKind, say) named
// name: what its reconciler writes, without the namespace baselines, which the namespace
// controller keeps, and without what its model's other objects generate (a TrafficPolicy's
// model holds the splits its settings merge into, and the other policies of its Service).
func (o Output) From(kind, name string) []client.Object {
	var out []client.Object
	for _, obj := range o.Objects() {
		if labels := obj.GetLabels(); labels[smi.LabelSourceKind] == kind && labels[smi.LabelSourceName] == smi.ShortName(name) {
			out = append(out, obj)
		}
	}
	return out
}

// Translate turns the mesh model into Istio objects and reports what Istio cannot express. The
// model must come from mesh.Build with the same settings, which carry the trust and cluster
// domains into it.
func Translate(model mesh.Model, settings mesh.Settings) (Output, []mesh.Diagnostic) {
	t := &translator{settings: settings}
	for i := range model.Splits {
		t.split(&model.Splits[i])
	}
	for i := range model.UnweightedSplits {
		t.split(&model.UnweightedSplits[i])
	}
	for i := range model.AccessRules {
		t.accessRule(&model.AccessRules[i])
	}
	t.defaultDeny(model.AccessNamespaces)
	t.policies(model.Policies) // after the splits, whose objects it merges into
	out := Output{
		VirtualServices:       t.virtualServices.finish(),
		DestinationRules:      t.destinationRules.finish(),
		AuthorizationPolicies: t.authorizationPolicies.finish(),
		PeerAuthentications:   t.peerAuthentications.finish(),
	}
	return out, t.diags.Sorted()
}

// translator accumulates the objects of one Translate call.
type translator struct {
	settings              mesh.Settings
	virtualServices       objects[*networkingv1.VirtualService]
	destinationRules      objects[*networkingv1.DestinationRule]
	authorizationPolicies objects[*securityv1.AuthorizationPolicy]
	peerAuthentications   objects[*securityv1.PeerAuthentication]
	diags                 mesh.Diagnostics
}

// source names what a generated object comes from, for its labels.
type source struct {
	kind, name string
}

func sourceOf(ref mesh.ObjectRef) source {
	return source{kind: ref.Kind, name: ref.Name}
}

// objectMeta is the metadata shared by every generated object; the name is set by objects.finish.
func objectMeta(namespace string, src source) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace: namespace,
		Labels:    smi.SourceLabels(src.kind, src.name),
	}
}

// The constructors set apiVersion and kind, which a generic client and server-side apply need.

func newVirtualService(namespace string, src source) *networkingv1.VirtualService {
	return &networkingv1.VirtualService{
		TypeMeta:   metav1.TypeMeta{APIVersion: networkingv1.SchemeGroupVersion.String(), Kind: "VirtualService"},
		ObjectMeta: objectMeta(namespace, src),
	}
}

func newDestinationRule(namespace string, src source) *networkingv1.DestinationRule {
	return &networkingv1.DestinationRule{
		TypeMeta:   metav1.TypeMeta{APIVersion: networkingv1.SchemeGroupVersion.String(), Kind: "DestinationRule"},
		ObjectMeta: objectMeta(namespace, src),
	}
}

func newAuthorizationPolicy(namespace string, src source) *securityv1.AuthorizationPolicy {
	return &securityv1.AuthorizationPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: securityv1.SchemeGroupVersion.String(), Kind: "AuthorizationPolicy"},
		ObjectMeta: objectMeta(namespace, src),
	}
}

func newPeerAuthentication(namespace string, src source) *securityv1.PeerAuthentication {
	return &securityv1.PeerAuthentication{
		TypeMeta:   metav1.TypeMeta{APIVersion: securityv1.SchemeGroupVersion.String(), Kind: "PeerAuthentication"},
		ObjectMeta: objectMeta(namespace, src),
	}
}

// objects collects generated objects of one kind together with the parts their names are built
// from; names are final only once every object is known, since collisions depend on all of them.
type objects[T client.Object] struct {
	items []named[T]
}

type named[T client.Object] struct {
	obj   T
	parts []string
}

func (o *objects[T]) add(obj T, nameParts ...string) {
	o.items = append(o.items, named[T]{obj: obj, parts: nameParts})
}

// finish names every object and returns them sorted by namespace and name.
func (o *objects[T]) finish() []T {
	names := uniqueNames(o.items)
	out := make([]T, len(o.items))
	for i, it := range o.items {
		it.obj.SetName(names[i])
		out[i] = it.obj
	}
	objectlist.Sort(out)
	return out
}

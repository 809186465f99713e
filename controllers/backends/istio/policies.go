package istio

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/controllers/index"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/controllers/status"
	istiotranslator "github.com/smi-operator/smi-operator/translators/istio"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Policies programs a TrafficPolicy: its settings go into the objects the splits of its Service
// write (their reconcilers merge them), and into a VirtualService and a DestinationRule of its own
// for a host that has none, controlled by the policy (or by the policy of the same Service they
// are named after: the policies of one Service share them). Istio reads one VirtualService and one
// DestinationRule per host, so while an object of the host the operator does not control exists,
// the policy writes nothing of its own and reports Conflicted: a second object for the host would
// be ignored, or would hide the user's. And a policy whose settings are in an object that is not
// written (a split's blocked by a user's object of its name) says so rather than Programmed.
type Policies struct {
	Writer   owned.Writer
	Settings mesh.Settings
}

// ReasonCarrierNotWritten (Programmed=False): the object a policy's settings go into, another
// source's, is not in the cluster as the operator writes it.
const ReasonCarrierNotWritten = "CarrierNotWritten"

// Program writes the policy's own objects, unless the host is taken, and checks the objects of
// other sources that carry its settings.
func (b Policies) Program(ctx context.Context, policy *policyv1alpha1.TrafficPolicy, models *mesh.Models) ([]mesh.Diagnostic, error) {
	self := mesh.ObjectRef{Kind: policyv1alpha1.TrafficPolicyKind, Namespace: policy.Namespace, Name: policy.Name}
	model, _ := models.BuiltWith(b.Settings)
	out, diags := istiotranslator.Translate(model, b.Settings)
	wanted := out.From(self.Kind, self.Name)
	var carriers []client.Object
	if p := model.PolicyOf(self); p != nil {
		carriers = istiotranslator.Carriers(out, p)
	}
	taken, err := b.hostsTaken(ctx, carriers)
	if err != nil {
		return nil, err
	}
	if len(taken) > 0 {
		wanted = nil // and whatever the policy wrote before goes
		for _, t := range taken {
			diags = append(diags, mesh.Diagnostic{Object: self, Condition: smi.ConditionAccepted, Reason: mesh.ReasonConflicted,
				Severity: mesh.SeverityError, Message: t + "; Istio reads one per host, so the policy writes nothing of its own and its settings may not apply"})
		}
	}
	res, err := b.Writer.Sync(ctx, policy, wanted, SplitGeneratedKinds())
	if err != nil {
		return nil, err
	}
	diags = append(diags, status.Conflicts(self, res.Conflicts)...)
	if len(taken) == 0 {
		missing, err := b.notWritten(ctx, carriers, self)
		if err != nil {
			return nil, err
		}
		for _, m := range missing {
			diags = append(diags, mesh.Diagnostic{Object: self, Condition: smi.ConditionProgrammed, Reason: ReasonCarrierNotWritten,
				Severity: mesh.SeverityError, Message: m})
		}
	}
	return diags, nil
}

// notWritten describes the carriers another source writes (a split, the policy of the Service
// they are named after) that the cache does not hold as that source's: not written yet, or
// blocked by an object of their name the operator does not control. The source's own status
// says why; a carrier written later reconciles the policy again (PolicyWatches).
func (b Policies) notWritten(ctx context.Context, carriers []client.Object, self mesh.ObjectRef) ([]string, error) {
	var missing []string
	for _, c := range carriers {
		labels := c.GetLabels()
		if labels[smi.LabelSourceKind] == self.Kind && labels[smi.LabelSourceName] == smi.ShortName(self.Name) {
			continue // the policy's own: Sync wrote it or reported why not
		}
		held := c.DeepCopyObject().(client.Object)
		err := b.Writer.Reader.Get(ctx, client.ObjectKeyFromObject(c), held)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
		if err == nil {
			if ref := metav1.GetControllerOf(held); ref != nil && ref.Kind == labels[smi.LabelSourceKind] && smi.ShortName(ref.Name) == labels[smi.LabelSourceName] {
				continue // the carrier's source controls it
			}
		}
		kind := reflect.TypeOf(c).Elem().Name()
		missing = append(missing, fmt.Sprintf("its settings go into %s %s/%s of %s %q, which is not written (see that object's status)",
			kind, c.GetNamespace(), c.GetName(), labels[smi.LabelSourceKind], labels[smi.LabelSourceName]))
	}
	return missing, nil
}

// Forget deletes what a deleted policy generated.
func (b Policies) Forget(ctx context.Context, ref mesh.ObjectRef) error {
	return b.Writer.PruneAfterDelete(ctx, ref.Kind, ref.Namespace, ref.Name, SplitGeneratedKinds())
}

// hostsTaken describes, for each kind among carriers (VirtualServices and DestinationRules, all
// for the host of one Service), the objects of that kind the operator did not generate that hold
// the host for the mesh's clients. It reads them from the cache through HostIndex, once per kind
// however many carry the policy: a VirtualService anywhere may name a host by its FQDN.
func (b Policies) hostsTaken(ctx context.Context, carriers []client.Object) ([]string, error) {
	var taken []string
	listed := map[reflect.Type]bool{}
	for _, carrier := range carriers {
		var list client.ObjectList
		var holds string
		switch carrier.(type) {
		case *networkingv1.VirtualService:
			list, holds = &networkingv1.VirtualServiceList{}, "routes host"
		case *networkingv1.DestinationRule:
			list, holds = &networkingv1.DestinationRuleList{}, "holds the traffic policy of host"
		default:
			continue
		}
		// The holders are listed by that Service and compared with that host.
		host, svc, ok := firstServiceHost(carrier)
		kind := reflect.TypeOf(carrier)
		if !ok || listed[kind] {
			continue // no Service to look its holders up by, or its kind is looked up already
		}
		listed[kind] = true
		// Only read: no copy.
		if err := b.Writer.Reader.List(ctx, list, client.MatchingFields{HostIndex: svc.String()}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return nil, err
		}
		for _, item := range items {
			o := item.(client.Object)
			if vs, ok := o.(*networkingv1.VirtualService); owned.Generated(o) || ok && !appliesToSidecars(vs) {
				continue
			}
			if slices.ContainsFunc(hostsOf(o), func(h string) bool { return sameHost(h, o.GetNamespace(), host) }) {
				taken = append(taken, fmt.Sprintf("%s %s/%s, not the operator's, %s %s",
					reflect.TypeOf(o).Elem().Name(), o.GetNamespace(), o.GetName(), holds, host))
			}
		}
	}
	return slices.Sorted(slices.Values(taken)), nil
}

// appliesToSidecars says whether Istio applies vs to the mesh's sidecars and proxyless clients, as
// it does the operator's: with no gateways, or with the reserved gateway "mesh" among them. A
// VirtualService bound to gateways only routes their traffic and competes with nothing of ours.
func appliesToSidecars(vs *networkingv1.VirtualService) bool {
	return len(vs.Spec.Gateways) == 0 || slices.Contains(vs.Spec.Gateways, "mesh")
}

// sameHost says whether host, written in an Istio object of namespace, is ours (a Service's FQDN,
// <name>.<namespace>.svc.<cluster domain>): a short name (no dot) is a Service of the object's
// own namespace, as Istio resolves it; any other host is meant as written.
func sameHost(host, namespace, ours string) bool {
	if strings.Contains(host, ".") {
		return host == ours
	}
	_, domain, _ := strings.Cut(ours, ".svc.")
	return host+"."+namespace+".svc."+domain == ours
}

// serviceOfHost is the Service a host of an Istio object of namespace may name: a short name's,
// or <name>.<namespace>.svc.<any domain>'s (any: the watches that use it may enqueue a policy
// more, never one less).
func serviceOfHost(host, namespace string) (types.NamespacedName, bool) {
	parts := strings.Split(host, ".")
	switch {
	case len(parts) == 1:
		return types.NamespacedName{Namespace: namespace, Name: host}, true
	case len(parts) >= 3 && parts[2] == "svc":
		return types.NamespacedName{Namespace: parts[1], Name: parts[0]}, true
	}
	return types.NamespacedName{}, false
}

// PolicyWatches are the watches a policy controller needs while the Istio backend programs: a
// policy is reconciled again when what it generates is changed or deleted by someone else, when a
// VirtualService or DestinationRule the operator does not generate is created, changed or deleted
// for the host of its Service (it may block the policy, or stop blocking it), and when one the
// operator generates for that host is created or deleted (a split's object carrying the policy's
// settings appeared or went). predicates, such as "the Istio backend is active", filter every
// event.
func PolicyWatches(mgr manager.Manager, predicates ...predicate.Predicate) []source.Source {
	owner := handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &policyv1alpha1.TrafficPolicy{}, handler.OnlyControllerOwner())
	changed := append([]predicate.Predicate{owned.NotCreated}, predicates...)
	hostHolders := append([]predicate.Predicate{predicate.Funcs{
		CreateFunc: func(event.CreateEvent) bool { return true },
		DeleteFunc: func(event.DeleteEvent) bool { return true },
		UpdateFunc: func(e event.UpdateEvent) bool { return !owned.Generated(e.ObjectNew) },
	}}, predicates...)
	c := mgr.GetClient()
	// The policies of the Services an object's hosts may name.
	byHost := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var reqs []reconcile.Request
		for _, svc := range servicesOfHosts(o) {
			policies, err := index.PoliciesOf(ctx, c, svc.Namespace, svc.Name)
			if err != nil {
				continue
			}
			for i := range policies {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&policies[i])})
			}
		}
		return reqs
	})
	return []source.Source{
		source.Kind(mgr.GetCache(), client.Object(&networkingv1.VirtualService{}), owner, changed...),
		source.Kind(mgr.GetCache(), client.Object(&networkingv1.DestinationRule{}), owner, changed...),
		source.Kind(mgr.GetCache(), client.Object(&networkingv1.VirtualService{}), byHost, hostHolders...),
		source.Kind(mgr.GetCache(), client.Object(&networkingv1.DestinationRule{}), byHost, hostHolders...),
	}
}

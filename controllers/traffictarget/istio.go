package traffictarget

import (
	"context"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/controllers/status"
	"github.com/smi-operator/smi-operator/translators/istio"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// +kubebuilder:rbac:groups=security.istio.io,resources=authorizationpolicies;peerauthentications,verbs=get;list;watch;create;update;patch;delete

// Istio programs a target as AuthorizationPolicies (and STRICT PeerAuthentications) controlled by
// the target, and keeps the namespace's allow-nothing baseline (enforcing mode) while any
// TrafficTarget lives there.
type Istio struct {
	Client   client.Client
	Writer   owned.Writer
	Settings mesh.Settings
}

// GeneratedKinds are the kinds a TrafficTarget generates on Istio, for pruning.
func GeneratedKinds() []client.ObjectList {
	return []client.ObjectList{&securityv1.AuthorizationPolicyList{}, &securityv1.PeerAuthenticationList{}}
}

// Program writes the Istio objects of the target's rule and the namespace baseline.
func (b Istio) Program(ctx context.Context, target *hub.TrafficTarget, models *mesh.Models) ([]mesh.Diagnostic, error) {
	model, _ := models.For(b.Settings)
	out, diags := istio.Translate(model, b.Settings)
	res, err := b.Writer.Sync(ctx, target, generatedFrom(out.Objects(), smi.TrafficTargetKind), GeneratedKinds())
	if err != nil {
		return nil, err
	}
	self := mesh.ObjectRef{Kind: smi.TrafficTargetKind, Namespace: target.Namespace, Name: target.Name}
	diags = append(diags, status.Conflicts(self, res.Conflicts)...)
	return diags, b.syncBaseline(ctx, target.Namespace)
}

// Forget deletes what a deleted target generated and drops the baseline if it was the last.
func (b Istio) Forget(ctx context.Context, ref mesh.ObjectRef) error {
	if err := b.Writer.PruneAfterDelete(ctx, ref.Kind, ref.Namespace, ref.Name, GeneratedKinds()); err != nil {
		return err
	}
	return b.syncBaseline(ctx, ref.Namespace)
}

// IstioWatches are the watches a target controller needs while the Istio backend programs: a
// target is reconciled again when what it generates is changed or deleted by someone else; the
// baseline is controlled by its Namespace, so edits to it re-check one target there. predicates,
// such as "the Istio backend is active", filter every event.
func IstioWatches(mgr manager.Manager, predicates ...predicate.Predicate) []source.Source {
	owner := handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &hub.TrafficTarget{}, handler.OnlyControllerOwner())
	baseline := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return oneTargetIn(ctx, mgr.GetClient(), o)
	})
	changed := append([]predicate.Predicate{owned.NotCreated}, predicates...)
	return []source.Source{
		source.Kind(mgr.GetCache(), client.Object(&securityv1.AuthorizationPolicy{}), owner, changed...),
		source.Kind(mgr.GetCache(), client.Object(&securityv1.PeerAuthentication{}), owner, changed...),
		source.Kind(mgr.GetCache(), client.Object(&securityv1.AuthorizationPolicy{}), baseline, changed...),
	}
}

// syncBaseline keeps the namespace's allow-nothing policy while enforcing mode is on and any
// TrafficTarget lives there, so SMI's deny-by-default holds; the Namespace controls it.
func (b Istio) syncBaseline(ctx context.Context, namespace string) error {
	ns := &corev1.Namespace{}
	if err := b.Client.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil {
		return client.IgnoreNotFound(err)
	}
	// Only whether any target is left matters: one, uncopied.
	targets := &hub.TrafficTargetList{}
	if err := b.Client.List(ctx, targets, client.InNamespace(namespace), client.Limit(1), client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	var wanted []client.Object
	if len(targets.Items) > 0 && ns.DeletionTimestamp.IsZero() {
		if b.Settings.Enforcing() {
			wanted = []client.Object{istio.DefaultDeny(namespace)}
		}
	}
	_, err := b.Writer.Sync(ctx, ns, wanted, []client.ObjectList{&securityv1.AuthorizationPolicyList{}})
	return err
}

// generatedFrom keeps the objects generated from an SMI object of kind, leaving out the namespace
// baseline, which syncBaseline keeps.
func generatedFrom(objs []client.Object, kind string) []client.Object {
	var out []client.Object
	for _, o := range objs {
		if o.GetLabels()[smi.LabelSourceKind] == kind {
			out = append(out, o)
		}
	}
	return out
}

func oneTargetIn(ctx context.Context, c client.Reader, o client.Object) []reconcile.Request {
	if o.GetLabels()[smi.LabelSourceKind] != smi.NamespaceSourceKind {
		return nil
	}
	targets := &hub.TrafficTargetList{}
	if err := c.List(ctx, targets, client.InNamespace(o.GetNamespace()), client.Limit(1)); err != nil || len(targets.Items) == 0 {
		// No target: a reconcile of any name in the namespace prunes the baseline.
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}}}
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(&targets.Items[0])}}
}

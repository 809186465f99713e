package istio

import (
	"context"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers/owned"
	istiotranslator "github.com/smi-operator/smi-operator/translators/istio"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// +kubebuilder:rbac:groups=security.istio.io,resources=authorizationpolicies;peerauthentications,verbs=get;list;watch;create;update;patch;delete

// Targets programs a target as AuthorizationPolicies (and STRICT PeerAuthentications) controlled by
// the target, and, as the namespace controller's Sink, keeps the allow-nothing baseline of
// enforcing mode in every namespace where access applies, whether or not a target lives there.
type Targets struct {
	Writer   owned.Writer
	Settings mesh.Settings
}

// TargetGeneratedKinds are the kinds a TrafficTarget generates on Istio, for pruning.
func TargetGeneratedKinds() []client.ObjectList {
	return []client.ObjectList{&securityv1.AuthorizationPolicyList{}, &securityv1.PeerAuthenticationList{}}
}

// baselineLists are the list kinds of what a Namespace generates, its baseline, for pruning.
func baselineLists() []client.ObjectList {
	return []client.ObjectList{&securityv1.AuthorizationPolicyList{}}
}

// Program writes the Istio objects of the target's rule.
func (b Targets) Program(ctx context.Context, target *hub.TrafficTarget, models *mesh.Models) ([]mesh.Diagnostic, error) {
	return program(ctx, b.Writer, b.Settings, smi.TrafficTargetKind, target, models, TargetGeneratedKinds())
}

// Forget deletes what a deleted target generated.
func (b Targets) Forget(ctx context.Context, ref mesh.ObjectRef) error {
	return b.Writer.PruneAfterDelete(ctx, ref.Kind, ref.Namespace, ref.Name, TargetGeneratedKinds())
}

// SetNamespace keeps the namespace's allow-nothing baseline while access applies there (enforcing
// mode, the namespace selected, not Istio's root namespace) and deletes it otherwise. The
// Namespace controls it.
func (b Targets) SetNamespace(ctx context.Context, ns *corev1.Namespace) error {
	var wanted []client.Object
	if b.Settings.EnforcesIn(ns.Labels) && istiotranslator.DefaultDenyIn(ns.Name) {
		wanted = []client.Object{istiotranslator.DefaultDeny(ns.Name)}
	}
	res, err := b.Writer.Sync(ctx, ns, wanted, baselineLists())
	for _, c := range res.Conflicts {
		// A Namespace has no status to report on: the log says why its baseline is missing.
		log.FromContext(ctx).Info("the namespace's allow-nothing policy is not written: an object the operator does not control holds its name",
			"namespace", ns.Name, "conflict", c.String())
	}
	return err
}

// DeleteNamespace does nothing: the baseline goes with its namespace.
func (b Targets) DeleteNamespace(context.Context, string) error { return nil }

// TargetWatches are the watches a target controller needs while the Istio backend programs: a
// target is reconciled again when what it generates is changed or deleted by someone else.
// predicates, such as "the Istio backend is active", filter every event.
func TargetWatches(mgr manager.Manager, predicates ...predicate.Predicate) []source.Source {
	owner := handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &hub.TrafficTarget{}, handler.OnlyControllerOwner())
	changed := append([]predicate.Predicate{owned.NotCreated}, predicates...)
	return []source.Source{
		source.Kind(mgr.GetCache(), client.Object(&securityv1.AuthorizationPolicy{}), owner, changed...),
		source.Kind(mgr.GetCache(), client.Object(&securityv1.PeerAuthentication{}), owner, changed...),
	}
}

// BaselineWatches are the watches the namespace controller needs while the Istio backend
// programs: a Namespace is reconciled again when its baseline is changed or deleted by someone
// else.
func BaselineWatches(mgr manager.Manager, predicates ...predicate.Predicate) []source.Source {
	owner := handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &corev1.Namespace{}, handler.OnlyControllerOwner())
	changed := append([]predicate.Predicate{owned.NotCreated}, predicates...)
	return []source.Source{source.Kind(mgr.GetCache(), client.Object(&securityv1.AuthorizationPolicy{}), owner, changed...)}
}

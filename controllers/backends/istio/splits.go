package istio

import (
	"context"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
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
	istiotranslator "github.com/smi-operator/smi-operator/translators/istio"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// +kubebuilder:rbac:groups=networking.istio.io,resources=virtualservices;destinationrules,verbs=get;list;watch;create;update;patch;delete

// Splits programs a split as a VirtualService (and DestinationRules), written with server-side
// apply and controlled by the split.
type Splits struct {
	Writer   owned.Writer
	Settings mesh.Settings
}

// SplitGeneratedKinds are the kinds a TrafficSplit generates on Istio, for pruning.
func SplitGeneratedKinds() []client.ObjectList {
	return []client.ObjectList{&networkingv1.VirtualServiceList{}, &networkingv1.DestinationRuleList{}}
}

// Program writes the Istio objects of the model's split and prunes the split's others.
func (b Splits) Program(ctx context.Context, split *hub.TrafficSplit, models *mesh.Models) ([]mesh.Diagnostic, error) {
	return program(ctx, b.Writer, b.Settings, smi.TrafficSplitKind, split, models, SplitGeneratedKinds())
}

// Forget deletes what a deleted split generated (the garbage collector would too, in time).
func (b Splits) Forget(ctx context.Context, ref mesh.ObjectRef) error {
	return b.Writer.PruneAfterDelete(ctx, ref.Kind, ref.Namespace, ref.Name, SplitGeneratedKinds())
}

// program writes what the Istio translator generates from obj, of the given kind, in the model
// built with settings, and prunes obj's other objects of the kinds it generates; objects someone
// else holds are reported on obj.
func program(ctx context.Context, w owned.Writer, settings mesh.Settings, kind string, obj hub.Object, models *mesh.Models,
	generated []client.ObjectList) ([]mesh.Diagnostic, error) {
	model, _ := models.BuiltWith(settings)
	out, diags := istiotranslator.Translate(model, settings)
	res, err := w.Sync(ctx, obj, out.From(kind, obj.GetName()), generated)
	if err != nil {
		return nil, err
	}
	self := mesh.ObjectRef{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
	return append(diags, status.Conflicts(self, res.Conflicts)...), nil
}

// SplitWatches are the watches a split controller needs while the Istio backend programs: a
// split is reconciled again when what it generates is changed or deleted by someone else, or when
// a VirtualService someone else owns, named like the split's, goes away (it blocked the split).
// predicates, such as "the Istio backend is active", filter every event.
func SplitWatches(mgr manager.Manager, predicates ...predicate.Predicate) []source.Source {
	owner := handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &hub.TrafficSplit{}, handler.OnlyControllerOwner())
	sameName := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(o)}}
	})
	changed := append([]predicate.Predicate{owned.NotCreated}, predicates...)
	deleted := append([]predicate.Predicate{owned.OnlyDeleted}, predicates...)
	return []source.Source{
		source.Kind(mgr.GetCache(), client.Object(&networkingv1.VirtualService{}), owner, changed...),
		source.Kind(mgr.GetCache(), client.Object(&networkingv1.DestinationRule{}), owner, changed...),
		source.Kind(mgr.GetCache(), client.Object(&networkingv1.VirtualService{}), sameName, deleted...),
	}
}

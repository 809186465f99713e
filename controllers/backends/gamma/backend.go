package gamma

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/backends"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/controllers/status"
	gammatranslator "github.com/smi-operator/smi-operator/translators/gamma"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes;grpcroutes;tcproutes,verbs=get;list;watch;create;update;patch;delete

// Name is the spec.backend value that selects this backend.
const Name = v1alpha1.BackendGamma

// install says what makes the route kinds served.
const install = "install the Gateway API CRDs, standard channel v1.6 or later"

// Backend is the Gateway API backend the Switch runs: routes written with writer.
func Backend(writer owned.Writer) backends.Backend {
	return &backend{backends.Written{Backend: Name, Install: install, Writer: writer, Lists: Lists(), Watches: watches}}
}

// backend checks, watches and cleans up the route kinds as backends.Written does.
type backend struct{ backends.Written }

func (*backend) Name() v1alpha1.Backend { return Name }

// Lists are the list kinds of what the backend generates, which it prunes.
func Lists() []client.ObjectList {
	return []client.ObjectList{&gatewayv1.HTTPRouteList{}, &gatewayv1.GRPCRouteList{}, &gatewayv1.TCPRouteList{}}
}

// Served says whether the cluster serves every route kind the backend writes.
func Served(mgr manager.Manager) error {
	return backends.Served(mgr, Name, install, Lists())
}

// Start checks that the cluster serves the route kinds and watches them, then programs with
// settings through the same writer as any instance before.
func (b *backend) Start(ctx context.Context, env backends.Env, _ v1alpha1.SMIOperatorSpec, settings mesh.Settings, _ func()) (backends.Instance, error) {
	if err := b.Written.Start(ctx, env); err != nil {
		return nil, err
	}
	targets := Targets{Settings: settings}
	return backends.WrittenInstance{SplitSink: Splits{Writer: b.Writer, Settings: settings}, TargetSink: targets, NamespaceSink: targets,
		PolicySink: Policies{Settings: settings}, Settings: settings}, nil
}

// watches are the split controller's watches of the routes.
func watches(mgr manager.Manager, c backends.Controllers, predicates ...predicate.Predicate) []backends.Watch {
	return []backends.Watch{{Controller: c.Splits, Sources: splitWatches(mgr, predicates...)}}
}

// splitWatches have a split reconciled again when a route it generates is changed or deleted
// by someone else, or when a route someone else owns, named like one of the split's, goes away
// (it blocked the split). predicates filter every event.
func splitWatches(mgr manager.Manager, predicates ...predicate.Predicate) []source.Source {
	owner := handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &hub.TrafficSplit{}, handler.OnlyControllerOwner())
	// A route is named <split>-<port> (translators/gamma): a route someone else holds under that
	// name blocked the split of that name.
	sameName := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		i := strings.LastIndex(o.GetName(), "-")
		if i <= 0 || strings.Trim(o.GetName()[i+1:], "0123456789") != "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: o.GetName()[:i]}}}
	})
	changed := append([]predicate.Predicate{owned.NotCreated}, predicates...)
	deleted := append([]predicate.Predicate{owned.OnlyDeleted}, predicates...)
	var out []source.Source
	for _, kind := range backends.ItemsOf(Lists()) {
		out = append(out, source.Kind(mgr.GetCache(), kind, owner, changed...), source.Kind(mgr.GetCache(), kind, sameName, deleted...))
	}
	return out
}

// Splits writes a split's routes, controlled by the split.
type Splits struct {
	Writer   owned.Writer
	Settings mesh.Settings
}

// Program writes the routes of the model's split and prunes the split's others; routes someone
// else holds are reported on the split.
func (b Splits) Program(ctx context.Context, split *hub.TrafficSplit, models *mesh.Models) ([]mesh.Diagnostic, error) {
	model, _ := models.BuiltWith(b.Settings)
	out, diags := gammatranslator.Translate(model, b.Settings)
	res, err := b.Writer.Sync(ctx, split, out.Objects(), Lists())
	if err != nil {
		return nil, err
	}
	self := mesh.ObjectRef{Kind: smi.TrafficSplitKind, Namespace: split.Namespace, Name: split.Name}
	return append(diags, status.Conflicts(self, res.Conflicts)...), nil
}

// Forget deletes what a deleted split generated (the garbage collector would too, in time).
func (b Splits) Forget(ctx context.Context, ref mesh.ObjectRef) error {
	return b.Writer.PruneAfterDelete(ctx, ref.Kind, ref.Namespace, ref.Name, Lists())
}

// Targets writes nothing: it reports each target as not enforced, and is the namespace sink,
// with nothing to keep in a namespace.
type Targets struct {
	Settings mesh.Settings
}

// Program returns the translator's diagnostics of the target (AccessNotEnforced).
func (b Targets) Program(_ context.Context, _ *hub.TrafficTarget, models *mesh.Models) ([]mesh.Diagnostic, error) {
	model, _ := models.BuiltWith(b.Settings)
	_, diags := gammatranslator.Translate(model, b.Settings)
	return diags, nil
}

// Forget, SetNamespace and DeleteNamespace: nothing was written.
func (Targets) Forget(context.Context, mesh.ObjectRef) error          { return nil }
func (Targets) SetNamespace(context.Context, *corev1.Namespace) error { return nil }
func (Targets) DeleteNamespace(context.Context, string) error         { return nil }

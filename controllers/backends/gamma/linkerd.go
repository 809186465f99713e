package gamma

import (
	"context"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/smi-operator/smi-operator/apis/linkerd"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers/backends"
	istiobackend "github.com/smi-operator/smi-operator/controllers/backends/istio"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/controllers/status"
	linkerdtranslator "github.com/smi-operator/smi-operator/translators/linkerd"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// +kubebuilder:rbac:groups=policy.linkerd.io,resources=servers;httproutes;authorizationpolicies;meshtlsauthentications,verbs=get;list;watch;create;update;patch;delete

// installLinkerdAccess says what makes the kinds of accessPolicy linkerd served.
const installLinkerdAccess = "install Linkerd's CRDs (2.15 or later), or set spec.gamma.accessPolicy to none"

// LinkerdLists are the list kinds of accessPolicy linkerd, which it prunes.
func LinkerdLists() []client.ObjectList {
	return []client.ObjectList{&linkerd.ServerList{}, &linkerd.HTTPRouteList{}, &linkerd.MeshTLSAuthenticationList{}, &linkerd.AuthorizationPolicyList{}}
}

// linkerdAccess is the Linkerd policy of accessPolicy linkerd in the cluster, which only the gamma
// backend writes: Written checks that its kinds are served, watches them, and deletes all of it
// (Clean) when the backend is swapped away or another policy starts.
type linkerdAccess struct {
	backends.Written
	// indexed: the cache indexes the kinds, so that an instance of another policy can prune what
	// a target generated (pruneLinkerd). Read by the reconcilers while the Switch starts.
	indexed atomic.Bool
}

func newLinkerdAccess(writer owned.Writer) *linkerdAccess {
	return &linkerdAccess{Written: backends.Written{Backend: Name, Install: installLinkerdAccess, Writer: writer, Lists: LinkerdLists(), Watches: linkerdWatches}}
}

// Start checks that the kinds are served and watches them.
func (a *linkerdAccess) Start(ctx context.Context, env backends.Env) error {
	if err := a.Written.Start(ctx, env); err != nil {
		return err
	}
	a.indexed.Store(true)
	return nil
}

// linkerdWatches have a target reconciled again when what it generated is changed or deleted by
// someone else, and every target of a namespace when a Server there is deleted: the targets of
// one destination share its Servers, and the one controlling a Server may be gone.
func linkerdWatches(mgr manager.Manager, c backends.Controllers, predicates ...predicate.Predicate) []backends.Watch {
	owner := handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &hub.TrafficTarget{}, handler.OnlyControllerOwner())
	changed := append([]predicate.Predicate{owned.NotCreated}, predicates...)
	deleted := append([]predicate.Predicate{owned.OnlyDeleted}, predicates...)
	sharers := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		targets := &hub.TrafficTargetList{}
		if err := mgr.GetClient().List(ctx, targets, client.InNamespace(o.GetNamespace())); err != nil {
			log.FromContext(ctx).Error(err, "listing the TrafficTargets that may share a deleted Linkerd Server", "server", client.ObjectKeyFromObject(o))
			return nil
		}
		out := make([]reconcile.Request, len(targets.Items))
		for i := range targets.Items {
			out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&targets.Items[i])}
		}
		return out
	})
	sources := []source.Source{source.Kind(mgr.GetCache(), client.Object(&linkerd.Server{}), sharers, deleted...)}
	for _, kind := range backends.ItemsOf(LinkerdLists()) {
		sources = append(sources, source.Kind(mgr.GetCache(), kind, owner, changed...))
	}
	return []backends.Watch{{Controller: c.Targets, Sources: sources}}
}

// LinkerdTargets is the TrafficTarget and namespace sink of accessPolicy linkerd: it writes the
// Linkerd policy translators/linkerd generates, controlled by the target. What accessPolicy istio
// wrote before is pruned, as under none, once no backend writes it (istio.Access).
type LinkerdTargets struct {
	Writer   owned.Writer
	Settings mesh.Settings
	Access   *istiobackend.Access
}

// Program writes the target's Linkerd objects. A Server that another TrafficTarget controls is
// no conflict: the targets of one destination share it (translators/linkerd), and the one that
// wrote it first keeps it.
func (b LinkerdTargets) Program(ctx context.Context, target *hub.TrafficTarget, models *mesh.Models) ([]mesh.Diagnostic, error) {
	if err := b.Access.PruneTarget(ctx, target); err != nil {
		return nil, err
	}
	model, _ := models.BuiltWith(b.Settings)
	out, diags := linkerdtranslator.Translate(model, b.Settings)
	res, err := b.Writer.Sync(ctx, target, out.Objects(), LinkerdLists())
	if err != nil {
		return nil, err
	}
	var conflicts []owned.Conflict
	for _, c := range res.Conflicts {
		if c.Kind != linkerd.ServerKind || c.OwnerKind != smi.TrafficTargetKind {
			conflicts = append(conflicts, c)
		}
	}
	self := mesh.ObjectRef{Kind: smi.TrafficTargetKind, Namespace: target.Namespace, Name: target.Name}
	return append(diags, status.Conflicts(self, conflicts)...), nil
}

// Forget deletes what a deleted target generated, and prunes its Istio access policy.
func (b LinkerdTargets) Forget(ctx context.Context, ref mesh.ObjectRef) error {
	if err := b.Access.ForgetTarget(ctx, ref); err != nil {
		return err
	}
	return b.Writer.PruneAfterDelete(ctx, ref.Kind, ref.Namespace, ref.Name, LinkerdLists())
}

// SetNamespace prunes the namespace's Istio allow-nothing baseline: Linkerd's namespace-wide
// default is an annotation, not a policy resource (translators/linkerd reports it).
func (b LinkerdTargets) SetNamespace(ctx context.Context, ns *corev1.Namespace) error {
	return b.Access.PruneNamespace(ctx, ns)
}

// DeleteNamespace does nothing: what the namespace holds goes with it.
func (LinkerdTargets) DeleteNamespace(context.Context, string) error { return nil }

// pruneLinkerd is the access sink of another policy (none, istio) once accessPolicy linkerd has
// run in this process: it first deletes what a target generated under linkerd. Start deletes all
// of it when the policy changes (linkerdAccess.Clean), but a reconcile of the instance replaced
// may still write after that; the target's next reconcile then removes it.
type pruneLinkerd struct {
	accessSink
	writer owned.Writer
}

// Program prunes the target's Linkerd objects, then programs it as the policy in force does.
func (p pruneLinkerd) Program(ctx context.Context, target *hub.TrafficTarget, models *mesh.Models) ([]mesh.Diagnostic, error) {
	if _, err := p.writer.Sync(ctx, target, nil, LinkerdLists()); err != nil {
		return nil, err
	}
	return p.accessSink.Program(ctx, target, models)
}

// Forget prunes a deleted target's Linkerd objects too.
func (p pruneLinkerd) Forget(ctx context.Context, ref mesh.ObjectRef) error {
	if err := p.writer.PruneAfterDelete(ctx, ref.Kind, ref.Namespace, ref.Name, LinkerdLists()); err != nil {
		return err
	}
	return p.accessSink.Forget(ctx, ref)
}

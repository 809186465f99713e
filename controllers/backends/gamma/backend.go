package gamma

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/backends"
	istiobackend "github.com/smi-operator/smi-operator/controllers/backends/istio"
	"github.com/smi-operator/smi-operator/controllers/namespace"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/controllers/smiobject"
	"github.com/smi-operator/smi-operator/controllers/status"
	gammatranslator "github.com/smi-operator/smi-operator/translators/gamma"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes;grpcroutes;tcproutes,verbs=get;list;watch;create;update;patch;delete

// Name is the spec.backend value that selects this backend.
const Name = v1alpha1.BackendGamma

// install says what makes the route kinds served.
const install = "install the Gateway API CRDs, standard channel v1.6 or later"

// installIstioAccess says what makes the kinds of accessPolicy istio served.
const installIstioAccess = "install Istio's CRDs, or set spec.gamma.accessPolicy to none"

// Backend is the Gateway API backend the Switch runs: routes written with writer, with
// accessPolicy istio the Istio backend's access policy through access, which it shares, and with
// linkerd Linkerd's policy resources.
func Backend(writer owned.Writer, access *istiobackend.Access) backends.Backend {
	// Every update of a route must reconcile its split (splitWatches), so the routes' writer keeps
	// no record of what it last wrote: its ChangesToCorrect then skips nothing.
	routes := writer
	routes.LastWritten = nil
	return &backend{
		Written:      backends.Written{Backend: Name, Install: install, Writer: routes, Lists: routeLists(), Watches: watchesOf(routeLists())},
		tcpRoutes:    backends.Written{Backend: Name, Install: installTCPRoute, Writer: routes, Lists: tcpRouteLists(), Watches: watchesOf(tcpRouteLists())},
		access:       access,
		linkerd:      newLinkerdAccess(writer),
		accessWriter: writer,
	}
}

// backend checks, watches and cleans up the route kinds as backends.Written does: HTTPRoutes and
// GRPCRoutes, without which it does not run, and TCPRoutes apart, where the cluster serves them
// (tcproutes.go). The Istio access policy goes through the shared istio.Access, the Linkerd one
// through linkerdAccess.
type backend struct {
	backends.Written
	tcpRoutes backends.Written
	access    *istiobackend.Access
	linkerd   *linkerdAccess
	// accessWriter writes the access policies, whose updates that leave them as written need not
	// reconcile their targets.
	accessWriter owned.Writer
}

func (*backend) Name() v1alpha1.Backend { return Name }

// Lists are the list kinds of everything the backend generates, which it prunes where the cluster
// serves them.
func Lists() []client.ObjectList { return append(routeLists(), tcpRouteLists()...) }

// Start checks that the cluster serves the route kinds and watches them, then programs with
// settings through the same writer as any instance before, TrafficTargets as spec's
// gamma.accessPolicy says. Where TCPRoute is not served, the instance writes no TCPRoute and
// reports so on the splits that need one, until the cluster serves it (tcproutes.go).
//
// With istio, Istio's security kinds must be served too, else the backend does not start and the
// SMIOperator reports BackendUnavailable, as for missing route kinds, rather than routes running
// with every TrafficTarget reporting that it is not enforced: the spec asks for something the
// cluster cannot do, the SMIOperator is where the user asked for it, and the backend running
// meanwhile keeps enforcing what it enforces, where a swap would open the traffic it denies. So
// with linkerd, for Linkerd's policy kinds. Under another policy than linkerd, what linkerd wrote
// is deleted.
func (b *backend) Start(ctx context.Context, env backends.Env, spec v1alpha1.SMIOperatorSpec, settings mesh.Settings, _ func()) (backends.Instance, error) {
	if err := b.Written.Start(ctx, env); err != nil {
		return nil, err
	}
	withoutTCPRoutes := !tcpRoutesServed(env.Manager)
	if !withoutTCPRoutes {
		if err := b.tcpRoutes.Start(ctx, env); err != nil {
			return nil, err
		}
	}
	policy := spec.WithDefaults().Gamma.AccessPolicy
	var access accessSink
	switch policy {
	case v1alpha1.GammaAccessPolicyIstio:
		if err := b.access.Start(ctx, env, Name, installIstioAccess); err != nil {
			return nil, err
		}
		access = istiobackend.Targets{Writer: b.accessWriter, Settings: settings}
	case v1alpha1.GammaAccessPolicyLinkerd:
		if err := b.linkerd.Start(ctx, env); err != nil {
			return nil, err
		}
		b.access.Stop(Name)
		access = LinkerdTargets{Writer: b.accessWriter, Settings: settings, Access: b.access}
	case v1alpha1.GammaAccessPolicyNone:
		b.access.Stop(Name)
		access = Targets{Settings: settings, Access: b.access}
	default:
		return nil, fmt.Errorf("spec.gamma.accessPolicy %q is not one this operator enforces", policy)
	}
	if policy != v1alpha1.GammaAccessPolicyLinkerd {
		if err := b.linkerd.Clean(ctx, env); err != nil {
			return nil, err
		}
		if b.linkerd.indexed.Load() {
			access = pruneLinkerd{accessSink: access, writer: b.accessWriter}
		}
	}
	i := instance{
		WrittenInstance: backends.WrittenInstance{SplitSink: Splits{Writer: b.Writer, Settings: settings, WithoutTCPRoutes: withoutTCPRoutes},
			TargetSink: access, NamespaceSink: access, PolicySink: Policies{Settings: settings}, Settings: settings},
		accessPolicy: policy,
	}
	if withoutTCPRoutes {
		i.tcpRoutesServed, i.stopAwaiting = awaitTCPRoutes(env)
	}
	return i, nil
}

// accessSink programs TrafficTargets and, for deny-by-default, Namespaces, as one access policy
// does.
type accessSink interface {
	smiobject.Backend[*hub.TrafficTarget]
	namespace.Sink
}

// Clean deletes the routes, the Linkerd access policy, and the Istio one unless another backend
// (istio) writes it.
func (b *backend) Clean(ctx context.Context, env backends.Env) error {
	return errors.Join(b.Written.Clean(ctx, env), b.tcpRoutes.Clean(ctx, env), b.access.Clean(ctx, env, Name), b.linkerd.Clean(ctx, env))
}

// instance is a backends.WrittenInstance that also enforces one access policy.
type instance struct {
	backends.WrittenInstance
	accessPolicy v1alpha1.GammaAccessPolicy
	// tcpRoutesServed, for an instance started while the cluster did not serve TCPRoute, is set
	// once it does (awaitTCPRoutes, stopped by stopAwaiting); nil when it was served at Start.
	tcpRoutesServed *atomic.Bool
	stopAwaiting    context.CancelFunc
}

// Fits says whether the instance programs with settings and spec's access policy: another policy
// takes a new instance, which the Switch brings up (and which prunes what the policy before
// wrote, or writes what it did not). An instance without TCPRoutes fits no more once the cluster
// serves TCPRoute: the one that replaces it writes them.
func (i instance) Fits(spec v1alpha1.SMIOperatorSpec, settings mesh.Settings) bool {
	return i.WrittenInstance.Fits(spec, settings) && spec.WithDefaults().Gamma.AccessPolicy == i.accessPolicy &&
		(i.tcpRoutesServed == nil || !i.tcpRoutesServed.Load())
}

// Stop stops awaiting TCPRoute; the routes written stay, as for any WrittenInstance.
func (i instance) Stop() {
	if i.stopAwaiting != nil {
		i.stopAwaiting()
	}
}

// watchesOf returns the split controller's watches of the route kinds of lists.
func watchesOf(lists []client.ObjectList) backends.WatchesFunc {
	return func(mgr manager.Manager, c backends.Controllers, predicates ...predicate.Predicate) []backends.Watch {
		return []backends.Watch{{Controller: c.Splits, Sources: splitWatches(mgr, lists, predicates...)}}
	}
}

// splitWatches have a split reconciled again when a route it generates is changed or deleted
// by someone else, or when a route someone else owns, named like one of the split's, goes away
// (it blocked the split), of the route kinds of lists. predicates filter every event.
//
// Every update of a route passes (the routes' writer records nothing), status-only ones included, and
// the cache catching up with the operator's own write (Splits.meshVerdicts): a mesh writing
// its verdict in the route's status.parents must reconcile the split, whose status reports it
// (Splits.Program). No loop follows: the operator never writes a route's status, and an update of
// its own spec write finds the route as wanted and writes nothing.
func splitWatches(mgr manager.Manager, lists []client.ObjectList, predicates ...predicate.Predicate) []source.Source {
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
	for _, kind := range backends.ItemsOf(lists) {
		out = append(out, source.Kind(mgr.GetCache(), kind, owner, changed...), source.Kind(mgr.GetCache(), kind, sameName, deleted...))
	}
	return out
}

// Splits writes a split's routes, controlled by the split.
type Splits struct {
	Writer   owned.Writer
	Settings mesh.Settings
	// WithoutTCPRoutes: the cluster does not serve TCPRoute; the split's TCPRoutes are left out
	// and reported (TCPRouteNotServed).
	WithoutTCPRoutes bool
}

// kinds are the route kinds the splits' routes are of, which Sync prunes.
func (b Splits) kinds() []client.ObjectList {
	if b.WithoutTCPRoutes {
		return routeLists()
	}
	return Lists()
}

// Program writes the routes of the model's split and prunes the split's others; routes someone
// else holds, routes a mesh refuses in their status and, without TCPRoute, the TCPRoutes left out
// are reported on the split.
func (b Splits) Program(ctx context.Context, split *hub.TrafficSplit, models *mesh.Models) ([]mesh.Diagnostic, error) {
	model, _ := models.BuiltWith(b.Settings)
	out, diags := gammatranslator.Translate(model, b.Settings)
	self := mesh.ObjectRef{Kind: smi.TrafficSplitKind, Namespace: split.Namespace, Name: split.Name}
	if b.WithoutTCPRoutes && len(out.TCPRoutes) > 0 {
		diags = append(diags, tcpRoutesNotServed(self, out))
		out.TCPRoutes = nil
	}
	routes := out.Objects()
	res, err := b.Writer.Sync(ctx, split, routes, b.kinds())
	if err != nil {
		return nil, err
	}
	verdicts, err := b.meshVerdicts(ctx, split, self, routes)
	if err != nil {
		return nil, err
	}
	return slices.Concat(diags, status.Conflicts(self, res.Conflicts), verdicts), nil
}

// meshVerdicts reads each of the split's routes from the cache and returns what the meshes say of
// it in its status (gammatranslator.RouteStatus). A route the cache does not show (just created:
// its status, once a mesh writes one, reconciles the split) or that someone else controls (a
// conflict, reported as such) says nothing. The cache may show a route as it was before this
// Program rewrote it: its verdict then carries the older generation, and holds until the cache
// catches up, which reconciles the split again.
func (b Splits) meshVerdicts(ctx context.Context, split *hub.TrafficSplit, self mesh.ObjectRef, routes []client.Object) ([]mesh.Diagnostic, error) {
	var out []mesh.Diagnostic
	for _, wanted := range routes {
		route := wanted.DeepCopyObject().(client.Object)
		err := b.Writer.Reader.Get(ctx, client.ObjectKeyFromObject(wanted), route)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if metav1.IsControlledBy(route, split) {
			out = append(out, gammatranslator.RouteStatus(self, route)...)
		}
	}
	return out, nil
}

// Forget deletes what a deleted split generated (the garbage collector would too, in time).
func (b Splits) Forget(ctx context.Context, ref mesh.ObjectRef) error {
	return b.Writer.PruneAfterDelete(ctx, ref.Kind, ref.Namespace, ref.Name, b.kinds())
}

// Targets is the TrafficTarget and namespace sink of accessPolicy none: it enforces nothing and
// reports each target as not enforced. What accessPolicy istio wrote before is pruned, target by
// target and namespace by namespace, once no backend writes it (istio.Access).
type Targets struct {
	Settings mesh.Settings
	Access   *istiobackend.Access
}

// Program prunes the target's access policy and returns the translator's diagnostics of the
// target (AccessNotEnforced).
func (b Targets) Program(ctx context.Context, target *hub.TrafficTarget, models *mesh.Models) ([]mesh.Diagnostic, error) {
	if err := b.Access.PruneTarget(ctx, target); err != nil {
		return nil, err
	}
	model, _ := models.BuiltWith(b.Settings)
	_, diags := gammatranslator.Translate(model, b.Settings)
	return diags, nil
}

// Forget prunes a deleted target's access policy.
func (b Targets) Forget(ctx context.Context, ref mesh.ObjectRef) error {
	return b.Access.ForgetTarget(ctx, ref)
}

// SetNamespace prunes the namespace's allow-nothing baseline.
func (b Targets) SetNamespace(ctx context.Context, ns *corev1.Namespace) error {
	return b.Access.PruneNamespace(ctx, ns)
}

// DeleteNamespace does nothing: a baseline goes with its namespace.
func (Targets) DeleteNamespace(context.Context, string) error { return nil }

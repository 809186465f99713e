package istio

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/backends"
	"github.com/smi-operator/smi-operator/controllers/namespace"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/controllers/service"
	"github.com/smi-operator/smi-operator/controllers/smiobject"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Backend is the Istio backend the Switch runs: Istio's objects written with writer.
func Backend(writer owned.Writer) backends.Backend { return &backend{writer: writer} }

type backend struct {
	writer owned.Writer
	// watched: the controllers watch Istio's kinds (added once, when first served).
	watched bool
	// clean: no generated Istio object is left since an instance last ran.
	clean bool
}

func (*backend) Name() v1alpha1.Backend { return v1alpha1.BackendIstio }

// Start checks that the cluster serves Istio's kinds and watches them, then programs with
// settings through the same writer as any instance before: an instance replaced leaves nothing
// to stop.
func (b *backend) Start(ctx context.Context, env backends.Env, _ v1alpha1.SMIOperatorSpec, settings mesh.Settings, _ func()) (backends.Instance, error) {
	if err := b.watch(ctx, env); err != nil {
		return nil, err
	}
	b.clean = false
	return instance{
		splits:  Splits{Writer: b.writer, Settings: settings},
		targets: Targets{Writer: b.writer, Settings: settings},
	}, nil
}

// watch adds, once Istio's kinds are served, the cache indexes and the controllers' watches of
// the Istio objects (filtered to nothing while no instance programs). They cannot be set up at
// start: a watch of a kind the cluster does not serve would fail the manager.
func (b *backend) watch(ctx context.Context, env backends.Env) error {
	if b.watched {
		return nil
	}
	if err := Served(env.Manager); err != nil {
		return err
	}
	if err := owned.IndexGenerated(ctx, env.Manager.GetFieldIndexer(), Kinds...); err != nil {
		return fmt.Errorf("indexing Istio objects: %w", err)
	}
	programming := predicate.NewPredicateFuncs(func(client.Object) bool { return env.Programming() })
	forget := b.writer.ForgetDeleted()
	c := env.Controllers
	for _, w := range []struct {
		ctrl    controller.Controller
		sources []source.Source
	}{
		{c.Splits, SplitWatches(env.Manager, forget, programming)},
		{c.Targets, TargetWatches(env.Manager, forget, programming)},
		{c.Namespaces, BaselineWatches(env.Manager, forget, programming)},
	} {
		for _, src := range w.sources {
			if err := w.ctrl.Watch(src); err != nil {
				return err
			}
		}
	}
	b.watched = true
	return nil
}

// Clean deletes every Istio object the operator generated. It lists from the API server, not the
// cache, so that none is missed; the Switch has waited for the writes in flight.
func (b *backend) Clean(ctx context.Context, env backends.Env) error {
	if b.clean {
		return nil
	}
	if !b.watched && Served(env.Manager) != nil {
		b.clean = true // no instance ever ran, and no Istio: nothing of it to delete
		return nil
	}
	n, err := b.writer.DeleteAllGenerated(ctx, env.Manager.GetAPIReader(), Lists())
	if err != nil {
		return fmt.Errorf("deleting the istio backend's objects: %w", err)
	}
	b.clean = true
	env.Log.Info("the istio backend is retired", "deleted", n)
	return nil
}

// instance programs with one set of mesh settings.
type instance struct {
	splits  Splits
	targets Targets
}

func (i instance) Splits() smiobject.Backend[*hub.TrafficSplit]   { return i.splits }
func (i instance) Targets() smiobject.Backend[*hub.TrafficTarget] { return i.targets }
func (i instance) Namespaces() namespace.Sink                     { return i.targets }
func (i instance) Services() service.Sink                         { return nil }

func (i instance) Fits(_ v1alpha1.SMIOperatorSpec, settings mesh.Settings) bool {
	return i.splits.Settings == settings
}

// Activate, Retire, Failed and Stop: the objects written stay in the cluster until Clean, and
// Istio serves them; there is nothing to drain or stop.
func (instance) Activate()                                 {}
func (instance) Retire(v1alpha1.SMIOperatorSpec) time.Time { return time.Time{} }
func (instance) Failed() bool                              { return false }
func (instance) Stop()                                     {}

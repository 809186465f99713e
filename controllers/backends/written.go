package backends

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/namespace"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/controllers/service"
	"github.com/smi-operator/smi-operator/controllers/smiobject"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Written is what the backends that write objects of API kinds the cluster may not serve
// (Istio's, the Gateway API's) with an owned.Writer do alike: check that the kinds are served,
// watch them, and delete every object generated once no instance runs. The objects stay in the
// cluster until then, and the mesh serves them: their instances ([WrittenInstance]) have nothing
// to drain or stop.
type Written struct {
	// Backend names the backend in messages; Install says what makes the kinds served.
	Backend v1alpha1.Backend
	Install string
	Writer  owned.Writer
	// Lists are the list kinds of what the backend generates, which it prunes.
	Lists []client.ObjectList
	// Watches are the watches the controllers need while the backend programs; predicates
	// filter every event.
	Watches WatchesFunc
	// Indexes add the cache indexes the backend reads its kinds through, besides
	// owned.GeneratedByIndex: one index each, so that a Start failing part way is retried from the
	// index that failed.
	Indexes []IndexStep

	kinds KindsSetup
	// clean: no generated object is left since an instance last ran.
	clean bool
}

// IndexStep adds one cache index.
type IndexStep func(ctx context.Context, indexer client.FieldIndexer) error

// WatchesFunc returns the watches controllers need of a backend's kinds; predicates filter every
// event.
type WatchesFunc func(mgr manager.Manager, c Controllers, predicates ...predicate.Predicate) []Watch

// KindsSetup adds the cache indexes and the controllers' watches of kinds a backend writes, once
// each: neither can be removed, and the cache refuses a second index of a name. A call that
// failed part way can be made again: what it added is not added twice. Its methods are not safe
// for concurrent use.
type KindsSetup struct {
	// indexes counts the index steps done so far (one per kind of owned.GeneratedByIndex, then
	// the backend's own); indexed says all are.
	indexes int
	indexed bool
	// added counts, per backend, the watch sources added so far, in the order its watches
	// come; watched holds the backends whose watches are all added.
	added   map[v1alpha1.Backend]int
	watched map[v1alpha1.Backend]bool
}

// Ensure checks that the cluster serves the kinds of lists (install says what makes them served)
// and adds, unless it did before, owned.GeneratedByIndex of them and the indexes of more, then
// backend's watches, each event filtered by writer.ChangesToCorrect and env.Programming.
func (k *KindsSetup) Ensure(ctx context.Context, env Env, backend v1alpha1.Backend, install string, lists []client.ObjectList,
	more []IndexStep, writer owned.Writer, watches WatchesFunc) error {
	if k.watched[backend] {
		return nil
	}
	if err := Served(env.Manager, backend, install, lists); err != nil {
		return err
	}
	if !k.indexed {
		indexer := env.Manager.GetFieldIndexer()
		var steps []func() error
		for _, item := range ItemsOf(lists) {
			steps = append(steps, func() error { return owned.IndexGenerated(ctx, indexer, item) })
		}
		for _, step := range more {
			steps = append(steps, func() error { return step(ctx, indexer) })
		}
		for ; k.indexes < len(steps); k.indexes++ {
			if err := steps[k.indexes](); err != nil {
				return fmt.Errorf("indexing the %s backend's objects: %w", backend, err)
			}
		}
		k.indexed = true
	}
	if k.added == nil {
		k.added, k.watched = map[v1alpha1.Backend]int{}, map[v1alpha1.Backend]bool{}
	}
	programming := predicate.NewPredicateFuncs(func(client.Object) bool { return env.Programming() })
	n := 0
	for _, watch := range watches(env.Manager, env.Controllers, writer.ChangesToCorrect(), programming) {
		for _, src := range watch.Sources {
			n++
			if n <= k.added[backend] {
				continue
			}
			if err := watch.Controller.Watch(src); err != nil {
				return err
			}
			k.added[backend] = n
		}
	}
	k.watched[backend] = true
	return nil
}

// Indexed says whether the kinds are indexed: objects of them may have been written by this
// process.
func (k *KindsSetup) Indexed() bool { return k.indexed }

// Watch is a controller's sources.
type Watch struct {
	Controller controller.Controller
	Sources    []source.Source
}

// ItemsOf returns an object of each list's item type, so that a backend's kinds are listed once.
func ItemsOf(lists []client.ObjectList) []client.Object {
	out := make([]client.Object, 0, len(lists))
	for _, list := range lists {
		item := reflect.ValueOf(list).Elem().FieldByName("Items").Type().Elem()
		if item.Kind() == reflect.Pointer { // Istio's lists hold pointers
			item = item.Elem()
		}
		out = append(out, reflect.New(item).Interface().(client.Object))
	}
	return out
}

// Served says whether the cluster serves every kind of lists.
func Served(mgr manager.Manager, backend v1alpha1.Backend, install string, lists []client.ObjectList) error {
	for _, obj := range ItemsOf(lists) {
		gvk, err := mgr.GetClient().GroupVersionKindFor(obj)
		if err != nil {
			return err
		}
		if _, err := mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return fmt.Errorf("the %s backend cannot run: the cluster does not serve %s (%s)", backend, gvk, install)
		}
	}
	return nil
}

// Start checks that the cluster serves the kinds and, the first time, adds the cache indexes and
// the watches of them (filtered to nothing while no instance programs). They cannot be set up
// at the operator's start: a watch of a kind the cluster does not serve would fail the manager.
func (w *Written) Start(ctx context.Context, env Env) error {
	if err := w.kinds.Ensure(ctx, env, w.Backend, w.Install, w.Lists, w.Indexes, w.Writer, w.Watches); err != nil {
		return err
	}
	w.clean = false
	return nil
}

// Clean deletes every object the backend generated. It lists from the API server, not the cache,
// so that none is missed; the Switch has waited for the writes in flight.
func (w *Written) Clean(ctx context.Context, env Env) error {
	if w.clean {
		return nil
	}
	if !w.kinds.Indexed() && Served(env.Manager, w.Backend, w.Install, w.Lists) != nil {
		w.clean = true // no instance ever ran, and the kinds are not served: nothing to delete
		return nil
	}
	n, err := w.Writer.DeleteAllGenerated(ctx, env.Manager.GetAPIReader(), w.Lists)
	if err != nil {
		return fmt.Errorf("deleting the %s backend's objects: %w", w.Backend, err)
	}
	w.clean = true
	env.Log.Info("the "+string(w.Backend)+" backend is retired", "deleted", n)
	return nil
}

// WrittenInstance is an instance of a [Written] backend, programming with Settings.
type WrittenInstance struct {
	SplitSink     smiobject.Backend[*hub.TrafficSplit]
	TargetSink    smiobject.Backend[*hub.TrafficTarget]
	PolicySink    smiobject.Backend[*policyv1alpha1.TrafficPolicy]
	NamespaceSink namespace.Sink
	Settings      mesh.Settings
}

func (i WrittenInstance) Splits() smiobject.Backend[*hub.TrafficSplit]   { return i.SplitSink }
func (i WrittenInstance) Targets() smiobject.Backend[*hub.TrafficTarget] { return i.TargetSink }
func (i WrittenInstance) Namespaces() namespace.Sink                     { return i.NamespaceSink }
func (i WrittenInstance) Policies() smiobject.Backend[*policyv1alpha1.TrafficPolicy] {
	return i.PolicySink
}
func (i WrittenInstance) Services() service.Sink { return nil }

// Fits says whether the instance programs with settings; the spec's other fields are not its.
func (i WrittenInstance) Fits(_ v1alpha1.SMIOperatorSpec, settings mesh.Settings) bool {
	return i.Settings == settings
}

// Activate, Retire, Failed and Stop: the objects written stay in the cluster until Clean, and the
// mesh serves them; there is nothing to drain or stop.
func (WrittenInstance) Activate()                                 {}
func (WrittenInstance) Retire(v1alpha1.SMIOperatorSpec) time.Time { return time.Time{} }
func (WrittenInstance) Failed() bool                              { return false }
func (WrittenInstance) Stop()                                     {}

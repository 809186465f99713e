package istio

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/backends"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Access is the Istio access policy in the cluster: what Targets writes, the TrafficTargets'
// AuthorizationPolicies and PeerAuthentications and the namespaces' allow-nothing baselines. Two
// backends write it: the Istio backend, and the gamma backend with spec.gamma.accessPolicy istio.
// They write the same objects (same names, controllers and field manager), so the objects are
// neither backend's alone, and one Access, shared by both, keeps them: a backend's Clean deletes
// them only once no backend writes them any more. Were each backend to delete them as its own,
// the Istio backend's Clean, once the gamma backend had taken over, would delete the policies the
// gamma backend enforces, and traffic would be open until they were written again.
//
// Like a Backend's, its methods are called by the Switch one at a time; the mutex is for
// PruneTarget, PruneNamespace and ForgetTarget, which the reconcilers call meanwhile.
type Access struct {
	Writer owned.Writer

	mu sync.Mutex
	// kinds indexes the kinds once, and adds each backend's watches of them once (each is
	// filtered by its own backend's Programming).
	kinds backends.KindsSetup
	// writers are the backends whose latest instance writes the objects.
	writers map[v1alpha1.Backend]bool
	// clean: no object is left since a backend last wrote them.
	clean bool
}

// accessLists are the list kinds of the access policy: Targets' (a baseline is an
// AuthorizationPolicy).
func accessLists() []client.ObjectList { return TargetGeneratedKinds() }

// Start has backend write the access policy from now on (install says what makes its kinds
// served, in the error when they are not). The first time, the kinds are indexed and the backend's
// target and namespace controllers watch them.
func (a *Access) Start(ctx context.Context, env backends.Env, backend v1alpha1.Backend, install string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.kinds.Ensure(ctx, env, backend, install, accessLists(), nil, a.Writer, accessWatches); err != nil {
		return err
	}
	if a.writers == nil {
		a.writers = map[v1alpha1.Backend]bool{}
	}
	a.writers[backend] = true
	a.clean = false
	return nil
}

// accessWatches are the watches of the access policy: a target, or a Namespace, is reconciled
// again when what it generated is changed or deleted by someone else.
func accessWatches(mgr manager.Manager, c backends.Controllers, predicates ...predicate.Predicate) []backends.Watch {
	return []backends.Watch{
		{Controller: c.Targets, Sources: TargetWatches(mgr, predicates...)},
		{Controller: c.Namespaces, Sources: BaselineWatches(mgr, predicates...)},
	}
}

// Stop says backend's new instance does not write the access policy (the gamma backend with
// accessPolicy none). Nothing is deleted here: the instance it replaces may still be writing.
// The new instance prunes instead, object by object (PruneTarget, PruneNamespace), once no
// backend writes the policy.
func (a *Access) Stop(backend v1alpha1.Backend) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.writers, backend)
}

// Clean is backend's Clean of the access policy: backend runs no instance any more, and once no
// other backend writes the policy, every object of it is deleted (listed from the API server, as
// backends.Written.Clean does). It is cheap once clean.
func (a *Access) Clean(ctx context.Context, env backends.Env, backend v1alpha1.Backend) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.writers, backend)
	if a.clean || len(a.writers) > 0 {
		return nil
	}
	if !a.kinds.Indexed() && backends.Served(env.Manager, backend, install, accessLists()) != nil {
		a.clean = true // never written by this process, and the kinds are not served: nothing to delete
		return nil
	}
	n, err := a.Writer.DeleteAllGenerated(ctx, env.Manager.GetAPIReader(), accessLists())
	if err != nil {
		return fmt.Errorf("deleting Istio's access policy: %w", err)
	}
	a.clean = true
	env.Log.Info("Istio's access policy is deleted: no backend writes it", "deleted", n)
	return nil
}

// prunable says whether an instance that writes no access policy must delete what is left of it:
// the cache indexes it (it was written by this process; what an earlier one left goes with the
// Istio backend's Clean), and no backend writes it now (while the Istio backend runs, the policy
// is its own).
func (a *Access) prunable() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.kinds.Indexed() && len(a.writers) == 0
}

// PruneTarget deletes the access policy of target, when prunable.
func (a *Access) PruneTarget(ctx context.Context, target *hub.TrafficTarget) error {
	if !a.prunable() {
		return nil
	}
	_, err := a.Writer.Sync(ctx, target, nil, TargetGeneratedKinds())
	return err
}

// ForgetTarget deletes the access policy of a deleted target, when prunable.
func (a *Access) ForgetTarget(ctx context.Context, ref mesh.ObjectRef) error {
	if !a.prunable() {
		return nil
	}
	return Targets{Writer: a.Writer}.Forget(ctx, ref)
}

// PruneNamespace deletes the allow-nothing baseline of ns, when prunable.
func (a *Access) PruneNamespace(ctx context.Context, ns *corev1.Namespace) error {
	if !a.prunable() {
		return nil
	}
	_, err := a.Writer.Sync(ctx, ns, nil, baselineLists())
	return err
}

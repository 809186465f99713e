package backends

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers/namespace"
	"github.com/smi-operator/smi-operator/controllers/service"
	"github.com/smi-operator/smi-operator/controllers/smiobject"
	"github.com/smi-operator/smi-operator/controllers/trafficpolicy"
	"github.com/smi-operator/smi-operator/controllers/trafficsplit"
	"github.com/smi-operator/smi-operator/controllers/traffictarget"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
)

// Splits is the TrafficSplit reconciler's backend: every instance taking updates.
func (s *Switch) Splits() trafficsplit.Backend {
	return fanout[*hub.TrafficSplit]{s, smi.TrafficSplitKind, Instance.Splits}
}

// Targets is the TrafficTarget reconciler's backend: every instance taking updates.
func (s *Switch) Targets() traffictarget.Backend {
	return fanout[*hub.TrafficTarget]{s, smi.TrafficTargetKind, Instance.Targets}
}

// Policies is the TrafficPolicy reconciler's backend: every instance taking updates.
func (s *Switch) Policies() trafficpolicy.Backend {
	return fanout[*policyv1alpha1.TrafficPolicy]{s, policyv1alpha1.TrafficPolicyKind, Instance.Policies}
}

// Namespaces is where the namespace controller sends Namespaces: every instance taking updates.
func (s *Switch) Namespaces() namespace.Sink { return namespaces{s} }

// Services is where the Service reconciler sends Services: every instance taking updates that
// takes Services.
func (s *Switch) Services() service.Sink { return services{s} }

// fanout is the backend of one SMI kind that stands for the instances taking updates: of picks
// that kind's backend out of each.
type fanout[T hub.Object] struct {
	*Switch
	kind string
	of   func(Instance) smiobject.Backend[T]
}

func (f fanout[T]) Program(ctx context.Context, obj T, models *mesh.Models) ([]mesh.Diagnostic, error) {
	ref := mesh.ObjectRef{Kind: f.kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
	return f.onFedInstances(ctx, ref, func(i Instance) ([]mesh.Diagnostic, error) { return f.of(i).Program(ctx, obj, models) })
}

func (f fanout[T]) Forget(ctx context.Context, ref mesh.ObjectRef) error {
	_, err := f.onFedInstances(ctx, ref, func(i Instance) ([]mesh.Diagnostic, error) { return nil, f.of(i).Forget(ctx, ref) })
	return err
}

// onFedInstances has every instance taking updates program (or forget) the object ref and
// records it as done by each. The diagnostics returned, which become the object's status, are
// those of the backend asked for when it runs, else of the first that does; with none running,
// the object is reported not programmed and why.
func (s *Switch) onFedInstances(ctx context.Context, ref mesh.ObjectRef, do func(Instance) ([]mesh.Diagnostic, error)) ([]mesh.Diagnostic, error) {
	if err := s.waitFirstMove(ctx); err != nil {
		return nil, err
	}
	// Held for reading across the writes, so that retiring an instance waits for those in flight.
	s.mu.RLock()
	defer s.mu.RUnlock()
	key := ObjectKey{ref.Kind, ref.Namespace, ref.Name}
	// Every instance gets its turn even when another fails: a swap away from a failing backend
	// must not stall on it.
	var out []mesh.Diagnostic
	var errs []error
	ran := false
	for _, b := range s.opts.Backends {
		name := b.Name()
		r := s.running[name]
		if r == nil || !r.fed {
			continue
		}
		diags, err := do(r.instance)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s backend: %w", name, err))
			continue
		}
		s.programmed(name, key)
		if !ran || name == s.want {
			out, ran = diags, true
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if !ran {
		return []mesh.Diagnostic{{
			Object: ref, Condition: smi.ConditionProgrammed, Reason: ReasonNoBackend, Severity: mesh.SeverityError, Message: s.idle,
		}}, nil
	}
	return out, nil
}

type services struct{ *Switch }

func (s services) SetService(key types.NamespacedName, svc *corev1.Service, endpoints xds.Endpoints) {
	s.toServiceSinks(key, func(sink service.Sink) { sink.SetService(key, svc, endpoints) })
}

func (s services) DeleteService(key types.NamespacedName) {
	s.toServiceSinks(key, func(sink service.Sink) { sink.DeleteService(key) })
}

// toServiceSinks hands a Service to every instance taking updates that takes Services, recording
// it as done by each.
func (s *Switch) toServiceSinks(key types.NamespacedName, do func(service.Sink)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for name, r := range s.running {
		if sink := r.instance.Services(); r.fed && sink != nil {
			do(sink)
			s.programmed(name, ObjectKey{ServiceKind, key.Namespace, key.Name})
		}
	}
}

type namespaces struct{ *Switch }

func (s namespaces) SetNamespace(ctx context.Context, ns *corev1.Namespace) error {
	return s.namespaceToFedInstances(ctx, ns.Name, func(sink namespace.Sink) error { return sink.SetNamespace(ctx, ns) })
}

func (s namespaces) DeleteNamespace(ctx context.Context, name string) error {
	return s.namespaceToFedInstances(ctx, name, func(sink namespace.Sink) error { return sink.DeleteNamespace(ctx, name) })
}

// namespaceToFedInstances hands a Namespace to every instance taking updates (onFedInstances),
// recording it as done by each. With none running there is nothing to tell, and no status to
// report it on.
func (s *Switch) namespaceToFedInstances(ctx context.Context, name string, do func(namespace.Sink) error) error {
	_, err := s.onFedInstances(ctx, mesh.ObjectRef{Kind: NamespaceKind, Name: name},
		func(i Instance) ([]mesh.Diagnostic, error) { return nil, do(i.Namespaces()) })
	return err
}

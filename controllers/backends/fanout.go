package backends

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	xdsbackend "github.com/smi-operator/smi-operator/controllers/backends/xds"
	"github.com/smi-operator/smi-operator/controllers/namespace"
	"github.com/smi-operator/smi-operator/controllers/service"
	"github.com/smi-operator/smi-operator/controllers/smiobject"
	"github.com/smi-operator/smi-operator/controllers/trafficsplit"
	"github.com/smi-operator/smi-operator/controllers/traffictarget"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/server"
)

// Splits is the TrafficSplit reconciler's backend: every backend running.
func (s *Switch) Splits() trafficsplit.Backend {
	return fanout[*hub.TrafficSplit]{s, smi.TrafficSplitKind,
		func(b *istioBackend) smiobject.Backend[*hub.TrafficSplit] { return b.splits },
		func(srv *server.Server) smiobject.Backend[*hub.TrafficSplit] { return xdsbackend.Splits{Server: srv} }}
}

// Targets is the TrafficTarget reconciler's backend: every backend running.
func (s *Switch) Targets() traffictarget.Backend {
	return fanout[*hub.TrafficTarget]{s, smi.TrafficTargetKind,
		func(b *istioBackend) smiobject.Backend[*hub.TrafficTarget] { return b.targets },
		func(srv *server.Server) smiobject.Backend[*hub.TrafficTarget] { return xdsbackend.Targets{Server: srv} }}
}

// Namespaces is where the namespace controller sends Namespaces: every backend running.
func (s *Switch) Namespaces() namespace.Sink { return namespaces{s} }

// Services is where the Service reconciler sends Services: the xDS server taking updates, if any.
func (s *Switch) Services() service.Sink { return services{s} }

// fanout is the backend of one SMI kind that stands for the running ones: istio and xds pick
// that kind's backend out of each.
type fanout[T hub.Object] struct {
	*Switch
	kind  string
	istio func(*istioBackend) smiobject.Backend[T]
	xds   func(*server.Server) smiobject.Backend[T]
}

func (f fanout[T]) Program(ctx context.Context, obj T, models *mesh.Models) ([]mesh.Diagnostic, error) {
	ref := mesh.ObjectRef{Kind: f.kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
	return f.onRunningBackends(ctx, ref,
		func(b *istioBackend) ([]mesh.Diagnostic, error) { return f.istio(b).Program(ctx, obj, models) },
		func(srv *server.Server) ([]mesh.Diagnostic, error) { return f.xds(srv).Program(ctx, obj, models) })
}

func (f fanout[T]) Forget(ctx context.Context, ref mesh.ObjectRef) error {
	_, err := f.onRunningBackends(ctx, ref,
		func(b *istioBackend) ([]mesh.Diagnostic, error) { return nil, f.istio(b).Forget(ctx, ref) },
		func(srv *server.Server) ([]mesh.Diagnostic, error) { return nil, f.xds(srv).Forget(ctx, ref) })
	return err
}

// onRunningBackends has every backend running program (or forget) the object ref and records it
// as done by each. The diagnostics returned, which become the object's status, are those of the
// backend asked for when it runs, else of the one that does; with none running, the object is
// reported not programmed and why.
func (s *Switch) onRunningBackends(ctx context.Context, ref mesh.ObjectRef,
	onIstio func(*istioBackend) ([]mesh.Diagnostic, error), onXDS func(*server.Server) ([]mesh.Diagnostic, error)) ([]mesh.Diagnostic, error) {
	if err := s.waitFirstMove(ctx); err != nil {
		return nil, err
	}
	// Held for reading across the writes, so that retiring a backend waits for those in flight.
	s.mu.RLock()
	defer s.mu.RUnlock()
	key := ObjectKey{ref.Kind, ref.Namespace, ref.Name}
	// Every backend running gets its turn even when another fails: a swap away from a failing
	// backend must not stall on it.
	var out []mesh.Diagnostic
	var errs []error
	ran := false
	if s.istio != nil {
		if diags, err := onIstio(s.istio); err != nil {
			errs = append(errs, fmt.Errorf("istio backend: %w", err))
		} else {
			s.programmed(v1alpha1.BackendIstio, key)
			out, ran = diags, true
		}
	}
	if s.xds != nil && s.xds.fed {
		if diags, err := onXDS(s.xds.server); err != nil {
			errs = append(errs, fmt.Errorf("xds backend: %w", err))
		} else {
			s.programmed(v1alpha1.BackendXDS, key)
			if !ran || s.want == v1alpha1.BackendXDS {
				out, ran = diags, true
			}
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
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.xds != nil && s.xds.fed {
		service.OnServer(s.xds.server).SetService(key, svc, endpoints)
		s.programmed(v1alpha1.BackendXDS, ObjectKey{ServiceKind, key.Namespace, key.Name})
	}
}

func (s services) DeleteService(key types.NamespacedName) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.xds != nil && s.xds.fed {
		s.xds.server.DeleteService(key)
		s.programmed(v1alpha1.BackendXDS, ObjectKey{ServiceKind, key.Namespace, key.Name})
	}
}

type namespaces struct{ *Switch }

func (s namespaces) SetNamespace(ctx context.Context, ns *corev1.Namespace) error {
	return s.namespaceToRunningBackends(ctx, ns.Name, func(b namespace.Sink) error { return b.SetNamespace(ctx, ns) })
}

func (s namespaces) DeleteNamespace(ctx context.Context, name string) error {
	return s.namespaceToRunningBackends(ctx, name, func(b namespace.Sink) error { return b.DeleteNamespace(ctx, name) })
}

// namespaceToRunningBackends hands a Namespace to every backend running (onRunningBackends),
// recording it as done by each.
// With none running there is nothing to tell, and no status to report it on.
func (s *Switch) namespaceToRunningBackends(ctx context.Context, name string, do func(namespace.Sink) error) error {
	_, err := s.onRunningBackends(ctx, mesh.ObjectRef{Kind: NamespaceKind, Name: name},
		func(b *istioBackend) ([]mesh.Diagnostic, error) { return nil, do(b.targets) },
		func(srv *server.Server) ([]mesh.Diagnostic, error) { return nil, do(xdsbackend.Targets{Server: srv}) })
	return err
}

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
	"github.com/smi-operator/smi-operator/controllers/service"
	"github.com/smi-operator/smi-operator/controllers/trafficsplit"
	"github.com/smi-operator/smi-operator/controllers/traffictarget"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
	"github.com/smi-operator/smi-operator/xds/server"
)

// Splits is the TrafficSplit reconciler's backend: every backend running.
func (s *Switch) Splits() trafficsplit.Backend { return splits{s} }

// Targets is the TrafficTarget reconciler's backend: every backend running.
func (s *Switch) Targets() traffictarget.Backend { return targets{s} }

// Services is where the Service reconciler sends Services: the xDS server taking updates, if any.
func (s *Switch) Services() service.Sink { return services{s} }

type splits struct{ *Switch }

func (s splits) Program(ctx context.Context, split *hub.TrafficSplit, models *mesh.Models) ([]mesh.Diagnostic, error) {
	ref := mesh.ObjectRef{Kind: smi.TrafficSplitKind, Namespace: split.Namespace, Name: split.Name}
	return s.each(ctx, ref,
		func(b *istioBackend) ([]mesh.Diagnostic, error) { return b.splits.Program(ctx, split, models) },
		func(srv *server.Server) ([]mesh.Diagnostic, error) {
			return trafficsplit.XDS{Server: srv}.Program(ctx, split, models)
		})
}

func (s splits) Forget(ctx context.Context, ref mesh.ObjectRef) error {
	_, err := s.each(ctx, ref,
		func(b *istioBackend) ([]mesh.Diagnostic, error) { return nil, b.splits.Forget(ctx, ref) },
		func(srv *server.Server) ([]mesh.Diagnostic, error) {
			return nil, trafficsplit.XDS{Server: srv}.Forget(ctx, ref)
		})
	return err
}

type targets struct{ *Switch }

func (s targets) Program(ctx context.Context, target *hub.TrafficTarget, models *mesh.Models) ([]mesh.Diagnostic, error) {
	ref := mesh.ObjectRef{Kind: smi.TrafficTargetKind, Namespace: target.Namespace, Name: target.Name}
	return s.each(ctx, ref,
		func(b *istioBackend) ([]mesh.Diagnostic, error) { return b.targets.Program(ctx, target, models) },
		func(srv *server.Server) ([]mesh.Diagnostic, error) {
			return traffictarget.XDS{Server: srv}.Program(ctx, target, models)
		})
}

func (s targets) Forget(ctx context.Context, ref mesh.ObjectRef) error {
	_, err := s.each(ctx, ref,
		func(b *istioBackend) ([]mesh.Diagnostic, error) { return nil, b.targets.Forget(ctx, ref) },
		func(srv *server.Server) ([]mesh.Diagnostic, error) {
			return nil, traffictarget.XDS{Server: srv}.Forget(ctx, ref)
		})
	return err
}

// each has every backend running program (or forget) the object ref and records it as done by
// each. The diagnostics returned, which become the object's status, are those of the backend
// asked for when it runs, else of the one that does; with none running, the object is reported
// not programmed and why.
func (s *Switch) each(ctx context.Context, ref mesh.ObjectRef,
	onIstio func(*istioBackend) ([]mesh.Diagnostic, error), onXDS func(*server.Server) ([]mesh.Diagnostic, error)) ([]mesh.Diagnostic, error) {
	if err := s.waitStepped(ctx); err != nil {
		return nil, err
	}
	// Held for reading across the writes, so that retiring a backend waits for those in flight.
	s.mu.RLock()
	defer s.mu.RUnlock()
	key := objectKey{ref.Kind, ref.Namespace, ref.Name}
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
		s.programmed(v1alpha1.BackendXDS, objectKey{serviceKind, key.Namespace, key.Name})
	}
}

func (s services) DeleteService(key types.NamespacedName) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.xds != nil && s.xds.fed {
		s.xds.server.DeleteService(key)
		s.programmed(v1alpha1.BackendXDS, objectKey{serviceKind, key.Namespace, key.Name})
	}
}

package istio

import (
	"context"
	"errors"

	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/backends"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// install says what makes Istio's kinds served.
const install = "install Istio, or choose the xds backend"

// Backend is the Istio backend the Switch runs: Istio's objects written with writer, the access
// policy through access, which the gamma backend shares.
func Backend(writer owned.Writer, access *Access) backends.Backend {
	return &backend{
		Written: backends.Written{Backend: v1alpha1.BackendIstio, Install: install, Writer: writer, Lists: SplitGeneratedKinds(), Watches: routeWatches,
			Indexes: Indexes()},
		access: access,
	}
}

// backend checks, watches and cleans up the split's Istio kinds as backends.Written does, and
// the targets' through the shared Access.
type backend struct {
	backends.Written
	access *Access
}

func (*backend) Name() v1alpha1.Backend { return v1alpha1.BackendIstio }

// Start checks that the cluster serves Istio's kinds and watches them, then programs with
// settings through the same writer as any instance before: an instance replaced leaves nothing
// to stop.
func (b *backend) Start(ctx context.Context, env backends.Env, _ v1alpha1.SMIOperatorSpec, settings mesh.Settings, _ func()) (backends.Instance, error) {
	if err := b.Written.Start(ctx, env); err != nil {
		return nil, err
	}
	if err := b.access.Start(ctx, env, v1alpha1.BackendIstio, install); err != nil {
		return nil, err
	}
	targets := Targets{Writer: b.Writer, Settings: settings}
	return backends.WrittenInstance{SplitSink: Splits{Writer: b.Writer, Settings: settings}, TargetSink: targets, NamespaceSink: targets,
		PolicySink: Policies{Writer: b.Writer, Settings: settings}, Settings: settings}, nil
}

// Clean deletes the splits' Istio objects, and the access policy unless another backend (gamma)
// writes it.
func (b *backend) Clean(ctx context.Context, env backends.Env) error {
	return errors.Join(b.Written.Clean(ctx, env), b.access.Clean(ctx, env, v1alpha1.BackendIstio))
}

// routeWatches are the split and policy controllers' watches of their Istio objects (Access
// watches the access objects).
func routeWatches(mgr manager.Manager, c backends.Controllers, predicates ...predicate.Predicate) []backends.Watch {
	return []backends.Watch{
		{Controller: c.Splits, Sources: SplitWatches(mgr, predicates...)},
		{Controller: c.Policies, Sources: PolicyWatches(mgr, predicates...)},
	}
}

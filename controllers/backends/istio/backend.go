package istio

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/backends"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// install says what makes Istio's kinds served.
const install = "install Istio, or choose the xds backend"

// Backend is the Istio backend the Switch runs: Istio's objects written with writer.
func Backend(writer owned.Writer) backends.Backend {
	return &backend{backends.Written{Backend: v1alpha1.BackendIstio, Install: install, Writer: writer, Lists: Lists(), Watches: watches}}
}

// backend checks, watches and cleans up Istio's kinds as backends.Written does.
type backend struct{ backends.Written }

func (*backend) Name() v1alpha1.Backend { return v1alpha1.BackendIstio }

// Start checks that the cluster serves Istio's kinds and watches them, then programs with
// settings through the same writer as any instance before: an instance replaced leaves nothing
// to stop.
func (b *backend) Start(ctx context.Context, env backends.Env, _ v1alpha1.SMIOperatorSpec, settings mesh.Settings, _ func()) (backends.Instance, error) {
	if err := b.Written.Start(ctx, env); err != nil {
		return nil, err
	}
	targets := Targets{Writer: b.Writer, Settings: settings}
	return backends.WrittenInstance{SplitSink: Splits{Writer: b.Writer, Settings: settings}, TargetSink: targets, NamespaceSink: targets,
		PolicySink: Policies{Writer: b.Writer, Settings: settings}, Settings: settings}, nil
}

// watches are the controllers' watches of the Istio objects.
func watches(mgr manager.Manager, c backends.Controllers, predicates ...predicate.Predicate) []backends.Watch {
	return []backends.Watch{
		{Controller: c.Splits, Sources: SplitWatches(mgr, predicates...)},
		{Controller: c.Targets, Sources: TargetWatches(mgr, predicates...)},
		{Controller: c.Policies, Sources: PolicyWatches(mgr, predicates...)},
		{Controller: c.Namespaces, Sources: BaselineWatches(mgr, predicates...)},
	}
}

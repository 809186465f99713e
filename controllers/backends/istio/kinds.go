package istio

import (
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/backends"
)

// Kinds are the Istio kinds the operator generates.
var Kinds = backends.ItemsOf(Lists())

// Lists are the list kinds of what the Istio backend generates, which it prunes.
func Lists() []client.ObjectList {
	return append(SplitGeneratedKinds(), TargetGeneratedKinds()...)
}

// Served says whether the cluster serves every Istio kind the Istio backend writes.
func Served(mgr manager.Manager) error {
	return backends.Served(mgr, v1alpha1.BackendIstio, install, Lists())
}

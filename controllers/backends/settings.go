package backends

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// The backends read their configuration from two places: main.go's flags, for a fixed --backend,
// and the SMIOperator resource. Both end up in the same two types, mesh.Settings (what the
// translators read) and xds.Config (what the xDS server is built from), so that a backend never
// knows where its settings came from; the defaults are the API's (v1alpha1.Default*).

// MeshSettings is the mesh configuration of an SMIOperator spec, its defaults filled in. A
// namespace selector that does not convert selects every namespace (deny-by-default fails
// closed), and the error names the field: the backend must not run on it.
func MeshSettings(spec v1alpha1.SMIOperatorSpec) (mesh.Settings, error) {
	d := spec.WithDefaults()
	namespaces, err := accessNamespaces(d.AccessNamespaceSelector)
	return mesh.Settings{
		TrustDomain:      d.TrustDomain,
		ClusterDomain:    d.ClusterDomain,
		Access:           mesh.AccessMode(d.AccessMode),
		MTLS:             d.MTLS,
		AccessNamespaces: namespaces,
	}, err
}

// accessNamespaces writes a namespace selector as mesh.Settings.AccessNamespaces: "" (the
// default) when unset, mesh.EveryNamespace for the empty selector. One that does not convert
// selects every namespace, failing closed, and the error says why.
func accessNamespaces(sel *metav1.LabelSelector) (string, error) {
	if sel == nil {
		return "", nil
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return mesh.EveryNamespace, fmt.Errorf("spec.accessNamespaceSelector: %w", err)
	}
	if selector.Empty() {
		return mesh.EveryNamespace, nil
	}
	return selector.String(), nil
}

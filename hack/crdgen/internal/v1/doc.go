// Package v1 exists only so controller-gen writes out the OpenAPI schema of smi.Status (as the
// status of a throw-away kind); hack/crdgen lifts that schema into every SMI CRD. Nothing serves it.
// +groupName=statusschema.smi-operator.io
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// StatusCarrier carries smi.Status so controller-gen emits its schema.
type StatusCarrier struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status smi.Status `json:"status,omitempty"`
}

package smi

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Condition types set on SMI objects, following Gateway API habits.
const (
	// ConditionAccepted says whether the object is valid and the operator takes it on.
	ConditionAccepted = "Accepted"
	// ConditionResolvedRefs says whether every object it references (services, routes) was found.
	ConditionResolvedRefs = "ResolvedRefs"
	// ConditionProgrammed says whether the active backend has been configured from it.
	ConditionProgrammed = "Programmed"
)

// Status is the status subresource that the operator's CRDs add to every SMI kind. SMI's own types
// have no status; clients that do not know this field ignore it, and conversion carries it across
// versions unchanged.
type Status struct {
	// ObservedGeneration is the metadata.generation the conditions were computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions describe the operator's view of the object: Accepted, ResolvedRefs, Programmed.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Labels on every object the operator generates from an SMI object.
const (
	// LabelManagedBy marks the operator's objects (value ManagedByValue).
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is LabelManagedBy's value.
	ManagedByValue = "smi-operator"
	// LabelSourceKind names the kind of the SMI object an object was generated from.
	LabelSourceKind = "smi.smi-operator.io/source-kind"
	// LabelSourceName names the SMI object an object was generated from, in the same namespace.
	LabelSourceName = "smi.smi-operator.io/source-name"
)

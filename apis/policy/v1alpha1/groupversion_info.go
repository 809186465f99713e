package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group is the API group of the operator's policies.
const Group = "policy.smi-operator.io"

// TrafficPolicyKind is the kind of [TrafficPolicy].
const TrafficPolicyKind = "TrafficPolicy"

// GroupVersion is the group and version of this package's kinds.
var GroupVersion = schema.GroupVersion{Group: Group, Version: "v1alpha1"}

var schemeBuilder = runtime.NewSchemeBuilder(func(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &TrafficPolicy{}, &TrafficPolicyList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
})

// AddToScheme registers this package's kinds.
var AddToScheme = schemeBuilder.AddToScheme

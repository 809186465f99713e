package v1alpha1

// The controller that acts on SMIOperator reads the singleton and writes its status; it never
// creates or deletes it (the administrator, or OLM's alm-examples, does). controller-gen collects
// these markers into config/rbac/role.yaml with the rest of the operator's rules.
//
// +kubebuilder:rbac:groups=smi-operator.io,resources=smioperators,verbs=get;list;watch
// +kubebuilder:rbac:groups=smi-operator.io,resources=smioperators/status,verbs=get;update;patch

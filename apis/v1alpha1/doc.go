// Package v1alpha1 is the operator's own API, group smi-operator.io: the cluster-scoped singleton
// SMIOperator (always named "default") that selects the mesh backend the SMI objects are
// programmed into (Istio or the operator's own xDS server) and holds every setting the backends
// read.
//
// Why a resource rather than flags: the backend has to be chosen and swapped on a running cluster
// (and through OLM, which owns the Deployment and would undo edits to its flags), and the
// operator has to report which backend is active and how the SMI objects fared. The flags in
// main.go stay as the defaults, and this API's defaults equal them (a test holds them together).
//
// The CRD validates everything it can (enums, ranges, SPIFFE and DNS syntax, durations, the name
// "default") with OpenAPI and CEL, so a bad setting is refused when it is written instead of
// failing a reconcile. [SMIOperatorSpec.Settings] turns a spec into the one settings type every
// translator reads, mesh.Settings; [SMIOperatorSpec.WithDefaults] fills in what an object built in
// Go (rather than defaulted by the API server) left empty.
//
// +kubebuilder:object:generate=true
// +groupName=smi-operator.io
package v1alpha1

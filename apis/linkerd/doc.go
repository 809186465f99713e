// Package linkerd holds the Linkerd policy kinds (group policy.linkerd.io) that the gamma backend
// writes with spec.gamma.accessPolicy linkerd, reduced to the fields the operator sets: Server
// (v1beta2), HTTPRoute (v1beta3), AuthorizationPolicy and MeshTLSAuthentication (v1alpha1). All
// four versions are served by Linkerd 2.15 and later.
//
// They are small local types rather than the linkerd2 module's (controller/gen/apis/policy):
// that module is Linkerd's whole control plane, whose dependencies the operator would take on for
// four structs, and the Go module proxy does not serve it to this project's machines. The
// operator's writer needs typed objects of a registered scheme (it reads them back through the
// manager's cache), so they are types, not unstructured objects. HTTPRoute reuses the Gateway
// API's parentRef and match types: Linkerd's schema for them is the Gateway API's.
//
// Every field is written out even where Linkerd's CRDs default it (a Server's proxyProtocol, a
// parentRef's group and kind), so that an object read back equals the one written and a resync
// writes nothing.
//
// +kubebuilder:object:generate=true
package linkerd

package linkerd

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Group is Linkerd's policy API group.
const Group = "policy.linkerd.io"

// The versions written: of each kind the newest that Linkerd 2.15 serves, none deprecated since.
var (
	ServerVersion    = schema.GroupVersion{Group: Group, Version: "v1beta2"}
	HTTPRouteVersion = schema.GroupVersion{Group: Group, Version: "v1beta3"}
	// AuthorizationVersion is AuthorizationPolicy's and MeshTLSAuthentication's.
	AuthorizationVersion = schema.GroupVersion{Group: Group, Version: "v1alpha1"}
)

// Kinds.
const (
	ServerKind                = "Server"
	HTTPRouteKind             = "HTTPRoute"
	AuthorizationPolicyKind   = "AuthorizationPolicy"
	MeshTLSAuthenticationKind = "MeshTLSAuthentication"
)

// AddToScheme registers the kinds in their versions.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(ServerVersion, &Server{}, &ServerList{})
	s.AddKnownTypes(HTTPRouteVersion, &HTTPRoute{}, &HTTPRouteList{})
	s.AddKnownTypes(AuthorizationVersion, &AuthorizationPolicy{}, &AuthorizationPolicyList{},
		&MeshTLSAuthentication{}, &MeshTLSAuthenticationList{})
	for _, gv := range []schema.GroupVersion{ServerVersion, HTTPRouteVersion, AuthorizationVersion} {
		metav1.AddToGroupVersion(s, gv)
	}
	return nil
}

// ProxyProtocol values of a Server.
const (
	// ProxyProtocolUnknown has the proxy detect HTTP (the CRD's default): a port may carry the
	// HTTP of one TrafficTarget and the TCP of another.
	ProxyProtocolUnknown = "unknown"
)

// Server is a port of the pods it selects, on which Linkerd denies every connection and request
// that no AuthorizationPolicy targeting it (or one of its HTTPRoutes) allows.
// +kubebuilder:object:root=true
type Server struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ServerSpec `json:"spec"`
}

// ServerSpec selects pods of the Server's namespace and one of their ports.
type ServerSpec struct {
	PodSelector   *metav1.LabelSelector `json:"podSelector"`
	Port          intstr.IntOrString    `json:"port"`
	ProxyProtocol string                `json:"proxyProtocol"`
}

// ServerList is a list of Servers.
// +kubebuilder:object:root=true
type ServerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Server `json:"items"`
}

// HTTPRoute is, with a Server as its parent, a set of requests to that Server: Linkerd answers a
// request that no HTTPRoute of the Server matches with 404, and one that matches only routes no
// AuthorizationPolicy lets the client use with 403.
// +kubebuilder:object:root=true
type HTTPRoute struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              HTTPRouteSpec `json:"spec"`
}

// HTTPRouteSpec attaches rules to parents.
type HTTPRouteSpec struct {
	ParentRefs []gatewayv1.ParentReference `json:"parentRefs"`
	Rules      []HTTPRouteRule             `json:"rules"`
}

// HTTPRouteRule matches a request when any of its matches does. Inbound, a rule routes nowhere:
// it has no backendRefs.
type HTTPRouteRule struct {
	Matches []gatewayv1.HTTPRouteMatch `json:"matches"`
}

// HTTPRouteList is a list of HTTPRoutes.
// +kubebuilder:object:root=true
type HTTPRouteList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HTTPRoute `json:"items"`
}

// AuthorizationPolicy allows what its target (a Server, or an HTTPRoute) serves to the clients
// that pass every authentication it requires.
// +kubebuilder:object:root=true
type AuthorizationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              AuthorizationPolicySpec `json:"spec"`
}

// AuthorizationPolicySpec names the target and the required authentications.
type AuthorizationPolicySpec struct {
	TargetRef                  ObjectReference   `json:"targetRef"`
	RequiredAuthenticationRefs []ObjectReference `json:"requiredAuthenticationRefs"`
}

// ObjectReference names an object by group, kind and name, in the referrer's namespace unless
// Namespace says otherwise.
type ObjectReference struct {
	// Group is empty for the core group.
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// AuthorizationPolicyList is a list of AuthorizationPolicies.
// +kubebuilder:object:root=true
type AuthorizationPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AuthorizationPolicy `json:"items"`
}

// MeshTLSAuthentication authenticates the clients whose mutual-TLS identity is one it lists.
// +kubebuilder:object:root=true
type MeshTLSAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              MeshTLSAuthenticationSpec `json:"spec"`
}

// MeshTLSAuthenticationSpec lists identities as ServiceAccount references, which Linkerd turns
// into identities of its own trust domain.
type MeshTLSAuthenticationSpec struct {
	IdentityRefs []ObjectReference `json:"identityRefs"`
}

// MeshTLSAuthenticationList is a list of MeshTLSAuthentications.
// +kubebuilder:object:root=true
type MeshTLSAuthenticationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MeshTLSAuthentication `json:"items"`
}

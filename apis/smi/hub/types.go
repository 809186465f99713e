// Package hub defines the hub (stored) version of each SMI kind as the operator reads it: the
// smi-sdk-go spec plus the status subresource the operator's CRDs add, which the SDK types lack.
// The manager's scheme maps the hub group versions to these types, so its cache keeps status and
// reconcilers can compare and patch it; everything else (conversion, validation, the mesh model)
// works on the SDK types, which each type's SDK method returns.
// +kubebuilder:object:generate=true
package hub

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// Object is an SMI hub object with its status.
// +kubebuilder:object:generate=false
type Object interface {
	metav1.Object
	runtime.Object
	GetStatus() *smi.Status
}

// TrafficSplit is split.smi-spec.io/v1alpha4 TrafficSplit with status.
// +kubebuilder:object:root=true
type TrafficSplit struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   splitv1alpha4.TrafficSplitSpec `json:"spec,omitempty"`
	Status smi.Status                     `json:"status,omitempty"`
}

// TrafficSplitList is a list of TrafficSplits.
// +kubebuilder:object:root=true
type TrafficSplitList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TrafficSplit `json:"items"`
}

// TrafficTarget is access.smi-spec.io/v1alpha3 TrafficTarget with status.
// +kubebuilder:object:root=true
type TrafficTarget struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   accessv1alpha3.TrafficTargetSpec `json:"spec"`
	Status smi.Status                       `json:"status,omitempty"`
}

// TrafficTargetList is a list of TrafficTargets.
// +kubebuilder:object:root=true
type TrafficTargetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TrafficTarget `json:"items"`
}

// HTTPRouteGroup is specs.smi-spec.io/v1alpha4 HTTPRouteGroup with status.
// +kubebuilder:object:root=true
type HTTPRouteGroup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   specsv1alpha4.HTTPRouteGroupSpec `json:"spec"`
	Status smi.Status                       `json:"status,omitempty"`
}

// HTTPRouteGroupList is a list of HTTPRouteGroups.
// +kubebuilder:object:root=true
type HTTPRouteGroupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HTTPRouteGroup `json:"items"`
}

// TCPRoute is specs.smi-spec.io/v1alpha4 TCPRoute with status.
// +kubebuilder:object:root=true
type TCPRoute struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   specsv1alpha4.TCPRouteSpec `json:"spec,omitempty"`
	Status smi.Status                 `json:"status,omitempty"`
}

// TCPRouteList is a list of TCPRoutes.
// +kubebuilder:object:root=true
type TCPRouteList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TCPRoute `json:"items"`
}

// UDPRoute is specs.smi-spec.io/v1alpha4 UDPRoute with status.
// +kubebuilder:object:root=true
type UDPRoute struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   specsv1alpha4.UDPRouteSpec `json:"spec,omitempty"`
	Status smi.Status                 `json:"status,omitempty"`
}

// UDPRouteList is a list of UDPRoutes.
// +kubebuilder:object:root=true
type UDPRouteList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []UDPRoute `json:"items"`
}

func (o *TrafficSplit) GetStatus() *smi.Status   { return &o.Status }
func (o *TrafficTarget) GetStatus() *smi.Status  { return &o.Status }
func (o *HTTPRouteGroup) GetStatus() *smi.Status { return &o.Status }
func (o *TCPRoute) GetStatus() *smi.Status       { return &o.Status }
func (o *UDPRoute) GetStatus() *smi.Status       { return &o.Status }

// SDK returns the smi-sdk-go object with the same metadata and spec (shared, not copied).
func (o *TrafficSplit) SDK() *splitv1alpha4.TrafficSplit {
	return &splitv1alpha4.TrafficSplit{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta, Spec: o.Spec}
}

// SDK returns the smi-sdk-go object with the same metadata and spec (shared, not copied).
func (o *TrafficTarget) SDK() *accessv1alpha3.TrafficTarget {
	return &accessv1alpha3.TrafficTarget{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta, Spec: o.Spec}
}

// SDK returns the smi-sdk-go object with the same metadata and spec (shared, not copied).
func (o *HTTPRouteGroup) SDK() *specsv1alpha4.HTTPRouteGroup {
	return &specsv1alpha4.HTTPRouteGroup{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta, Spec: o.Spec}
}

// SDK returns the smi-sdk-go object with the same metadata and spec (shared, not copied).
func (o *TCPRoute) SDK() *specsv1alpha4.TCPRoute {
	return &specsv1alpha4.TCPRoute{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta, Spec: o.Spec}
}

// SDK returns the smi-sdk-go object with the same metadata and spec (shared, not copied).
func (o *UDPRoute) SDK() *specsv1alpha4.UDPRoute {
	return &specsv1alpha4.UDPRoute{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta, Spec: o.Spec}
}

// AddToScheme registers the hub types under the hub group versions. A scheme holds one Go type per
// kind and version, so a scheme takes either these or smi.AddToScheme's SDK types, not both: the
// manager reads only hub versions and uses these.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(smi.SplitHub, &TrafficSplit{}, &TrafficSplitList{})
	s.AddKnownTypes(smi.AccessHub, &TrafficTarget{}, &TrafficTargetList{})
	s.AddKnownTypes(smi.SpecsHub, &HTTPRouteGroup{}, &HTTPRouteGroupList{}, &TCPRoute{}, &TCPRouteList{}, &UDPRoute{}, &UDPRouteList{})
	for _, gv := range []schema.GroupVersion{smi.SplitHub, smi.AccessHub, smi.SpecsHub} {
		metav1.AddToGroupVersion(s, gv)
	}
	return nil
}

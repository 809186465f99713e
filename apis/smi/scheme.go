// +kubebuilder:object:generate=true

// Package smi registers the Service Mesh Interface API types (from smi-sdk-go) and names the hub
// version of each kind: the newest one, which the CRDs store and every other version converts through.
package smi

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	accessv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha1"
	accessv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha2"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha1"
	specsv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha2"
	specsv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha1"
	splitv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha2"
	splitv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha3"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
)

// API groups served by the operator.
const (
	SplitGroup  = "split.smi-spec.io"
	AccessGroup = "access.smi-spec.io"
	SpecsGroup  = "specs.smi-spec.io"
)

// Kinds served by the operator.
const (
	TrafficSplitKind   = "TrafficSplit"
	TrafficTargetKind  = "TrafficTarget"
	HTTPRouteGroupKind = "HTTPRouteGroup"
	TCPRouteKind       = "TCPRoute"
	UDPRouteKind       = "UDPRoute"
)

// Hub versions: the newest version of each group. CRDs store them and conversion goes through them.
var (
	SplitHub  = splitv1alpha4.SchemeGroupVersion
	AccessHub = accessv1alpha3.SchemeGroupVersion
	SpecsHub  = specsv1alpha4.SchemeGroupVersion
)

// ConversionDataAnnotation holds, as JSON, what a version could not represent when an object was
// converted into it, so converting back restores it and a round trip loses nothing.
const ConversionDataAnnotation = "smi-operator.io/conversion-data"

// GroupVersions lists every served group version, oldest first within a group.
var GroupVersions = []schema.GroupVersion{
	splitv1alpha1.SchemeGroupVersion, splitv1alpha2.SchemeGroupVersion,
	splitv1alpha3.SchemeGroupVersion, splitv1alpha4.SchemeGroupVersion,
	accessv1alpha1.SchemeGroupVersion, accessv1alpha2.SchemeGroupVersion, accessv1alpha3.SchemeGroupVersion,
	specsv1alpha1.SchemeGroupVersion, specsv1alpha2.SchemeGroupVersion,
	specsv1alpha3.SchemeGroupVersion, specsv1alpha4.SchemeGroupVersion,
}

// HubFor returns the hub group version of an SMI group, and false for a group that is not SMI.
func HubFor(group string) (schema.GroupVersion, bool) {
	switch group {
	case SplitGroup:
		return SplitHub, true
	case AccessGroup:
		return AccessHub, true
	case SpecsGroup:
		return SpecsHub, true
	}
	return schema.GroupVersion{}, false
}

var schemeBuilder = runtime.NewSchemeBuilder(
	splitv1alpha1.AddToScheme, splitv1alpha2.AddToScheme, splitv1alpha3.AddToScheme, splitv1alpha4.AddToScheme,
	accessv1alpha1.AddToScheme, accessv1alpha2.AddToScheme, accessv1alpha3.AddToScheme,
	specsv1alpha1.AddToScheme, specsv1alpha2.AddToScheme, specsv1alpha3.AddToScheme, specsv1alpha4.AddToScheme,
	addUDPRoute,
)

// addUDPRoute registers UDPRoute, which smi-sdk-go v0.5.0 defines but leaves out of its v1alpha4
// scheme registration.
func addUDPRoute(s *runtime.Scheme) error {
	s.AddKnownTypes(specsv1alpha4.SchemeGroupVersion, &specsv1alpha4.UDPRoute{}, &specsv1alpha4.UDPRouteList{})
	return nil
}

// AddToScheme registers every served version of every SMI kind.
var AddToScheme = schemeBuilder.AddToScheme

// ConvertedCRDNames are the SMI CRDs served in more than one version, hence through the conversion
// webhook (UDPRoute exists only in v1alpha4).
var ConvertedCRDNames = []string{
	"trafficsplits." + SplitGroup,
	"traffictargets." + AccessGroup,
	"httproutegroups." + SpecsGroup,
	"tcproutes." + SpecsGroup,
}

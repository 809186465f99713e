package mesh

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"

	"github.com/smi-operator/smi-operator/apis/smi/conversion"
)

// Snapshot is everything the model is built from, in hub versions. It holds each object once;
// the order of the slices does not matter.
type Snapshot struct {
	TrafficSplits   []splitv1alpha4.TrafficSplit
	TrafficTargets  []accessv1alpha3.TrafficTarget
	HTTPRouteGroups []specsv1alpha4.HTTPRouteGroup
	TCPRoutes       []specsv1alpha4.TCPRoute
	UDPRoutes       []specsv1alpha4.UDPRoute
	Services        []corev1.Service
}

// Add converts an SMI object of any served version to its hub version and appends it, or appends a
// Service. Other objects are an error.
func (s *Snapshot) Add(obj runtime.Object) error {
	if svc, ok := obj.(*corev1.Service); ok {
		s.Services = append(s.Services, *svc)
		return nil
	}
	hub, err := toHub(obj)
	if err != nil {
		return err
	}
	switch o := hub.(type) {
	case *splitv1alpha4.TrafficSplit:
		s.TrafficSplits = append(s.TrafficSplits, *o)
	case *accessv1alpha3.TrafficTarget:
		s.TrafficTargets = append(s.TrafficTargets, *o)
	case *specsv1alpha4.HTTPRouteGroup:
		s.HTTPRouteGroups = append(s.HTTPRouteGroups, *o)
	case *specsv1alpha4.TCPRoute:
		s.TCPRoutes = append(s.TCPRoutes, *o)
	case *specsv1alpha4.UDPRoute:
		s.UDPRoutes = append(s.UDPRoutes, *o)
	default:
		return fmt.Errorf("mesh: %T is not an SMI hub object", hub)
	}
	return nil
}

// toHub converts an SMI object of any served version to its hub version; hub objects pass through.
func toHub(obj runtime.Object) (runtime.Object, error) {
	hub, err := conversion.ToHub(obj)
	if err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	return hub, nil
}

// Settings are the cluster facts the model depends on.
type Settings struct {
	// TrustDomain of SPIFFE identities; default "cluster.local".
	TrustDomain string
	// ClusterDomain of Service FQDNs; default "cluster.local".
	ClusterDomain string
}

const defaultDomain = "cluster.local"

func (s Settings) withDefaults() Settings {
	if s.TrustDomain == "" {
		s.TrustDomain = defaultDomain
	}
	if s.ClusterDomain == "" {
		s.ClusterDomain = defaultDomain
	}
	return s
}

package mesh

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
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
	// Deployments, StatefulSets and DaemonSets are the workloads whose pods access rules apply to.
	Deployments  []appsv1.Deployment
	StatefulSets []appsv1.StatefulSet
	DaemonSets   []appsv1.DaemonSet
	// Namespaces, with their labels, say where deny-by-default applies (Settings.AccessNamespaces).
	// A namespace of the snapshot's objects that is missing here is judged by its name alone.
	Namespaces []corev1.Namespace
	// TrafficPolicies are the operator's own resilience policies (not SMI objects).
	TrafficPolicies []policyv1alpha1.TrafficPolicy
}

// Add converts an SMI object of any served version to its hub version and appends it, or appends a
// Service, Deployment, StatefulSet, DaemonSet, Namespace or TrafficPolicy. Other objects are an error.
func (s *Snapshot) Add(obj runtime.Object) error {
	switch o := obj.(type) {
	case *corev1.Namespace:
		s.Namespaces = append(s.Namespaces, *o)
		return nil
	case *corev1.Service:
		s.Services = append(s.Services, *o)
		return nil
	case *appsv1.Deployment:
		s.Deployments = append(s.Deployments, *o)
		return nil
	case *appsv1.StatefulSet:
		s.StatefulSets = append(s.StatefulSets, *o)
		return nil
	case *appsv1.DaemonSet:
		s.DaemonSets = append(s.DaemonSets, *o)
		return nil
	case *policyv1alpha1.TrafficPolicy:
		s.TrafficPolicies = append(s.TrafficPolicies, *o)
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

// Merge adds the objects of other that s does not hold yet (by namespace and name, for each
// kind), so that snapshots collected for several objects make one that holds each object once.
func (s *Snapshot) Merge(other Snapshot) {
	s.TrafficSplits = mergeObjects(s.TrafficSplits, other.TrafficSplits, func(o *splitv1alpha4.TrafficSplit) metav1.Object { return o })
	s.TrafficTargets = mergeObjects(s.TrafficTargets, other.TrafficTargets, func(o *accessv1alpha3.TrafficTarget) metav1.Object { return o })
	s.HTTPRouteGroups = mergeObjects(s.HTTPRouteGroups, other.HTTPRouteGroups, func(o *specsv1alpha4.HTTPRouteGroup) metav1.Object { return o })
	s.TCPRoutes = mergeObjects(s.TCPRoutes, other.TCPRoutes, func(o *specsv1alpha4.TCPRoute) metav1.Object { return o })
	s.UDPRoutes = mergeObjects(s.UDPRoutes, other.UDPRoutes, func(o *specsv1alpha4.UDPRoute) metav1.Object { return o })
	s.Services = mergeObjects(s.Services, other.Services, func(o *corev1.Service) metav1.Object { return o })
	s.Deployments = mergeObjects(s.Deployments, other.Deployments, func(o *appsv1.Deployment) metav1.Object { return o })
	s.StatefulSets = mergeObjects(s.StatefulSets, other.StatefulSets, func(o *appsv1.StatefulSet) metav1.Object { return o })
	s.DaemonSets = mergeObjects(s.DaemonSets, other.DaemonSets, func(o *appsv1.DaemonSet) metav1.Object { return o })
	s.Namespaces = mergeObjects(s.Namespaces, other.Namespaces, func(o *corev1.Namespace) metav1.Object { return o })
	s.TrafficPolicies = mergeObjects(s.TrafficPolicies, other.TrafficPolicies, func(o *policyv1alpha1.TrafficPolicy) metav1.Object { return o })
}

// mergeObjects appends the items of more whose namespace and name no item of have has.
func mergeObjects[T any](have, more []T, meta func(*T) metav1.Object) []T {
	held := make(map[types.NamespacedName]bool, len(have))
	for i := range have {
		m := meta(&have[i])
		held[types.NamespacedName{Namespace: m.GetNamespace(), Name: m.GetName()}] = true
	}
	for i := range more {
		m := meta(&more[i])
		if key := (types.NamespacedName{Namespace: m.GetNamespace(), Name: m.GetName()}); !held[key] {
			held[key] = true
			have = append(have, more[i])
		}
	}
	return have
}

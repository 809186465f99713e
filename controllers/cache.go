package controllers

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions trim what the manager's cache keeps. Nothing reads managedFields. Services and
// EndpointSlices are cached by the thousand for the xDS backend and read for their routing
// fields only: their annotations (kubectl's last-applied copy can be larger than the object),
// status, and each endpoint's Pod reference, node name and hints are dropped. Deployments,
// StatefulSets and DaemonSets are read for their selector, their pods' labels and ServiceAccount
// only: their pod specs (containers, volumes), annotations and status are dropped.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Service{}:            {Transform: trimService},
			&discoveryv1.EndpointSlice{}: {Transform: trimEndpointSlice},
			&appsv1.Deployment{}:         {Transform: trimWorkload},
			&appsv1.StatefulSet{}:        {Transform: trimWorkload},
			&appsv1.DaemonSet{}:          {Transform: trimWorkload},
		},
	}
}

// trimWorkload keeps of a workload what mesh.Snapshot's workloads are built from.
func trimWorkload(in any) (any, error) {
	switch w := in.(type) {
	case *appsv1.Deployment:
		trimPodTemplate(&w.ObjectMeta, &w.Spec.Template)
		w.Status = appsv1.DeploymentStatus{}
	case *appsv1.StatefulSet:
		trimPodTemplate(&w.ObjectMeta, &w.Spec.Template)
		w.Spec.VolumeClaimTemplates = nil
		w.Status = appsv1.StatefulSetStatus{}
	case *appsv1.DaemonSet:
		trimPodTemplate(&w.ObjectMeta, &w.Spec.Template)
		w.Status = appsv1.DaemonSetStatus{}
	}
	return in, nil
}

func trimPodTemplate(meta *metav1.ObjectMeta, template *corev1.PodTemplateSpec) {
	meta.ManagedFields, meta.Annotations = nil, nil
	template.Annotations = nil
	template.Spec = corev1.PodSpec{
		ServiceAccountName:       template.Spec.ServiceAccountName,
		DeprecatedServiceAccount: template.Spec.DeprecatedServiceAccount,
	}
}

func trimService(in any) (any, error) {
	if svc, ok := in.(*corev1.Service); ok {
		svc.ManagedFields, svc.Annotations = nil, nil
		svc.Status = corev1.ServiceStatus{}
	}
	return in, nil
}

func trimEndpointSlice(in any) (any, error) {
	if slice, ok := in.(*discoveryv1.EndpointSlice); ok {
		slice.ManagedFields, slice.Annotations = nil, nil
		for i := range slice.Endpoints {
			e := &slice.Endpoints[i]
			e.TargetRef, e.NodeName, e.Hints, e.DeprecatedTopology = nil, nil, nil, nil
		}
	}
	return in, nil
}

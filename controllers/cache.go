package controllers

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions trim what the manager's cache keeps. Nothing reads managedFields. Services and
// EndpointSlices are cached by the thousand for the xDS backend and read for their routing
// fields only: their annotations (kubectl's last-applied copy can be larger than the object),
// status, and each endpoint's Pod reference, node name and hints are dropped.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Service{}:            {Transform: trimService},
			&discoveryv1.EndpointSlice{}: {Transform: trimEndpointSlice},
		},
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

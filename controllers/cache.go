package controllers

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ClientConfig returns a copy of cfg set up for the operator's clients: qps and burst, and no
// response compression. The API server gzips every large list and every watch stream a client
// accepts gzip for; between an operator and its API server (the cluster network) that costs the
// API server CPU and adds latency rather than saving it, which is why kube-controller-manager and
// kube-scheduler turn it off too. Measured with the Istio backend benchmark: the API server spent
// about 0.3 s compressing the operator's watch streams and initial lists for every 3,000 objects
// written.
func ClientConfig(cfg *rest.Config, qps float32, burst int) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = qps, burst
	cfg.DisableCompression = true
	return cfg
}

// CacheOptions trim what the manager's cache keeps. Nothing reads managedFields. Services and
// EndpointSlices are cached by the thousand for the xDS backend and read for their routing
// fields only: their annotations (kubectl's last-applied copy can be larger than the object),
// status, and each endpoint's node name and hints are dropped; of an endpoint's Pod reference
// only what names the Pod is kept. Pods are cached for the xDS backend's secure naming and read
// for their ServiceAccount only: everything else is dropped (labels, spec, status). Deployments,
// StatefulSets and DaemonSets are read for their selector, their pods' labels and ServiceAccount
// only: their pod specs (containers, volumes), annotations and status are dropped.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Service{}:            {Transform: trimService},
			&discoveryv1.EndpointSlice{}: {Transform: trimEndpointSlice},
			&corev1.Pod{}:                {Transform: trimPod},
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
			e.NodeName, e.Hints, e.DeprecatedTopology = nil, nil, nil
			if ref := e.TargetRef; ref != nil {
				e.TargetRef = &corev1.ObjectReference{Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name, UID: ref.UID}
			}
		}
	}
	return in, nil
}

// trimPod keeps what names the Pod and the ServiceAccount it runs as (mesh.ServiceAccountOf).
func trimPod(in any) (any, error) {
	if pod, ok := in.(*corev1.Pod); ok {
		pod.ObjectMeta = metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, ResourceVersion: pod.ResourceVersion}
		pod.Spec = corev1.PodSpec{
			ServiceAccountName:       pod.Spec.ServiceAccountName,
			DeprecatedServiceAccount: pod.Spec.DeprecatedServiceAccount,
		}
		pod.Status = corev1.PodStatus{}
	}
	return in, nil
}

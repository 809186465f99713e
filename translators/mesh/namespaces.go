package mesh

import (
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
)

// accessNamespaces lists, sorted, the namespaces of the snapshot where deny-by-default applies
// (Settings.EnforcesIn): its Namespaces, judged by their labels, and the namespace of every other
// object it holds, judged by the labels the API server gives any namespace (NamespaceLabels),
// since a snapshot need not carry the Namespace objects (`translate`'s input rarely does).
func accessNamespaces(snap Snapshot, settings Settings) []string {
	if !settings.Enforcing() {
		return nil
	}
	labelsOf := map[string]map[string]string{}
	known := func(ns string) {
		if _, ok := labelsOf[ns]; !ok && ns != "" {
			labelsOf[ns] = NamespaceLabels(ns)
		}
	}
	for i := range snap.Namespaces {
		// The API server adds the name label to every namespace; a manifest need not carry it.
		labels := NamespaceLabels(snap.Namespaces[i].Name)
		maps.Copy(labels, snap.Namespaces[i].Labels)
		labelsOf[snap.Namespaces[i].Name] = labels
	}
	for _, objects := range [][]string{
		namespacesOf(snap.TrafficSplits, func(o *splitv1alpha4.TrafficSplit) string { return o.Namespace }),
		namespacesOf(snap.TrafficTargets, func(o *accessv1alpha3.TrafficTarget) string { return o.Namespace }),
		namespacesOf(snap.TrafficTargets, func(o *accessv1alpha3.TrafficTarget) string { return o.Spec.Destination.Namespace }),
		namespacesOf(snap.HTTPRouteGroups, func(o *specsv1alpha4.HTTPRouteGroup) string { return o.Namespace }),
		namespacesOf(snap.TCPRoutes, func(o *specsv1alpha4.TCPRoute) string { return o.Namespace }),
		namespacesOf(snap.UDPRoutes, func(o *specsv1alpha4.UDPRoute) string { return o.Namespace }),
		namespacesOf(snap.Services, func(o *corev1.Service) string { return o.Namespace }),
		namespacesOf(snap.Deployments, func(o *appsv1.Deployment) string { return o.Namespace }),
		namespacesOf(snap.StatefulSets, func(o *appsv1.StatefulSet) string { return o.Namespace }),
		namespacesOf(snap.DaemonSets, func(o *appsv1.DaemonSet) string { return o.Namespace }),
	} {
		for _, ns := range objects {
			known(ns)
		}
	}
	var out []string
	for _, ns := range slices.Sorted(maps.Keys(labelsOf)) {
		if settings.EnforcesIn(labelsOf[ns]) {
			out = append(out, ns)
		}
	}
	return out
}

// namespacesOf lists the namespace of each object.
func namespacesOf[T any](objects []T, namespace func(*T) string) []string {
	out := make([]string, len(objects))
	for i := range objects {
		out[i] = namespace(&objects[i])
	}
	return out
}

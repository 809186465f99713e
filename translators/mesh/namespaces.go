package mesh

import (
	"maps"
	"slices"
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
		labelsOf[snap.Namespaces[i].Name] = snap.Namespaces[i].Labels
	}
	for i := range snap.TrafficSplits {
		known(snap.TrafficSplits[i].Namespace)
	}
	for i := range snap.TrafficTargets {
		known(snap.TrafficTargets[i].Namespace)
		known(snap.TrafficTargets[i].Spec.Destination.Namespace)
	}
	for i := range snap.HTTPRouteGroups {
		known(snap.HTTPRouteGroups[i].Namespace)
	}
	for i := range snap.TCPRoutes {
		known(snap.TCPRoutes[i].Namespace)
	}
	for i := range snap.UDPRoutes {
		known(snap.UDPRoutes[i].Namespace)
	}
	for i := range snap.Services {
		known(snap.Services[i].Namespace)
	}
	for i := range snap.Deployments {
		known(snap.Deployments[i].Namespace)
	}
	for i := range snap.StatefulSets {
		known(snap.StatefulSets[i].Namespace)
	}
	for i := range snap.DaemonSets {
		known(snap.DaemonSets[i].Namespace)
	}
	var out []string
	for _, ns := range slices.Sorted(maps.Keys(labelsOf)) {
		if settings.EnforcesIn(labelsOf[ns]) {
			out = append(out, ns)
		}
	}
	return out
}

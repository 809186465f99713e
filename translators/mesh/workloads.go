package mesh

import (
	"cmp"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// podController is a Deployment, StatefulSet or DaemonSet reduced to what access rules need.
type podController struct {
	kind, name string
	// account is the ServiceAccount its pods run as.
	account  string
	selector *metav1.LabelSelector
	// podLabels are the labels of its pod template, i.e. of its pods.
	podLabels map[string]string
	// ports are the TCP ports its pod template declares.
	ports []int32
}

func newPodController(kind string, meta *metav1.ObjectMeta, selector *metav1.LabelSelector, pod *corev1.PodTemplateSpec) podController {
	return podController{
		kind:      kind,
		name:      meta.Name,
		account:   ServiceAccountOf(pod.Spec),
		selector:  selector,
		podLabels: pod.Labels,
		ports:     declaredPorts(pod.Spec),
	}
}

// declaredPorts are the TCP container ports of spec's containers, sorted and unique; nil when it
// declares none. A container may listen on ports it does not declare: what needs a port number
// (Linkerd's Server) can only use these for "every port".
func declaredPorts(spec corev1.PodSpec) []int32 {
	var out []int32
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if p.Protocol == "" || p.Protocol == corev1.ProtocolTCP {
				out = append(out, p.ContainerPort)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ServiceAccountOf is the ServiceAccount pods of spec run as. The API server still honours the
// deprecated serviceAccount field when the new one is empty, and runs pods as "default" when both
// are.
func ServiceAccountOf(spec corev1.PodSpec) string {
	return cmp.Or(spec.ServiceAccountName, spec.DeprecatedServiceAccount, "default")
}

// indexWorkloads groups the snapshot's workloads by namespace, each group sorted by kind and name.
func indexWorkloads(snap Snapshot) map[string][]podController {
	out := map[string][]podController{}
	add := func(ns string, c podController) { out[ns] = append(out[ns], c) }
	for i := range snap.Deployments {
		d := &snap.Deployments[i]
		add(d.Namespace, newPodController(DeploymentKind, &d.ObjectMeta, d.Spec.Selector, &d.Spec.Template))
	}
	for i := range snap.StatefulSets {
		s := &snap.StatefulSets[i]
		add(s.Namespace, newPodController(StatefulSetKind, &s.ObjectMeta, s.Spec.Selector, &s.Spec.Template))
	}
	for i := range snap.DaemonSets {
		d := &snap.DaemonSets[i]
		add(d.Namespace, newPodController(DaemonSetKind, &d.ObjectMeta, d.Spec.Selector, &d.Spec.Template))
	}
	for _, group := range out {
		slices.SortFunc(group, func(x, y podController) int {
			return cmp.Or(cmp.Compare(x.kind, y.kind), cmp.Compare(x.name, y.name))
		})
	}
	return out
}

// destinationWorkloads returns the workloads whose pods run as dest, reporting on referrer those
// that cannot be selected by labels, and the absence of any.
//
// A workload is left out rather than approximated whenever a label selector for it could reach
// pods running as another ServiceAccount: a policy attached through that selector would hand
// dest's access to them. In enforcing mode its pods then fall under the namespace's deny-all.
func (b *builder) destinationWorkloads(referrer ObjectRef, dest Identity) []Workload {
	all := b.workloads[dest.Namespace]
	var out []Workload
	found := false
	for _, w := range all {
		if w.account != dest.ServiceAccount {
			continue
		}
		found = true
		if why := unusableSelector(w.selector); why != "" {
			b.diags.Warn(referrer, smi.ConditionProgrammed, ReasonUnsupportedSelector,
				"%s %q %s; its pods get no policy from this TrafficTarget%s", w.kind, w.name, why, unrestrictedWhere)
			continue
		}
		if other, ok := selectsOthers(w, all); ok {
			b.diags.Warn(referrer, smi.ConditionProgrammed, ReasonOverlappingSelector,
				"%s %q has a selector that also selects the pods of %s %q, which run as ServiceAccount %q; "+
					"a policy using it would apply to them too, so its pods get no policy from this TrafficTarget%s",
				w.kind, w.name, other.kind, other.name, other.account, unrestrictedWhere)
			continue
		}
		out = append(out, Workload{Kind: w.kind, Name: w.name, Selector: maps.Clone(w.selector.MatchLabels), Ports: slices.Clone(w.ports)})
	}
	if !found {
		b.diags.Warn(referrer, smi.ConditionProgrammed, ReasonNoWorkloads,
			"no %s, %s or %s in namespace %q runs as %s %q yet; its policy will be written once one appears",
			DeploymentKind, StatefulSetKind, DaemonSetKind, dest.Namespace, serviceAccountKind, dest.ServiceAccount)
	}
	return out
}

// unusableSelector says why a selector cannot be written as matchLabels, or returns "".
// unrestrictedWhere completes the message of a workload left without a policy: what it then
// accepts, which is not what the TrafficTarget says where nothing denies by default.
const unrestrictedWhere = " (where deny-by-default applies they accept nothing; in Permissive mode or outside " +
	"the access namespace selector, whatever the mesh allows them)"

func unusableSelector(sel *metav1.LabelSelector) string {
	switch {
	case sel != nil && len(sel.MatchExpressions) > 0:
		// Dropping the expressions would select more pods than the workload's own.
		return "selects its pods with matchExpressions, which matchLabels-only workload selectors cannot express"
	case sel == nil || len(sel.MatchLabels) == 0:
		return "has an empty selector, which would select every pod of the namespace"
	}
	return ""
}

// selectsOthers returns a workload among all running as another ServiceAccount whose pods w's
// selector matches. Kubernetes calls overlapping controller selectors a misconfiguration, but does
// not prevent them.
func selectsOthers(w podController, all []podController) (podController, bool) {
	for _, o := range all {
		if o.account != w.account && isSubset(w.selector.MatchLabels, o.podLabels) {
			return o, true
		}
	}
	return podController{}, false
}

func isSubset(sub, super map[string]string) bool {
	for k, v := range sub {
		if got, ok := super[k]; !ok || got != v {
			return false
		}
	}
	return true
}

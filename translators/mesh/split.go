package mesh

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// splits resolves every TrafficSplit into those to program and those that would be but for
// their weights, all zero (Model.UnweightedSplits). Both are sorted by apex namespace and name.
func (b *builder) splits(in []splitv1alpha4.TrafficSplit) (programmed, unweighted []Split) {
	// The apex each split names, however spec.service spells it; a split naming none is refused.
	apexes := make(map[*splitv1alpha4.TrafficSplit]string, len(in))
	ordered := make([]*splitv1alpha4.TrafficSplit, 0, len(in))
	for i := range in {
		ts := &in[i]
		apex, problem := apexOf(ts, b.settings.ClusterDomain)
		if problem != "" {
			ref := ObjectRef{Kind: smi.TrafficSplitKind, Namespace: ts.Namespace, Name: ts.Name}
			b.diags.Fail(ref, smi.ConditionAccepted, ReasonInvalidService, "service %q %s", ts.Spec.Service, problem)
			continue
		}
		apexes[ts] = apex
		ordered = append(ordered, ts)
	}
	// Oldest first within each apex, so the first split seen for an apex is the one that wins it;
	// sorting by apex first also leaves the output in apex order.
	slices.SortFunc(ordered, func(x, y *splitv1alpha4.TrafficSplit) int {
		return cmp.Or(
			cmp.Compare(x.Namespace, y.Namespace),
			cmp.Compare(apexes[x], apexes[y]),
			x.CreationTimestamp.Time.Compare(y.CreationTimestamp.Time),
			cmp.Compare(x.Name, y.Name))
	})

	owners := map[types.NamespacedName]string{}
	for _, ts := range ordered {
		ref := ObjectRef{Kind: smi.TrafficSplitKind, Namespace: ts.Namespace, Name: ts.Name}
		apex := nameOf(ts.Namespace, apexes[ts])
		if owner, taken := owners[apex]; taken {
			b.diags.Fail(ref, smi.ConditionAccepted, ReasonConflicted,
				"service %q is already split by the older TrafficSplit %q", apexes[ts], owner)
			continue
		}
		owners[apex] = ts.Name
		switch s, state := b.split(ref, ts, apex); state {
		case splitProgrammed:
			programmed = append(programmed, s)
		case splitUnweighted:
			unweighted = append(unweighted, s)
		}
	}
	b.warnUnchained(programmed)
	return programmed, unweighted
}

// splitState is what becomes of a resolved split.
type splitState int

const (
	splitRefused    splitState = iota // not programmed, for what its diagnostics say
	splitProgrammed                   // programmed
	splitUnweighted                   // not programmed for its weights alone, all zero
)

// warnUnchained tells a split whose backend is another split's apex that the other split's
// weights do not apply to its share: neither Istio (a VirtualService is not applied to the
// destination of another) nor the xDS backend (a route's clusters are the backends' own) chains
// splits, and an author who split a split most likely expected them to.
func (b *builder) warnUnchained(splits []Split) {
	splitOf := map[types.NamespacedName]ObjectRef{}
	for _, s := range splits {
		splitOf[nameOf(s.Apex.Namespace, s.Apex.Name)] = s.Source
	}
	for _, s := range splits {
		for _, be := range s.Backends {
			other, split := splitOf[nameOf(be.Namespace, be.Name)]
			if !split || be.Weight == 0 || other == s.Source {
				continue
			}
			b.diags.Warn(s.Source, smi.ConditionResolvedRefs, ReasonSplitNotChained,
				"backend %q is the apex of TrafficSplit %q, whose weights do not apply here: this split's share (weight %d) goes to %q's own endpoints, as splits are not chained",
				be.Name, other.Name, be.Weight, be.Name)
		}
	}
}

// apexOf is the name of the Service a split's spec.service names, "the FQDN that applications
// will use" (smi.ParseSplitService), or why it names none of the split's namespace in this
// cluster.
func apexOf(ts *splitv1alpha4.TrafficSplit, clusterDomain string) (name, problem string) {
	parsed, ok := smi.ParseSplitService(ts.Spec.Service)
	switch {
	case !ok:
		return "", "is not <name>, <name>.<namespace>, <name>.<namespace>.svc or <name>.<namespace>.svc.<cluster domain>"
	case parsed.Namespace != "" && parsed.Namespace != ts.Namespace:
		return "", fmt.Sprintf("names a Service of namespace %q; a TrafficSplit splits a Service of its own namespace (%q)", parsed.Namespace, ts.Namespace)
	case parsed.ClusterDomain != "" && parsed.ClusterDomain != clusterDomain:
		return "", fmt.Sprintf("names the cluster domain %q; this cluster's is %q", parsed.ClusterDomain, clusterDomain)
	}
	return parsed.Name, ""
}

// split resolves one TrafficSplit that owns its apex, and says whether it is to be programmed.
func (b *builder) split(ref ObjectRef, ts *splitv1alpha4.TrafficSplit, apexName types.NamespacedName) (Split, splitState) {
	b.validateSplit(ref, ts)
	if b.diags.Failed(ref) {
		return Split{}, splitRefused
	}
	apex, found := b.services[apexName]
	if !found {
		// Without the apex there is no port to check backends against and nothing to route from.
		b.diags.Fail(ref, smi.ConditionResolvedRefs, ReasonApexNotFound,
			"apex Service %q not found in namespace %q", apexName.Name, ts.Namespace)
		return Split{}, splitRefused
	}

	if len(apex.Ports) == 0 {
		// Every backend would find nothing to route; saying so here makes them all say it alike.
		b.diags.Fail(ref, smi.ConditionProgrammed, ReasonNoRoutablePorts,
			"the apex Service %q has no port, so it carries no traffic to split; nothing is split", apexName.Name)
	}

	s := Split{Source: ref, Apex: apex, Backends: b.splitBackends(ref, apex, ts.Spec.Backends)}
	for _, m := range ts.Spec.Matches {
		s.Matches = append(s.Matches, b.httpMatches(ref, ts.Namespace, m.Name, nil)...)
	}
	if len(ts.Spec.Matches) > 0 && len(s.Matches) == 0 {
		// Splitting everything instead would reach far more requests than the author asked.
		b.diags.Fail(ref, smi.ConditionProgrammed, ReasonNoValidMatches,
			"none of the referenced HTTPRouteGroups has a usable match; nothing is split")
	}
	// Judged last, so that a split failing for nothing else is known to be merely unweighted.
	refused := b.diags.Failed(ref)
	total := 0
	for _, be := range s.Backends {
		total += be.Weight
	}
	switch {
	case total == 0:
		b.diags.Fail(ref, smi.ConditionProgrammed, ReasonNoWeightedBackends,
			"no usable backend has a positive weight; traffic keeps going to the apex %q", ts.Spec.Service)
		if !refused {
			return s, splitUnweighted
		}
	case !refused:
		return s, splitProgrammed
	}
	return Split{}, splitRefused
}

// validateSplit checks what can be judged from the TrafficSplit alone.
func (b *builder) validateSplit(ref ObjectRef, ts *splitv1alpha4.TrafficSplit) {
	for i, be := range ts.Spec.Backends {
		if be.Weight < 0 {
			b.diags.Fail(ref, smi.ConditionAccepted, ReasonInvalidWeight,
				"backends[%d] (%q) has negative weight %d", i, be.Service, be.Weight)
		}
	}
	for i, m := range ts.Spec.Matches {
		if !isHTTPRouteGroupRef(m) {
			b.diags.Fail(ref, smi.ConditionAccepted, ReasonUnsupportedRouteKind,
				"matches[%d] refers to %s; only %s.%s is supported", i, describeRef(m), smi.HTTPRouteGroupKind, smi.SpecsGroup)
		}
	}
}

func isHTTPRouteGroupRef(r corev1.TypedLocalObjectReference) bool {
	return r.Kind == smi.HTTPRouteGroupKind && (r.APIGroup == nil || *r.APIGroup == "" || *r.APIGroup == smi.SpecsGroup)
}

func describeRef(r corev1.TypedLocalObjectReference) string {
	kind := r.Kind
	if r.APIGroup != nil && *r.APIGroup != "" {
		kind += "." + *r.APIGroup
	}
	return fmt.Sprintf("%s %q", kind, r.Name)
}

// splitBackends resolves the backends, sorted by service name. A service listed twice gets the sum
// of its weights. Backends that cannot carry the apex's traffic are dropped with a warning.
func (b *builder) splitBackends(ref ObjectRef, apex Service, in []splitv1alpha4.TrafficSplitBackend) []Backend {
	weights := map[string]int{}
	for _, be := range in {
		weights[be.Service] += be.Weight
	}
	var out []Backend
	for _, name := range slices.Sorted(maps.Keys(weights)) {
		svc, found := b.services[nameOf(apex.Namespace, name)]
		if !found {
			b.diags.Warn(ref, smi.ConditionResolvedRefs, ReasonBackendNotFound,
				"backend Service %q not found in namespace %q; it gets no traffic", name, apex.Namespace)
			continue
		}
		if missing := missingPorts(apex, svc); len(missing) > 0 {
			b.diags.Warn(ref, smi.ConditionResolvedRefs, ReasonBackendPortMismatch,
				"backend Service %q lacks port %s of the apex %q; it gets no traffic", name, strings.Join(missing, ", "), apex.Name)
			continue
		}
		if name == apex.Name {
			// The spec says a split cannot reference itself, yet OSM and linkerd-smi accept it, and
			// it has a plain meaning: that share is not moved. Accepted, but not silently.
			b.diags.Warn(ref, smi.ConditionResolvedRefs, ReasonSelfReferentialSplit,
				"backend %q is the apex itself, which the SMI spec says a TrafficSplit cannot be; "+
					"accepted as other SMI implementations do: its share (weight %d) stays on the apex's own endpoints",
				name, weights[name])
		}
		out = append(out, Backend{Service: svc, Weight: weights[name]})
	}
	return out
}

// missingPorts lists, as "port/protocol", the apex ports that backend does not expose.
func missingPorts(apex, backend Service) []string {
	var missing []string
	for _, p := range apex.Ports {
		if !slices.ContainsFunc(backend.Ports, func(q ServicePort) bool { return q.Port == p.Port && q.Protocol == p.Protocol }) {
			missing = append(missing, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
		}
	}
	return missing
}

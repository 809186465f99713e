package mesh

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Severity says how much of an object a diagnostic takes out of effect.
type Severity string

// Severities.
const (
	// SeverityWarning: part of the object was ignored; the rest is in the Model.
	SeverityWarning Severity = "Warning"
	// SeverityError: the object has no effect and is absent from the Model.
	SeverityError Severity = "Error"
)

// Reasons are stable CamelCase words for conditions and Events; tools may match on them.
const (
	// ReasonConflicted: an older TrafficSplit already owns the apex.
	ReasonConflicted = "Conflicted"
	// ReasonInvalidWeight: a backend weight is negative.
	ReasonInvalidWeight = "InvalidWeight"
	// ReasonUnsupportedRouteKind: a reference names a kind (or API group) that cannot be used there.
	ReasonUnsupportedRouteKind = "UnsupportedRouteKind"
	// ReasonInvalidService: a split's spec.service names no Service of its namespace in this
	// cluster (another namespace, another cluster domain, or none of SMI's forms).
	ReasonInvalidService = "InvalidService"
	// ReasonApexNotFound: the split's root Service does not exist.
	ReasonApexNotFound = "ApexNotFound"
	// ReasonBackendNotFound: a backend Service does not exist; the backend is dropped.
	ReasonBackendNotFound = "BackendNotFound"
	// ReasonBackendPortMismatch: a backend Service lacks a port of the apex; the backend is dropped.
	ReasonBackendPortMismatch = "BackendPortMismatch"
	// ReasonSelfReferentialSplit: a backend is the split's own apex, which the SMI spec says cannot
	// be; it is accepted (as OSM and linkerd-smi accept it): its share stays on the apex's endpoints.
	ReasonSelfReferentialSplit = "SelfReferentialSplit"
	// ReasonSplitNotChained: a backend is the apex of another split, whose weights do not apply
	// to the share sent to it (no backend chains splits).
	ReasonSplitNotChained = "SplitNotChained"
	// ReasonNoWeightedBackends: no remaining backend has a positive weight; traffic stays on the apex.
	ReasonNoWeightedBackends = "NoWeightedBackends"
	// ReasonRouteNotFound: a referenced HTTPRouteGroup, TCPRoute or UDPRoute does not exist.
	ReasonRouteNotFound = "RouteNotFound"
	// ReasonNoRules: a TrafficTarget has no rules (optional before v1alpha3), so it allows nothing.
	ReasonNoRules = "NoRules"
	// ReasonMatchNotFound: a TrafficTarget rule names a match its route does not have.
	ReasonMatchNotFound = "MatchNotFound"
	// ReasonInvalidMatch: an HTTPRouteGroup match cannot be compiled; it matches nothing.
	ReasonInvalidMatch = "InvalidMatch"
	// ReasonInvalidPort: a port is outside 1-65535. A TCPRoute or UDPRoute port is ignored; a
	// TrafficTarget's destination port makes the target allow nothing.
	ReasonInvalidPort = "InvalidPort"
	// ReasonDestinationPortOutsideRoute: a TrafficTarget rule's TCPRoute or UDPRoute allows no
	// port that the target's destination port (v1alpha1, v1alpha2) leaves open; the rule allows
	// nothing.
	ReasonDestinationPortOutsideRoute = "DestinationPortOutsideRoute"
	// ReasonInvalidConversionData: an SMI object's smi-operator.io/conversion-data annotation does
	// not decode, so what an older version of it holds there cannot be known. For a TrafficTarget
	// that is its destination port: the target allows nothing.
	ReasonInvalidConversionData = "InvalidConversionData"
	// ReasonNoRoutablePorts: a split's apex has no port, so there is no traffic to split (Build),
	// or none that a backend can route (that backend); nothing is split.
	ReasonNoRoutablePorts = "NoRoutablePorts"
	// ReasonNoValidMatches: a split restricted to matches has none left; nothing is split.
	ReasonNoValidMatches = "NoValidMatches"
	// ReasonDestinationNamespaceMismatch: a TrafficTarget does not live in its destination's namespace.
	ReasonDestinationNamespaceMismatch = "DestinationNamespaceMismatch"
	// ReasonUnsupportedIdentityKind: an identity is not a named ServiceAccount.
	ReasonUnsupportedIdentityKind = "UnsupportedIdentityKind"
	// ReasonNoWorkloads: no workload runs as a TrafficTarget's destination ServiceAccount yet; its
	// policies are written once one appears.
	ReasonNoWorkloads = "NoWorkloads"
	// ReasonUnsupportedSelector: a destination workload's pod selector cannot be expressed as
	// matchLabels; its pods get no policy from the TrafficTarget.
	ReasonUnsupportedSelector = "UnsupportedSelector"
	// ReasonOverlappingSelector: a destination workload's pod selector also selects pods running as
	// another ServiceAccount; its pods get no policy from the TrafficTarget.
	ReasonOverlappingSelector = "OverlappingSelector"
)

// Reasons reported by backend translators: what SMI allows but a backend cannot express.
const (
	// ReasonUnsupportedPathRegex: an HTTP path regex has no equivalent in the backend's access
	// policy; the match is left out (allows nothing) rather than widened.
	ReasonUnsupportedPathRegex = "UnsupportedPathRegex"
	// ReasonUnsupportedHeaderRegex: an HTTP header regex has no equivalent in the backend's access
	// policy; the match is left out (allows nothing) rather than widened.
	ReasonUnsupportedHeaderRegex = "UnsupportedHeaderRegex"
	// ReasonUnsupportedProtocol: traffic of a protocol the backend cannot route (UDP, SCTP) is left
	// as it is.
	ReasonUnsupportedProtocol = "UnsupportedProtocol"
	// ReasonUDPNotEnforced: a TrafficTarget's UDPRoute rules are not enforced by the backend, which
	// cannot see UDP: UDP traffic to the destination is neither allowed nor denied by them.
	ReasonUDPNotEnforced = "UDPNotEnforced"
	// ReasonWeightRoundedToZero: a small positive weight rounds to nothing in the backend's
	// integer weights; that backend gets no traffic.
	ReasonWeightRoundedToZero = "WeightRoundedToZero"
)

// ReasonRejectedByProxies (Programmed=False) is the xDS backend's report that proxies refused
// (NACKed) the configuration an object programs: they keep their last good one, so traffic
// does not follow the object until they accept a later version.
const ReasonRejectedByProxies = "RejectedByProxies"

// Diagnostic reports a problem with one object of the snapshot.
type Diagnostic struct {
	// Object is the object whose status the diagnostic belongs on.
	Object ObjectRef
	// Condition is the condition it turns False: smi.ConditionAccepted, smi.ConditionResolvedRefs
	// or smi.ConditionProgrammed.
	Condition string
	// Reason is one of the Reason constants.
	Reason string
	// Message is for humans; it names the offending field or reference.
	Message  string
	Severity Severity
}

func (d Diagnostic) String() string {
	return fmt.Sprintf("%s: %s=False %s (%s): %s", d.Object, d.Condition, d.Reason, d.Severity, d.Message)
}

func compareDiagnostics(a, b Diagnostic) int {
	return cmp.Or(a.Object.compare(b.Object),
		cmp.Compare(a.Condition, b.Condition),
		cmp.Compare(a.Reason, b.Reason),
		cmp.Compare(a.Message, b.Message),
		cmp.Compare(a.Severity, b.Severity))
}

// Diagnostics collects diagnostics; Build and every backend translator use it, so they report
// alike. The zero value is ready to use.
type Diagnostics struct {
	list []Diagnostic
	// errored holds the objects that got a SeverityError diagnostic.
	errored map[ObjectRef]bool
}

// Add records a diagnostic on obj; the message is fmt.Sprintf(format, args...).
func (d *Diagnostics) Add(obj ObjectRef, condition, reason string, sev Severity, format string, args ...any) {
	d.list = append(d.list, Diagnostic{
		Object: obj, Condition: condition, Reason: reason, Severity: sev,
		Message: fmt.Sprintf(format, args...),
	})
	if sev == SeverityError {
		if d.errored == nil {
			d.errored = map[ObjectRef]bool{}
		}
		d.errored[obj] = true
	}
}

// Warn records a SeverityWarning diagnostic.
func (d *Diagnostics) Warn(obj ObjectRef, condition, reason, format string, args ...any) {
	d.Add(obj, condition, reason, SeverityWarning, format, args...)
}

// Fail records a SeverityError diagnostic.
func (d *Diagnostics) Fail(obj ObjectRef, condition, reason, format string, args ...any) {
	d.Add(obj, condition, reason, SeverityError, format, args...)
}

// Failed reports whether obj got an error, i.e. must have no effect.
func (d *Diagnostics) Failed(obj ObjectRef) bool {
	return d.errored[obj]
}

// Sorted returns the diagnostics sorted, without duplicates (one HTTPRouteGroup referenced twice by
// the same object yields the same diagnostic twice).
func (d *Diagnostics) Sorted() []Diagnostic {
	return SortDiagnostics(d.list)
}

// SortDiagnostics returns a sorted copy of diags without duplicates, the order Build and the
// backends report in, so that callers merging several lists get a stable result.
func SortDiagnostics(diags []Diagnostic) []Diagnostic {
	out := slices.Clone(diags)
	slices.SortFunc(out, compareDiagnostics)
	return slices.Compact(out)
}

// quoteList renders names for messages.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

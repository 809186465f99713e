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
	// ReasonApexNotFound: the split's root Service does not exist.
	ReasonApexNotFound = "ApexNotFound"
	// ReasonBackendNotFound: a backend Service does not exist; the backend is dropped.
	ReasonBackendNotFound = "BackendNotFound"
	// ReasonBackendPortMismatch: a backend Service lacks a port of the apex; the backend is dropped.
	ReasonBackendPortMismatch = "BackendPortMismatch"
	// ReasonNoWeightedBackends: no remaining backend has a positive weight; traffic stays on the apex.
	ReasonNoWeightedBackends = "NoWeightedBackends"
	// ReasonRouteNotFound: a referenced HTTPRouteGroup, TCPRoute or UDPRoute does not exist.
	ReasonRouteNotFound = "RouteNotFound"
	// ReasonMatchNotFound: a TrafficTarget rule names a match its route does not have.
	ReasonMatchNotFound = "MatchNotFound"
	// ReasonInvalidMatch: an HTTPRouteGroup match cannot be compiled; it matches nothing.
	ReasonInvalidMatch = "InvalidMatch"
	// ReasonInvalidPort: a TCPRoute or UDPRoute port is outside 1-65535; it is ignored.
	ReasonInvalidPort = "InvalidPort"
	// ReasonNoValidMatches: a split restricted to matches has none left; nothing is split.
	ReasonNoValidMatches = "NoValidMatches"
	// ReasonDestinationNamespaceMismatch: a TrafficTarget does not live in its destination's namespace.
	ReasonDestinationNamespaceMismatch = "DestinationNamespaceMismatch"
	// ReasonUnsupportedIdentityKind: an identity is not a named ServiceAccount.
	ReasonUnsupportedIdentityKind = "UnsupportedIdentityKind"
)

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

// diagnostics collects what a build finds.
type diagnostics struct {
	list []Diagnostic
	// errored holds the objects that got a SeverityError diagnostic.
	errored map[ObjectRef]bool
}

func (d *diagnostics) add(obj ObjectRef, condition, reason string, sev Severity, format string, args ...any) {
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

func (d *diagnostics) warn(obj ObjectRef, condition, reason, format string, args ...any) {
	d.add(obj, condition, reason, SeverityWarning, format, args...)
}

func (d *diagnostics) fail(obj ObjectRef, condition, reason, format string, args ...any) {
	d.add(obj, condition, reason, SeverityError, format, args...)
}

// failed reports whether obj got an error, i.e. must stay out of the Model.
func (d *diagnostics) failed(obj ObjectRef) bool {
	return d.errored[obj]
}

// sorted returns the diagnostics sorted, without duplicates (one HTTPRouteGroup referenced twice by
// the same object yields the same diagnostic twice).
func (d *diagnostics) sorted() []Diagnostic {
	out := slices.Clone(d.list)
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

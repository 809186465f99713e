package validation

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// targetForm is a TrafficTarget of any version. v1alpha1 keeps destination, sources and the rules
// (named "specs") at the top level; v1alpha2 and v1alpha3 keep them under spec and call the rules
// "rules". Subjects have a port in v1alpha1 and v1alpha2 only.
type targetForm struct {
	namespace  string      // the TrafficTarget's own namespace; empty when unknown
	root       *field.Path // where destination, sources and rules live: nil for the top level
	rulesField string
	ruleKinds  []string // the route kinds this version can name
	// rulesRequired: the version requires at least one rule (v1alpha3); in older ones rules were
	// optional, and a target without them is admitted with a warning.
	rulesRequired bool
	destination   subject
	sources       []subject
	rules         []rule
}

type subject struct {
	kind, name, namespace string
	port                  *int // nil when the version has no port or it is unset
}

// rule has the field names and types of every version's rule struct, so a Go conversion reads them.
type rule struct {
	Kind    string
	Name    string
	Matches []string
}

const serviceAccountKind = "ServiceAccount"

var (
	tcpHTTPRuleKinds = []string{smi.HTTPRouteGroupKind, smi.TCPRouteKind}
	// allRuleKinds is access v1alpha3's: UDPRoute exists only in specs v1alpha4, which v1alpha3 goes with.
	allRuleKinds = []string{smi.HTTPRouteGroupKind, smi.TCPRouteKind, smi.UDPRouteKind}
)

func (t *targetForm) validate() field.ErrorList {
	destPath := t.root.Child("destination") // Child on a nil root starts a top-level path
	errs := validateSubject(destPath, t.destination)
	// Compared only when both are known and the namespace is well-formed (else that is the error).
	if ns := t.destination.namespace; ns != "" && t.namespace != "" && ns != t.namespace && len(validation.IsDNS1123Label(ns)) == 0 {
		errs = append(errs, field.Invalid(destPath.Child("namespace"), ns, fmt.Sprintf(
			"must be the TrafficTarget's own namespace %q, or empty: a TrafficTarget must live in its destination's namespace, so that only those who may write there can grant access to its workloads",
			t.namespace)))
	}

	seen := firstSeen[subject]{}
	for i, s := range t.sources {
		p := t.root.Child("sources").Index(i)
		errs = append(errs, validateSubject(p, s)...)
		key := subject{kind: s.kind, name: s.name, namespace: s.namespace}
		if key.namespace == "" {
			key.namespace = t.namespace // an empty source namespace means the TrafficTarget's
		}
		if first := seen.dup(key, p); first != nil && s.name != "" {
			errs = append(errs, duplicate(p, fmt.Sprintf("%s %s/%s", key.kind, key.namespace, key.name),
				fmt.Sprintf("the same identity as %s: list each source once", first)))
		}
	}

	errs = append(errs, t.validateRules()...)
	return errs
}

// validateSubject checks a destination or source. SMI identities are ServiceAccounts: the operator
// turns them into SPIFFE identities (spiffe://<trust-domain>/ns/<ns>/sa/<name>), and any other kind
// would have to be ignored, granting nothing or, worse, being read as something it is not.
func validateSubject(path *field.Path, s subject) field.ErrorList {
	var errs field.ErrorList
	if s.kind != serviceAccountKind {
		errs = append(errs, notSupported(path.Child("kind"), s.kind, []string{serviceAccountKind},
			"SMI identities are Kubernetes ServiceAccounts"))
	}
	errs = append(errs, name(path.Child("name"), s.name, "the ServiceAccount's name",
		validation.IsDNS1123Subdomain, "must be a ServiceAccount name")...)
	if s.namespace != "" { // optional: empty means the TrafficTarget's namespace
		errs = append(errs, name(path.Child("namespace"), s.namespace, "", validation.IsDNS1123Label, "must be a namespace name")...)
	}
	if s.port != nil {
		errs = append(errs, port(path.Child("port"), *s.port)...)
	}
	return errs
}

// ruleRequirement is why a TrafficTarget needs a rule, in the words of traffic-access v1alpha3.
const ruleRequirement = "A valid TrafficTarget must specify a destination, at least one rule, and at least one source"

// warnings are what the webhook admits but tells the author: a TrafficTarget without rules in a
// version where they were optional.
func (t *targetForm) warnings() []string {
	if len(t.rules) == 0 && !t.rulesRequired {
		return []string{fmt.Sprintf("%s: no rules, so this TrafficTarget allows no traffic (access.smi-spec.io/v1alpha3 requires one: %q)",
			t.root.Child(t.rulesField), ruleRequirement)}
	}
	return nil
}

func (t *targetForm) validateRules() field.ErrorList {
	var errs field.ErrorList
	if len(t.rules) == 0 && t.rulesRequired {
		errs = append(errs, field.Required(t.root.Child(t.rulesField), ruleRequirement+": without a rule it allows no traffic"))
	}
	seen := firstSeen[string]{}
	for i, r := range t.rules {
		p := t.root.Child(t.rulesField).Index(i)
		switch {
		case slices.Contains(t.ruleKinds, r.Kind):
		case r.Kind == smi.UDPRouteKind:
			errs = append(errs, field.Invalid(p.Child("kind"), r.Kind,
				"UDPRoute exists only in specs.smi-spec.io/v1alpha4, which only access.smi-spec.io/v1alpha3 can refer to: write this TrafficTarget as v1alpha3"))
		default:
			errs = append(errs, notSupported(p.Child("kind"), r.Kind, t.ruleKinds,
				"a rule names the route (of specs.smi-spec.io) whose traffic it allows"))
		}
		errs = append(errs, name(p.Child("name"), r.Name, fmt.Sprintf("the %s, in the TrafficTarget's namespace, whose traffic to allow", kindOr(r.Kind, "route")),
			validation.IsDNS1123Subdomain, objectFormat)...)
		if r.Name != "" {
			if first := seen.dup(r.Kind+"/"+r.Name, p); first != nil {
				errs = append(errs, duplicate(p.Child("name"), r.Name, fmt.Sprintf(
					"%s %q is already a rule at %s: list each route once and merge the matches (omitting matches allows all of them)", r.Kind, r.Name, first)))
			}
		}
		matches := firstSeen[string]{}
		for j, m := range r.Matches {
			mp := p.Child("matches").Index(j)
			if m == "" {
				errs = append(errs, field.Required(mp, "the name of a match in the route; omit matches altogether to allow all of them"))
			} else if first := matches.dup(m, mp); first != nil {
				errs = append(errs, duplicate(mp, m, fmt.Sprintf("already listed at %s", first)))
			}
		}
	}
	return errs
}

func kindOr(kind, fallback string) string {
	if slices.Contains(allRuleKinds, kind) {
		return kind
	}
	return fallback
}

package mesh

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"
	"k8s.io/apimachinery/pkg/types"

	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// httpGroup is an HTTPRouteGroup compiled once per build.
type httpGroup struct {
	ref     ObjectRef
	matches []groupMatch
}

// groupMatch is one match of a group, usable or not; invalid ones are kept so that a referrer
// naming one learns why it matches nothing instead of being told it does not exist.
type groupMatch struct {
	// name is the match's name, also when it is invalid and match is empty.
	name  string
	match HTTPMatch
	// label names the match in messages (its name, or its index when unnamed).
	label string
	// invalid says why the match cannot be used; empty when it can.
	invalid string
}

func (b *builder) compileHTTPGroup(g *specsv1alpha4.HTTPRouteGroup) httpGroup {
	out := httpGroup{ref: ObjectRef{Kind: smi.HTTPRouteGroupKind, Namespace: g.Namespace, Name: g.Name}}
	for i, m := range g.Spec.Matches {
		gm := groupMatch{name: m.Name, label: fmt.Sprintf("%q", m.Name)}
		if m.Name == "" {
			gm.label = fmt.Sprintf("#%d", i)
		}
		var err error
		if gm.match, err = compileHTTPMatch(g.Name, m); err != nil {
			gm.invalid = err.Error()
			b.diags.Warn(out.ref, smi.ConditionAccepted, ReasonInvalidMatch,
				"match %s: %s; it matches nothing", gm.label, gm.invalid)
		}
		out.matches = append(out.matches, gm)
	}
	return out
}

// compileHTTPMatch validates and normalises one HTTPRouteGroup match.
func compileHTTPMatch(group string, m specsv1alpha4.HTTPMatch) (HTTPMatch, error) {
	path, err := compilePath(m.PathRegex)
	if err != nil {
		return HTTPMatch{}, err
	}
	methods, err := normaliseMethods(m.Methods)
	if err != nil {
		return HTTPMatch{}, err
	}
	headers, err := compileHeaders(m.Headers)
	if err != nil {
		return HTTPMatch{}, err
	}
	return HTTPMatch{Group: group, Name: m.Name, Path: path, Methods: methods, Headers: headers}, nil
}

func compilePath(re string) (PathMatch, error) {
	if re == "" {
		return PathMatch{Kind: PathAny}, nil
	}
	// The limits the webhook applies, for objects it never saw (stored before it, or translated
	// offline): a backend must not be handed what it refuses.
	if err := smi.CheckPathRegex(re); err != nil {
		return PathMatch{}, fmt.Errorf("pathRegex %s %w", quoteRegex(re), err)
	}
	pm := PathMatch{Regex: re, FullRegex: smi.FullPathRegex(re)}
	pm.Kind, pm.Literal = classifyPath(re)
	if pm.Kind == PathAny {
		pm.FullRegex = ""
	}
	return pm, nil
}

// classifyPath recognises start-anchored regexes that are a literal followed by nothing (a prefix),
// by "$" (exact), or by ".*" (a prefix again), so APIs without regex can express them exactly.
// Anything else, including case-insensitive literals, stays a regex.
func classifyPath(re string) (PathKind, string) {
	sh, ok := parseLiteralShape(re)
	switch {
	case !ok:
		return PathRegex, ""
	case sh.leadingAny && sh.literal != "":
		// ".*lit" at the start of a path means "contains lit": not a prefix.
		return PathRegex, ""
	case sh.endAnchored && !sh.trailingAny && !sh.leadingAny:
		return PathExact, sh.literal
	}
	if sh.literal == "" {
		return PathAny, ""
	}
	return PathPrefix, sh.literal
}

// classifyHeader recognises header regexes (matched against the whole value) of the forms
// "lit" (exact), "lit.*" (prefix), ".*lit" (suffix) and ".*" (any value), anchors allowed.
func classifyHeader(re string) (HeaderKind, string) {
	sh, ok := parseLiteralShape(re)
	switch {
	case !ok, sh.leadingAny && sh.trailingAny:
		// ".*lit.*" is "contains", which APIs without regex lack.
		return HeaderRegex, ""
	case sh.leadingAny && sh.literal == "":
		return HeaderPresent, ""
	case sh.leadingAny:
		return HeaderSuffix, sh.literal
	case sh.trailingAny:
		return HeaderPrefix, sh.literal
	}
	return HeaderExact, sh.literal
}

// literalShape is a regex of the form [^][.*]literal[.*][$]: the forms that exact, prefix and
// suffix string matches can express.
type literalShape struct {
	// leadingAny: ".*" before the literal. A lone ".*" sets it and leaves literal empty.
	leadingAny bool
	// literal is case-sensitive; it may be empty.
	literal string
	// trailingAny: ".*" after a non-empty literal.
	trailingAny bool
	// endAnchored: "$" at the end.
	endAnchored bool
}

// parseLiteralShape reports whether re has that shape; ok is false for anything else, including
// case-insensitive literals and regexes that do not parse.
func parseLiteralShape(re string) (sh literalShape, ok bool) {
	tree, err := syntax.Parse(re, syntax.Perl)
	if err != nil {
		return literalShape{}, false
	}
	tree = tree.Simplify()
	parts := []*syntax.Regexp{tree}
	if tree.Op == syntax.OpConcat {
		parts = tree.Sub
	}
	// A leading "^" repeats the anchoring that both paths (SMI) and header values have.
	if len(parts) > 0 && parts[0].Op == syntax.OpBeginText {
		parts = parts[1:]
	}
	if len(parts) > 0 && isAnyString(parts[0]) {
		sh.leadingAny = true
		parts = parts[1:]
	}
	var literal []rune
	for len(parts) > 0 && parts[0].Op == syntax.OpLiteral && parts[0].Flags&syntax.FoldCase == 0 {
		literal = append(literal, parts[0].Rune...)
		parts = parts[1:]
	}
	sh.literal = string(literal)
	if len(parts) > 0 && isAnyString(parts[0]) {
		if sh.literal == "" {
			// ".*.*" and the like: leave them to a regex engine rather than reason about them.
			return literalShape{}, false
		}
		sh.trailingAny = true
		parts = parts[1:]
	}
	if len(parts) > 0 && parts[0].Op == syntax.OpEndText {
		sh.endAnchored = true
		parts = parts[1:]
	}
	return sh, len(parts) == 0
}

// quoteRegex quotes a regex for a message, cut short when long: it may be megabytes.
func quoteRegex(re string) string {
	const max = 64
	if len(re) <= max {
		return fmt.Sprintf("%q", re)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(re[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…", re[:cut])
}

func isAnyString(re *syntax.Regexp) bool {
	return re.Op == syntax.OpStar && (re.Sub[0].Op == syntax.OpAnyChar || re.Sub[0].Op == syntax.OpAnyCharNotNL)
}

func normaliseMethods(in []string) ([]string, error) {
	var out []string
	all := false
	for _, m := range in {
		m = strings.ToUpper(strings.TrimSpace(m))
		switch m {
		case "":
			return nil, errors.New("a method is empty")
		case string(specsv1alpha4.HTTPRouteMethodAll):
			all = true
		default:
			if !slices.Contains(smi.HTTPMethods, m) {
				// As the webhook refuses it; backends get only SMI's methods, whose xDS regex
				// stays within Envoy's limits (see smi.HTTPMethods).
				return nil, fmt.Errorf("method %s is none of SMI's (%s)", quoteRegex(m), strings.Join(smi.HTTPMethods, ", "))
			}
			out = append(out, m)
		}
	}
	if all {
		return nil, nil
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func compileHeaders(in map[string]string) ([]HeaderMatch, error) {
	var out []HeaderMatch
	// Sorted keys keep the first error reported, and so the message, stable.
	for _, name := range slices.Sorted(maps.Keys(in)) {
		re := in[name]
		lower := strings.ToLower(strings.TrimSpace(name))
		if lower == "" {
			return nil, errors.New("a header name is empty")
		}
		if !httpguts.ValidHeaderFieldName(lower) {
			// No request can carry it, and backends reject such names (an Istio VirtualService
			// naming one is invalid as a whole).
			return nil, fmt.Errorf("header name %q is not an HTTP token", name)
		}
		if err := smi.CheckHeaderRegex(re); err != nil {
			return nil, fmt.Errorf("header %q: regex %s %w", name, quoteRegex(re), err)
		}
		hm := HeaderMatch{Name: lower, Regex: re}
		hm.Kind, hm.Literal = classifyHeader(re)
		out = append(out, hm)
	}
	slices.SortFunc(out, func(a, b HeaderMatch) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Regex, b.Regex))
	})
	return out, nil
}

// httpMatches returns the usable matches of an HTTPRouteGroup that names select (all of them when
// names is empty), in the order the group lists them, and reports on referrer whatever it had to
// leave out.
func (b *builder) httpMatches(referrer ObjectRef, namespace, name string, names []string) []HTTPMatch {
	g, ok := b.httpGroups[nameOf(namespace, name)]
	if !ok {
		b.routeNotFound(referrer, smi.HTTPRouteGroupKind, name)
		return nil
	}
	var out []HTTPMatch
	found := map[string]bool{}
	for _, gm := range g.matches {
		if len(names) > 0 && !slices.Contains(names, gm.name) {
			continue
		}
		found[gm.name] = true
		if gm.invalid != "" {
			b.diags.Warn(referrer, smi.ConditionResolvedRefs, ReasonInvalidMatch,
				"HTTPRouteGroup %q match %s is invalid (%s) and matches nothing", name, gm.label, gm.invalid)
			continue
		}
		out = append(out, gm.match)
	}
	b.reportMissingMatches(referrer, g.ref, names, found)
	return out
}

// portRoute is a TCPRoute or UDPRoute compiled once per build. Both kinds have the same shape.
type portRoute struct {
	ref       ObjectRef
	matchName string
	ports     PortSet
}

func (b *builder) compilePortRoute(ref ObjectRef, matchName string, ports []int) portRoute {
	r := portRoute{ref: ref, matchName: matchName}
	if len(ports) == 0 {
		r.ports.All = true
		return r
	}
	for _, p := range ports {
		if p < 1 || p > 65535 {
			// Ignoring it only narrows the route; if no port is left the route matches nothing,
			// never "all ports".
			b.diags.Warn(ref, smi.ConditionAccepted, ReasonInvalidPort, "port %d is outside 1-65535 and is ignored", p)
			continue
		}
		r.ports.Ports = append(r.ports.Ports, int32(p))
	}
	r.ports = r.ports.union(PortSet{}) // sorts and de-duplicates
	return r
}

// portMatches returns the ports a TCPRoute or UDPRoute rule allows, reporting on referrer what it
// cannot resolve. A route has a single match: names, when given, must include its name.
func (b *builder) portMatches(referrer ObjectRef, routes map[types.NamespacedName]portRoute, kind, namespace, name string, names []string) PortSet {
	r, ok := routes[nameOf(namespace, name)]
	if !ok {
		b.routeNotFound(referrer, kind, name)
		return PortSet{}
	}
	selected := len(names) == 0 || slices.Contains(names, r.matchName)
	b.reportMissingMatches(referrer, r.ref, names, map[string]bool{r.matchName: true})
	if !selected {
		return PortSet{}
	}
	return r.ports
}

func (b *builder) routeNotFound(referrer ObjectRef, kind, name string) {
	b.diags.Warn(referrer, smi.ConditionResolvedRefs, ReasonRouteNotFound,
		"%s %q not found in namespace %q; it matches nothing", kind, name, referrer.Namespace)
}

func (b *builder) reportMissingMatches(referrer, route ObjectRef, names []string, found map[string]bool) {
	var missing []string
	for _, n := range names {
		if !found[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return
	}
	slices.Sort(missing)
	b.diags.Warn(referrer, smi.ConditionResolvedRefs, ReasonMatchNotFound,
		"%s %q has no match named %s; those names match nothing", route.Kind, route.Name, quoteList(slices.Compact(missing)))
}

// union returns the ports in p or o, normalised (sorted, unique).
func (p PortSet) union(o PortSet) PortSet {
	if p.All || o.All {
		return PortSet{All: true}
	}
	ports := append(slices.Clone(p.Ports), o.Ports...)
	slices.Sort(ports)
	return PortSet{Ports: slices.Compact(ports)}
}

// intersect returns the ports in both p and o, normalised (sorted, unique).
func (p PortSet) intersect(o PortSet) PortSet {
	switch {
	case p.All:
		return o.union(PortSet{})
	case o.All:
		return p.union(PortSet{})
	}
	var ports []int32
	for _, port := range p.Ports {
		if slices.Contains(o.Ports, port) {
			ports = append(ports, port)
		}
	}
	return PortSet{Ports: ports}.union(PortSet{})
}

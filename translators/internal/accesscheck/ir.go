package accesscheck

import (
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Verdict is the model's answer for a request.
type Verdict struct {
	// Governed is set when the model claims the request's destination, i.e. says that whatever its
	// rules do not allow there is denied (mesh.AccessMode): every pod of a namespace where access
	// applies (Model.AccessNamespaces, enforcing mode), and elsewhere the pods running as a
	// destination.
	// Elsewhere the model leaves access to the mesh, and the property says nothing.
	Governed bool
	// Allowed is set when an access rule allows the request.
	Allowed bool
}

// IRVerdict evaluates req against the model's access rules, in the model's own terms: a rule
// allows a request from one of its Sources to a pod running as its Destination on a port of its
// TCP set (any connection, HTTP included), or an HTTP request on a port of its HTTPPorts matching
// one of its HTTP matches (path by its PathKind, methods, every header by its HeaderKind). UDP
// grants allow no TCP request. A request without an identity matches no source.
//
// Where a path or header kind names a literal, it is also checked against the regex it was
// classified from (SMI's meaning: pathRegex anchored at the start, header regexes over the whole
// value): a classification that disagrees would make every backend agree with a wrong model.
func IRVerdict(t testing.TB, model mesh.Model, req Request) Verdict {
	v := Verdict{Governed: slices.Contains(model.AccessNamespaces, req.Pod.Namespace)}
	for i := range model.AccessRules {
		r := &model.AccessRules[i]
		if r.Destination.Namespace != req.Pod.Namespace {
			continue
		}
		if r.Destination.ServiceAccount != req.Pod.ServiceAccount {
			continue
		}
		v.Governed = true
		if ruleAllows(t, r, req) {
			v.Allowed = true
		}
	}
	return v
}

func ruleAllows(t testing.TB, r *mesh.AccessRule, req Request) bool {
	if req.Principal == "" || !slices.ContainsFunc(r.Sources, func(s mesh.Identity) bool { return s.SPIFFEID == req.Principal }) {
		return false
	}
	if inPortSet(r.TCP, req.Port) {
		return true
	}
	return req.HTTP && inPortSet(r.HTTPPorts, req.Port) &&
		slices.ContainsFunc(r.HTTP, func(m mesh.HTTPMatch) bool { return irMatches(t, m, req) })
}

func inPortSet(p mesh.PortSet, port int32) bool {
	return p.All || slices.Contains(p.Ports, port)
}

func irMatches(t testing.TB, m mesh.HTTPMatch, req Request) bool {
	if !irPathMatches(t, m.Path, req.Path) {
		return false
	}
	if len(m.Methods) > 0 && !slices.Contains(m.Methods, req.Method) {
		return false
	}
	for _, h := range m.Headers {
		value, ok := req.Headers[h.Name]
		if !ok || !irHeaderMatches(t, h, value) {
			return false
		}
	}
	return true
}

func irPathMatches(t testing.TB, p mesh.PathMatch, path string) bool {
	var byKind bool
	switch p.Kind {
	case mesh.PathAny:
		byKind = true
	case mesh.PathExact:
		byKind = path == p.Literal
	case mesh.PathPrefix:
		byKind = strings.HasPrefix(path, p.Literal)
	case mesh.PathRegex:
		return fullMatch(t, p.FullRegex, path)
	default:
		t.Fatalf("accesscheck: the model has path kind %q, which this evaluator does not know", p.Kind)
	}
	// SMI: the pathRegex matches at the start of the path; an empty one matches every path.
	if bySMI := p.Regex == "" || compile(t, "^(?:"+p.Regex+")").MatchString(path); bySMI != byKind {
		t.Fatalf("accesscheck: the model classified pathRegex %q as %s %q, which says %v for path %q where the regex says %v",
			p.Regex, p.Kind, p.Literal, byKind, path, bySMI)
	}
	return byKind
}

func irHeaderMatches(t testing.TB, h mesh.HeaderMatch, value string) bool {
	var byKind bool
	switch h.Kind {
	case mesh.HeaderPresent:
		byKind = true
	case mesh.HeaderExact:
		byKind = value == h.Literal
	case mesh.HeaderPrefix:
		byKind = strings.HasPrefix(value, h.Literal)
	case mesh.HeaderSuffix:
		byKind = strings.HasSuffix(value, h.Literal)
	case mesh.HeaderRegex:
		return fullMatch(t, h.Regex, value)
	default:
		t.Fatalf("accesscheck: the model has header kind %q, which this evaluator does not know", h.Kind)
	}
	if bySMI := fullMatch(t, h.Regex, value); bySMI != byKind {
		t.Fatalf("accesscheck: the model classified header %q regex %q as %s %q, which says %v for value %q where the regex says %v",
			h.Name, h.Regex, h.Kind, h.Literal, byKind, value, bySMI)
	}
	return byKind
}

// fullMatch reports whether RE2 regex re matches the whole of s, as Envoy's safe_regex and SMI
// header regexes do.
func fullMatch(t testing.TB, re, s string) bool {
	return compile(t, "^(?:"+re+")$").MatchString(s)
}

// regexps caches compiled regexes: cases share a small set of them, and compiling dominates
// evaluation otherwise.
var regexps sync.Map

func compile(t testing.TB, re string) *regexp.Regexp {
	if c, ok := regexps.Load(re); ok {
		return c.(*regexp.Regexp)
	}
	c, err := regexp.Compile(re)
	if err != nil {
		t.Fatalf("accesscheck: regex %q is not RE2: %v", re, err)
	}
	regexps.Store(re, c)
	return c
}

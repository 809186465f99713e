package validation

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// httpRouteGroupForm is an HTTPRouteGroup of any version. v1alpha1 and v1alpha2 keep matches at the
// top level, v1alpha3 and v1alpha4 under spec; headers exist from v1alpha2 on.
type httpRouteGroupForm struct {
	matchesPath *field.Path
	underSpec   bool
	hasHeaders  bool
	matches     []httpMatch
}

type httpMatch struct {
	name      string
	methods   []string
	pathRegex string
	headers   []header
}

// header is one header condition with the paths to report its name's and its value's problems at:
// headers[1] and headers[1][user-agent] as written in a list, headers[user-agent] for both when the
// order was lost to the SDK's map.
type header struct {
	name, value         string
	namePath, valuePath *field.Path
}

// newHTTPRouteGroupForm starts the form for a version keeping its matches under root (nil: top level).
func newHTTPRouteGroupForm(root *field.Path, hasHeaders bool) *httpRouteGroupForm {
	return &httpRouteGroupForm{matchesPath: root.Child("matches"), underSpec: root != nil, hasHeaders: hasHeaders}
}

// match reads match i of a typed v1alpha2+ object, whose headers smi-sdk-go has folded into a map.
func (g *httpRouteGroupForm) match(i int, name string, methods []string, pathRegex string, headers map[string]string) httpMatch {
	m := httpMatch{name: name, methods: methods, pathRegex: pathRegex}
	headersPath := g.matchesPath.Index(i).Child("headers")
	for _, n := range slices.Sorted(maps.Keys(headers)) { // sorted: the same object always gives the same errors
		p := headersPath.Key(n)
		m.headers = append(m.headers, header{name: n, value: headers[n], namePath: p, valuePath: p})
	}
	return m
}

func (g *httpRouteGroupForm) validate() field.ErrorList {
	var errs field.ErrorList
	names := firstSeen[string]{}
	for i, m := range g.matches {
		p := g.matchesPath.Index(i)
		if m.name == "" {
			errs = append(errs, field.Required(p.Child("name"), "TrafficTargets refer to a match by its name"))
		} else if first := names.dup(m.name, p); first != nil {
			errs = append(errs, duplicate(p.Child("name"), m.name, fmt.Sprintf(
				"already the name of %s: TrafficTargets refer to matches by name, so a name must pick out one match", first)))
		}

		methods := firstSeen[string]{}
		for j, method := range m.methods {
			mp := p.Child("methods").Index(j)
			if !slices.Contains(smi.HTTPMethods, method) {
				errs = append(errs, notSupported(mp, method, smi.HTTPMethods,
					`HTTP methods are case-sensitive (RFC 7231 section 4.1) and "*" means any`))
			} else if first := methods.dup(method, mp); first != nil {
				errs = append(errs, duplicate(mp, method, fmt.Sprintf("already listed at %s", first)))
			}
		}

		if m.pathRegex != "" {
			errs = append(errs, regex(p.Child("pathRegex"), m.pathRegex, "pathRegex (matched from the start of the path)", smi.CheckPathRegex)...)
		}

		headers := firstSeen[string]{}
		for _, h := range m.headers {
			if !httpguts.ValidHeaderFieldName(h.name) {
				errs = append(errs, field.Invalid(h.namePath, h.name,
					"must be an HTTP header name (an RFC 7230 token: letters, digits and !#$%&'*+-.^_`|~): no request can carry any other"))
			} else if first := headers.dup(strings.ToLower(h.name), h.namePath); first != nil {
				errs = append(errs, duplicate(h.namePath, h.name, fmt.Sprintf(
					"the same header as %s (header names are case-insensitive): a match holds one regex per header, so write both conditions as one regex", first)))
			}
			errs = append(errs, regex(h.valuePath, h.value, fmt.Sprintf("the value of header %q", h.name), smi.CheckHeaderRegex)...)
		}
	}
	return errs
}

// takeListedHeaders reads every match's headers from raw JSON as SMI writes them, a list of
// single-entry maps ([{"user-agent": ".*Android.*"}]), and returns raw without them, the headers by
// match index, and what is wrong with the list's shape. smi-sdk-go folds that list into a map, which
// silently keeps one of two entries for the same header and fails the whole decoding on an entry
// with two keys; reading the list here reports both precisely, at the index the user wrote.
//
// Values stay raw JSON until needed, so nothing else in the object is reinterpreted; a level that is
// not shaped as expected is left alone, for the typed decoding to report.
func takeListedHeaders(raw []byte, g *httpRouteGroupForm) ([]byte, [][]header, field.ErrorList, error) {
	var doc, spec map[string]json.RawMessage
	if utiljson.Unmarshal(raw, &doc) != nil {
		return raw, nil, nil, nil
	}
	container := doc
	if g.underSpec {
		if utiljson.Unmarshal(doc["spec"], &spec) != nil {
			return raw, nil, nil, nil
		}
		container = spec
	}
	var matches []json.RawMessage
	if utiljson.Unmarshal(container["matches"], &matches) != nil {
		return raw, nil, nil, nil
	}

	var err error
	marshal := func(v any) json.RawMessage { // re-encoding what was just decoded does not fail
		out, e := json.Marshal(v)
		err = cmp.Or(err, e)
		return out
	}
	listed := make([][]header, len(matches))
	var errs field.ErrorList
	changed := false
	for i, m := range matches {
		var match map[string]json.RawMessage
		if utiljson.Unmarshal(m, &match) != nil {
			continue
		}
		value, present := match["headers"]
		if !present {
			continue
		}
		delete(match, "headers")
		matches[i], changed = marshal(match), true

		headersPath := g.matchesPath.Index(i).Child("headers")
		var entries []json.RawMessage
		if utiljson.Unmarshal(value, &entries) != nil {
			errs = append(errs, field.Invalid(headersPath, value,
				`must be a list of single-entry maps from header name to value regex, such as [{"user-agent": ".*Android.*"}]`))
			continue
		}
		for j, e := range entries {
			entryPath := headersPath.Index(j)
			var entry map[string]json.RawMessage
			if utiljson.Unmarshal(e, &entry) != nil || len(entry) != 1 {
				errs = append(errs, field.Invalid(entryPath, e,
					`must map exactly one header name to a regex for its value, such as {"user-agent": ".*Android.*"}: one entry per header`))
				continue
			}
			for name, v := range entry {
				var re string
				if utiljson.Unmarshal(v, &re) != nil {
					errs = append(errs, field.Invalid(entryPath.Key(name), v, "must be a string: a regex for the header's value"))
					continue
				}
				listed[i] = append(listed[i], header{name: name, value: re, namePath: entryPath, valuePath: entryPath.Key(name)})
			}
		}
	}
	if !changed {
		return raw, listed, errs, nil
	}
	container["matches"] = marshal(matches)
	if g.underSpec {
		doc["spec"] = marshal(spec)
	}
	stripped := marshal(doc)
	return stripped, listed, errs, err
}

// useListedHeaders replaces the headers read from the typed object, which takeListedHeaders has
// emptied, with the headers as written.
func (g *httpRouteGroupForm) useListedHeaders(listed [][]header) {
	for i := range g.matches {
		if i < len(listed) {
			g.matches[i].headers = listed[i]
		}
	}
}

// portRouteForm is a TCPRoute or UDPRoute v1alpha4, the only versions with ports.
type portRouteForm struct {
	ports []int
}

var portsPath = field.NewPath("spec", "matches", "ports")

func (r *portRouteForm) validate() field.ErrorList {
	var errs field.ErrorList
	seen := firstSeen[int]{}
	for i, pt := range r.ports {
		p := portsPath.Index(i)
		if perrs := port(p, pt); len(perrs) > 0 {
			errs = append(errs, perrs...)
		} else if first := seen.dup(pt, p); first != nil {
			errs = append(errs, duplicate(p, pt, fmt.Sprintf("already listed at %s", first)))
		}
	}
	return errs
}

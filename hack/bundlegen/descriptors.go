package main

import (
	"sort"
	"strings"
	"unicode"

	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// ownGroup is the operator's own API group; its kinds, and those of its subgroups
// (policy.smi-operator.io), get a descriptor for every field, derived from the CRD schema so that
// they cannot drift from the API. The SMI kinds get only their status conditions (their specs are
// SMI's, documented there).
const ownGroup = "smi-operator.io"

// isOwnGroup reports whether group is ownGroup or one of its subgroups.
func isOwnGroup(group string) bool {
	return group == ownGroup || strings.HasSuffix(group, "."+ownGroup)
}

// UI descriptors (x-descriptors) OLM's console understands.
const (
	xBoolean    = "urn:alm:descriptor:com.tectonic.ui:booleanSwitch"
	xNumber     = "urn:alm:descriptor:com.tectonic.ui:number"
	xText       = "urn:alm:descriptor:com.tectonic.ui:text"
	xSelect     = "urn:alm:descriptor:com.tectonic.ui:select:"
	xFieldGroup = "urn:alm:descriptor:com.tectonic.ui:fieldGroup:"
	xSecret     = "urn:alm:descriptor:io.kubernetes:Secret"
	xConditions = "urn:alm:descriptor:io.kubernetes.conditions"
	xStatusText = "urn:alm:descriptor:text"
	xTimestamp  = "urn:alm:descriptor:timestamp"
)

// descriptor is a spec or status descriptor before it is typed as one.
type descriptor struct {
	path, displayName, description string
	x                              []string
}

func descriptors(crd *apiextensionsv1.CustomResourceDefinition, v apiextensionsv1.CustomResourceDefinitionVersion) (spec []operatorsv1alpha1.SpecDescriptor, status []operatorsv1alpha1.StatusDescriptor) {
	if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
		return nil, nil
	}
	root := v.Schema.OpenAPIV3Schema.Properties
	if !isOwnGroup(crd.Spec.Group) {
		if st, ok := root["status"]; ok {
			if c, ok := st.Properties["conditions"]; ok {
				status = append(status, operatorsv1alpha1.StatusDescriptor{
					Path: "conditions", DisplayName: "Conditions", Description: describe(c.Description), XDescriptors: []string{xConditions},
				})
			}
		}
		return nil, status
	}
	if s, ok := root["spec"]; ok {
		for _, d := range walk(s, nil, false) {
			spec = append(spec, operatorsv1alpha1.SpecDescriptor{Path: d.path, DisplayName: d.displayName, Description: d.description, XDescriptors: d.x})
		}
	}
	if s, ok := root["status"]; ok {
		for _, d := range walk(s, nil, true) {
			status = append(status, operatorsv1alpha1.StatusDescriptor{Path: d.path, DisplayName: d.displayName, Description: d.description, XDescriptors: d.x})
		}
	}
	return spec, status
}

// walk returns a descriptor for every leaf field under s, in name order; arrays are leaves.
func walk(s apiextensionsv1.JSONSchemaProps, path []string, isStatus bool) []descriptor {
	names := make([]string, 0, len(s.Properties))
	for name := range s.Properties {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []descriptor
	for _, name := range names {
		p := s.Properties[name]
		fieldPath := append(append([]string{}, path...), name)
		if p.Type == "object" && len(p.Properties) > 0 {
			out = append(out, walk(p, fieldPath, isStatus)...)
			continue
		}
		d := descriptor{path: strings.Join(fieldPath, "."), displayName: displayName(fieldPath), description: describe(p.Description)}
		switch {
		case isStatus && name == "conditions":
			d.x = []string{xConditions}
		case isStatus && p.Format == "date-time":
			d.x = []string{xTimestamp}
		case isStatus:
			d.x = []string{xStatusText}
		case name == "secretName":
			d.x = []string{xSecret}
		case p.Type == "boolean":
			d.x = []string{xBoolean}
		case p.Type == "integer":
			d.x = []string{xNumber}
		case p.Type == "string" && len(p.Enum) > 0:
			for _, e := range p.Enum {
				d.x = append(d.x, xSelect+strings.Trim(string(e.Raw), `"`))
			}
		case p.Type == "string":
			d.x = []string{xText}
		}
		if !isStatus && len(path) > 0 {
			d.x = append(d.x, xFieldGroup+path[0])
		}
		out = append(out, d)
	}
	return out
}

// acronyms are written as the project writes them.
var acronyms = map[string]string{"mtls": "mTLS", "xds": "xDS", "tls": "TLS", "ttl": "TTL", "smi": "SMI"}

// displayName turns a field path into words: [xds certificateTTL] is "xDS Certificate TTL".
func displayName(path []string) string {
	var words []string
	for _, field := range path {
		for _, w := range splitCamel(field) {
			if a, ok := acronyms[strings.ToLower(w)]; ok {
				w = a
			} else {
				w = strings.ToUpper(w[:1]) + w[1:]
			}
			words = append(words, w)
		}
	}
	return strings.Join(words, " ")
}

// splitCamel splits "certificateTTL" into "certificate", "TTL", "smiObjects" into "smi", "Objects",
// and "excludeOutboundCIDRs" into "exclude", "Outbound", "CIDRs".
func splitCamel(s string) []string {
	var words []string
	runes := []rune(s)
	start := 0
	for i := 1; i < len(runes); i++ {
		lowerToUpper := unicode.IsLower(runes[i-1]) && unicode.IsUpper(runes[i])
		// An acronym ends before an upper-case letter followed by lower case ("TTLSeconds"), but
		// its plural's "s" is its own ("CIDRs", "excludeOutboundCIDRs").
		plural := i+1 < len(runes) && runes[i+1] == 's' && (i+2 == len(runes) || unicode.IsUpper(runes[i+2]))
		acronymEnd := i+1 < len(runes) && unicode.IsUpper(runes[i-1]) && unicode.IsUpper(runes[i]) && unicode.IsLower(runes[i+1]) && !plural
		if lowerToUpper || acronymEnd {
			words = append(words, string(runes[start:i]))
			start = i
		}
	}
	return append(words, string(runes[start:]))
}

// describe turns a schema description into one line.
func describe(s string) string { return strings.Join(strings.Fields(s), " ") }

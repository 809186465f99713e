package main

import (
	"fmt"
	"slices"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// schemaPatch changes one field's schema in every version of a kind that has the field. Paths are
// dotted JSON field names from the object root, "[]" stepping into list items; several paths name
// the same field where versions place it differently (access v1alpha1 and specs v1alpha1/v1alpha2
// keep their fields at the top level instead of under spec).
type schemaPatch struct {
	kind  string
	paths []string
	edit  func(*apiextensionsv1.JSONSchemaProps)
}

const maxBackends = 128 // bounds list sizes so the API server can bound CEL and validation cost

var httpMethods = []string{"*", "GET", "HEAD", "PUT", "POST", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

var patches = []schemaPatch{
	// TrafficSplit
	{smi.TrafficSplitKind, []string{""}, require("spec")},
	{smi.TrafficSplitKind, []string{"spec"}, require("service", "backends")},
	{smi.TrafficSplitKind, []string{"spec.service", "spec.backends[].service"}, nonEmpty},
	{smi.TrafficSplitKind, []string{"spec.backends"}, func(s *apiextensionsv1.JSONSchemaProps) {
		s.MinItems, s.MaxItems = ptr[int64](1), ptr[int64](maxBackends)
		// Keyed by service: a service listed twice is rejected by the API server, and server-side
		// apply merges backends by service.
		s.XListType, s.XListMapKeys = ptr("map"), []string{"service"}
	}},
	{smi.TrafficSplitKind, []string{"spec.backends[]"}, require("service", "weight")},
	{smi.TrafficSplitKind, []string{"spec.backends[].weight"}, nonNegativeWeight},
	{smi.TrafficSplitKind, []string{"spec.matches"}, maxItems(maxBackends)},
	{smi.TrafficSplitKind, []string{"spec.matches[].kind"}, enum(smi.HTTPRouteGroupKind)},
	{smi.TrafficSplitKind, []string{"spec.matches[].name"}, nonEmpty},

	// TrafficTarget
	{smi.TrafficTargetKind, []string{"spec.destination.kind", "destination.kind", "spec.sources[].kind", "sources[].kind"}, enum("ServiceAccount")},
	{smi.TrafficTargetKind, []string{"spec.destination.name", "destination.name", "spec.sources[].name", "sources[].name",
		"spec.rules[].name", "specs[].name"}, nonEmpty},
	{smi.TrafficTargetKind, []string{"spec.destination.port", "destination.port", "spec.sources[].port", "sources[].port"}, portNumber},
	{smi.TrafficTargetKind, []string{"spec.rules[].kind", "specs[].kind"}, enum(smi.HTTPRouteGroupKind, smi.TCPRouteKind, smi.UDPRouteKind)},
	{smi.TrafficTargetKind, []string{"spec.sources", "sources", "spec.rules", "specs"}, maxItems(maxBackends)},

	// HTTPRouteGroup
	{smi.HTTPRouteGroupKind, []string{"spec.matches", "matches"}, func(s *apiextensionsv1.JSONSchemaProps) {
		s.MaxItems = ptr[int64](maxBackends)
		// TrafficTargets reference matches by name, so names are keys: required and unique.
		s.XListType, s.XListMapKeys = ptr("map"), []string{"name"}
	}},
	{smi.HTTPRouteGroupKind, []string{"spec.matches[]", "matches[]"}, require("name")},
	{smi.HTTPRouteGroupKind, []string{"spec.matches[].name", "matches[].name"}, nonEmpty},
	{smi.HTTPRouteGroupKind, []string{"spec.matches[].methods[]", "matches[].methods[]"}, enum(httpMethods...)},
	{smi.HTTPRouteGroupKind, []string{"spec.matches[].headers", "matches[].headers"}, headerList},

	// TCPRoute and UDPRoute (ports exist from v1alpha4 on)
	{smi.TCPRouteKind, []string{"spec.matches.ports"}, uniquePorts},
	{smi.UDPRouteKind, []string{"spec.matches.ports"}, uniquePorts},
}

func applyPatches(crd *apiextensionsv1.CustomResourceDefinition) error {
	for _, p := range patches {
		if p.kind != crd.Spec.Names.Kind {
			continue
		}
		applied := false
		for i := range crd.Spec.Versions {
			root := crd.Spec.Versions[i].Schema.OpenAPIV3Schema
			for _, path := range p.paths {
				if editPath(root, splitPath(path), p.edit) {
					applied = true
				}
			}
		}
		if !applied {
			return fmt.Errorf("patch for %s %v matches no field in any version", p.kind, p.paths)
		}
	}
	return nil
}

func splitPath(path string) []string {
	if path == "" {
		return nil
	}
	return strings.Split(path, ".")
}

// editPath walks segments from s and applies edit to the schema found; it reports whether it was found.
func editPath(s *apiextensionsv1.JSONSchemaProps, segments []string, edit func(*apiextensionsv1.JSONSchemaProps)) bool {
	if len(segments) == 0 {
		edit(s)
		return true
	}
	name, intoItems := strings.CutSuffix(segments[0], "[]")
	prop, ok := s.Properties[name]
	if !ok {
		return false
	}
	target := &prop
	if intoItems {
		if prop.Items == nil || prop.Items.Schema == nil {
			return false
		}
		target = prop.Items.Schema
	}
	found := editPath(target, segments[1:], edit)
	s.Properties[name] = prop // Properties holds values: write the edited copy back
	return found
}

func require(fields ...string) func(*apiextensionsv1.JSONSchemaProps) {
	return func(s *apiextensionsv1.JSONSchemaProps) {
		for _, f := range fields {
			if !slices.Contains(s.Required, f) {
				s.Required = append(s.Required, f)
			}
		}
	}
}

func enum(values ...string) func(*apiextensionsv1.JSONSchemaProps) {
	return func(s *apiextensionsv1.JSONSchemaProps) {
		s.Enum = nil
		for _, v := range values {
			s.Enum = append(s.Enum, apiextensionsv1.JSON{Raw: []byte(fmt.Sprintf("%q", v))})
		}
	}
}

func maxItems(n int64) func(*apiextensionsv1.JSONSchemaProps) {
	return func(s *apiextensionsv1.JSONSchemaProps) { s.MaxItems = ptr(n) }
}

func nonEmpty(s *apiextensionsv1.JSONSchemaProps) {
	s.MinLength = ptr[int64](1)
	s.MaxLength = ptr[int64](253) // names of Kubernetes objects and match names
}

func portNumber(s *apiextensionsv1.JSONSchemaProps) {
	s.Minimum, s.Maximum = ptr(1.0), ptr(65535.0)
}

func uniquePorts(s *apiextensionsv1.JSONSchemaProps) {
	s.XListType = ptr("set")
	s.MaxItems = ptr[int64](maxBackends)
	portNumber(s.Items.Schema)
}

// nonNegativeWeight: from v1alpha2 on a weight is an integer and a minimum says it; v1alpha1 weights
// are resource quantities (int-or-string). Their string form is checked by an RE2 match before CEL's
// quantity() parses it: the match is linear, while parsing a quantity with a huge exponent
// ("1e-999999999") does not finish, and the API server runs this rule on every write.
func nonNegativeWeight(s *apiextensionsv1.JSONSchemaProps) {
	if !s.XIntOrString {
		s.Minimum = ptr(0.0)
		return
	}
	s.MaxLength = ptr[int64](32) // bounds the cost of the rule below
	s.XValidations = append(s.XValidations, apiextensionsv1.ValidationRule{
		Rule: `type(self) == int ? self >= 0 : ` +
			`self.matches('^[+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]{1,2})?$') && ` +
			`!quantity(self).isLessThan(quantity('0'))`,
		Message: "weight must be a non-negative quantity with an exponent of at most two digits, such as 1 or 500m",
	})
}

// headerList describes headers as SMI writes them and smi-sdk-go encodes them: a list of
// single-entry maps from header name to value regex (the Go type is a map, hence controller-gen's
// object schema, which would reject every real HTTPRouteGroup with headers).
func headerList(s *apiextensionsv1.JSONSchemaProps) {
	*s = apiextensionsv1.JSONSchemaProps{
		Description: "Headers to match, each a single-entry map from header name to a regular expression for its value; all must match.",
		Type:        "array",
		MaxItems:    ptr[int64](maxBackends),
		Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{
			Type:                 "object",
			MinProperties:        ptr[int64](1),
			MaxProperties:        ptr[int64](1),
			AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{Allows: true, Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}},
		}},
	}
}

func ptr[T any](v T) *T { return &v }

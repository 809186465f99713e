// Package conversion converts SMI objects between the versions the operator serves, and serves that
// as the CRDs' conversion webhook. Every conversion goes through the hub, the newest version of each
// kind (split v1alpha4, access v1alpha3, specs v1alpha4): spoke -> hub -> spoke.
//
// It has three layers:
//   - typed functions, one pair per kind and older version (split.go, access.go, specs.go), such as
//     [TrafficSplitV1alpha1ToHub] and [TrafficSplitHubToV1alpha1], plus [ToHub] for any SDK object.
//     They take non-nil objects and never modify them.
//   - [Convert], for JSON objects (unstructured) of any version to any version of the same kind. It
//     keeps metadata exactly as it is (only the conversion annotation changes) and carries over,
//     unchanged, top-level fields that no version of the SDK type knows, such as the status our
//     CRDs add.
//   - [NewWebhookHandler], the apiextensions.k8s.io/v1 ConversionReview endpoint.
//
// # Lossless round trips
//
// What the target version cannot hold is written, as JSON, to the annotation
// smi.ConversionDataAnnotation, and taken back from it when the object is converted to a version
// that can hold it again; the annotation is removed once nothing is left in it. Each kind has its
// own small struct for it:
//
//	TrafficSplit    {"matches":[...], "v1alpha1Backends":[{"service":"b","weight":"500m"}, ...]}
//	TrafficTarget   {"ports":[{"role":"destination"|"source","index":0,"kind":..,"name":..,"namespace":..,"port":8080}, ...]}
//	HTTPRouteGroup  {"headers":[{"index":0,"match":{"name":..,"methods":[..],"pathRegex":..},"headers":{"cookie":"..."},"order":["cookie"]}, ...]}
//	TCPRoute        {"matches":{"name":..,"ports":[...]}}
//
// Fields of the hub that an older version lacks (split matches, match headers, TCPRoute matches)
// come back whenever the object returns from that version, as fields a client does not know must
// survive its updates; match headers follow their match by place and content, else by name. Fields
// that only older versions have (v1alpha1 weight quantities, access ports) come back only while
// they are consistent with the hub's fields (the quantities still convert to exactly the hub's
// weights for the same services; a port's subject is still there), so a stale annotation never
// overrides a newer edit made through another version; stale data is dropped on the way.
//
// One such field has meaning beyond round trips: a v1alpha1 or v1alpha2 TrafficTarget's
// destination port restricts access to that port. [TrafficTargetDestinationPort] reads it from a
// hub object, by the same rules, for the mesh model to enforce.
//
// Converting any version to any other and back gives back the original object, HTTPRouteGroup
// header lists in the order they were written (see headerorder.go), apart from one normalization:
// an empty list or map comes back as an absent one. Header lists of a match are first sorted by name,
// so the output is deterministic even where no order is known.
package conversion

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// version is one served version of one SMI kind, with the typed conversions to and from its hub.
type version struct {
	gvk     schema.GroupVersionKind
	toHub   func(runtime.Object) (runtime.Object, error)
	fromHub func(runtime.Object) (runtime.Object, error)
	// checkJSON, when set, rejects input that decoding into the SDK type must not be handed.
	checkJSON func(obj map[string]any) error
}

// spoke is an older version, converted by a pair of typed functions.
func spoke[S, H runtime.Object](gvk schema.GroupVersionKind, toHub func(S) (H, error), fromHub func(H) (S, error)) version {
	return version{gvk: gvk, toHub: typed(toHub), fromHub: typed(fromHub)}
}

// hub is the version every other converts through; converting it to itself is a copy.
func hub(gvk schema.GroupVersionKind) version {
	deepCopy := typed(func(obj runtime.Object) (runtime.Object, error) { return obj.DeepCopyObject(), nil })
	return version{gvk: gvk, toHub: deepCopy, fromHub: deepCopy}
}

// typed adapts a typed conversion function to runtime.Object, refusing other types and nil objects
// (the typed functions take non-nil objects).
func typed[In, Out runtime.Object](convert func(In) (Out, error)) func(runtime.Object) (runtime.Object, error) {
	return func(obj runtime.Object) (runtime.Object, error) {
		in, ok := obj.(In)
		if value := reflect.ValueOf(obj); !ok || value.Kind() == reflect.Pointer && value.IsNil() {
			return nil, fmt.Errorf("cannot convert a %T here: want a non-nil %s", obj, reflect.TypeFor[In]())
		}
		out, err := convert(in)
		if err != nil {
			return nil, err
		}
		return out, nil
	}
}

// withJSONCheck returns v with a check run on JSON input before it is decoded into the SDK type.
func (v version) withJSONCheck(check func(map[string]any) error) version {
	v.checkJSON = check
	return v
}

var (
	versions = slices.Concat(trafficSplitVersions, trafficTargetVersions, httpRouteGroupVersions, tcpRouteVersions, udpRouteVersions)

	versionsByGVK = func() map[schema.GroupVersionKind]version {
		byGVK := make(map[schema.GroupVersionKind]version, len(versions))
		for _, v := range versions {
			byGVK[v.gvk] = v
		}
		return byGVK
	}()

	// scheme gives the empty SDK object of a kind and version, and the kind and version of an SDK object.
	scheme = func() *runtime.Scheme {
		s := runtime.NewScheme()
		utilruntime.Must(smi.AddToScheme(s))
		return s
	}()

	// knownFields lists, per kind, the top-level JSON fields of every version of its SDK type. The
	// rest (status) belongs to no version, so conversion carries it over as it is.
	knownFields = func() map[schema.GroupKind]map[string]bool {
		known := map[schema.GroupKind]map[string]bool{}
		for _, v := range versions {
			obj, err := scheme.New(v.gvk)
			utilruntime.Must(err)
			if known[v.gvk.GroupKind()] == nil {
				known[v.gvk.GroupKind()] = map[string]bool{}
			}
			addJSONFieldNames(known[v.gvk.GroupKind()], reflect.TypeOf(obj).Elem())
		}
		return known
	}()
)

// addJSONFieldNames adds the JSON names of struct type t's fields to names, with those of inlined
// embedded structs (TypeMeta).
func addJSONFieldNames(names map[string]bool, t reflect.Type) {
	for i := range t.NumField() {
		field := t.Field(i)
		name, options, _ := strings.Cut(field.Tag.Get("json"), ",")
		switch {
		case !field.IsExported() || name == "-":
		case field.Anonymous && name == "" && options == "inline":
			addJSONFieldNames(names, field.Type)
		case name != "":
			names[name] = true
		default:
			names[field.Name] = true
		}
	}
}

// ToHub converts a typed SMI object of any served version (a pointer to an smi-sdk-go TrafficSplit,
// TrafficTarget, HTTPRouteGroup, TCPRoute or UDPRoute) to the hub version of its kind. A hub object
// comes back as a copy. obj is not modified.
func ToHub(obj runtime.Object) (runtime.Object, error) {
	if obj == nil {
		return nil, errors.New("cannot convert a nil object")
	}
	gvks, _, err := scheme.ObjectKinds(obj)
	if err != nil {
		return nil, fmt.Errorf("cannot convert %T: not an SMI object: %w", obj, err)
	}
	// Each version of each kind is its own Go type, so the type names one kind and version.
	v, ok := versionsByGVK[gvks[0]]
	if !ok {
		return nil, fmt.Errorf("cannot convert %T: not a served SMI kind", obj)
	}
	return v.toHub(obj)
}

// Convert converts obj, an SMI object of any served version, to toAPIVersion ("group/version") of
// the same group. Metadata is kept as it is, apart from the conversion annotation, and so are the
// top-level fields no version of the kind defines (status). An object already in toAPIVersion comes
// back as an unchanged copy. obj is not modified.
func Convert(obj *unstructured.Unstructured, toAPIVersion string) (*unstructured.Unstructured, error) {
	if obj == nil {
		return nil, errors.New("cannot convert a nil object")
	}
	// A JSON round trip copies obj and makes every value a JSON value (int64, float64, map, ...),
	// whatever a Go caller put in.
	raw, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the object: %w", err)
	}
	in := map[string]any{}
	if err := utiljson.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("cannot decode the object: %w", err)
	}
	from, to, err := versionsFor(obj, toAPIVersion)
	if err != nil {
		return nil, err
	}
	if from.gvk == to.gvk {
		return &unstructured.Unstructured{Object: in}, nil
	}
	source, err := from.decode(in, raw)
	if err != nil {
		return nil, err
	}
	hubObj, err := from.toHub(source)
	if err != nil {
		return nil, err
	}
	target, err := to.fromHub(hubObj)
	if err != nil {
		return nil, err
	}
	out, err := encode(in, target, to.gvk)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: out}, nil
}

// versionsFor finds the served versions obj converts from and to.
func versionsFor(obj *unstructured.Unstructured, toAPIVersion string) (from, to version, err error) {
	fromGVK := obj.GroupVersionKind()
	from, ok := versionsByGVK[fromGVK]
	if !ok {
		return from, to, fmt.Errorf("%s %s is not an SMI kind and version this operator serves", obj.GetAPIVersion(), obj.GetKind())
	}
	toGV, err := schema.ParseGroupVersion(toAPIVersion)
	if err != nil {
		return from, to, fmt.Errorf("target version %q: %w", toAPIVersion, err)
	}
	if toGV.Group != fromGVK.Group {
		return from, to, fmt.Errorf("cannot convert a %s object to %q: conversion stays within an API group", fromGVK.Group, toAPIVersion)
	}
	to, ok = versionsByGVK[toGV.WithKind(fromGVK.Kind)]
	if !ok {
		return from, to, fmt.Errorf("%s is not served as %s", fromGVK.Kind, toGV)
	}
	return from, to, nil
}

// decode reads the JSON object obj (raw is its encoding) into the SDK type of v.
func (v version) decode(obj map[string]any, raw []byte) (runtime.Object, error) {
	if v.checkJSON != nil {
		if err := v.checkJSON(obj); err != nil {
			return nil, err
		}
	}
	out, err := scheme.New(v.gvk)
	if err != nil {
		return nil, err
	}
	if err := utiljson.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("cannot read the object as %s: %w", v.gvk.GroupVersion(), err)
	}
	return out, nil
}

// encode builds the JSON form of the converted object: target's fields, and from the source object
// in (a JSON copy the result may share) its metadata and the fields no version of the kind has.
func encode(in map[string]any, target runtime.Object, gvk schema.GroupVersionKind) (map[string]any, error) {
	var headerOrder map[string][]string
	if gvk.Kind == smi.HTTPRouteGroupKind {
		headerOrder = headerOrders(in) // before out shares, and changes, in's metadata
	}
	raw, err := json.Marshal(target)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the converted object: %w", err)
	}
	out := map[string]any{}
	if err := utiljson.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("cannot decode the converted object: %w", err)
	}
	delete(out, "metadata")
	normalize(out)
	for field, value := range in {
		if !knownFields[gvk.GroupKind()][field] || field == "metadata" {
			out[field] = value
		}
	}
	out["apiVersion"], out["kind"] = gvk.GroupVersion().String(), gvk.Kind
	// The typed conversion decided the annotation; everything else in metadata stays as it came.
	meta, ok := target.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no metadata", target)
	}
	annotation, ok := meta.GetAnnotations()[smi.ConversionDataAnnotation]
	setConversionAnnotation(out, annotation, ok)
	if headerOrder != nil {
		applyHeaderOrders(out, headerOrder)
	}
	return out, nil
}

// normalize makes the SDK types' JSON deterministic and free of noise: it drops the nulls that nil
// slices of fields without omitempty produce (the API server would prune them), and sorts header
// lists by header name. HTTPMatch.Headers is a map that the SDK writes as a list of single-entry
// maps, in Go's random map order; only HTTPRouteGroups have "headers" fields.
func normalize(value any) {
	switch value := value.(type) {
	case map[string]any:
		maps.DeleteFunc(value, func(_ string, v any) bool { return v == nil })
		for key, v := range value {
			if list, ok := v.([]any); ok && key == "headers" {
				sortHeaderList(list)
			}
			normalize(v)
		}
	case []any:
		for _, v := range value {
			normalize(v)
		}
	}
}

// sortHeaderList sorts a list of single-entry maps {name: regex} by name.
func sortHeaderList(list []any) {
	name := func(entry any) string {
		for key := range entry.(map[string]any) {
			return key
		}
		return ""
	}
	for _, entry := range list {
		if m, ok := entry.(map[string]any); !ok || len(m) != 1 {
			return // not the SDK's header list; leave it as it is
		}
	}
	slices.SortStableFunc(list, func(a, b any) int { return strings.Compare(name(a), name(b)) })
}

// setConversionAnnotation sets (present) or removes the conversion annotation in the metadata of the
// JSON object obj, leaving every other annotation alone. An annotations map left empty is removed:
// the API server does not keep empty maps in metadata, so one can only have been created by us.
func setConversionAnnotation(obj map[string]any, value string, present bool) {
	meta, _ := obj["metadata"].(map[string]any)
	annotations, _ := meta["annotations"].(map[string]any)
	if present {
		if meta == nil {
			meta = map[string]any{}
			obj["metadata"] = meta
		}
		if annotations == nil {
			annotations = map[string]any{}
			meta["annotations"] = annotations
		}
		annotations[smi.ConversionDataAnnotation] = value
		return
	}
	if _, had := annotations[smi.ConversionDataAnnotation]; had {
		delete(annotations, smi.ConversionDataAnnotation)
		if len(annotations) == 0 {
			delete(meta, "annotations")
		}
	}
}

// typeMeta is the TypeMeta of kind in gv.
func typeMeta(gv schema.GroupVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: gv.String(), Kind: kind}
}

// convertSlice maps in with convert, keeping a nil slice nil.
func convertSlice[From, To any](in []From, convert func(From) To) []To {
	if in == nil {
		return nil
	}
	out := make([]To, len(in))
	for i, v := range in {
		out[i] = convert(v)
	}
	return out
}

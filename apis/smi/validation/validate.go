package validation

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	accessv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha1"
	accessv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha2"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha1"
	specsv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha2"
	specsv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha1"
	splitv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha2"
	splitv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha3"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// Validate checks a typed SMI object of any served version: a pointer to a TrafficSplit,
// TrafficTarget, HTTPRouteGroup, TCPRoute or UDPRoute from smi-sdk-go. Errors carry the field paths
// of the object's own version. Validate does not modify obj.
//
// A typed HTTPRouteGroup (v1alpha2+) holds its headers as a map, so headers repeated in the YAML are
// already lost; use [ValidateJSON] on what the user wrote to catch them.
func Validate(obj runtime.Object) field.ErrorList {
	f, err := formOf(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(field.NewPath("kind"), err)}
	}
	return f.validate()
}

// ValidateJSON decodes raw (JSON, as in an admission request) as the given SMI kind and version
// and validates it like [Validate], reading HTTPRouteGroup headers as written. The error is non-nil
// when gvk is not a validated SMI kind or raw cannot be decoded as one; the object is then neither
// valid nor invalid, just not understood.
func ValidateJSON(gvk schema.GroupVersionKind, raw []byte) (field.ErrorList, error) {
	_, errs, err := validateJSON(gvk, raw, "")
	return errs, err
}

// GroupVersionKinds lists every kind and version that this package validates, sorted.
func GroupVersionKinds() []schema.GroupVersionKind {
	return slices.Clone(validatedKinds())
}

// form is one SMI object read into the version-independent shape of its kind, with the paths its
// version uses.
type form interface {
	validate() field.ErrorList
}

// scheme knows every served SMI version; it turns a group/version/kind into an empty typed object.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(smi.AddToScheme(s))
	return s
}()

var validatedKinds = sync.OnceValue(func() []schema.GroupVersionKind {
	var kinds []schema.GroupVersionKind
	for gvk := range scheme.AllKnownTypes() {
		obj, err := scheme.New(gvk)
		if err != nil {
			continue
		}
		// Lists and the meta types every group version registers have no form.
		if _, err := formOf(obj); err == nil {
			kinds = append(kinds, gvk)
		}
	}
	slices.SortFunc(kinds, func(a, b schema.GroupVersionKind) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Version, b.Version))
	})
	return kinds
})

// validateJSON is ValidateJSON for the webhook: defaultNamespace stands in for an empty
// metadata.namespace (the namespace of the request), and the decoded object's metadata is returned.
func validateJSON(gvk schema.GroupVersionKind, raw []byte, defaultNamespace string) (metav1.Object, field.ErrorList, error) {
	unknown := fmt.Errorf("%s is not an SMI kind this webhook validates", gvkString(gvk))
	obj, err := scheme.New(gvk)
	if err != nil {
		return nil, nil, unknown
	}
	empty, err := formOf(obj)
	if err != nil {
		return nil, nil, unknown
	}
	// Some parts must be read from the JSON as written, before smi-sdk-go's decoding loses them
	// or chokes on them; rawErrs are their problems.
	var rawErrs field.ErrorList
	var listed [][]header
	switch e := empty.(type) {
	case *httpRouteGroupForm:
		if e.hasHeaders {
			raw, listed, rawErrs, err = takeListedHeaders(raw, e)
		}
	case *splitForm:
		if e.quantityWeights {
			raw, rawErrs, err = defuseWeights(raw)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cannot decode the object as %s: %w", gvkString(gvk), err)
	}
	if err := utiljson.Unmarshal(raw, obj); err != nil {
		return nil, nil, fmt.Errorf("cannot decode the object as %s: %w", gvkString(gvk), err)
	}
	meta, ok := obj.(metav1.Object)
	if !ok { // every SMI kind embeds ObjectMeta; this guards against a scheme surprise, not input
		return nil, nil, unknown
	}
	if meta.GetNamespace() == "" {
		meta.SetNamespace(defaultNamespace)
	}
	f, err := formOf(obj)
	if err != nil {
		return nil, nil, unknown
	}
	if g, ok := f.(*httpRouteGroupForm); ok && listed != nil {
		g.useListedHeaders(listed)
	}
	return meta, append(rawErrs, f.validate()...), nil
}

func gvkString(gvk schema.GroupVersionKind) string {
	return gvk.GroupVersion().String() + " " + gvk.Kind
}

// formOf reads a typed SMI object into its kind's form. This is the only place that knows each
// version's Go types; everything after it is shared.
func formOf(obj runtime.Object) (form, error) {
	if obj == nil || reflect.ValueOf(obj).Kind() == reflect.Pointer && reflect.ValueOf(obj).IsNil() {
		return nil, errors.New("no object to validate")
	}
	switch o := obj.(type) {
	case *splitv1alpha1.TrafficSplit:
		return &splitForm{namespace: o.Namespace, service: o.Spec.Service, quantityWeights: true, backends: each(o.Spec.Backends, func(b splitv1alpha1.TrafficSplitBackend) backend {
			return backend{service: b.Service, quantity: b.Weight, isQuantity: true}
		})}, nil
	case *splitv1alpha2.TrafficSplit:
		return &splitForm{namespace: o.Namespace, service: o.Spec.Service, backends: each(o.Spec.Backends, func(b splitv1alpha2.TrafficSplitBackend) backend {
			return backend{service: b.Service, weight: b.Weight}
		})}, nil
	case *splitv1alpha3.TrafficSplit:
		return &splitForm{namespace: o.Namespace, service: o.Spec.Service, matches: o.Spec.Matches, backends: each(o.Spec.Backends, func(b splitv1alpha3.TrafficSplitBackend) backend {
			return backend{service: b.Service, weight: b.Weight}
		})}, nil
	case *splitv1alpha4.TrafficSplit:
		return &splitForm{namespace: o.Namespace, service: o.Spec.Service, matches: o.Spec.Matches, backends: each(o.Spec.Backends, func(b splitv1alpha4.TrafficSplitBackend) backend {
			return backend{service: b.Service, weight: b.Weight}
		})}, nil

	case *accessv1alpha1.TrafficTarget:
		toSubject := func(s accessv1alpha1.IdentityBindingSubject) subject {
			sub := subject{kind: s.Kind, name: s.Name, namespace: s.Namespace}
			if s.Port != 0 { // v1alpha1 has no way to say "no port" but 0
				sub.port = &s.Port
			}
			return sub
		}
		return &targetForm{
			namespace: o.Namespace, root: nil, rulesField: "specs", ruleKinds: tcpHTTPRuleKinds,
			destination: toSubject(o.Destination), sources: each(o.Sources, toSubject),
			rules: each(o.Specs, func(r accessv1alpha1.TrafficTargetSpec) rule { return rule(r) }),
		}, nil
	case *accessv1alpha2.TrafficTarget:
		toSubject := func(s accessv1alpha2.IdentityBindingSubject) subject {
			return subject{kind: s.Kind, name: s.Name, namespace: s.Namespace, port: s.Port}
		}
		return &targetForm{
			namespace: o.Namespace, root: field.NewPath("spec"), rulesField: "rules", ruleKinds: tcpHTTPRuleKinds,
			destination: toSubject(o.Spec.Destination), sources: each(o.Spec.Sources, toSubject),
			rules: each(o.Spec.Rules, func(r accessv1alpha2.TrafficTargetRule) rule { return rule(r) }),
		}, nil
	case *accessv1alpha3.TrafficTarget:
		toSubject := func(s accessv1alpha3.IdentityBindingSubject) subject {
			return subject{kind: s.Kind, name: s.Name, namespace: s.Namespace}
		}
		return &targetForm{
			namespace: o.Namespace, root: field.NewPath("spec"), rulesField: "rules", ruleKinds: allRuleKinds, rulesRequired: true,
			destination: toSubject(o.Spec.Destination), sources: each(o.Spec.Sources, toSubject),
			rules: each(o.Spec.Rules, func(r accessv1alpha3.TrafficTargetRule) rule { return rule(r) }),
		}, nil

	case *specsv1alpha1.HTTPRouteGroup:
		g := newHTTPRouteGroupForm(nil, false)
		g.matches = each(o.Matches, func(m specsv1alpha1.HTTPMatch) httpMatch {
			return httpMatch{name: m.Name, methods: m.Methods, pathRegex: m.PathRegex}
		})
		return g, nil
	case *specsv1alpha2.HTTPRouteGroup:
		g := newHTTPRouteGroupForm(nil, true)
		g.matches = eachIndexed(o.Matches, func(i int, m specsv1alpha2.HTTPMatch) httpMatch {
			return g.match(i, m.Name, m.Methods, m.PathRegex, m.Headers)
		})
		return g, nil
	case *specsv1alpha3.HTTPRouteGroup:
		g := newHTTPRouteGroupForm(field.NewPath("spec"), true)
		g.matches = eachIndexed(o.Spec.Matches, func(i int, m specsv1alpha3.HTTPMatch) httpMatch {
			return g.match(i, m.Name, m.Methods, m.PathRegex, m.Headers)
		})
		return g, nil
	case *specsv1alpha4.HTTPRouteGroup:
		g := newHTTPRouteGroupForm(field.NewPath("spec"), true)
		g.matches = eachIndexed(o.Spec.Matches, func(i int, m specsv1alpha4.HTTPMatch) httpMatch {
			return g.match(i, m.Name, m.Methods, m.PathRegex, m.Headers)
		})
		return g, nil

	case *specsv1alpha1.TCPRoute, *specsv1alpha2.TCPRoute, *specsv1alpha3.TCPRoute:
		return nothingToCheck{}, nil // these versions have no fields besides metadata
	case *specsv1alpha4.TCPRoute:
		return &portRouteForm{ports: o.Spec.Matches.Ports}, nil
	case *specsv1alpha4.UDPRoute:
		return &portRouteForm{ports: o.Spec.Matches.Ports}, nil
	}
	return nil, fmt.Errorf("%T is not an SMI kind this package validates", obj)
}

type nothingToCheck struct{}

func (nothingToCheck) validate() field.ErrorList { return nil }

// each maps a slice; the SDK repeats the same struct in every version, each a distinct Go type.
func each[From, To any](in []From, f func(From) To) []To {
	return eachIndexed(in, func(_ int, v From) To { return f(v) })
}

func eachIndexed[From, To any](in []From, f func(int, From) To) []To {
	if in == nil {
		return nil
	}
	out := make([]To, len(in))
	for i, v := range in {
		out[i] = f(i, v)
	}
	return out
}

// Helpers shared by the kinds' validators. Each error's detail says what is wrong and why.

// name checks a reference to a Kubernetes object by name: required (why says what it names), and
// then in the format that kind of object's names have (check is one of the validation.IsDNS*).
func name(path *field.Path, value, why string, check func(string) []string, format string) field.ErrorList {
	if value == "" {
		return field.ErrorList{field.Required(path, why)}
	}
	if msgs := check(value); len(msgs) > 0 {
		return field.ErrorList{field.Invalid(path, value, format+": "+strings.Join(msgs, "; "))}
	}
	return nil
}

// notSupported is field.NotSupported with the reason behind the allowed set.
func notSupported(path *field.Path, value string, allowed []string, why string) *field.Error {
	err := field.NotSupported(path, value, allowed)
	err.Detail += ": " + why
	return err
}

// duplicate is field.Duplicate with a detail naming the first occurrence and what to do instead.
func duplicate(path *field.Path, value any, detail string) *field.Error {
	err := field.Duplicate(path, value)
	err.Detail = detail
	return err
}

// firstSeen remembers where each key was first seen, to point duplicates at it.
type firstSeen[K comparable] map[K]*field.Path

// dup records key at path and returns the earlier path for the same key, or nil the first time.
func (s firstSeen[K]) dup(key K, path *field.Path) *field.Path {
	if first, ok := s[key]; ok {
		return first
	}
	s[key] = path
	return nil
}

// regex reports at path why a regex of an HTTPRouteGroup (check: smi.CheckPathRegex or
// smi.CheckHeaderRegex; what names it in messages) cannot be programmed: not RE2 (which SMI
// specifies and Envoy and Istio evaluate), empty, longer than istiod accepts, or over Envoy's default
// RE2 program size. The limits are those of package smi, which the mesh model applies too, so what
// is admitted is what the backends program.
func regex(path *field.Path, value, what string, check func(string) error) field.ErrorList {
	err := check(value)
	var tooLong *smi.RegexTooLongError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooLong): // the value may be huge: leave it out of the message
		e := field.TooLong(path, value, tooLong.Limit)
		e.Detail = what + " " + err.Error()
		return field.ErrorList{e}
	case errors.Is(err, smi.ErrEmptyRegex):
		return field.ErrorList{field.Required(path, what+" "+err.Error())}
	}
	return field.ErrorList{field.Invalid(path, value, what+" "+err.Error())}
}

// port checks a TCP/UDP port number.
func port(path *field.Path, value int) field.ErrorList {
	if value < 1 || value > 65535 {
		return field.ErrorList{field.Invalid(path, value, "must be a port number, from 1 to 65535")}
	}
	return nil
}

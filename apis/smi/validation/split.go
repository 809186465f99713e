package validation

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// splitForm is a TrafficSplit of any version. Every version keeps the same field names under spec,
// so the paths are shared; versions differ only in the weight's type (v1alpha1 has quantities) and
// in matches, which exist from v1alpha3 on.
type splitForm struct {
	// namespace is the split's own: the only one spec.service may name.
	namespace       string
	service         string
	backends        []backend
	matches         []corev1.TypedLocalObjectReference
	quantityWeights bool // v1alpha1
}

type backend struct {
	service string
	// weight is the integer weight of v1alpha2+; quantity the v1alpha1 one when isQuantity.
	weight     int
	quantity   *resource.Quantity
	isQuantity bool
}

var splitSpec = field.NewPath("spec")

// Service names are checked as DNS-1123 labels: Kubernetes has long required DNS-1035 labels (no
// leading digit) but relaxes that to DNS-1123 labels (RelaxedServiceNameValidation), and rejecting
// a name the API server accepts would be worse than admitting one it refuses.
const (
	serviceFormat = "must be the name of a Service in the TrafficSplit's namespace"
	objectFormat  = "must be a Kubernetes object name"
)

func (s *splitForm) validate() field.ErrorList {
	errs := s.validateService()
	errs = append(errs, s.validateBackends()...)
	errs = append(errs, s.validateMatches()...)
	return errs
}

// validateService checks spec.service, which SMI calls "the FQDN that applications will use":
// the apex Service's name, or its name qualified with the split's namespace (and ".svc", and the
// cluster domain), as smi.ParseSplitService reads it.
func (s *splitForm) validateService() field.ErrorList {
	path := splitSpec.Child("service")
	if s.service == "" {
		return field.ErrorList{field.Required(path, "the apex Service, which clients address and whose traffic is split")}
	}
	parsed, ok := smi.ParseSplitService(s.service)
	if !ok {
		return field.ErrorList{field.Invalid(path, s.service, serviceFormat+
			", written as <name>, <name>.<namespace>, <name>.<namespace>.svc or <name>.<namespace>.svc.<cluster domain>")}
	}
	var errs field.ErrorList
	if msgs := validation.IsDNS1123Label(parsed.Name); len(msgs) > 0 {
		errs = append(errs, field.Invalid(path, s.service, serviceFormat+": the name "+strconv.Quote(parsed.Name)+": "+strings.Join(msgs, "; ")))
	}
	if parsed.Namespace != "" && s.namespace != "" && parsed.Namespace != s.namespace {
		errs = append(errs, field.Invalid(path, s.service, fmt.Sprintf(
			"names a Service of namespace %q: a TrafficSplit splits the traffic of a Service of its own namespace (%q), so create it in %q",
			parsed.Namespace, s.namespace, parsed.Namespace)))
	}
	if parsed.ClusterDomain != "" {
		if msgs := validation.IsDNS1123Subdomain(parsed.ClusterDomain); len(msgs) > 0 {
			errs = append(errs, field.Invalid(path, s.service, "the cluster domain "+strconv.Quote(parsed.ClusterDomain)+": "+strings.Join(msgs, "; ")))
		}
	}
	return errs
}

func (s *splitForm) validateBackends() field.ErrorList {
	var errs field.ErrorList
	backendsPath := splitSpec.Child("backends")
	if len(s.backends) == 0 {
		return field.ErrorList{field.Required(backendsPath, "a split needs at least one backend Service to send traffic to")}
	}
	seen := firstSeen[string]{}
	var sum int64
	overflow := false
	for i, b := range s.backends {
		p := backendsPath.Index(i)
		servicePath := p.Child("service")
		errs = append(errs, name(servicePath, b.service,
			"the Service that receives this backend's share of the traffic", validation.IsDNS1123Label, serviceFormat)...)
		if b.service != "" {
			if first := seen.dup(b.service, servicePath); first != nil {
				errs = append(errs, duplicate(servicePath, b.service,
					fmt.Sprintf("already listed at %s: a Service takes one weight, so merge the two entries", first)))
			}
		}
		w, werrs := b.weightValue(p.Child("weight"))
		errs = append(errs, werrs...)
		switch {
		case len(werrs) > 0 || overflow:
		case sum > math.MaxInt64-w:
			overflow = true
		default:
			sum += w
		}
	}
	if overflow {
		errs = append(errs, field.Invalid(backendsPath, field.OmitValueType{},
			"the weights add up to more than 2^63-1 (counting v1alpha1 weights in thousandths): a backend's share is its weight divided by the sum, which must be representable"))
	}
	return errs
}

// weightValue returns the weight as an integer, as the hub version stores it (v1alpha1 quantities
// by milli-value: "1" is 1000 and "500m" is 500, so {1, 500m} splits 2:1), with what is wrong with it.
func (b backend) weightValue(path *field.Path) (int64, field.ErrorList) {
	if !b.isQuantity {
		if b.weight < 0 {
			return 0, field.ErrorList{field.Invalid(path, b.weight,
				"must be non-negative: a weight is the backend's share of the traffic, 0 meaning none")}
		}
		return int64(b.weight), nil
	}
	if b.quantity == nil {
		return 0, field.ErrorList{field.Required(path,
			"the backend's share of the traffic, a quantity such as 1 or 500m (a thousandth is the finest step)")}
	}
	q := b.quantity.DeepCopy() // AsDec and String cache inside the Quantity; never touch the caller's object
	if q.Sign() < 0 {
		return 0, field.ErrorList{field.Invalid(path, q.String(),
			"must be non-negative: a weight is the backend's share of the traffic, 0 meaning none")}
	}
	milli, exact, fits := milliValue(&q)
	var errs field.ErrorList
	if !exact {
		errs = append(errs, field.Invalid(path, q.String(),
			"must be a whole number of thousandths (1m = 0.001; u is a millionth, n a billionth): v1alpha1 weights become the integer weights of later versions by milli-value (1 = 1000m), so a finer weight would be rounded"))
	}
	if !fits {
		errs = append(errs, field.Invalid(path, q.String(),
			"is too large: its milli-value (1 = 1000m), the integer weight later versions store, must fit in a signed 64-bit integer"))
	}
	return milli, errs
}

// milliValue returns a non-negative quantity in thousandths, whether that is exact, and whether it
// fits in an int64. resource.Quantity's own MilliValue rounds up and silently overflows, and a
// quantity such as "1e1000000" is valid syntax: this never builds a number much larger than the
// digits the user wrote.
func milliValue(q *resource.Quantity) (milli int64, exact, fits bool) {
	d := q.AsDec()                                // the value is unscaled × 10^-scale
	unscaled := new(big.Int).Abs(d.UnscaledBig()) // a copy: UnscaledBig is the Dec's own
	shift := int64(3) - int64(d.Scale())          // so milli = unscaled × 10^shift
	if unscaled.Sign() == 0 {
		return 0, true, true
	}
	if shift >= 0 {
		if shift > 19 { // unscaled >= 1, so unscaled × 10^shift >= 10^20 > MaxInt64
			return 0, true, false
		}
		m := unscaled.Mul(unscaled, new(big.Int).Exp(big.NewInt(10), big.NewInt(shift), nil))
		if !m.IsInt64() {
			return 0, true, false
		}
		return m.Int64(), true, true
	}
	if -shift > int64(unscaled.BitLen()) { // unscaled < 2^BitLen <= 10^-shift: less than one thousandth
		return 0, false, true
	}
	m, rem := new(big.Int).QuoRem(unscaled, new(big.Int).Exp(big.NewInt(10), big.NewInt(-shift), nil), new(big.Int))
	if !m.IsInt64() {
		return 0, rem.Sign() == 0, false
	}
	return m.Int64(), rem.Sign() == 0, true
}

// validateMatches checks the HTTPRouteGroup references of v1alpha3+. A reference the operator
// cannot follow would either drop the restriction (splitting more traffic than written) or reject
// the whole split later; saying so at admission is kinder.
func (s *splitForm) validateMatches() field.ErrorList {
	var errs field.ErrorList
	seen := firstSeen[string]{}
	for i, m := range s.matches {
		p := splitSpec.Child("matches").Index(i)
		group := ""
		if m.APIGroup != nil {
			group = *m.APIGroup
		}
		if group != "" && group != smi.SpecsGroup {
			errs = append(errs, notSupported(p.Child("apiGroup"), group, []string{"", smi.SpecsGroup},
				"matches name HTTPRouteGroups of specs.smi-spec.io, the only route kind a TrafficSplit can select requests with"))
		}
		if m.Kind != smi.HTTPRouteGroupKind {
			errs = append(errs, notSupported(p.Child("kind"), m.Kind, []string{smi.HTTPRouteGroupKind},
				"a TrafficSplit selects the requests it splits with HTTPRouteGroups only"))
		}
		errs = append(errs, name(p.Child("name"), m.Name,
			"the HTTPRouteGroup, in the TrafficSplit's namespace, whose matches select the requests to split", validation.IsDNS1123Subdomain, objectFormat)...)
		if m.Name != "" {
			if first := seen.dup(m.Kind+"/"+m.Name, p); first != nil {
				errs = append(errs, duplicate(p.Child("name"), m.Name, fmt.Sprintf("already referenced at %s: list each HTTPRouteGroup once", first)))
			}
		}
	}
	return errs
}

// maxWeightText bounds a v1alpha1 weight as written, in characters and in the magnitude of its
// exponent. The largest valid weight, 9223372036854775807m, has 20 characters; a smaller weight
// written with many zeros or a large exponent gains nothing.
const maxWeightText = 30

// defuseWeights checks the text of every v1alpha1 weight in raw JSON before resource.ParseQuantity
// sees it, and replaces what fails with 0. ParseQuantity's time grows steeply with the exponent:
// "1e-999999999" is valid quantity syntax (and matches the CRD's pattern) but never finishes
// parsing, which would hang this webhook, and the controllers, on one line of YAML. No valid weight
// needs more than maxWeightText characters or an exponent beyond ±maxWeightText.
func defuseWeights(raw []byte) ([]byte, field.ErrorList, error) {
	// Each level that is not shaped as expected is skipped: smi-sdk-go's decoding skips a value of
	// the wrong JSON type as a whole, so it cannot reach a weight inside one either.
	var doc, spec map[string]json.RawMessage
	var backends []json.RawMessage
	if utiljson.Unmarshal(raw, &doc) != nil || utiljson.Unmarshal(doc["spec"], &spec) != nil ||
		utiljson.Unmarshal(spec["backends"], &backends) != nil {
		return raw, nil, nil
	}
	var errs field.ErrorList
	var err error
	marshal := func(v any) json.RawMessage { // re-encoding what was just decoded does not fail
		out, e := json.Marshal(v)
		err = cmp.Or(err, e)
		return out
	}
	for i, b := range backends {
		var backend map[string]json.RawMessage
		if utiljson.Unmarshal(b, &backend) != nil {
			continue
		}
		w, ok := backend["weight"]
		if !ok {
			continue
		}
		text := strings.TrimSpace(strings.Trim(string(w), `"`))
		if problem := weightTextProblem(text); problem != "" {
			errs = append(errs, field.Invalid(splitSpec.Child("backends").Index(i).Child("weight"), text, problem))
			backend["weight"] = json.RawMessage("0")
			backends[i] = marshal(backend)
		}
	}
	if len(errs) == 0 {
		return raw, nil, nil
	}
	spec["backends"] = marshal(backends)
	doc["spec"] = marshal(spec)
	defused := marshal(doc)
	return defused, errs, err
}

func weightTextProblem(text string) string {
	if len(text) > maxWeightText {
		return fmt.Sprintf("is longer than any weight needs (%d characters at most)", maxWeightText)
	}
	// A decimal exponent is e or E followed by an optionally signed integer; a bare E (exa) or Ei
	// (exbi) is a suffix, which ParseQuantity handles in constant time.
	i := strings.IndexAny(text, "eE")
	if i < 0 {
		return ""
	}
	exp, err := strconv.ParseInt(text[i+1:], 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) { // not an exponent: ParseQuantity judges the syntax
		return ""
	}
	if err != nil || exp > maxWeightText || exp < -maxWeightText {
		return fmt.Sprintf("has an exponent beyond ±%d, which no valid weight needs and which makes quantity parsing take unbounded time", maxWeightText)
	}
	return ""
}

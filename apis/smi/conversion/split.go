package conversion

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/inf.v0"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	splitv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha1"
	splitv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha2"
	splitv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha3"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"

	"github.com/smi-operator/smi-operator/apis/smi"
)

var trafficSplitVersions = []version{
	spoke(splitv1alpha1.SchemeGroupVersion.WithKind(smi.TrafficSplitKind), TrafficSplitV1alpha1ToHub, TrafficSplitHubToV1alpha1).
		withJSONCheck(checkV1alpha1Weights),
	spoke(splitv1alpha2.SchemeGroupVersion.WithKind(smi.TrafficSplitKind), TrafficSplitV1alpha2ToHub, TrafficSplitHubToV1alpha2),
	spoke(splitv1alpha3.SchemeGroupVersion.WithKind(smi.TrafficSplitKind), TrafficSplitV1alpha3ToHub, TrafficSplitHubToV1alpha3),
	hub(splitv1alpha4.SchemeGroupVersion.WithKind(smi.TrafficSplitKind)),
}

// trafficSplitData is what the conversion annotation of a TrafficSplit holds.
type trafficSplitData struct {
	// Matches is the hub's spec.matches, kept while the object is served as v1alpha1 or v1alpha2,
	// which have no matches.
	Matches []corev1.TypedLocalObjectReference `json:"matches,omitempty"`
	// V1alpha1Backends are the backends as a v1alpha1 object wrote them, kept while the object is
	// served as a later version and only as long as they still convert to its backends. Only kept
	// when converting back without them would give something else ("500m" rather than "500").
	V1alpha1Backends []v1alpha1Backend `json:"v1alpha1Backends,omitempty"`
}

// v1alpha1Backend is a v1alpha1 backend with its weight as a quantity string, "" for no weight.
// (Not the SDK type: its quantity would be parsed while decoding, before parseWeight's checks.)
type v1alpha1Backend struct {
	Service string `json:"service"`
	Weight  string `json:"weight,omitempty"`
}

// TrafficSplitV1alpha1ToHub converts a v1alpha1 TrafficSplit to the hub version. Weights become
// integers as v1alpha1 meant them (see hubWeights); the error names a weight that does not fit.
func TrafficSplitV1alpha1ToHub(in *splitv1alpha1.TrafficSplit) (*splitv1alpha4.TrafficSplit, error) {
	in = in.DeepCopy()
	weights, err := hubWeights(in.Spec.Backends)
	if err != nil {
		return nil, err
	}
	out := &splitv1alpha4.TrafficSplit{
		TypeMeta:   typeMeta(splitv1alpha4.SchemeGroupVersion, smi.TrafficSplitKind),
		ObjectMeta: in.ObjectMeta,
		Spec:       splitv1alpha4.TrafficSplitSpec{Service: in.Spec.Service},
	}
	for i, b := range in.Spec.Backends {
		out.Spec.Backends = append(out.Spec.Backends, splitv1alpha4.TrafficSplitBackend{Service: b.Service, Weight: weights[i]})
	}
	return convertedWith(out, func(d *trafficSplitData) {
		out.Spec.Matches, d.Matches = d.Matches, nil
		d.V1alpha1Backends = nil
		written := v1alpha1BackendsData(in.Spec.Backends)
		if !slices.Equal(written, v1alpha1BackendsData(defaultV1alpha1Backends(out.Spec.Backends))) {
			d.V1alpha1Backends = written
		}
	})
}

// TrafficSplitHubToV1alpha1 converts a hub TrafficSplit to v1alpha1: each weight w becomes the
// quantity w, unless the annotation holds the quantities a v1alpha1 client wrote for exactly these
// backends and weights.
func TrafficSplitHubToV1alpha1(in *splitv1alpha4.TrafficSplit) (*splitv1alpha1.TrafficSplit, error) {
	in = in.DeepCopy()
	out := &splitv1alpha1.TrafficSplit{
		TypeMeta:   typeMeta(splitv1alpha1.SchemeGroupVersion, smi.TrafficSplitKind),
		ObjectMeta: in.ObjectMeta,
		Spec: splitv1alpha1.TrafficSplitSpec{
			Service:  in.Spec.Service,
			Backends: defaultV1alpha1Backends(in.Spec.Backends),
		},
	}
	return convertedWith(out, func(d *trafficSplitData) {
		if written, ok := d.v1alpha1Backends(in.Spec.Backends); ok {
			out.Spec.Backends = written
		}
		d.V1alpha1Backends = nil
		d.Matches = in.Spec.Matches
	})
}

// TrafficSplitV1alpha2ToHub converts a v1alpha2 TrafficSplit to the hub version.
func TrafficSplitV1alpha2ToHub(in *splitv1alpha2.TrafficSplit) (*splitv1alpha4.TrafficSplit, error) {
	in = in.DeepCopy()
	out := &splitv1alpha4.TrafficSplit{
		TypeMeta:   typeMeta(splitv1alpha4.SchemeGroupVersion, smi.TrafficSplitKind),
		ObjectMeta: in.ObjectMeta,
		Spec: splitv1alpha4.TrafficSplitSpec{
			Service: in.Spec.Service,
			Backends: convertSlice(in.Spec.Backends, func(b splitv1alpha2.TrafficSplitBackend) splitv1alpha4.TrafficSplitBackend {
				return splitv1alpha4.TrafficSplitBackend(b)
			}),
		},
	}
	return convertedWith(out, func(d *trafficSplitData) {
		out.Spec.Matches, d.Matches = d.Matches, nil
		d.dropStaleV1alpha1Backends(out.Spec.Backends)
	})
}

// TrafficSplitHubToV1alpha2 converts a hub TrafficSplit to v1alpha2, keeping its matches in the
// annotation.
func TrafficSplitHubToV1alpha2(in *splitv1alpha4.TrafficSplit) (*splitv1alpha2.TrafficSplit, error) {
	in = in.DeepCopy()
	out := &splitv1alpha2.TrafficSplit{
		TypeMeta:   typeMeta(splitv1alpha2.SchemeGroupVersion, smi.TrafficSplitKind),
		ObjectMeta: in.ObjectMeta,
		Spec: splitv1alpha2.TrafficSplitSpec{
			Service: in.Spec.Service,
			Backends: convertSlice(in.Spec.Backends, func(b splitv1alpha4.TrafficSplitBackend) splitv1alpha2.TrafficSplitBackend {
				return splitv1alpha2.TrafficSplitBackend(b)
			}),
		},
	}
	return convertedWith(out, func(d *trafficSplitData) {
		d.Matches = in.Spec.Matches
		d.dropStaleV1alpha1Backends(in.Spec.Backends)
	})
}

// TrafficSplitV1alpha3ToHub converts a v1alpha3 TrafficSplit (the same fields as the hub's) to the
// hub version.
func TrafficSplitV1alpha3ToHub(in *splitv1alpha3.TrafficSplit) (*splitv1alpha4.TrafficSplit, error) {
	in = in.DeepCopy()
	out := &splitv1alpha4.TrafficSplit{
		TypeMeta:   typeMeta(splitv1alpha4.SchemeGroupVersion, smi.TrafficSplitKind),
		ObjectMeta: in.ObjectMeta,
		Spec: splitv1alpha4.TrafficSplitSpec{
			Service: in.Spec.Service,
			Backends: convertSlice(in.Spec.Backends, func(b splitv1alpha3.TrafficSplitBackend) splitv1alpha4.TrafficSplitBackend {
				return splitv1alpha4.TrafficSplitBackend(b)
			}),
			Matches: in.Spec.Matches,
		},
	}
	return convertedWith(out, func(d *trafficSplitData) {
		d.Matches = nil // v1alpha3 holds its matches itself
		d.dropStaleV1alpha1Backends(out.Spec.Backends)
	})
}

// TrafficSplitHubToV1alpha3 converts a hub TrafficSplit to v1alpha3 (the same fields).
func TrafficSplitHubToV1alpha3(in *splitv1alpha4.TrafficSplit) (*splitv1alpha3.TrafficSplit, error) {
	in = in.DeepCopy()
	out := &splitv1alpha3.TrafficSplit{
		TypeMeta:   typeMeta(splitv1alpha3.SchemeGroupVersion, smi.TrafficSplitKind),
		ObjectMeta: in.ObjectMeta,
		Spec: splitv1alpha3.TrafficSplitSpec{
			Service: in.Spec.Service,
			Backends: convertSlice(in.Spec.Backends, func(b splitv1alpha4.TrafficSplitBackend) splitv1alpha3.TrafficSplitBackend {
				return splitv1alpha3.TrafficSplitBackend(b)
			}),
			Matches: in.Spec.Matches,
		},
	}
	return convertedWith(out, func(d *trafficSplitData) {
		d.Matches = nil
		d.dropStaleV1alpha1Backends(in.Spec.Backends)
	})
}

// hubWeights turns v1alpha1 weights (quantities) into integer weights. v1alpha1 compares weights by
// their milli-values: the spec's own example {1, 500m} splits 2:1, so it becomes {1000, 500} (not
// 1:500, as reading only the values would give). When every weight is a whole number their values
// are used instead, which keeps the same ratios and the numbers the user wrote: {1, 2} stays {1, 2}.
// A missing weight is 0. Negative weights convert as they are; validation rejects them.
func hubWeights(backends []splitv1alpha1.TrafficSplitBackend) ([]int, error) {
	weights := make([]int, len(backends))
	whole := true
	for i, b := range backends {
		if b.Weight != nil {
			w, exact, fits := scaledWeight(*b.Weight, 0)
			whole = whole && exact && fits
			weights[i] = w
		}
	}
	if whole {
		return weights, nil
	}
	for i, b := range backends {
		if b.Weight != nil {
			w, _, fits := scaledWeight(*b.Weight, 3)
			if !fits {
				return nil, fmt.Errorf("backend %q: weight %s is out of range: its milli-value does not fit an integer", b.Service, b.Weight)
			}
			weights[i] = w
		}
	}
	return weights, nil
}

// scaledWeight returns q·10^exp as an int, rounded away from zero as Quantity.MilliValue rounds,
// whether that needed no rounding, and whether it fits an int (MilliValue wraps around silently).
func scaledWeight(q resource.Quantity, exp int32) (value int, exact, fits bool) {
	// Bounding the magnitude first keeps the exact decimal arithmetic below small.
	if math.Abs(q.AsApproximateFloat64()) > 1e20 {
		return 0, false, false
	}
	scaled := new(inf.Dec).Mul(q.AsDec(), inf.NewDec(1, inf.Scale(-exp)))
	rounded := new(inf.Dec).Round(scaled, 0, inf.RoundUp)
	unscaled := rounded.UnscaledBig()
	if !unscaled.IsInt64() || unscaled.Int64() < math.MinInt || unscaled.Int64() > math.MaxInt {
		return 0, false, false
	}
	return int(unscaled.Int64()), rounded.Cmp(scaled) == 0, true
}

// defaultV1alpha1Backends writes hub backends as v1alpha1 backends: weight w becomes the quantity w,
// which converts back to w since all of them are whole numbers.
func defaultV1alpha1Backends(backends []splitv1alpha4.TrafficSplitBackend) []splitv1alpha1.TrafficSplitBackend {
	return convertSlice(backends, func(b splitv1alpha4.TrafficSplitBackend) splitv1alpha1.TrafficSplitBackend {
		return splitv1alpha1.TrafficSplitBackend{Service: b.Service, Weight: resource.NewQuantity(int64(b.Weight), resource.DecimalSI)}
	})
}

// v1alpha1BackendsData is how the annotation holds v1alpha1 backends.
func v1alpha1BackendsData(backends []splitv1alpha1.TrafficSplitBackend) []v1alpha1Backend {
	return convertSlice(backends, func(b splitv1alpha1.TrafficSplitBackend) v1alpha1Backend {
		saved := v1alpha1Backend{Service: b.Service}
		if b.Weight != nil {
			saved.Weight = b.Weight.String()
		}
		return saved
	})
}

// v1alpha1Backends returns the v1alpha1 backends the annotation holds, if they convert to exactly
// the hub's: then they are what a v1alpha1 client wrote and nobody changed the backends since.
func (d *trafficSplitData) v1alpha1Backends(hubBackends []splitv1alpha4.TrafficSplitBackend) ([]splitv1alpha1.TrafficSplitBackend, bool) {
	if len(d.V1alpha1Backends) == 0 || len(d.V1alpha1Backends) != len(hubBackends) {
		return nil, false
	}
	backends := make([]splitv1alpha1.TrafficSplitBackend, len(d.V1alpha1Backends))
	for i, saved := range d.V1alpha1Backends {
		backends[i].Service = saved.Service
		if saved.Weight != "" {
			weight, err := parseWeight(saved.Weight)
			if err != nil {
				return nil, false
			}
			backends[i].Weight = &weight
		}
	}
	weights, err := hubWeights(backends)
	if err != nil {
		return nil, false
	}
	for i, b := range hubBackends {
		if b.Service != backends[i].Service || b.Weight != weights[i] {
			return nil, false
		}
	}
	return backends, true
}

// dropStaleV1alpha1Backends forgets the saved v1alpha1 backends once they no longer match the hub's.
func (d *trafficSplitData) dropStaleV1alpha1Backends(hubBackends []splitv1alpha4.TrafficSplitBackend) {
	if _, ok := d.v1alpha1Backends(hubBackends); !ok {
		d.V1alpha1Backends = nil
	}
}

// Limits on the v1alpha1 weights that are parsed. resource.ParseQuantity's work grows with the
// exponent's magnitude ("1e-999999999" takes minutes) and weights come from users; any weight past
// these limits is far out of an int's range (or rounds to 1n) anyway.
const (
	maxWeightLength   = 64
	maxWeightExponent = 100
)

// checkWeightSyntax refuses a quantity string that resource.ParseQuantity must not be given.
func checkWeightSyntax(s string) error {
	if len(s) > maxWeightLength {
		return fmt.Errorf("weight %.20q... is out of range: longer than %d characters", s, maxWeightLength)
	}
	// "1E" (exa) and "1Ei" (exbi) are suffixes; an exponent is e or E followed by an integer.
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		exp, err := strconv.Atoi(s[i+1:])
		if errors.Is(err, strconv.ErrRange) || err == nil && (exp > maxWeightExponent || exp < -maxWeightExponent) {
			return fmt.Errorf("weight %q is out of range: its exponent is beyond ±%d", s, maxWeightExponent)
		}
	}
	return nil
}

// parseWeight parses a v1alpha1 weight.
func parseWeight(s string) (resource.Quantity, error) {
	if err := checkWeightSyntax(s); err != nil {
		return resource.Quantity{}, err
	}
	return resource.ParseQuantity(s)
}

// checkV1alpha1Weights checks, before a v1alpha1 TrafficSplit in JSON is decoded (which parses its
// weights), that every weight written as a string can be parsed safely. Numbers are safe: they come
// out of the JSON decoder as int64 or float64.
func checkV1alpha1Weights(obj map[string]any) error {
	spec, _ := obj["spec"].(map[string]any)
	backends, _ := spec["backends"].([]any)
	for _, b := range backends {
		backend, _ := b.(map[string]any)
		if weight, ok := backend["weight"].(string); ok {
			if err := checkWeightSyntax(strings.TrimSpace(weight)); err != nil {
				service, _ := backend["service"].(string)
				return fmt.Errorf("backend %q: %w", service, err)
			}
		}
	}
	return nil
}

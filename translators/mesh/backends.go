package mesh

import (
	"math/big"
	"slices"
	"strings"
)

// Decisions that several backend translators make alike live here, so that each is made once.

// DeclaredProtocol is the application protocol a Service port declares, as Istio reads
// declarations: its appProtocol when set, else its name up to the first "-", lower-cased ("http",
// "grpc", "kubernetes.io/h2c", "tcp"...). It may name no protocol at all (a name such as "web").
func (p ServicePort) DeclaredProtocol() string {
	proto := p.AppProtocol
	if proto == "" {
		proto, _, _ = strings.Cut(p.Name, "-")
	}
	return strings.ToLower(proto)
}

// ForGRPC adapts a match to gRPC calls, which are all POST and carry no ":method" a proxyless
// client could match on: a method condition admitting POST holds for every call and is dropped;
// one excluding POST never holds, and ok is false.
func (m HTTPMatch) ForGRPC() (_ HTTPMatch, ok bool) {
	if len(m.Methods) == 0 {
		return m, true
	}
	if !slices.Contains(m.Methods, "POST") {
		return m, false
	}
	m.Methods = nil
	return m, true
}

// ScaleWeights fits non-negative split weights to a backend whose weights must sum to at most
// maxTotal: unchanged when they already do, else scaled down in proportion. A negative weight
// counts as zero. A zero weight stays zero; a positive weight stays positive even when scaling
// would round it to zero, so the total is > 0 whenever any weight is positive. maxTotal must be at
// least len(weights).
//
// SMI weights are arbitrary integers whose sum can overflow int64, hence the big integers.
func ScaleWeights(weights []int, maxTotal int64) []int64 {
	out := make([]int64, len(weights))
	total := new(big.Int)
	for _, w := range weights {
		total.Add(total, big.NewInt(int64(max(w, 0))))
	}
	if total.IsInt64() && total.Int64() <= maxTotal {
		for i, w := range weights {
			out[i] = int64(max(w, 0))
		}
		return out
	}
	// Scale to a budget that leaves room for every positive weight to be raised to 1: the sum is
	// then at most budget + len(weights) <= maxTotal.
	budget := big.NewInt(maxTotal - int64(len(weights)))
	for i, w := range weights {
		if w <= 0 {
			continue
		}
		share := new(big.Int).Quo(new(big.Int).Mul(big.NewInt(int64(w)), budget), total)
		out[i] = max(share.Int64(), 1) // share <= budget
	}
	return out
}

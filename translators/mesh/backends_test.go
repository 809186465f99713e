package mesh

import (
	"slices"
	"testing"
)

func TestScaleWeights(t *testing.T) {
	tests := []struct {
		weights  []int
		maxTotal int64
		want     []int64
	}{
		{[]int{3, 1}, 4, []int64{3, 1}},
		{[]int{0, 5, -1}, 10, []int64{0, 5, 0}},
		{[]int{3, 1}, 3, []int64{1, 1}}, // scaled within 3 - 2 = 1, each positive weight kept at 1
		{[]int{3_000_000, 1_000_000, 1}, 1_000_000, []int64{749_997, 249_999, 1}},
	}
	for _, tc := range tests {
		got := ScaleWeights(tc.weights, tc.maxTotal)
		if !slices.Equal(got, tc.want) {
			t.Errorf("ScaleWeights(%v, %d) = %v, want %v", tc.weights, tc.maxTotal, got, tc.want)
		}
	}
}

func TestDeclaredProtocol(t *testing.T) {
	for _, tc := range []struct {
		port ServicePort
		want string
	}{
		{ServicePort{Name: "grpc-api"}, "grpc"},
		{ServicePort{Name: "HTTP"}, "http"},
		{ServicePort{Name: "http", AppProtocol: "kubernetes.io/h2c"}, "kubernetes.io/h2c"},
		{ServicePort{Name: "web"}, "web"},
		{ServicePort{}, ""},
	} {
		if got := tc.port.DeclaredProtocol(); got != tc.want {
			t.Errorf("%+v.DeclaredProtocol() = %q, want %q", tc.port, got, tc.want)
		}
	}
}

package istio

import (
	"fmt"
	"slices"
	"testing"
)

// TestKindsAreTheGeneratedOnes: the kinds indexed, watched and checked for are those pruned.
func TestKindsAreTheGeneratedOnes(t *testing.T) {
	var got []string
	for _, obj := range Kinds {
		got = append(got, fmt.Sprintf("%T", obj))
	}
	want := []string{"*v1.VirtualService", "*v1.DestinationRule", "*v1.AuthorizationPolicy", "*v1.PeerAuthentication"}
	if !slices.Equal(got, want) {
		t.Errorf("Kinds = %v, want %v", got, want)
	}
}

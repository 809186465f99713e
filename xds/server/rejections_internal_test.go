package server

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestRejectionDetailIsBounded: a proxy's error text ends up in SMI objects' conditions and
// Events; however long or malformed it is, what is kept stays valid UTF-8 and bounded.
func TestRejectionDetailIsBounded(t *testing.T) {
	if got := boundedDetail("short error"); got != "short error" {
		t.Errorf("a short error changed: %q", got)
	}
	long := strings.Repeat("é", maxRejectionDetail) // 2 bytes a rune: a cut can fall inside one
	got := boundedDetail(long)
	if len(got) > maxRejectionDetail+len("…") || !strings.HasSuffix(got, "…") {
		t.Errorf("a %d-byte error kept as %d bytes (suffix %q)", len(long), len(got), got[max(0, len(got)-8):])
	}
	if !utf8.ValidString(got) || !utf8.ValidString(boundedDetail("bad \xff byte")) {
		t.Error("the kept error is not valid UTF-8")
	}
}

// TestNamedInMatchesWholeNames: a name counts as named only where it is not part of a longer name
// of the response that the error names: web…:8080 does not name web…:80, nor web…:80 b…:80.
func TestNamedInMatchesWholeNames(t *testing.T) {
	names := []string{"b.shop.svc.cluster.local:80", "web.shop.svc.cluster.local:80", "web.shop.svc.cluster.local:8080"}
	for _, tc := range []struct {
		message string
		want    []string
	}{
		{"resource index 2: web.shop.svc.cluster.local:8080: bad", []string{"web.shop.svc.cluster.local:8080"}},
		{"resource index 1: web.shop.svc.cluster.local:80: bad", []string{"web.shop.svc.cluster.local:80"}},
		{"web.shop.svc.cluster.local:80: bad; b.shop.svc.cluster.local:80: bad too", []string{"b.shop.svc.cluster.local:80", "web.shop.svc.cluster.local:80"}},
		{"nothing named", nil},
	} {
		if got := namedIn(tc.message, names); !slices.Equal(got, tc.want) {
			t.Errorf("namedIn(%q) = %v, want %v", tc.message, got, tc.want)
		}
	}
}

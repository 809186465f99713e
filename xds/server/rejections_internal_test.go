package server

import (
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

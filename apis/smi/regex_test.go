package smi

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// re2ProgramSizes are RE2's own program sizes (RE2::ProgramSize, what Envoy compares with
// re2.max_program_size), measured with the C++ library (Debian's libre2 20220601) for common
// path and header regexes, regexes as backends emit them (FullPathRegex's "^(?:…).*"), Unicode
// classes, case folding, repetitions and alternations.
var re2ProgramSizes = []struct {
	re   string
	size int
}{
	{"a", 5},
	{"abc", 7},
	{".*", 12},
	{".", 12},
	{".*Android.*", 27},
	{"^(?:/api/v[0-9]+/.*).*", 15},
	{"^(?:/foo).*", 12},
	{"[a-z]+", 6},
	{"\\w+", 8},
	{"(?i)abc", 7},
	{"é", 6},
	{"[^a]", 12},
	{"\\d{3}", 7},
	{"a{10}", 14},
	{"a{50}", 54},
	{"x{100}", 104},
	{"(a|b|c)", 7},
	{"^abc$", 4},
	{"\\p{L}", 1197},
	{"(?s).", 11},
	{"[\\x{80}-\\x{10FFFF}]", 10},
	{"^(?:/bookstore/.*).*", 12},
	{"^(?:/api/v1/books/[0-9]+).*", 15},
	{".*(Android|iPhone|iPad).*", 37},
	{"^Mozilla/5\\.0 .*Firefox/[0-9]+$", 22},
	{"(?i).*chrome.*", 26},
	{"[a-zA-Z0-9_-]+", 9},
	{"^(?:/(?:users|groups)/[^/]+/items).*", 39},
	{"\\p{Greek}", 66},
	{"[αβγ]", 6},
	{"(?i)é", 7},
	{"\\pN+", 238},
	{"[^/]+", 13},
	{".{5}", 44},
	{".{10}", 84},
	{"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", 72},
	{"^(?:/v[0-9]/(?:a|b|c|d|e|f|g)/.*).*", 16},
	{"^$", 2},
	{"\\bfoo\\b", 9},
	{"(foo|bar|baz|qux|quux|corge|grault|garply|waldo|fred)", 43},
	{"^(?:[a-z]{2,5}).*", 18},
	{"日本語", 13},
	{"[\\x{4e00}-\\x{9fff}]+", 10},
	{"\\S+", 15},
	{"\\s+", 8},
	{"[[:alpha:]]+", 6},
	{"(?m)^foo$", 9},
	{"a*b*c*d*e*", 13},
	{"(a+)+", 9},
	{"((a|b)*c)+", 11},
	{"^(?:/api/(v1|v2)/(users|orders|products)/[0-9]+/(details|history)).*", 58},
	{"[^\\x00-\\x7F]", 10},
	{".*foo.*bar.*baz.*", 45},
	{"^(?:.*).*", 10},
	{"x{1,50}", 103},
	{"[a-z]{1,20}", 43},
	{"(?i)[a-z]+", 11},
	{"^(?:/héllo).*", 12},
	{"(a|b)*(c|d)*", 11},
	{"(\\w|\\d|[αβ])+", 12},
	{"(?:[a-c]x|[d-f]y)*z", 9},
	{"^(?:(?:[a-z]+|[0-9]+)/)+.*", 21},
	{"(?:ab|cd|ef|gh)+(?:ij|kl)*", 18},
	{"([^/]+/)*[^/]+", 26},
	{"(?:\\w+\\.)+\\w+", 15},
	{"(?:x|y)(?:x|y)(?:x|y)(?:x|y)(?:x|y)", 9},
	{"(?i)(?:foo|bar)+.*", 20},
	{"^(?:/(?:a|b)(?:c|d)).*", 14},
}

// The estimate never falls below RE2's count, so nothing admitted is refused by Envoy, and stays
// close to it for the regexes users write, so little is refused that Envoy would take.
func TestRegexProgramSizeBoundsRE2(t *testing.T) {
	for _, tc := range re2ProgramSizes {
		got := RegexProgramSize(tc.re)
		if got < tc.size {
			t.Errorf("RegexProgramSize(%q) = %d, below RE2's %d: Envoy could refuse what the webhook admits", tc.re, got, tc.size)
		}
		// Large Unicode classes are overestimated (RE2 shares UTF-8 suffixes) and so are some
		// alternations (RE2 factors common prefixes); everything stays within twice RE2's count,
		// or regexes well below the limit would be refused.
		if tc.size <= MaxRegexProgramSize && got > 2*tc.size+2 {
			t.Errorf("RegexProgramSize(%q) = %d, more than twice RE2's %d", tc.re, got, tc.size)
		}
	}
}

func TestCheckRegex(t *testing.T) {
	long := strings.Repeat("a", MaxRegexLength)
	for _, tc := range []struct {
		name     string
		check    func(string) error
		re       string
		wantErr  string // a fragment; "" for valid
		tooLong  bool
		tooLarge bool
	}{
		{"empty pathRegex means any path", CheckPathRegex, "", "", false, false},
		{"common pathRegex", CheckPathRegex, "/api/v[0-9]+/.*", "", false, false},
		{"pathRegex not RE2", CheckPathRegex, "/(?=api)", "must be an RE2 regular expression", false, false},
		// A literal is not compiled by RE2 (its required prefix), so only the length limits it.
		{"pathRegex at the limit once emitted", CheckPathRegex, "/" + long[:MaxRegexLength-len(FullPathRegex(""))-1], "", false, false},
		{"pathRegex over the limit once emitted", CheckPathRegex, "/" + long[:MaxRegexLength-len(FullPathRegex(""))], "more than the 1017 allowed", true, false},
		{"pathRegex over Envoy's program size", CheckPathRegex, "/[0-9]{100}", "Envoy's default limit of 100", false, true},
		{"empty header regex", CheckHeaderRegex, "", "must not be empty", false, false},
		{"header regex ^$ for an empty value", CheckHeaderRegex, "^$", "", false, false},
		{"common header regex", CheckHeaderRegex, ".*(Android|iPhone).*", "", false, false},
		{"header regex of 1024 bytes", CheckHeaderRegex, "^" + long[1:], "", false, false},
		{"header regex of 1025 bytes", CheckHeaderRegex, "^" + long, "is 1025 bytes long, more than the 1024 allowed: istiod", true, false},
		{"header regex over Envoy's program size", CheckHeaderRegex, `\p{L}+`, "RE2 program of about", false, true},
		{"header regex repeated past the program size", CheckHeaderRegex, "x{100}", "re2.max_program_size.error_level", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.check(tc.re)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
			var tooLong *RegexTooLongError
			var tooLarge *RegexProgramTooLargeError
			if errors.As(err, &tooLong) != tc.tooLong || errors.As(err, &tooLarge) != tc.tooLarge {
				t.Errorf("%T: want too long %v, too large %v", err, tc.tooLong, tc.tooLarge)
			}
			if len(err.Error()) > 600 {
				t.Errorf("message of %d bytes: the regex must not be repeated in it", len(err.Error()))
			}
		})
	}
}

// A huge value is refused by its length before anything compiles it (the issue: 1 MiB took 5–8 s
// and 220 MB in translate).
func TestCheckRegexHugeValueIsCheap(t *testing.T) {
	huge := strings.Repeat("(a|b)*", 1<<20/6)
	start := time.Now()
	for _, check := range []func(string) error{CheckHeaderRegex, CheckPathRegex} {
		var tooLong *RegexTooLongError
		if err := check(huge); !errors.As(err, &tooLong) {
			t.Errorf("got %v, want RegexTooLongError", err)
		}
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("checking 1 MiB took %v", d)
	}
}

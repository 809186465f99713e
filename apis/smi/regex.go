package smi

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"unicode"
	"unicode/utf8"
)

// Limits on the regexes of HTTPRouteGroups (pathRegex and header values). A regex is checked as the
// backends emit it (see [FullPathRegex]); the limit is the strictest of the meshes the operator
// programs, since a backend can be swapped for another without the objects being admitted again.
const (
	// MaxRegexLength is istiod's limit: its validation of a VirtualService StringMatch refuses a
	// regex longer than 1024 bytes ("regex is too large, max length allowed is 1024";
	// istio.io/istio/pkg/config/validation, validateStringRegexp), so the whole VirtualService
	// would be refused.
	MaxRegexLength = 1024
	// MaxRegexProgramSize is Envoy's default RE2 program-size limit: the runtime key
	// re2.max_program_size.error_level, 100 unless the proxy's bootstrap raises it (Envoy's
	// source/common/common/regex.cc). Envoy refuses a safe_regex over it, and with it the whole
	// RouteConfiguration or RBAC filter that holds it. Istio raises the limit for its own
	// sidecars; the xDS backend's Envoy sidecars keep the default.
	MaxRegexProgramSize = 100
)

// FullPathRegex is the regex backends match a whole request path with: it matches exactly when
// pathRegex, which SMI anchors at the start of the path only, matches at the path's start.
func FullPathRegex(pathRegex string) string {
	return "^(?:" + pathRegex + ").*"
}

// CheckPathRegex reports why a non-empty pathRegex cannot be programmed on every backend, or nil
// when it can; it checks [FullPathRegex], what backends emit. An empty pathRegex means any path
// and is not checked.
func CheckPathRegex(pathRegex string) error {
	if pathRegex == "" {
		return nil
	}
	if len(pathRegex) > MaxRegexLength { // before compiling anything: a huge value costs nothing
		return &RegexTooLongError{Length: len(pathRegex), Limit: MaxRegexLength - len(FullPathRegex(""))}
	}
	if err := compiles(pathRegex); err != nil {
		return err
	}
	return checkEmitted(FullPathRegex(pathRegex), len(FullPathRegex("")))
}

// CheckHeaderRegex reports why a header value regex cannot be programmed on every backend, or nil
// when it can. Backends emit it as written, matched against the whole header value; an empty regex
// is refused (istiod refuses `regex: ""`, and an empty safe_regex fails Envoy's validation), where
// `^$` says "an empty value".
func CheckHeaderRegex(re string) error {
	if re == "" {
		return ErrEmptyRegex
	}
	if len(re) > MaxRegexLength {
		return &RegexTooLongError{Length: len(re), Limit: MaxRegexLength}
	}
	if err := compiles(re); err != nil {
		return err
	}
	return checkEmitted(re, 0)
}

// ErrEmptyRegex: a header value regex is empty.
var ErrEmptyRegex = errors.New(`must not be empty: Istio refuses an empty regex and Envoy an empty safe_regex; write "^$" for an empty value or ".*" for any value`)

// RegexTooLongError: a regex is longer than the backends accept. The error's text omits the
// regex, which may be huge.
// +kubebuilder:object:generate=false
type RegexTooLongError struct {
	// Length is the regex's length in bytes, Limit the longest allowed as written.
	Length, Limit int
}

func (e *RegexTooLongError) Error() string {
	return fmt.Sprintf("is %d bytes long, more than the %d allowed: istiod refuses regexes longer than %d bytes as backends emit them",
		e.Length, e.Limit, MaxRegexLength)
}

// RegexProgramTooLargeError: a regex compiles to an RE2 program over Envoy's default limit.
// +kubebuilder:object:generate=false
type RegexProgramTooLargeError struct {
	// Size is the estimated RE2 program size, Limit Envoy's default maximum.
	Size, Limit int
}

func (e *RegexProgramTooLargeError) Error() string {
	return fmt.Sprintf("compiles to an RE2 program of about %d instructions, more than Envoy's default limit of %d "+
		"(re2.max_program_size.error_level), above which Envoy rejects the whole route or RBAC configuration holding it: "+
		"write a simpler regex (Unicode classes such as \\p{L} and large repetition counts cost the most)", e.Size, e.Limit)
}

// compiles reports, as an error starting with what is wrong, a regex that is not RE2.
func compiles(re string) error {
	if _, err := regexp.Compile(re); err != nil {
		return fmt.Errorf("must be an RE2 regular expression: %w", err)
	}
	return nil
}

// checkEmitted checks a regex as a backend emits it, which is added bytes longer than the one the
// user wrote.
func checkEmitted(emitted string, added int) error {
	if len(emitted) > MaxRegexLength {
		return &RegexTooLongError{Length: len(emitted) - added, Limit: MaxRegexLength - added}
	}
	if size := RegexProgramSize(emitted); size > MaxRegexProgramSize {
		return &RegexProgramTooLargeError{Size: size, Limit: MaxRegexProgramSize}
	}
	return nil
}

// RegexProgramSize estimates the size of the program RE2 (C++, as in Envoy) compiles re to: what
// Envoy compares with re2.max_program_size. Go has no RE2 compiler, so the estimate follows RE2's
// compiler over Go's parse of re: one instruction per UTF-8 byte of a literal, per empty-width
// assertion, per loop and per branch of an alternation; character classes as RE2's UTF-8 byte-range
// automaton (each non-ASCII range split into UTF-8 sequences, one instruction per byte, without the
// suffixes RE2 shares); the match and fail instructions and the unanchored ".*?" prefix; less the
// literal prefix of a start-anchored regex, which RE2 does not compile; plus a margin. It is at
// least RE2's count for every regex the tests measured with RE2, and within about 10% of it for
// the common ones (twice it for large Unicode classes); it returns a value over every limit for a
// regex that does not parse.
func RegexProgramSize(re string) int {
	tree, err := syntax.Parse(re, syntax.Perl)
	if err != nil {
		return int(^uint(0) >> 1)
	}
	tree = tree.Simplify() // expands counted repetitions, as RE2 does before compiling
	size := 2              // the fail and match instructions
	if !anchoredAtStart(tree) {
		size += 2 // the unanchored search's ".*?" loop over any byte
	}
	size += nodeSize(withoutRequiredPrefix(tree))
	// RE2 flattens its program, which can repeat an instruction reachable from two places: the
	// margin covers what the tests measured (up to 10% more than the count above).
	return size + size/10 + 1
}

// withoutRequiredPrefix drops the literal that a start-anchored regex begins with: RE2 matches it
// with a string comparison and compiles only the rest (RE2::Init, Regexp::RequiredPrefix).
func withoutRequiredPrefix(re *syntax.Regexp) *syntax.Regexp {
	if re.Op != syntax.OpConcat {
		return re
	}
	i := 0
	for i < len(re.Sub) && re.Sub[i].Op == syntax.OpBeginText {
		i++
	}
	if i == 0 || i == len(re.Sub) || re.Sub[i].Op != syntax.OpLiteral {
		return re
	}
	rest := *re
	rest.Sub = append(slices.Clone(re.Sub[:i]), re.Sub[i+1:]...)
	return &rest
}

func anchoredAtStart(re *syntax.Regexp) bool {
	for re.Op == syntax.OpConcat || re.Op == syntax.OpCapture {
		if len(re.Sub) == 0 {
			return false
		}
		re = re.Sub[0]
	}
	return re.Op == syntax.OpBeginText
}

func nodeSize(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpNoMatch, syntax.OpEmptyMatch,
		syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return 1
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			n += literalSize(r, re.Flags&syntax.FoldCase != 0)
		}
		return n
	case syntax.OpCharClass:
		return classSize(re.Rune)
	case syntax.OpAnyCharNotNL:
		return classSize([]rune{0, '\n' - 1, '\n' + 1, unicode.MaxRune})
	case syntax.OpAnyChar:
		return classSize([]rune{0, unicode.MaxRune})
	case syntax.OpCapture:
		return 2 + nodeSize(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		return 1 + nodeSize(re.Sub[0])
	case syntax.OpRepeat: // Simplify leaves none but x{0}; count the copies it would need
		return max(re.Max, re.Min, 1) * (1 + nodeSize(re.Sub[0]))
	case syntax.OpConcat, syntax.OpAlternate:
		n := len(re.Sub) - 1 // an alternation's branch instructions; a concatenation's are free
		if re.Op == syntax.OpConcat {
			n = 0
		}
		for i, s := range re.Sub {
			if re.Op == syntax.OpConcat && i > 0 && s.Op == syntax.OpStar && s.Equal(re.Sub[i-1]) {
				continue // RE2's parser folds "x*x*" into "x*" (FullPathRegex's "….*).*")
			}
			n += nodeSize(s)
		}
		return n
	}
	return 1
}

// literalSize counts a literal rune: RE2 matches an ASCII letter in either case with one
// instruction, any other case-folded rune as the class of its case variants.
func literalSize(r rune, fold bool) int {
	if !fold || r < utf8.RuneSelf {
		return utf8.RuneLen(max(r, 0))
	}
	var class []rune
	for f := unicode.SimpleFold(r); ; f = unicode.SimpleFold(f) {
		class = append(class, f, f)
		if f == r {
			break
		}
	}
	return classSize(class)
}

// classSize counts a character class given as Go's sorted [lo, hi] pairs: one instruction per
// ASCII range, and for the rest RE2's UTF-8 automaton (one instruction per byte range of each UTF-8
// sequence), plus one branch per alternative. RE2 compiles the frequent 80-10FFFF range (".",
// "[^a]") specially, in a handful of instructions.
func classSize(pairs []rune) int {
	n := 0
	for i := 0; i+1 < len(pairs); i += 2 {
		lo, hi := pairs[i], pairs[i+1]
		if lo < utf8.RuneSelf {
			n++
			if hi < utf8.RuneSelf {
				continue
			}
			lo = utf8.RuneSelf
		}
		if lo == utf8.RuneSelf && hi == unicode.MaxRune {
			n += 6
			continue
		}
		for _, seq := range utf8Sequences(lo, hi) {
			n += seq
		}
	}
	return n
}

// utf8Sequences splits the non-ASCII rune range [lo, hi] into ranges whose UTF-8 encodings are each
// one sequence of byte ranges, and returns the length of each sequence.
func utf8Sequences(lo, hi rune) []int {
	// Split at the boundaries between encoding lengths first.
	for _, max := range []rune{0x7FF, 0xFFFF} {
		if lo <= max && hi > max {
			return append(utf8Sequences(lo, max), utf8Sequences(max+1, hi)...)
		}
	}
	n := utf8.RuneLen(lo)
	if n < 0 { // a surrogate: Go's classes may hold them, RE2 encodes them as 3 bytes
		n = 3
	}
	// Then where a continuation byte would not cover its whole range.
	for i := 1; i < n; i++ {
		m := rune(1)<<(6*i) - 1
		if lo&^m != hi&^m {
			if lo&m != 0 {
				return append(utf8Sequences(lo, lo|m), utf8Sequences((lo|m)+1, hi)...)
			}
			if hi&m != m {
				return append(utf8Sequences(lo, hi&^m-1), utf8Sequences(hi&^m, hi)...)
			}
		}
	}
	return []int{n}
}

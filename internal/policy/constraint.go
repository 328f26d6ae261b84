package policy

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Constraint is everything a setting's value must satisfy on its own, in the terms of a
// CloudFormation parameter. Each setting has one: LoadSettings accepts a value exactly
// when its Constraint allows it, and template.yaml's parameter carries the same
// constraint (internal/iamcheck generates the parameter from it and tests that both
// accept the same values). So there is one grammar per setting, with no trimming and no
// second spelling the template could not express.
type Constraint struct {
	// AllowedValues, when not empty, lists every valid value.
	AllowedValues []string
	// AllowedPattern, when not empty, must match the whole value. It uses only syntax that
	// Go (RE2) and Java (CloudFormation) read alike: literals, classes with ranges and
	// \p{L} \p{N} \p{Z} \p{Cc}, (?:...) groups, alternation and greedy ?, *, + and {n,m};
	// no ., \s, \w, lookaround or back-reference. A constraint made by
	// Numbers.Constraint has none: Pattern generates it.
	AllowedPattern string
	// MaxLength, when above 0, bounds the value's length in UTF-16 code units, the length
	// of a Java string, as CloudFormation measures it.
	MaxLength int
	// numbers, for a constraint made by Numbers.Constraint, is the definition the pattern
	// was generated from: the code checks it directly (Numbers.Parse accepts exactly the
	// spellings the pattern does, which the tests check on every numeral in every form).
	numbers Numbers
}

// Pattern is the AllowedPattern the template carries: the one given, or, for a
// constraint made by Numbers.Constraint, the pattern generated from its numbers. It is
// made on demand, because only the template and its tests need it: the code checks
// numbers directly, and a bootstrap's start-up should not pay for a regular expression
// it never uses.
func (c Constraint) Pattern() string {
	if c.numbers != nil {
		return c.numbers.pattern()
	}
	return c.AllowedPattern
}

// Allows reports whether v satisfies the constraint. v must be valid UTF-8: a
// CloudFormation parameter value always is.
func (c Constraint) Allows(v string) bool {
	if !utf8.ValidString(v) {
		return false
	}
	if len(c.AllowedValues) > 0 && !slices.Contains(c.AllowedValues, v) {
		return false
	}
	if c.MaxLength > 0 && UTF16Len(v) > c.MaxLength {
		return false
	}
	if c.numbers != nil {
		_, _, ok := c.numbers.Parse(v)
		return ok
	}
	return c.AllowedPattern == "" || wholeMatch(c.AllowedPattern).MatchString(v)
}

// UTF16Len is the length of s in UTF-16 code units, as Java (and so CloudFormation)
// counts a string's length: a character outside the Basic Multilingual Plane counts 2.
func UTF16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

var patterns sync.Map // AllowedPattern -> *regexp.Regexp that matches the whole value

// wholeMatch compiles an AllowedPattern so that it matches only the whole value, as
// CloudFormation applies it. A pattern that does not compile is a bug in a definition.
func wholeMatch(pattern string) *regexp.Regexp {
	if re, ok := patterns.Load(pattern); ok {
		return re.(*regexp.Regexp)
	}
	re := regexp.MustCompile(`^(?:` + pattern + `)$`)
	patterns.Store(pattern, re)
	return re
}

// NumberForm is one way of writing a setting's value: a whole number from Min to Max
// that is a multiple of Step (0 means 1), in plain decimal (no sign, leading zero,
// space or fraction; zero itself is "0"), followed by Suffix. The number counts Units (0 for a bare number).
type NumberForm struct {
	Suffix   string
	Min, Max int
	Step     int
	Unit     time.Duration
}

// Numbers is a setting written as a whole number in one of a few forms, such as 14d or
// 336h. It is finite, so the template's pattern is generated from the list of its
// spellings, and tests can enumerate it.
type Numbers []NumberForm

// Values lists every valid spelling, form by form, in increasing order.
func (ns Numbers) Values() []string {
	var out []string
	for _, f := range ns {
		for n := f.Min; n <= f.Max; n += max(f.Step, 1) {
			out = append(out, strconv.Itoa(n)+f.Suffix)
		}
	}
	return out
}

// Parse returns the number v spells and the unit it counts, if v is one of Values.
func (ns Numbers) Parse(v string) (n int, unit time.Duration, ok bool) {
	for _, f := range ns {
		digits, found := strings.CutSuffix(v, f.Suffix)
		if !found || digits == "" || len(digits) > 9 || (digits[0] == '0' && digits != "0") || strings.Trim(digits, "0123456789") != "" {
			continue
		}
		n, err := strconv.Atoi(digits)
		if err == nil && n >= f.Min && n <= f.Max && n%max(f.Step, 1) == 0 {
			return n, f.Unit, true
		}
	}
	return 0, 0, false
}

// Duration returns the duration v spells, if v is one of Values.
func (ns Numbers) Duration(v string) (time.Duration, bool) {
	n, unit, ok := ns.Parse(v)
	return time.Duration(n) * unit, ok
}

// Constraint is the constraint that accepts exactly Values: for the code, Parse; for the
// template, a pattern generated from them (Constraint.Pattern).
func (ns Numbers) Constraint() Constraint { return Constraint{numbers: ns} }

// pattern is a regular expression that matches exactly Values.
func (ns Numbers) pattern() string {
	var forms []string
	for _, f := range ns {
		var numerals []string
		for n := f.Min; n <= f.Max; n += max(f.Step, 1) {
			numerals = append(numerals, strconv.Itoa(n))
		}
		digits := digitsPattern(numerals)
		if f.Suffix != "" && strings.Contains(digits, "|") {
			digits = "(?:" + digits + ")"
		}
		forms = append(forms, digits+regexp.QuoteMeta(f.Suffix))
	}
	return "^(?:" + strings.Join(forms, "|") + ")$"
}

// digitsPattern returns a regular expression that matches exactly the given numerals
// (strings of digits): one trie per length, children with the same subtree merged into
// a class ([1-8]), runs of [0-9] written [0-9]{n}, and the same prefix over consecutive
// lengths merged into [0-9]{a,b}.
func digitsPattern(numerals []string) string {
	byLen := map[int][]string{}
	for _, n := range numerals {
		byLen[len(n)] = append(byLen[len(n)], n)
	}
	var branches []digitBranch
	for _, l := range slices.Sorted(maps.Keys(byLen)) {
		root := &digitTrie{}
		for _, n := range byLen[l] {
			root.add(n)
		}
		for _, b := range root.branches() {
			if last := len(branches) - 1; last >= 0 && branches[last].head == b.head && branches[last].maxRun+1 == b.minRun {
				branches[last].maxRun = b.minRun
				continue
			}
			branches = append(branches, b)
		}
	}
	out := make([]string, len(branches))
	for i, b := range branches {
		out[i] = b.String()
	}
	return strings.Join(out, "|")
}

type digitTrie struct{ child [10]*digitTrie }

func (t *digitTrie) add(numeral string) {
	for _, c := range []byte(numeral) {
		d := c - '0'
		if t.child[d] == nil {
			t.child[d] = &digitTrie{}
		}
		t = t.child[d]
	}
}

// digitBranch is head followed by minRun to maxRun digits of any value.
type digitBranch struct {
	head           string
	minRun, maxRun int
}

func (b digitBranch) String() string {
	switch {
	case b.minRun == b.maxRun && b.maxRun == 0:
		return b.head
	case b.minRun == b.maxRun && b.maxRun == 1:
		return b.head + "[0-9]"
	case b.minRun == b.maxRun:
		return fmt.Sprintf("%s[0-9]{%d}", b.head, b.maxRun)
	case b.minRun == 0 && b.maxRun == 1:
		return b.head + "[0-9]?"
	}
	return fmt.Sprintf("%s[0-9]{%d,%d}", b.head, b.minRun, b.maxRun)
}

// branches are the alternatives that together match what the trie holds below t.
func (t *digitTrie) branches() []digitBranch {
	var digits [][]byte       // groups of digits whose subtrees read the same
	var subs [][]digitBranch  // each group's subtree
	index := map[string]int{} // a subtree's regular expression -> its group
	for d, c := range t.child {
		if c == nil {
			continue
		}
		sub := c.branches()
		key := joinBranches(sub)
		i, seen := index[key]
		if !seen {
			i = len(digits)
			index[key] = i
			digits = append(digits, nil)
			subs = append(subs, sub)
		}
		digits[i] = append(digits[i], byte('0'+d))
	}
	if len(digits) == 0 {
		return []digitBranch{{}}
	}
	var out []digitBranch
	for i, ds := range digits {
		class := digitClass(ds)
		sub := subs[i]
		switch {
		case len(sub) > 1:
			out = append(out, digitBranch{head: class + "(?:" + joinBranches(sub) + ")"})
		case sub[0].head == "" && class == "[0-9]" && sub[0].minRun == sub[0].maxRun:
			out = append(out, digitBranch{minRun: sub[0].minRun + 1, maxRun: sub[0].maxRun + 1})
		case sub[0].head == "" && sub[0].minRun == sub[0].maxRun:
			out = append(out, digitBranch{head: class, minRun: sub[0].minRun, maxRun: sub[0].maxRun})
		default:
			out = append(out, digitBranch{head: class + sub[0].String()})
		}
	}
	return out
}

func joinBranches(bs []digitBranch) string {
	s := make([]string, len(bs))
	for i, b := range bs {
		s[i] = b.String()
	}
	return strings.Join(s, "|")
}

// digitClass writes a set of digits (in increasing order) as 7, [17], [1-8] or [0-9].
func digitClass(ds []byte) string {
	if len(ds) == 1 {
		return string(ds)
	}
	var b strings.Builder
	b.WriteByte('[')
	for i := 0; i < len(ds); {
		j := i
		for j+1 < len(ds) && ds[j+1] == ds[j]+1 {
			j++
		}
		switch {
		case j-i >= 2:
			b.WriteString(string(ds[i]) + "-" + string(ds[j]))
		default:
			b.Write(ds[i : j+1])
		}
		i = j + 1
	}
	b.WriteByte(']')
	return b.String()
}

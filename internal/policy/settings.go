package policy

import (
	"cmp"
	"errors"
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

// Mode says how far the guard may act.
type Mode string

// The three modes, from the least to the most active.
const (
	// ModeReport decides and logs only.
	ModeReport Mode = "report"
	// ModeDryRun also calls EC2 with DryRun=true and marks tickets as dry-run.
	ModeDryRun Mode = "dry-run"
	// ModeEnforce acts.
	ModeEnforce Mode = "enforce"
)

// Settings tune the guard. Load them with LoadSettings so that every value is checked.
type Settings struct {
	Lookback           time.Duration
	MinObservedHours   int
	MaxMetricStaleness time.Duration
	HopLimit           int32
	ContainerHopLimit  int32
	ExemptTag          string
	Mode               Mode
	// ContainerTags are the tag keys that mark a container host; a key ending in "*"
	// matches every key that starts with the part before it.
	ContainerTags []string
	// CallTimeout is the deadline of one AWS API call attempt: connecting, sending the
	// request and reading the whole reply. A stalled endpoint fails after it and the
	// attempt is retried like throttling.
	CallTimeout time.Duration
}

// ------------------------------------------------------------------ the one definition

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
// space or fraction), followed by Suffix. The number counts Units (0 for a bare number).
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
		if !found || digits == "" || len(digits) > 9 || digits[0] == '0' || strings.Trim(digits, "0123456789") != "" {
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

// Tag keys: letters, digits, spaces and _ . : / = + - @, Unicode letters and digits
// included, as AWS allows (\p{L}\p{Z}\p{N}), and not only spaces. The pattern reads the
// leading spaces first, so that it is unambiguous (no backtracking in Java).
const (
	tagKeyNonSpace = `\p{L}\p{N}_.:/=+\-@`
	tagKeyPattern  = `\p{Z}*[` + tagKeyNonSpace + `][\p{Z}` + tagKeyNonSpace + `]*`
	// tagKeyChars is how the error messages and the template describe a tag key.
	tagKeyChars = "letters, digits, spaces and _ . : / = + - @, not only spaces"
)

var (
	lookbackNumbers = Numbers{
		{Suffix: "d", Min: 1, Max: 90, Unit: 24 * time.Hour},
		{Suffix: "h", Min: 24, Max: 90 * 24, Step: 24, Unit: time.Hour},
	}
	minObservedNumbers = Numbers{{Min: 1, Max: 90 * 24}}
	stalenessNumbers   = Numbers{{Suffix: "h", Min: 1, Max: 24, Unit: time.Hour}, {Suffix: "m", Min: 60, Max: 24 * 60, Unit: time.Minute}}
	hopLimitNumbers    = Numbers{{Min: 1, Max: 64}}
	callTimeoutNumbers = Numbers{{Suffix: "s", Min: 1, Max: 300, Unit: time.Second}, {Suffix: "m", Min: 1, Max: 5, Unit: time.Minute}}
)

const (
	plainNumber = "in plain decimal (no sign, leading zero or space)"
	// containerTagPattern is a container tag: a tag key, or a prefix of one followed by *.
	containerTagPattern = tagKeyPattern + `\*?`
)

// SettingKind is the kind of value a setting holds, as a command line's help names it.
// It only describes: the Constraint alone decides which values are valid.
type SettingKind string

// The kinds of setting.
const (
	// KindText is free text or one of a few words (a tag key, the mode).
	KindText SettingKind = "string"
	// KindInt is a whole number.
	KindInt SettingKind = "int"
	// KindDuration is a length of time, with its unit (336h, 14d, 90m, 30s).
	KindDuration SettingKind = "duration"
	// KindList is a comma-separated list.
	KindList SettingKind = "strings"
)

// SettingSpec defines one setting once: for the CLI flag, the Lambda environment
// variable, template.yaml's parameter and the documentation alike.
type SettingSpec struct {
	Flag string
	Env  string
	// Param is the template.yaml parameter that sets Env for both functions.
	Param   string
	Default string
	Usage   string
	// Kind is the kind of value, for the flag's help; the field of Settings it fills has
	// the matching type (a duration, an integer, a list of strings or a string).
	Kind SettingKind
	// Allowed describes the valid values; it is part of every error about the setting,
	// and the template parameter's ConstraintDescription.
	Allowed string
	// Constraint accepts exactly the valid values, alone; CrossRules add the limits that
	// span settings.
	Constraint Constraint
	// parse stores a value the Constraint allows.
	parse func(*Settings, string) error
}

// SettingSpecs are all the guard's settings, in documentation order.
var SettingSpecs = []SettingSpec{
	{
		Flag: "lookback", Env: "IMDSGUARD_LOOKBACK", Param: "Lookback", Default: "336h",
		Kind:       KindDuration,
		Usage:      "how far back to read the MetadataNoToken metric and CloudTrail",
		Allowed:    "whole days from 1 to 90 (CloudTrail's history), as days (14d) or as hours, a multiple of 24 (336h), " + plainNumber,
		Constraint: lookbackNumbers.Constraint(),
		parse: func(s *Settings, v string) error {
			d, ok := lookbackNumbers.Duration(v)
			s.Lookback = d
			return okOrInvalid(ok)
		},
	},
	{
		Flag: "min-observed-hours", Env: "IMDSGUARD_MIN_OBSERVED_HOURS", Param: "MinObservedHours", Default: "168",
		Kind:       KindInt,
		Usage:      "hourly MetadataNoToken datapoints needed before IMDSv1 can count as unused",
		Allowed:    "a whole number from 1 to the lookback in hours (2160 at most), " + plainNumber,
		Constraint: minObservedNumbers.Constraint(),
		parse: func(s *Settings, v string) error {
			n, _, ok := minObservedNumbers.Parse(v)
			s.MinObservedHours = n
			return okOrInvalid(ok)
		},
	},
	{
		Flag: "max-metric-staleness", Env: "IMDSGUARD_MAX_METRIC_STALENESS", Param: "MaxMetricStaleness", Default: "3h",
		Kind:       KindDuration,
		Usage:      "defer when the newest MetadataNoToken datapoint is older than this",
		Allowed:    "whole hours from 1h to 24h (3h), or whole minutes from 60m to 1440m (90m), " + plainNumber,
		Constraint: stalenessNumbers.Constraint(),
		parse: func(s *Settings, v string) error {
			d, ok := stalenessNumbers.Duration(v)
			s.MaxMetricStaleness = d
			return okOrInvalid(ok)
		},
	},
	{
		Flag: "hop-limit", Env: "IMDSGUARD_HOP_LIMIT", Param: "HopLimit", Default: "1",
		Kind:       KindInt,
		Usage:      "HttpPutResponseHopLimit set on remediated instances",
		Allowed:    "a whole number from 1 to 64, " + plainNumber,
		Constraint: hopLimitNumbers.Constraint(),
		parse:      func(s *Settings, v string) error { return parseHopLimit(&s.HopLimit, v) },
	},
	{
		Flag: "container-hop-limit", Env: "IMDSGUARD_CONTAINER_HOP_LIMIT", Param: "ContainerHopLimit", Default: "2",
		Kind:       KindInt,
		Usage:      "lowest hop limit on container hosts, where a container is one more network hop",
		Allowed:    "a whole number from 1 to 64, " + plainNumber,
		Constraint: hopLimitNumbers.Constraint(),
		parse:      func(s *Settings, v string) error { return parseHopLimit(&s.ContainerHopLimit, v) },
	},
	{
		Flag: "exempt-tag", Env: "IMDSGUARD_EXEMPT_TAG", Param: "ExemptTag", Default: "imdsguard:exempt",
		Kind:       KindText,
		Usage:      "tag key that exempts an instance (value true, or YYYY-MM-DD to exempt until that day ends in UTC)",
		Allowed:    "a tag key of 1 to 128 characters: " + tagKeyChars,
		Constraint: Constraint{AllowedPattern: "^" + tagKeyPattern + "$", MaxLength: 128},
		parse: func(s *Settings, v string) error {
			s.ExemptTag = v
			return nil
		},
	},
	{
		Flag: "mode", Env: "IMDSGUARD_MODE", Param: "Mode", Default: string(ModeDryRun),
		Kind:       KindText,
		Usage:      "report: decide and log only; dry-run: also call EC2 with DryRun and mark tickets as dry-run; enforce: act",
		Allowed:    "report, dry-run or enforce",
		Constraint: Constraint{AllowedValues: []string{string(ModeReport), string(ModeDryRun), string(ModeEnforce)}},
		parse: func(s *Settings, v string) error {
			s.Mode = Mode(v)
			return nil
		},
	},
	{
		Flag: "container-tags", Env: "IMDSGUARD_CONTAINER_TAGS", Param: "ContainerTags",
		Kind:    KindList,
		Default: "eks:cluster-name,aws:eks:cluster-name,kubernetes.io/cluster/*,aws:ecs:clusterName",
		Usage:   "tag keys that mark a container host; a trailing * matches a prefix",
		Allowed: "comma-separated tag keys (" + tagKeyChars + "), each of which may end in * to match every key that starts with it " +
			"(a lone * is not allowed), at most 4096 characters in all",
		Constraint: Constraint{AllowedPattern: "^" + containerTagPattern + "(?:," + containerTagPattern + ")*$", MaxLength: 4096},
		parse: func(s *Settings, v string) error {
			s.ContainerTags = strings.Split(v, ",")
			return nil
		},
	},
	{
		Flag: "call-timeout", Env: "IMDSGUARD_CALL_TIMEOUT", Param: "CallTimeout", Default: "30s",
		Kind: KindDuration,
		Usage: "deadline of one AWS API call attempt (connect, request and the whole reply); " +
			"a stalled endpoint fails after it and is retried like throttling",
		Allowed:    "whole seconds from 1s to 300s (30s), or whole minutes from 1m to 5m, " + plainNumber,
		Constraint: callTimeoutNumbers.Constraint(),
		parse: func(s *Settings, v string) error {
			d, ok := callTimeoutNumbers.Duration(v)
			s.CallTimeout = d
			return okOrInvalid(ok)
		},
	},
}

func okOrInvalid(ok bool) error {
	if !ok {
		return errInvalid
	}
	return nil
}

func parseHopLimit(dst *int32, v string) error {
	n, _, ok := hopLimitNumbers.Parse(v)
	*dst = int32(n)
	return okOrInvalid(ok)
}

// Parameter is a setting as a template.yaml parameter: a String parameter whose
// constraints are the setting's Constraint.
type Parameter struct {
	Name        string
	Default     string
	Description string
	// ConstraintDescription is what CloudFormation says when a value is refused.
	ConstraintDescription string
	Constraint            Constraint
}

// Parameter is the template.yaml parameter that sets the setting for both functions.
func (spec SettingSpec) Parameter() Parameter {
	return Parameter{
		Name: spec.Param, Default: spec.Default, Description: spec.Env + ": " + spec.Usage + ".",
		ConstraintDescription: spec.Allowed, Constraint: spec.Constraint,
	}
}

// ------------------------------------------------------------ limits across settings

// Condition tests one template parameter: its value is one of Values (with Not: it is
// none of them). An empty Param always holds.
type Condition struct {
	Param  string
	Values []string
	Not    bool
}

// Holds reports whether the condition holds for the parameter values given by value.
func (c Condition) Holds(value func(param string) string) bool {
	if c.Param == "" {
		return true
	}
	return slices.Contains(c.Values, value(c.Param)) != c.Not
}

// Assertion must hold whenever its rule applies. Description says what is wrong when it
// does not, in an operator's words.
type Assertion struct {
	Assert      Condition
	Description string
}

// Rule is a limit that spans settings, in the form of a CloudFormation rule: when When
// holds, every assertion must. template.yaml's Rules are generated from the Rules of
// the definitions (internal/iamcheck); the code checks the same limits.
type Rule struct {
	Name string
	// Comment explains the rule above it in template.yaml, as one paragraph; it may be
	// empty.
	Comment    string
	When       Condition
	Assertions []Assertion
}

// Failed returns the first assertion the parameter values given by value break.
func (r Rule) Failed(value func(param string) string) (Assertion, bool) {
	if !r.When.Holds(value) {
		return Assertion{}, false
	}
	for _, a := range r.Assertions {
		if !a.Assert.Holds(value) {
			return a, true
		}
	}
	return Assertion{}, false
}

// minObservedFits is the one limit between the guard's settings: the lookback must hold
// the hourly datapoints min-observed-hours asks for. LoadSettings checks it; CrossRules
// enumerate it for CloudFormation, which has no numeric comparison.
func minObservedFits(minObservedHours int, lookback time.Duration) bool {
	return time.Duration(minObservedHours)*time.Hour <= lookback
}

// CrossRules are the guard's limits across settings as template.yaml's Rules: since
// CloudFormation rules can only compare strings, every MinObservedHours value is listed
// once, in ranges that need the same lookback, each asserting that Lookback is not one
// of the spellings too short for it (or is one of those long enough, whichever list is
// shorter). They are generated from minObservedFits and the two settings' Values.
func CrossRules() []Rule {
	minSpec, lookSpec := specByFlag("min-observed-hours"), specByFlag("lookback")
	type lookback struct {
		spelling string
		d        time.Duration
	}
	var lookbacks []lookback
	for _, v := range lookbackNumbers.Values() {
		d, _ := lookbackNumbers.Duration(v)
		lookbacks = append(lookbacks, lookback{v, d})
	}
	// By length, each length's spellings together: 1d, 24h, 2d, 48h, ...
	slices.SortStableFunc(lookbacks, func(a, b lookback) int { return cmp.Compare(a.d, b.d) })
	var rules []Rule
	var lastKey string
	for _, v := range minObservedNumbers.Values() {
		m, _, _ := minObservedNumbers.Parse(v)
		var short, long []string
		need := time.Duration(0)
		for _, l := range lookbacks {
			if minObservedFits(m, l.d) {
				long = append(long, l.spelling)
				if need == 0 || l.d < need {
					need = l.d
				}
			} else {
				short = append(short, l.spelling)
			}
		}
		if len(short) == 0 {
			continue
		}
		if key := strings.Join(short, ","); key == lastKey {
			r := &rules[len(rules)-1]
			r.When.Values = append(r.When.Values, v)
			continue
		}
		lastKey = strings.Join(short, ",")
		assert := Condition{Param: lookSpec.Param, Values: short, Not: true}
		if len(long) < len(short) {
			assert = Condition{Param: lookSpec.Param, Values: long}
		}
		rules = append(rules, Rule{
			When:       Condition{Param: minSpec.Param, Values: []string{v}},
			Assertions: []Assertion{{Assert: assert, Description: daysAndHours(need)}},
		})
	}
	for i := range rules {
		r := &rules[i]
		lo, hi := r.When.Values[0], r.When.Values[len(r.When.Values)-1]
		r.Name = fmt.Sprintf("%s%sTo%s", minSpec.Param, lo, hi)
		r.Assertions[0].Description = fmt.Sprintf("%s %s to %s needs a %s of at least %s.", minSpec.Param, lo, hi, lookSpec.Param, r.Assertions[0].Description)
	}
	if len(rules) > 0 {
		rules[0].Comment = fmt.Sprintf("%s must not exceed %s in hours. CloudFormation rules cannot compare "+
			"numbers, so each range of %s that needs the same lookback lists the %s values too short for it "+
			"(or those long enough, when that list is shorter).", minSpec.Param, lookSpec.Param, minSpec.Param, lookSpec.Param)
	}
	return rules
}

// daysAndHours writes a whole number of days as 9d (216h).
func daysAndHours(d time.Duration) string {
	h := int(d / time.Hour)
	return fmt.Sprintf("%dd (%dh)", h/24, h)
}

// ------------------------------------------------------------------------- loading

var errInvalid = errors.New("invalid value")

// SettingError names the setting, the value given, and what is allowed.
type SettingError struct {
	Spec  SettingSpec
	Value string
	// Reason is set when the value is valid alone but conflicts with another setting.
	Reason string
}

func (e *SettingError) Error() string {
	msg := fmt.Sprintf("invalid setting %s (--%s, %s) = %q: allowed: %s", e.Spec.Flag, e.Spec.Flag, e.Spec.Env, e.Value, e.Spec.Allowed)
	if e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	return msg
}

// LoadSettings builds the settings from, in order of precedence, the given values by
// flag name (the CLI's explicitly set flags), the environment (lookupEnv, usually
// os.LookupEnv), and the defaults. Every value must be exactly as the setting's
// Constraint allows (nothing is trimmed), and the settings must keep the limits between
// them (CrossRules); the first invalid value is returned as a *SettingError.
func LoadSettings(lookupEnv func(string) (string, bool), flags map[string]string) (Settings, error) {
	var s Settings
	values := make(map[string]string, len(SettingSpecs))
	for _, spec := range SettingSpecs {
		value := spec.Default
		if v, ok := lookupEnv(spec.Env); ok {
			value = v
		}
		if v, ok := flags[spec.Flag]; ok {
			value = v
		}
		values[spec.Flag] = value
		// A default is valid (a test checks every one), so a start-up with the defaults
		// compiles none of the patterns, which costs a bootstrap's cold start.
		if (value != spec.Default && !spec.Constraint.Allows(value)) || spec.parse(&s, value) != nil {
			return Settings{}, &SettingError{Spec: spec, Value: value}
		}
	}
	for flag := range flags {
		if _, known := values[flag]; !known {
			return Settings{}, fmt.Errorf("unknown setting %q", flag)
		}
	}
	if !minObservedFits(s.MinObservedHours, s.Lookback) {
		need := time.Duration((s.MinObservedHours+23)/24) * 24 * time.Hour
		return Settings{}, &SettingError{Spec: specByFlag("min-observed-hours"), Value: values["min-observed-hours"],
			Reason: fmt.Sprintf("%d hours need a lookback of at least %s; the lookback is %s", s.MinObservedHours, daysAndHours(need), daysAndHours(s.Lookback))}
	}
	return s, nil
}

// DefaultSettings are the settings with every default; they are always valid.
func DefaultSettings() Settings {
	s, err := LoadSettings(func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		panic("policy: the default settings are invalid: " + err.Error())
	}
	return s
}

func specByFlag(flag string) SettingSpec {
	for _, spec := range SettingSpecs {
		if spec.Flag == flag {
			return spec
		}
	}
	panic("policy: no setting " + flag)
}

// containerHostTag returns the first tag key, in sorted order, that marks a container host.
func (s Settings) containerHostTag(tags map[string]string) (string, bool) {
	keys := slices.Sorted(maps.Keys(tags))
	for _, want := range s.ContainerTags {
		prefix, isPrefix := strings.CutSuffix(want, "*")
		for _, key := range keys {
			if key == want || (isPrefix && strings.HasPrefix(key, prefix)) {
				return key, true
			}
		}
	}
	return "", false
}

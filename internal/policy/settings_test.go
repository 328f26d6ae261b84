package policy

import (
	"errors"
	"math/rand"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestDefaultSettings(t *testing.T) {
	s := DefaultSettings()
	want := Settings{
		Lookback: 336 * time.Hour, MinObservedHours: 168, MaxMetricStaleness: 3 * time.Hour,
		HopLimit: 1, ContainerHopLimit: 2, ExemptTag: "imdsguard:exempt", Mode: ModeDryRun,
		ContainerTags: []string{"eks:cluster-name", "aws:eks:cluster-name", "kubernetes.io/cluster/*", "aws:ecs:clusterName"},
		CallTimeout:   30 * time.Second,
		BootWindow:    2 * time.Hour,
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("defaults = %+v, want %+v", s, want)
	}
}

func TestLoadSettingsPrecedence(t *testing.T) {
	s, err := LoadSettings(env(map[string]string{"IMDSGUARD_LOOKBACK": "720h", "IMDSGUARD_MODE": "enforce", "IMDSGUARD_HOP_LIMIT": "2"}),
		map[string]string{"mode": "report", "min-observed-hours": "24"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Lookback != 720*time.Hour || s.Mode != ModeReport || s.MinObservedHours != 24 || s.HopLimit != 2 {
		t.Errorf("flag > env > default not honoured: %+v", s)
	}
}

func TestLoadSettingsValid(t *testing.T) {
	tests := []struct {
		flags map[string]string
		check func(Settings) bool
	}{
		{map[string]string{"lookback": "14d"}, func(s Settings) bool { return s.Lookback == 336*time.Hour }},
		{map[string]string{"lookback": "1d", "min-observed-hours": "24"}, func(s Settings) bool { return s.Lookback == 24*time.Hour }},
		{map[string]string{"lookback": "90d", "min-observed-hours": "2160"}, func(s Settings) bool { return s.MinObservedHours == 2160 }},
		{map[string]string{"lookback": "2160h"}, func(s Settings) bool { return s.Lookback == 90*24*time.Hour }},
		{map[string]string{"lookback": "9d", "min-observed-hours": "200"}, func(s Settings) bool { return s.MinObservedHours == 200 }},
		{map[string]string{"max-metric-staleness": "90m"}, func(s Settings) bool { return s.MaxMetricStaleness == 90*time.Minute }},
		{map[string]string{"max-metric-staleness": "24h"}, func(s Settings) bool { return s.MaxMetricStaleness == 24*time.Hour }},
		{map[string]string{"max-metric-staleness": "1440m"}, func(s Settings) bool { return s.MaxMetricStaleness == 24*time.Hour }},
		{map[string]string{"max-metric-staleness": "60m"}, func(s Settings) bool { return s.MaxMetricStaleness == time.Hour }},
		{map[string]string{"hop-limit": "64", "container-hop-limit": "1"}, func(s Settings) bool { return s.HopLimit == 64 && s.ContainerHopLimit == 1 }},
		{map[string]string{"exempt-tag": " a"}, func(s Settings) bool { return s.ExemptTag == " a" }},
		{map[string]string{"exempt-tag": "Équipe:exempt"}, func(s Settings) bool { return s.ExemptTag == "Équipe:exempt" }},
		{map[string]string{"exempt-tag": strings.Repeat("x", 128)}, func(s Settings) bool { return len(s.ExemptTag) == 128 }},
		{map[string]string{"container-tags": "a*,b"}, func(s Settings) bool { return slices.Equal(s.ContainerTags, []string{"a*", "b"}) }},
		{map[string]string{"container-tags": "x"}, func(s Settings) bool { return slices.Equal(s.ContainerTags, []string{"x"}) }},
		{map[string]string{"call-timeout": "1s"}, func(s Settings) bool { return s.CallTimeout == time.Second }},
		{map[string]string{"call-timeout": "300s"}, func(s Settings) bool { return s.CallTimeout == 5*time.Minute }},
		{map[string]string{"call-timeout": "5m"}, func(s Settings) bool { return s.CallTimeout == 5*time.Minute }},
	}
	for _, tc := range tests {
		s, err := LoadSettings(env(nil), tc.flags)
		if err != nil || !tc.check(s) {
			t.Errorf("%v: %+v, %v", tc.flags, s, err)
		}
	}
}

func TestLoadSettingsInvalid(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		flags   map[string]string
		setting string // named in the error
		allowed string // part of the allowed values (or the reason) in the error
	}{
		{"mode typo in env", map[string]string{"IMDSGUARD_MODE": "enforced"}, nil, "IMDSGUARD_MODE", "report, dry-run or enforce"},
		{"mode empty", nil, map[string]string{"mode": ""}, "--mode", "report, dry-run or enforce"},
		{"mode with a space", nil, map[string]string{"mode": "enforce "}, `"enforce "`, "report, dry-run or enforce"},
		{"lookback not a duration", map[string]string{"IMDSGUARD_LOOKBACK": "two weeks"}, nil, "IMDSGUARD_LOOKBACK", "whole days from 1 to 90"},
		{"lookback 100d", nil, map[string]string{"lookback": "100d"}, `"100d"`, "whole days from 1 to 90"},
		{"lookback 91d", nil, map[string]string{"lookback": "91d"}, "--lookback", "whole days from 1 to 90"},
		{"lookback beyond CloudTrail", nil, map[string]string{"lookback": "2184h"}, "--lookback", "multiple of 24"},
		{"lookback not whole days", nil, map[string]string{"lookback": "100h"}, "--lookback", "multiple of 24"},
		{"lookback in minutes", nil, map[string]string{"lookback": "90m"}, "--lookback", "whole days"},
		{"lookback zero", nil, map[string]string{"lookback": "0d"}, "--lookback", "whole days"},
		{"lookback leading zero", nil, map[string]string{"lookback": "014d"}, "--lookback", "leading zero"},
		{"lookback with spaces", map[string]string{"IMDSGUARD_LOOKBACK": " 336h"}, nil, "IMDSGUARD_LOOKBACK", "space"},
		{"min observed hours negative", map[string]string{"IMDSGUARD_MIN_OBSERVED_HOURS": "-1"}, nil, "IMDSGUARD_MIN_OBSERVED_HOURS", "from 1"},
		{"min observed hours zero", nil, map[string]string{"min-observed-hours": "0"}, "min-observed-hours", "from 1"},
		{"min observed hours with a plus", nil, map[string]string{"min-observed-hours": "+168"}, "min-observed-hours", "no sign"},
		{"min observed hours above lookback", nil, map[string]string{"lookback": "24h", "min-observed-hours": "48"}, "min-observed-hours",
			"48 hours need a lookback of at least 2d (48h); the lookback is 1d (24h)"},
		{"min observed hours 200 over 8d", nil, map[string]string{"lookback": "8d", "min-observed-hours": "200"}, `"200"`,
			"at least 9d (216h)"},
		{"min observed hours beyond 90 days", nil, map[string]string{"lookback": "90d", "min-observed-hours": "2161"}, "min-observed-hours", "2160 at most"},
		{"staleness under an hour", nil, map[string]string{"max-metric-staleness": "30m"}, "IMDSGUARD_MAX_METRIC_STALENESS", "from 60m"},
		{"staleness 59m", nil, map[string]string{"max-metric-staleness": "59m"}, "IMDSGUARD_MAX_METRIC_STALENESS", "from 60m"},
		{"staleness over a day", nil, map[string]string{"max-metric-staleness": "25h"}, "max-metric-staleness", "1h to 24h"},
		{"staleness compound", nil, map[string]string{"max-metric-staleness": "1h30m"}, "max-metric-staleness", "1h to 24h"},
		{"hop limit zero", map[string]string{"IMDSGUARD_HOP_LIMIT": "0"}, nil, "IMDSGUARD_HOP_LIMIT", "1 to 64"},
		{"hop limit 1.5", map[string]string{"IMDSGUARD_HOP_LIMIT": "1.5"}, nil, "IMDSGUARD_HOP_LIMIT", "1 to 64"},
		{"hop limit 01", nil, map[string]string{"hop-limit": "01"}, "--hop-limit", "leading zero"},
		{"container hop limit too high", nil, map[string]string{"container-hop-limit": "65"}, "IMDSGUARD_CONTAINER_HOP_LIMIT", "1 to 64"},
		{"exempt tag only spaces", map[string]string{"IMDSGUARD_EXEMPT_TAG": "   "}, nil, "IMDSGUARD_EXEMPT_TAG", "not only spaces"},
		{"exempt tag empty", map[string]string{"IMDSGUARD_EXEMPT_TAG": ""}, nil, "IMDSGUARD_EXEMPT_TAG", "1 to 128"},
		{"exempt tag too long", nil, map[string]string{"exempt-tag": strings.Repeat("x", 129)}, "exempt-tag", "1 to 128"},
		{"exempt tag of 127 characters that Java counts as 128 and more", nil, map[string]string{"exempt-tag": strings.Repeat("x", 127) + "𝒜"}, "exempt-tag", "1 to 128"},
		{"exempt tag with a star", nil, map[string]string{"exempt-tag": "a*"}, "exempt-tag", "letters, digits"},
		{"exempt tag with a tab", nil, map[string]string{"exempt-tag": "a\tb"}, "exempt-tag", "letters, digits"},
		{"container tags with a hole", nil, map[string]string{"container-tags": "eks:cluster-name,,x"}, "IMDSGUARD_CONTAINER_TAGS", "comma-separated"},
		{"container tags only commas", nil, map[string]string{"container-tags": ",,"}, "IMDSGUARD_CONTAINER_TAGS", "comma-separated"},
		{"container tags a lone star", nil, map[string]string{"container-tags": "*"}, "container-tags", "a lone * is not allowed"},
		{"container tags trailing comma", nil, map[string]string{"container-tags": "a,"}, "container-tags", "comma-separated"},
		{"container tags star inside", nil, map[string]string{"container-tags": "a*b"}, "container-tags", "may end in *"},
		{"container tags too long", nil, map[string]string{"container-tags": strings.Repeat("a,", 2048) + "a"}, "container-tags", "4096"},
		{"call timeout zero", nil, map[string]string{"call-timeout": "0s"}, "IMDSGUARD_CALL_TIMEOUT", "1s to 300s"},
		{"call timeout 301s", nil, map[string]string{"call-timeout": "301s"}, "--call-timeout", "1s to 300s"},
		{"call timeout 6m", map[string]string{"IMDSGUARD_CALL_TIMEOUT": "6m"}, nil, "IMDSGUARD_CALL_TIMEOUT", "1m to 5m"},
		{"call timeout without a unit", nil, map[string]string{"call-timeout": "30"}, "--call-timeout", "whole seconds"},
		{"call timeout as a Go duration", nil, map[string]string{"call-timeout": "1m30s"}, "--call-timeout", "whole seconds"},
		{"invalid UTF-8", nil, map[string]string{"exempt-tag": "a\xffb"}, "exempt-tag", "tag key"},
		{"unknown flag", nil, map[string]string{"lookbak": "1h"}, "lookbak", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadSettings(env(tc.env), tc.flags)
			if err == nil {
				t.Fatal("invalid settings accepted")
			}
			if !strings.Contains(err.Error(), tc.setting) || !strings.Contains(err.Error(), tc.allowed) {
				t.Errorf("error %q should name %q and say %q", err, tc.setting, tc.allowed)
			}
			var se *SettingError
			if tc.allowed != "" && !errors.As(err, &se) {
				t.Errorf("error %T is not a *SettingError", err)
			}
		})
	}
}

func TestSettingSpecsAreComplete(t *testing.T) {
	seenEnv, seenFlag, seenParam := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, spec := range SettingSpecs {
		if spec.Flag == "" || !strings.HasPrefix(spec.Env, "IMDSGUARD_") || spec.Param == "" || spec.Usage == "" || spec.Allowed == "" || spec.parse == nil {
			t.Errorf("incomplete spec %+v", spec)
		}
		c := spec.Constraint
		if len(c.AllowedValues) == 0 && c.Pattern() == "" {
			t.Errorf("%s: no constraint", spec.Flag)
		}
		if !c.Allows(spec.Default) {
			t.Errorf("%s: the default %q is not allowed", spec.Flag, spec.Default)
		}
		for what, seen := range map[string]map[string]bool{spec.Env: seenEnv, spec.Flag: seenFlag, spec.Param: seenParam} {
			if seen[what] {
				t.Errorf("%s defined twice", what)
			}
			seen[what] = true
		}
	}
}

// TestSettingKinds: each setting's Kind, which the CLI's help shows, is the kind of the
// value it stores: the one field of Settings its parse fills, read from the default.
func TestSettingKinds(t *testing.T) {
	durationType := reflect.TypeFor[time.Duration]()
	for _, spec := range SettingSpecs {
		var s Settings
		if err := spec.parse(&s, spec.Default); err != nil {
			t.Fatalf("%s: the default %q does not parse: %v", spec.Flag, spec.Default, err)
		}
		v := reflect.ValueOf(s)
		var filled []reflect.StructField
		for i := range v.NumField() {
			if !v.Field(i).IsZero() {
				filled = append(filled, v.Type().Field(i))
			}
		}
		if len(filled) != 1 {
			t.Errorf("%s: its default fills %d fields of Settings, want 1", spec.Flag, len(filled))
			continue
		}
		f := filled[0]
		var want SettingKind
		switch {
		case f.Type == durationType:
			want = KindDuration
		case f.Type.Kind() >= reflect.Int && f.Type.Kind() <= reflect.Int64:
			want = KindInt
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.String:
			want = KindList
		case f.Type.Kind() == reflect.String:
			want = KindText
		default:
			t.Errorf("%s: field %s has type %s, which no SettingKind describes", spec.Flag, f.Name, f.Type)
			continue
		}
		if spec.Kind != want {
			t.Errorf("%s: Kind %q, but it stores %s (%s): want %q", spec.Flag, spec.Kind, f.Name, f.Type, want)
		}
	}
}

// allNumbers are the settings written as numbers.
var allNumbers = map[string]Numbers{
	"lookback": lookbackNumbers, "min-observed-hours": minObservedNumbers, "max-metric-staleness": stalenessNumbers,
	"hop-limit": hopLimitNumbers, "call-timeout": callTimeoutNumbers,
}

// TestNumbersPatternIsParse: the pattern generated for the template accepts exactly the
// spellings Parse accepts, which are exactly Values: checked on every numeral up to 9999
// in every form, with leading zeros, signs and spaces, and on random strings.
func TestNumbersPatternIsParse(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for name, ns := range allNumbers {
		re := regexp.MustCompile(`^(?:` + ns.Constraint().Pattern() + `)$`)
		values := map[string]bool{}
		for _, v := range ns.Values() {
			values[v] = true
		}
		var corpus []string
		for n := range 10000 {
			for _, s := range []string{"", "d", "h", "m", "s"} {
				corpus = append(corpus, strconv.Itoa(n)+s)
			}
		}
		for v := range values {
			corpus = append(corpus, "0"+v, "+"+v, "-"+v, " "+v, v+" ", v+"\n", v+".0", v+v[len(v)-1:])
		}
		for range 5000 {
			b := make([]byte, 1+r.Intn(7))
			for i := range b {
				b[i] = "0123456789dhms +-.e"[r.Intn(19)]
			}
			corpus = append(corpus, string(b))
		}
		accepted := map[string]bool{}
		for _, v := range corpus {
			_, _, parsed := ns.Parse(v)
			matched := re.MatchString(v)
			if parsed != matched || parsed != values[v] {
				t.Errorf("%s: %q: pattern matches: %t, Parse: %t, in Values: %t", name, v, matched, parsed, values[v])
			}
			if parsed {
				accepted[v] = true
			}
		}
		if len(accepted) != len(values) {
			t.Errorf("%s: %d values of the corpus accepted, want all %d Values", name, len(accepted), len(values))
		}
	}
}

// TestDigitsPattern: on random sets of numerals, the generated pattern matches exactly
// the set among every string of one to four digits.
func TestDigitsPattern(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	var all []string
	for l := 1; l <= 4; l++ {
		for n := range pow10(l) {
			s := strconv.Itoa(n)
			all = append(all, strings.Repeat("0", l-len(s))+s)
		}
	}
	for i := range 25 {
		set := map[string]bool{}
		var numerals []string
		lo, hi := r.Intn(2000), r.Intn(10000)
		step := 1 + r.Intn(30)
		for n := lo; n <= hi; n += step {
			if i%3 != 0 || r.Intn(2) == 0 {
				set[strconv.Itoa(n)] = true
				numerals = append(numerals, strconv.Itoa(n))
			}
		}
		if len(numerals) == 0 {
			continue
		}
		p := digitsPattern(numerals)
		re := regexp.MustCompile(`^(?:` + p + `)$`)
		for _, s := range all {
			if re.MatchString(s) != set[s] {
				t.Fatalf("digitsPattern of %d numerals from %d to %d step %d = %s: matches %q: %t", len(numerals), lo, hi, step, p, s, !set[s])
			}
		}
	}
	if got := digitsPattern([]string{"1", "2", "3", "10", "11", "100"}); got != "[1-3]|1[01]|100" {
		t.Errorf("digitsPattern = %s", got)
	}
	if got := digitsPattern(minObservedValues()); got != "[1-9][0-9]{0,2}|1[0-9]{3}|2(?:0[0-9]{2}|1(?:[0-5][0-9]|60))" {
		t.Errorf("digitsPattern of 1 to 2160 = %s", got)
	}
}

func minObservedValues() []string { return minObservedNumbers.Values() }

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

func TestConstraintAllows(t *testing.T) {
	exempt := specByFlag("exempt-tag").Constraint
	for v, want := range map[string]bool{
		"imdsguard:exempt": true, " a": true, "a ": true, "日本": true, "\u00a0x": true, "x/y=z+w-v@u_t.s:r": true,
		"": false, " ": false, "\u00a0": false, "a*": false, "a,b": false, "a\nb": false, "😀": false, "a\xff": false,
		strings.Repeat("é", 128): true, strings.Repeat("é", 129): false, strings.Repeat("𝒜", 64): true, strings.Repeat("𝒜", 65): false,
	} {
		if got := exempt.Allows(v); got != want {
			t.Errorf("exempt-tag allows %q: %t, want %t", v, got, want)
		}
	}
	if n := UTF16Len("a𝒜é"); n != 4 {
		t.Errorf("UTF16Len = %d, want 4", n)
	}
}

// TestCrossRules: the rules list every MinObservedHours that needs more than a day once,
// in ranges of 24 that need the same lookback, and each asserts exactly the lookbacks
// minObservedFits allows (the template's evaluation against the code, over every pair,
// is internal/iamcheck's TestLookbackAndMinObservedHoursAgree).
func TestCrossRules(t *testing.T) {
	rules := CrossRules()
	if len(rules) != 89 {
		t.Errorf("%d rules, want 89 (one per day from 2 to 90)", len(rules))
	}
	var listed []string
	for _, r := range rules {
		listed = append(listed, r.When.Values...)
		if r.When.Param != "MinObservedHours" || r.When.Not || len(r.Assertions) != 1 || r.Assertions[0].Assert.Param != "Lookback" {
			t.Errorf("rule %s: %+v", r.Name, r)
			continue
		}
		for _, mv := range r.When.Values {
			m, _ := strconv.Atoi(mv)
			for _, l := range lookbackNumbers.Values() {
				d, _ := lookbackNumbers.Duration(l)
				value := func(p string) string { return map[string]string{"MinObservedHours": mv, "Lookback": l}[p] }
				if _, failed := r.Failed(value); failed == minObservedFits(m, d) {
					t.Fatalf("rule %s: MinObservedHours %s with Lookback %s: rule fails: %t", r.Name, mv, l, failed)
				}
			}
		}
		if a := r.Assertions[0].Assert; len(a.Values) > 90 {
			t.Errorf("rule %s lists %d lookbacks: the shorter list is at most 90", r.Name, len(a.Values))
		}
	}
	var want []string
	for n := 25; n <= 2160; n++ {
		want = append(want, strconv.Itoa(n))
	}
	if !slices.Equal(listed, want) {
		t.Errorf("the rules list %d MinObservedHours values, want 25 to 2160 once each", len(listed))
	}
	if rules[7].Name != "MinObservedHours193To216" || rules[7].Assertions[0].Description != "MinObservedHours 193 to 216 needs a Lookback of at least 9d (216h)." {
		t.Errorf("rule 8 = %s: %q", rules[7].Name, rules[7].Assertions[0].Description)
	}
}

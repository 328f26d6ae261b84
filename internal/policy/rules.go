package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

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

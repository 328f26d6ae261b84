package policy

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
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
	// BootWindow is how much of an instance's first hours after launch rule 8b reads, for
	// candidates that launched before the lookback window; zero turns the rule off.
	BootWindow time.Duration
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
	bootWindowNumbers  = Numbers{{Suffix: "h", Min: 0, Max: 24, Unit: time.Hour}}
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
	{
		Flag: "boot-window", Env: "IMDSGUARD_BOOT_WINDOW", Param: "BootWindow", Default: "2h",
		Kind: KindDuration,
		Usage: "hours after launch read for IMDSv1 use at boot, for candidates launched before the lookback " +
			"(a reboot does it again); 0h turns it off",
		Allowed:    "whole hours from 0h (off) to 24h, " + plainNumber,
		Constraint: bootWindowNumbers.Constraint(),
		parse: func(s *Settings, v string) error {
			d, ok := bootWindowNumbers.Duration(v)
			s.BootWindow = d
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

// IsContainerHost reports whether the instance's tags mark it a container host
// (ContainerTags).
func (s Settings) IsContainerHost(inst Instance) bool {
	_, container := s.containerHostTag(inst.Tags)
	return container
}

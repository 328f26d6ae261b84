package policy

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
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
}

// SettingSpec defines one setting once, for the CLI flag, the Lambda environment
// variable and the documentation alike.
type SettingSpec struct {
	Flag    string
	Env     string
	Default string
	Usage   string
	// Allowed describes the valid values; it is part of every error about the setting.
	Allowed string
	parse   func(*Settings, string) error
}

// maxLookback is CloudTrail's event history: older deliveries cannot be looked up.
const maxLookback = 90 * 24 * time.Hour

// SettingSpecs are all the guard's settings, in documentation order.
var SettingSpecs = []SettingSpec{
	{
		Flag: "lookback", Env: "IMDSGUARD_LOOKBACK", Default: "336h",
		Usage:   "how far back to read the MetadataNoToken metric and CloudTrail",
		Allowed: "a whole number of hours from 1h to 2160h (90 days, CloudTrail's limit), as 336h or 14d",
		parse: func(s *Settings, v string) error {
			d, err := parseHours(v)
			if err != nil || d < time.Hour || d > maxLookback || d%time.Hour != 0 {
				return errInvalid
			}
			s.Lookback = d
			return nil
		},
	},
	{
		Flag: "min-observed-hours", Env: "IMDSGUARD_MIN_OBSERVED_HOURS", Default: "168",
		Usage:   "hourly MetadataNoToken datapoints needed before IMDSv1 can count as unused",
		Allowed: "a whole number from 1 to the lookback in hours",
		parse: func(s *Settings, v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 1 {
				return errInvalid
			}
			s.MinObservedHours = n
			return nil
		},
	},
	{
		Flag: "max-metric-staleness", Env: "IMDSGUARD_MAX_METRIC_STALENESS", Default: "3h",
		Usage:   "defer when the newest MetadataNoToken datapoint is older than this",
		Allowed: "a duration from 1h to the lookback, as 3h or 90m",
		parse: func(s *Settings, v string) error {
			d, err := parseHours(v)
			if err != nil || d < time.Hour {
				return errInvalid
			}
			s.MaxMetricStaleness = d
			return nil
		},
	},
	{
		Flag: "hop-limit", Env: "IMDSGUARD_HOP_LIMIT", Default: "1",
		Usage:   "HttpPutResponseHopLimit set on remediated instances",
		Allowed: "a whole number from 1 to 64",
		parse:   func(s *Settings, v string) error { return parseHopLimit(&s.HopLimit, v) },
	},
	{
		Flag: "container-hop-limit", Env: "IMDSGUARD_CONTAINER_HOP_LIMIT", Default: "2",
		Usage:   "lowest hop limit on container hosts, where a container is one more network hop",
		Allowed: "a whole number from 1 to 64",
		parse:   func(s *Settings, v string) error { return parseHopLimit(&s.ContainerHopLimit, v) },
	},
	{
		Flag: "exempt-tag", Env: "IMDSGUARD_EXEMPT_TAG", Default: "imdsguard:exempt",
		Usage:   "tag key that exempts an instance (value true, or YYYY-MM-DD to exempt until that day ends in UTC)",
		Allowed: "a tag key of 1 to 128 characters",
		parse: func(s *Settings, v string) error {
			v = strings.TrimSpace(v)
			if v == "" || len(v) > 128 {
				return errInvalid
			}
			s.ExemptTag = v
			return nil
		},
	},
	{
		Flag: "mode", Env: "IMDSGUARD_MODE", Default: string(ModeDryRun),
		Usage:   "report: decide and log only; dry-run: also call EC2 with DryRun; enforce: act",
		Allowed: "report, dry-run or enforce",
		parse: func(s *Settings, v string) error {
			switch m := Mode(strings.TrimSpace(v)); m {
			case ModeReport, ModeDryRun, ModeEnforce:
				s.Mode = m
				return nil
			}
			return errInvalid
		},
	},
	{
		Flag: "container-tags", Env: "IMDSGUARD_CONTAINER_TAGS",
		Default: "eks:cluster-name,aws:eks:cluster-name,kubernetes.io/cluster/*,aws:ecs:clusterName",
		Usage:   "tag keys that mark a container host; a trailing * matches a prefix",
		Allowed: "a comma-separated list of tag keys, each 1 to 128 characters",
		parse: func(s *Settings, v string) error {
			var keys []string
			for _, k := range strings.Split(v, ",") {
				k = strings.TrimSpace(k)
				if k == "" || k == "*" || len(k) > 128 {
					return errInvalid
				}
				keys = append(keys, k)
			}
			s.ContainerTags = keys
			return nil
		},
	},
}

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
// os.LookupEnv), and the defaults. Every value is validated; the first invalid one is
// returned as a *SettingError.
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
		if err := spec.parse(&s, value); err != nil {
			return Settings{}, &SettingError{Spec: spec, Value: value}
		}
	}
	for flag := range flags {
		if _, known := values[flag]; !known {
			return Settings{}, fmt.Errorf("unknown setting %q", flag)
		}
	}
	lookbackHours := int(s.Lookback / time.Hour)
	if s.MinObservedHours > lookbackHours {
		return Settings{}, &SettingError{Spec: specByFlag("min-observed-hours"), Value: values["min-observed-hours"],
			Reason: fmt.Sprintf("more hours than the lookback of %dh can hold", lookbackHours)}
	}
	if s.MaxMetricStaleness > s.Lookback {
		return Settings{}, &SettingError{Spec: specByFlag("max-metric-staleness"), Value: values["max-metric-staleness"],
			Reason: fmt.Sprintf("longer than the lookback of %dh", lookbackHours)}
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

// parseHours reads a Go duration, or a whole number of days as "14d".
func parseHours(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, err
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}

func parseHopLimit(dst *int32, v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > 64 {
		return errInvalid
	}
	*dst = int32(n)
	return nil
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

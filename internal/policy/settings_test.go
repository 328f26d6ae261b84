package policy

import (
	"errors"
	"reflect"
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
	}
	got := s
	got.ContainerTags = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	if strings.Join(s.ContainerTags, ",") != "eks:cluster-name,aws:eks:cluster-name,kubernetes.io/cluster/*,aws:ecs:clusterName" {
		t.Errorf("container tags = %v", s.ContainerTags)
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
	s, err = LoadSettings(env(nil), map[string]string{"lookback": "14d", "max-metric-staleness": "90m"})
	if err != nil || s.Lookback != 336*time.Hour || s.MaxMetricStaleness != 90*time.Minute {
		t.Errorf("14d / 90m: %+v, %v", s, err)
	}
}

func TestLoadSettingsInvalid(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		flags   map[string]string
		setting string // named in the error
		allowed string // part of the allowed values in the error
	}{
		{"mode typo in env", map[string]string{"IMDSGUARD_MODE": "enforced"}, nil, "IMDSGUARD_MODE", "report, dry-run or enforce"},
		{"mode empty", nil, map[string]string{"mode": ""}, "--mode", "report, dry-run or enforce"},
		{"lookback not a duration", map[string]string{"IMDSGUARD_LOOKBACK": "two weeks"}, nil, "IMDSGUARD_LOOKBACK", "2160h"},
		{"lookback beyond CloudTrail", nil, map[string]string{"lookback": "2184h"}, "--lookback", "2160h"},
		{"lookback not whole hours", nil, map[string]string{"lookback": "90m"}, "--lookback", "whole number of hours"},
		{"min observed hours negative", map[string]string{"IMDSGUARD_MIN_OBSERVED_HOURS": "-1"}, nil, "IMDSGUARD_MIN_OBSERVED_HOURS", "from 1"},
		{"min observed hours above lookback", nil, map[string]string{"lookback": "24h", "min-observed-hours": "48"}, "min-observed-hours", "lookback"},
		{"staleness under an hour", nil, map[string]string{"max-metric-staleness": "30m"}, "IMDSGUARD_MAX_METRIC_STALENESS", "from 1h"},
		{"staleness above lookback", nil, map[string]string{"lookback": "168h", "min-observed-hours": "100", "max-metric-staleness": "200h"}, "max-metric-staleness", "lookback"},
		{"hop limit zero", map[string]string{"IMDSGUARD_HOP_LIMIT": "0"}, nil, "IMDSGUARD_HOP_LIMIT", "1 to 64"},
		{"container hop limit too high", nil, map[string]string{"container-hop-limit": "65"}, "IMDSGUARD_CONTAINER_HOP_LIMIT", "1 to 64"},
		{"exempt tag empty", map[string]string{"IMDSGUARD_EXEMPT_TAG": " "}, nil, "IMDSGUARD_EXEMPT_TAG", "1 to 128"},
		{"container tags with a hole", nil, map[string]string{"container-tags": "eks:cluster-name,,x"}, "IMDSGUARD_CONTAINER_TAGS", "comma-separated"},
		{"unknown flag", nil, map[string]string{"lookbak": "1h"}, "lookbak", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadSettings(env(tc.env), tc.flags)
			if err == nil {
				t.Fatal("invalid settings accepted")
			}
			if !strings.Contains(err.Error(), tc.setting) || !strings.Contains(err.Error(), tc.allowed) {
				t.Errorf("error %q should name %q and allow %q", err, tc.setting, tc.allowed)
			}
			var se *SettingError
			if tc.allowed != "" && !errors.As(err, &se) {
				t.Errorf("error %T is not a *SettingError", err)
			}
		})
	}
}

func TestSettingSpecsAreComplete(t *testing.T) {
	seenEnv := map[string]bool{}
	for _, spec := range SettingSpecs {
		if spec.Flag == "" || !strings.HasPrefix(spec.Env, "IMDSGUARD_") || spec.Usage == "" || spec.Allowed == "" || spec.parse == nil {
			t.Errorf("incomplete spec %+v", spec)
		}
		if seenEnv[spec.Env] {
			t.Errorf("env %s defined twice", spec.Env)
		}
		seenEnv[spec.Env] = true
	}
}

package report

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// TestSettingsListEverySetting: the plan's settings are derived from policy.SettingSpecs,
// so a setting added there appears in the plan; this fails if one cannot be echoed.
func TestSettingsListEverySetting(t *testing.T) {
	b, err := json.Marshal(Settings(policy.DefaultSettings()))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, spec := range policy.SettingSpecs {
		if _, ok := got[SettingKey(spec.Flag)]; !ok {
			t.Errorf("setting %s (%s) missing from the plan's settings %s", spec.Flag, SettingKey(spec.Flag), b)
		}
	}
	if len(got) != len(policy.SettingSpecs) {
		t.Errorf("%d settings in the plan, %d in policy.SettingSpecs: %s", len(got), len(policy.SettingSpecs), b)
	}
	// In policy.SettingSpecs order.
	var order []string
	dec := json.NewDecoder(bytes.NewReader(b))
	_, _ = dec.Token()
	for dec.More() {
		key, _ := dec.Token()
		order = append(order, key.(string))
		var skip any
		_ = dec.Decode(&skip)
	}
	var want []string
	for _, spec := range policy.SettingSpecs {
		want = append(want, SettingKey(spec.Flag))
	}
	if !slices.Equal(order, want) {
		t.Errorf("settings in order %v, want %v", order, want)
	}
}

// TestSettingsJSON: the names and types of imdsguard.plan/v1, and a lossless round trip
// of values other than the defaults.
func TestSettingsJSON(t *testing.T) {
	s, err := policy.LoadSettings(func(string) (string, bool) { return "", false }, map[string]string{
		"lookback": "2d", "min-observed-hours": "24", "max-metric-staleness": "90m", "hop-limit": "3",
		"container-hop-limit": "4", "exempt-tag": "team:exempt@now", "mode": "enforce", "container-tags": "a,b/*", "call-timeout": "2m",
		"boot-window": "0h",
	})
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, Settings(s), `{"lookback_hours": 48, "min_observed_hours": 24, "max_metric_staleness": "1h30m",
		"hop_limit": 3, "container_hop_limit": 4, "exempt_tag": "team:exempt@now", "mode": "enforce", "container_tags": ["a", "b/*"], "call_timeout": "2m",
		"boot_window": "0h"}`)

	b, err := json.Marshal(Settings(s))
	if err != nil {
		t.Fatal(err)
	}
	var back Settings
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(policy.Settings(back), s) {
		t.Errorf("round trip: got %+v, want %+v", back, s)
	}
	// A key of a later imdsguard is ignored, not an error.
	if err := json.Unmarshal([]byte(`{"lookback_hours": 1, "from_the_future": true}`), &back); err != nil || back.Lookback.Hours() != 1 {
		t.Errorf("unknown key: %v, %+v", err, back)
	}
	if err := json.Unmarshal([]byte(`{"max_metric_staleness": "soon"}`), &back); err == nil {
		t.Error("a malformed duration decoded without error")
	}
}

func TestFormatDuration(t *testing.T) {
	for in, want := range map[string]string{"3h": "3h", "90m": "1h30m", "2h0m30s": "2h0m30s", "45s": "45s", "336h": "336h", "0h": "0h", "0s": "0h"} {
		d, err := time.ParseDuration(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%s) = %q, want %q", in, got, want)
		}
	}
}

// TestSettingWithoutField: a setting added to policy.SettingSpecs whose value cannot be
// found in policy.Settings fails the rendering, naming it, rather than being left out.
func TestSettingWithoutField(t *testing.T) {
	s := policy.DefaultSettings()
	saved := policy.SettingSpecs
	t.Cleanup(func() { policy.SettingSpecs = saved })
	policy.SettingSpecs = append(append([]policy.SettingSpec{}, saved...), policy.SettingSpec{Flag: "no-such-setting"})
	_, err := json.Marshal(Settings(s))
	if err == nil || !strings.Contains(err.Error(), "no-such-setting") {
		t.Errorf("err = %v, want one naming no-such-setting", err)
	}
	if err := Write(io.Discard, New("test", now, s), FormatJSON); err == nil {
		t.Error("a plan with a setting it cannot echo was written")
	}
}

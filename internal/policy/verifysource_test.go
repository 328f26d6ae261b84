package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerifySource(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	fixedAt := now.Add(-2 * time.Hour)
	window := time.Hour
	launched := func(rejected float64, err error) VerifyInput {
		inst := &Instance{InstanceID: "i-0000000a", State: StateRunning, Options: MetadataOptions{HTTPTokens: TokensRequired, HopLimit: 1}}
		in := VerifyInput{EnforcedAt: fixedAt, Live: &Evidence{InstanceID: inst.InstanceID, Instance: inst}, RejectedErr: err}
		if err == nil {
			in.Rejected = &MetricUsage{Sum: rejected, ObservedHours: 2}
		}
		return in
	}
	base := SourceVerifyInput{FixedAt: fixedAt, FixedVersion: 2, DefaultVersion: 2}
	with := func(m map[string]VerifyInput) SourceVerifyInput { in := base; in.Launched = m; return in }
	for _, tc := range []struct {
		name   string
		in     SourceVerifyInput
		now    time.Time
		step   SourceVerifyStep
		broken string
		note   string
	}{
		{"nothing launched, window passed: nothing proven, keep watching", with(nil), now, SourceWatching, "", "none of the 0"},
		{"one launched and watched a whole window: verified", with(map[string]VerifyInput{"i-0000000a": launched(0, nil)}), now, SourceVerified, "", "1 watched a whole window"},
		{"broken, and the default already put back: finish the rollback",
			SourceVerifyInput{FixedAt: fixedAt, FixedVersion: 2, DefaultVersion: 1, Launched: map[string]VerifyInput{"i-0000000a": launched(3, nil)}}, now, SourceRollBack, "i-0000000a", "rejected"},
		{"nothing launched yet, inside the window", with(nil), fixedAt.Add(time.Minute), SourceWatching, "", "window ends"},
		{"a launched instance had calls rejected", with(map[string]VerifyInput{"i-0000000a": launched(3, nil), "i-0000000b": launched(0, nil)}), now, SourceRollBack, "i-0000000a", "1 of the 2"},
		{"rejected calls unreadable: keep watching", with(map[string]VerifyInput{"i-0000000a": launched(0, errors.New("throttled"))}), now, SourceWatching, "", "could not be read"},
		{"default version changed outside", SourceVerifyInput{FixedAt: fixedAt, FixedVersion: 2, DefaultVersion: 3}, now, SourceEnded, "", "outside"},
		{"template gone", SourceVerifyInput{FixedAt: fixedAt, FixedVersion: 2}, now, SourceEnded, "", "no longer exists"},
		{"listing failed", SourceVerifyInput{FixedAt: fixedAt, FixedVersion: 2, DefaultVersion: 2, LaunchedErr: errors.New("denied")}, now, SourceWatching, "", "denied"},
	} {
		v := VerifySource(tc.in, window, tc.now)
		if v.Step != tc.step || strings.Join(v.Broken, ",") != tc.broken || !strings.Contains(v.Reasons[0].Detail, tc.note) {
			t.Errorf("%s: %+v, want step %d, broken %q, saying %q", tc.name, v, tc.step, tc.broken, tc.note)
		}
	}
}

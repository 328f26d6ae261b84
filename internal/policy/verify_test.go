package policy

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	const window = 72 * time.Hour
	enforcedAt := now.Add(-80 * time.Hour)
	enforced := func(mods ...func(*Instance)) *Evidence {
		inst := running(append([]func(*Instance){withTokens(TokensRequired), withHop(1)}, mods...)...)
		return &Evidence{InstanceID: inst.InstanceID, Instance: inst}
	}
	clean := func(hours int) *MetricUsage {
		return &MetricUsage{ObservedHours: hours, LastDatapoint: ptime(now.Add(-time.Hour))}
	}
	rejected := &MetricUsage{Sum: 6, ObservedHours: 80, LastNonZero: ptime(now.Add(-5 * time.Hour)), LastDatapoint: ptime(now.Add(-time.Hour))}
	tests := []struct {
		name   string
		in     VerifyInput
		step   VerifyStep
		codes  string
		detail string // a part of the primary reason's detail
	}{
		{"a full window observed clean is verified",
			VerifyInput{EnforcedAt: enforcedAt, Live: enforced(), Rejected: clean(72)},
			VerifyVerified, "verified", "72 observed hours"},
		{"rejected calls roll back",
			VerifyInput{EnforcedAt: enforcedAt, Live: enforced(), Rejected: rejected},
			VerifyRollBack, "imdsv1-rejected", "rejected 6 IMDSv1 calls"},
		{"rejected calls say when the last was",
			VerifyInput{EnforcedAt: enforcedAt, Live: enforced(), Rejected: rejected},
			VerifyRollBack, "imdsv1-rejected", now.Add(-5 * time.Hour).Format(time.RFC3339)},
		{"one rejected call in the first hour rolls back",
			VerifyInput{EnforcedAt: now.Add(-30 * time.Minute), Live: enforced(), Rejected: &MetricUsage{Sum: 1, ObservedHours: 1}},
			VerifyRollBack, "imdsv1-rejected", "rejected 1 IMDSv1 calls"},
		{"no datapoint keeps it watched, never verified",
			VerifyInput{EnforcedAt: enforcedAt, Live: enforced(), Rejected: &MetricUsage{}},
			VerifyWatching, "verifying", "0 of the 72 hours"},
		{"too few observed hours keep it watched after the window's time",
			VerifyInput{EnforcedAt: enforcedAt, Live: enforced(), Rejected: clean(71)},
			VerifyWatching, "verifying", "71 of the 72 hours"},
		{"the window's time must pass too",
			VerifyInput{EnforcedAt: now.Add(-10 * time.Hour), Live: enforced(), Rejected: clean(72)},
			VerifyWatching, "verifying", "72 of the 72 hours"},
		{"a failed read keeps it watched",
			VerifyInput{EnforcedAt: enforcedAt, Live: enforced(), RejectedErr: errors.New("Throttling")},
			VerifyWatching, "evidence-error", "Throttling"},
		{"an unread metric keeps it watched",
			VerifyInput{EnforcedAt: enforcedAt, Live: enforced()},
			VerifyWatching, "evidence-error", "not read"},
		{"a sum that is not a count keeps it watched, never rolls back",
			VerifyInput{EnforcedAt: enforcedAt, Live: enforced(), Rejected: &MetricUsage{Sum: math.Inf(1), ObservedHours: 80}},
			VerifyWatching, "evidence-error", "not a count"},
		{"an instance not described is never rolled back",
			VerifyInput{EnforcedAt: enforcedAt, Rejected: rejected},
			VerifyWatching, "verifying", "not described"},
		{"a failed describe is never rolled back",
			VerifyInput{EnforcedAt: enforcedAt, Live: &Evidence{InventoryErr: errors.New("UnauthorizedOperation")}, Rejected: rejected},
			VerifyWatching, "verifying", "UnauthorizedOperation"},
		{"a gone instance ends",
			VerifyInput{EnforcedAt: enforcedAt, Live: &Evidence{InstanceID: "i-0123456789abcdef0"}, Rejected: rejected},
			VerifyEnded, "terminated", "no longer exists"},
		{"a terminated instance ends",
			VerifyInput{EnforcedAt: enforcedAt, Live: enforced(withState(StateTerminated)), Rejected: rejected},
			VerifyEnded, "terminated", "no longer exists"},
		{"reverted outside imdsguard after rejected calls counts as rolled back",
			VerifyInput{EnforcedAt: enforcedAt, Live: enforced(withTokens(TokensOptional)), Rejected: rejected},
			VerifyRevertedBroken, "imdsv1-rejected,reverted-outside", "rejected 6"},
		{"reverted outside imdsguard without rejected calls ends",
			VerifyInput{EnforcedAt: enforcedAt, Live: enforced(withTokens(TokensOptional)), Rejected: clean(80)},
			VerifyEnded, "reverted-outside", "HttpTokens is optional again"},
		{"reverted outside imdsguard, rejected calls unreadable, ends",
			VerifyInput{EnforcedAt: enforcedAt, Live: enforced(withTokens(TokensOptional)), RejectedErr: errors.New("AccessDenied")},
			VerifyEnded, "reverted-outside,evidence-error", "optional again"},
		{"a stopped instance keeps being watched: its hours are not observed",
			VerifyInput{EnforcedAt: enforcedAt, Live: enforced(withState(StateStopped)), Rejected: clean(40)},
			VerifyWatching, "verifying", "40 of the 72 hours"},
		{"no enforcement time keeps it watched",
			VerifyInput{Live: enforced(), Rejected: rejected},
			VerifyWatching, "verifying", "no time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Verify(tc.in, window, now)
			var codes []string
			for _, r := range v.Reasons {
				codes = append(codes, string(r.Code))
				if r.Detail == "" {
					t.Errorf("reason %s has no detail", r.Code)
				}
			}
			if v.Step != tc.step || strings.Join(codes, ",") != tc.codes {
				t.Errorf("Verify = step %d %v, want step %d %s (%+v)", v.Step, codes, tc.step, tc.codes, v.Reasons)
			}
			if len(v.Reasons) > 0 && !strings.Contains(v.Reasons[0].Detail, tc.detail) {
				t.Errorf("detail %q does not say %q", v.Reasons[0].Detail, tc.detail)
			}
		})
	}
}

func TestRejectedWindowAndHours(t *testing.T) {
	start, end := RejectedWindow(time.Date(2026, 11, 20, 9, 41, 0, 0, time.UTC), now)
	if want := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC); !start.Equal(want) {
		t.Errorf("start %s, want %s: the hour of the enforcement", start, want)
	}
	if want := time.Date(2026, 11, 22, 11, 0, 0, 0, time.UTC); !end.Equal(want) {
		t.Errorf("end %s, want %s: the end of the current hour", end, want)
	}
	for window, want := range map[time.Duration]int{72 * time.Hour: 72, 90 * time.Minute: 2, time.Hour: 1} {
		if got := VerifyWindowHours(window); got != want {
			t.Errorf("VerifyWindowHours(%s) = %d, want %d", window, got, want)
		}
	}
}

func TestRollbackTarget(t *testing.T) {
	snap := MetadataOptions{HTTPTokens: TokensOptional, HopLimit: 2, HTTPEndpoint: EndpointEnabled, State: "applied"}
	live := MetadataOptions{HTTPTokens: TokensRequired, HopLimit: 1, HTTPEndpoint: EndpointDisable, State: "applied"}
	got := RollbackTarget(snap, live)
	want := MetadataOptions{HTTPTokens: TokensOptional, HopLimit: 2, HTTPEndpoint: EndpointDisable}
	if got != want {
		t.Errorf("RollbackTarget = %+v, want %+v: tokens and hop limit restored, the endpoint as it is", got, want)
	}
}

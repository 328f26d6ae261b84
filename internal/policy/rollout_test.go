package policy

import (
	"strings"
	"testing"
	"time"
)

var testWaves = []Wave{
	{Key: "Environment", Values: []string{"dev", "development"}},
	{Key: "Environment", Values: []string{"test", "qa"}},
	{Key: "Environment", Values: []string{"staging"}},
}

func TestWaveOf(t *testing.T) {
	tests := []struct {
		tags map[string]string
		want int
	}{
		{map[string]string{"Environment": "dev"}, 0},
		{map[string]string{"Environment": "Development"}, 0},
		{map[string]string{"Environment": " QA "}, 1},
		{map[string]string{"Environment": "staging"}, 2},
		{map[string]string{"Environment": "prod"}, 3},
		{map[string]string{"environment": "dev"}, 3}, // tag keys are case-sensitive in AWS
		{map[string]string{}, 3},
	}
	for _, tc := range tests {
		if got := WaveOf(Instance{Tags: tc.tags}, testWaves); got != tc.want {
			t.Errorf("WaveOf(%v) = %d, want %d", tc.tags, got, tc.want)
		}
	}
	if got := WaveName(testWaves, 3); got != "everything else" {
		t.Errorf("last wave named %q", got)
	}
	if got := WaveName(testWaves, 0); got != "Environment=dev|development" {
		t.Errorf("first wave named %q", got)
	}
}

func TestRolloutGate(t *testing.T) {
	s := RolloutSettings{MaxPerHour: 25, Waves: testWaves, WaveSoak: 24 * time.Hour, BreakerRollbacks: 3}
	inWave := func(env string) Instance { return *running(withTag("Environment", env)) }
	settled := func(ago time.Duration) WaveState { return WaveState{LastSettled: now.Add(-ago)} }
	tests := []struct {
		name   string
		inst   Instance
		st     RolloutState
		code   ReasonCode // empty: allowed
		detail string
	}{
		{"the first wave goes at once", inWave("dev"), RolloutState{}, "", ""},
		{"nothing enforced anywhere yet: every wave may go", inWave("prod"), RolloutState{}, "", ""},
		{"paused blocks everything", inWave("dev"), RolloutState{Paused: true, PausedBy: "/imdsguard/paused = true"},
			ReasonPaused, "/imdsguard/paused"},
		{"an open breaker blocks everything", inWave("dev"),
			RolloutState{BreakerOpenedAt: now.Add(-time.Hour), BreakerWhy: "3 rollbacks within 24h"},
			ReasonBreakerOpen, "--reset-breaker"},
		{"pause is said before the breaker", inWave("dev"),
			RolloutState{Paused: true, PausedBy: "x", BreakerOpenedAt: now.Add(-time.Hour)}, ReasonPaused, ""},
		{"a later wave waits while an earlier one verifies", inWave("staging"),
			RolloutState{Waves: []WaveState{settled(48 * time.Hour), {Verifying: 2}}},
			ReasonWaitingForWave, "wave 3 (Environment=staging) waits for wave 2 (Environment=test|qa): 2 of its enforced instances"},
		{"a later wave waits for the soak", inWave("prod"),
			RolloutState{Waves: []WaveState{settled(48 * time.Hour), settled(48 * time.Hour), settled(3 * time.Hour)}},
			ReasonWaitingForWave, "to soak"},
		{"after the soak the next wave goes", inWave("prod"),
			RolloutState{Waves: []WaveState{settled(48 * time.Hour), settled(30 * time.Hour), settled(25 * time.Hour)}},
			"", ""},
		{"a rollback settles a wave too, and starts its soak", inWave("test"),
			RolloutState{Waves: []WaveState{settled(time.Hour)}}, ReasonWaitingForWave, "to soak"},
		{"an earlier wave is never held back by a later one", inWave("dev"),
			RolloutState{Waves: []WaveState{{}, {Verifying: 5}, {}, {Verifying: 9}}}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := RolloutGate(tc.inst, tc.st, s, now)
			if g.Allowed != (tc.code == "") || g.Reason.Code != tc.code {
				t.Fatalf("gate = %+v, want code %q", g, tc.code)
			}
			if !strings.Contains(g.Reason.Detail, tc.detail) {
				t.Errorf("detail %q does not say %q", g.Reason.Detail, tc.detail)
			}
		})
	}
}

func TestBudgetSpent(t *testing.T) {
	s := RolloutSettings{MaxPerHour: 25, MaxPerSweep: 10}
	hour := BudgetSpent(BudgetHour, s, now)
	if hour.Allowed || hour.Reason.Code != ReasonRolloutBudget || !strings.Contains(hour.Reason.Detail, "25 enforcements") ||
		!strings.Contains(hour.Reason.Detail, "2026-11-22T11:00:00Z") {
		t.Errorf("hour budget: %+v", hour)
	}
	sweep := BudgetSpent(BudgetSweep, s, now)
	if sweep.Allowed || sweep.Reason.Code != ReasonRolloutBudget || !strings.Contains(sweep.Reason.Detail, "10 enforcements") {
		t.Errorf("sweep budget: %+v", sweep)
	}
	if got := BudgetHourOf(now); !got.Equal(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("BudgetHourOf = %s", got)
	}
}

func TestBreakerTrips(t *testing.T) {
	s := RolloutSettings{BreakerRollbacks: 3}
	ago := func(hs ...int) []time.Time {
		var out []time.Time
		for _, h := range hs {
			out = append(out, now.Add(-time.Duration(h)*time.Hour))
		}
		return out
	}
	tests := []struct {
		name      string
		rollbacks []time.Time
		want      bool
	}{
		{"three within a day trip it", ago(1, 5, 23), true},
		{"two do not", ago(1, 5), false},
		{"the third a day ago does not count", ago(1, 5, 24), false},
		{"four trip it", ago(0, 1, 2, 3), true},
		{"rollbacks in the future do not count", append(ago(1, 2), now.Add(time.Hour)), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, why := BreakerTrips(tc.rollbacks, s, now)
			if got != tc.want || (got && !strings.Contains(why, "rollbacks within 24h")) {
				t.Errorf("BreakerTrips = %v %q, want %v", got, why, tc.want)
			}
		})
	}
	if got, _ := BreakerTrips(ago(1, 2, 3, 4), RolloutSettings{}, now); got {
		t.Error("a breaker set to 0 rollbacks tripped")
	}
}

func TestParseWaves(t *testing.T) {
	waves, err := ParseWaves(DefaultWaves)
	if err != nil || len(waves) != 3 || waves[0].Name() != "Environment=dev|development" || waves[2].Values[1] != "stage" {
		t.Fatalf("ParseWaves(DefaultWaves) = %+v, %v", waves, err)
	}
	if waves, err := ParseWaves(""); err != nil || waves != nil {
		t.Errorf("no waves: %+v, %v", waves, err)
	}
	if waves, err := ParseWaves("team=red|blue"); err != nil || len(waves) != 1 || WaveOf(Instance{Tags: map[string]string{"team": "BLUE"}}, waves) != 0 {
		t.Errorf("one wave: %+v, %v", waves, err)
	}
	for _, bad := range []string{"Environment", "=dev", "Environment=", "Environment=dev|", "Environment=dev;", " Environment=dev", "Environment= dev", "a=b;;c=d"} {
		if _, err := ParseWaves(bad); err == nil {
			t.Errorf("ParseWaves(%q) was accepted", bad)
		}
	}
}

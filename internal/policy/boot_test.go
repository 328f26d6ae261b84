package policy

import (
	"testing"
	"time"
)

func TestBootWindowOf(t *testing.T) {
	lookbackStart, _ := LookbackWindow(now, DefaultSettings().Lookback) // 2026-11-08T11:00Z
	at := func(s string) time.Time {
		t.Helper()
		ts, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	tests := []struct {
		name       string
		launch     time.Time
		window     time.Duration
		start, end time.Time
		read       bool
	}{
		{"launched mid-hour: from its hour to the hour the window ends in",
			at("2026-10-01T10:50:00Z"), 2 * time.Hour, at("2026-10-01T10:00:00Z"), at("2026-10-01T13:00:00Z"), true},
		{"launched on the hour",
			at("2026-10-01T10:00:00Z"), 2 * time.Hour, at("2026-10-01T10:00:00Z"), at("2026-10-01T13:00:00Z"), true},
		{"a one-hour window",
			at("2026-10-01T10:20:00Z"), time.Hour, at("2026-10-01T10:00:00Z"), at("2026-10-01T12:00:00Z"), true},
		{"an hour before the lookback is read",
			lookbackStart.Add(-time.Hour), 2 * time.Hour, lookbackStart.Add(-time.Hour), lookbackStart.Add(2 * time.Hour), true},
		{"in the lookback's first hour: the lookback saw it",
			lookbackStart.Add(10 * time.Minute), 2 * time.Hour, lookbackStart, lookbackStart.Add(3 * time.Hour), false},
		{"inside the lookback",
			now.Add(-48 * time.Hour), 2 * time.Hour, now.Add(-48 * time.Hour).Truncate(time.Hour), now.Add(-45 * time.Hour).Truncate(time.Hour), false},
		{"older than CloudWatch keeps hourly data",
			now.Add(-456 * 24 * time.Hour), 2 * time.Hour, now.Add(-456 * 24 * time.Hour).Truncate(time.Hour), now.Add(-456*24*time.Hour + 3*time.Hour).Truncate(time.Hour), false},
		{"the rule turned off", at("2026-10-01T10:50:00Z"), 0, time.Time{}, time.Time{}, false},
		{"no launch time", time.Time{}, 2 * time.Hour, time.Time{}, time.Time{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := DefaultSettings()
			s.BootWindow = tc.window
			start, end, read := BootWindowOf(*running(launched(tc.launch)), s, now)
			if !start.Equal(tc.start) || !end.Equal(tc.end) || read != tc.read {
				t.Errorf("BootWindowOf = %s, %s, %v; want %s, %s, %v", start, end, read, tc.start, tc.end, tc.read)
			}
		})
	}
}

func TestBootWindowSetting(t *testing.T) {
	for value, want := range map[string]time.Duration{"0h": 0, "1h": time.Hour, "2h": 2 * time.Hour, "24h": 24 * time.Hour} {
		s, err := LoadSettings(env(map[string]string{"IMDSGUARD_BOOT_WINDOW": value}), nil)
		if err != nil || s.BootWindow != want {
			t.Errorf("IMDSGUARD_BOOT_WINDOW=%s: %v, %v; want %v", value, s.BootWindow, err, want)
		}
	}
	for _, value := range []string{"00h", "25h", "2", "90m", "-1h", " 2h", "0"} {
		if _, err := LoadSettings(env(map[string]string{"IMDSGUARD_BOOT_WINDOW": value}), nil); err == nil {
			t.Errorf("IMDSGUARD_BOOT_WINDOW=%q was accepted", value)
		}
	}
}

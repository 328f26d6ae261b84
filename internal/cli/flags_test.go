package cli

import (
	"errors"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// TestSettingFlagsShowTheirKind: every setting of policy.SettingSpecs is a flag of plan
// whose type is the setting's kind, with the setting's default, so the help reads
// "--hop-limit int" and "--lookback duration" rather than "string" for all.
func TestSettingFlagsShowTheirKind(t *testing.T) {
	plan := newPlanCommand(Env{})
	for _, spec := range policy.SettingSpecs {
		f := plan.Flags().Lookup(spec.Flag)
		if f == nil {
			t.Errorf("plan has no flag --%s", spec.Flag)
			continue
		}
		if got := f.Value.Type(); got != string(spec.Kind) || got == "" {
			t.Errorf("--%s has type %q, want the setting's kind %q", spec.Flag, got, spec.Kind)
		}
		if f.DefValue != spec.Default {
			t.Errorf("--%s defaults to %q, want %q", spec.Flag, f.DefValue, spec.Default)
		}
		if !strings.Contains(f.Usage, spec.Env) {
			t.Errorf("--%s: usage %q does not name %s", spec.Flag, f.Usage, spec.Env)
		}
	}

	w := &world{}
	code, help, stderr := w.run(t, "plan", "--help")
	if code != ExitOK {
		t.Fatalf("plan --help exited %d: %s", code, stderr)
	}
	for _, want := range []string{
		"--hop-limit int ", "--container-hop-limit int ", "--min-observed-hours int ",
		"--lookback duration ", "--max-metric-staleness duration ", "--call-timeout duration ",
		"--container-tags strings ", "--mode string ", "--region region ",
		"(default 336h)", "(default 168)", `(default "dry-run")`,
	} {
		if !strings.Contains(help, want) {
			t.Errorf("plan --help does not show %q:\n%s", want, help)
		}
	}
	// No number or duration is announced as a string.
	for _, spec := range policy.SettingSpecs {
		if spec.Kind == policy.KindText {
			continue
		}
		if regexp.MustCompile(`--` + regexp.QuoteMeta(spec.Flag) + ` string\b`).MatchString(help) {
			t.Errorf("plan --help shows --%s as a string", spec.Flag)
		}
	}
}

// TestSettingFlagsAreValidatedByPolicy: the typed flags take their text as given, and
// policy.LoadSettings alone judges it, as it judges the environment: spellings a Go int
// or duration flag would take (01, +2, 1h30m) are refused with the setting's allowed
// values, and spellings it would refuse (14d) are accepted.
func TestSettingFlagsAreValidatedByPolicy(t *testing.T) {
	noEnv := Env{LookupEnv: func(string) (string, bool) { return "", false }}
	load := func(t *testing.T, args ...string) (policy.Settings, error) {
		t.Helper()
		cmd := &cobra.Command{Use: "plan"}
		flags := map[string]*string{}
		addSettingFlags(cmd, flags)
		if got, want := slices.Sorted(maps.Keys(flags)), settingFlagNames(); !slices.Equal(got, want) {
			t.Fatalf("setting flags %v, want %v", got, want)
		}
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatalf("parsing %v: %v", args, err)
		}
		return loadSettings(cmd, noEnv, flags)
	}

	s, err := load(t, "--lookback", "14d", "--hop-limit", "3", "--min-observed-hours", "200", "--call-timeout", "2m")
	if err != nil {
		t.Fatal(err)
	}
	if s.Lookback != 14*24*time.Hour || s.HopLimit != 3 || s.MinObservedHours != 200 || s.CallTimeout != 2*time.Minute {
		t.Errorf("settings %+v", s)
	}
	if s.MaxMetricStaleness != 3*time.Hour || s.Mode != policy.ModeDryRun {
		t.Errorf("settings not given are not the defaults: %+v", s)
	}

	for _, tc := range []struct{ flag, value string }{
		{"hop-limit", "01"}, {"hop-limit", "+2"}, {"min-observed-hours", "1e2"},
		{"max-metric-staleness", "1h30m"}, {"call-timeout", "30"},
	} {
		_, err := load(t, "--"+tc.flag, tc.value)
		var usage usageError
		if err == nil || !strings.Contains(err.Error(), "--"+tc.flag) || !strings.Contains(err.Error(), "allowed:") {
			t.Errorf("--%s %s: error %v, want the setting's message naming the allowed values", tc.flag, tc.value, err)
		} else if !errors.As(err, &usage) {
			t.Errorf("--%s %s: %T is not misuse", tc.flag, tc.value, err)
		}
	}
}

func settingFlagNames() []string {
	var names []string
	for _, spec := range policy.SettingSpecs {
		names = append(names, spec.Flag)
	}
	slices.Sort(names)
	return names
}

// TestCompletion: cobra's completion command writes the scripts, and the flags with a
// closed list of values complete them.
func TestCompletion(t *testing.T) {
	w := &world{}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		code, stdout, stderr := w.run(t, "completion", shell)
		if code != ExitOK || !strings.Contains(stdout, "imdsguard") || len(stdout) < 1000 {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", shell, code, len(stdout), stderr)
		}
	}
	for flag, want := range map[string][]string{
		"--mode":   {"report", "dry-run", "enforce"},
		"--format": {"table", "json", "csv", "csv-sources", "markdown"},
	} {
		code, stdout, stderr := w.run(t, cobra.ShellCompRequestCmd, "plan", flag, "")
		if code != ExitOK {
			t.Errorf("completing %s: exit %d: %s", flag, code, stderr)
			continue
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		// The last line is cobra's directive (":4": no file completion).
		if got := lines[:len(lines)-1]; !slices.Equal(got, want) || lines[len(lines)-1] != ":4" {
			t.Errorf("completing %s: %q, want %q then :4", flag, lines, want)
		}
	}
}

package lambdaenv

import (
	"errors"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/policy"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

const jiraARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:imdsguard/jira-AbC123"

func TestLoadDefaults(t *testing.T) {
	d, err := LoadDetect(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if d.ConfigRuleMatch != "ec2-imdsv2-check" || !reflect.DeepEqual(d.Guard, policy.DefaultSettings()) {
		t.Errorf("detect defaults = %+v", d)
	}
	r, err := LoadRemediate(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	waves, _ := policy.ParseWaves(policy.DefaultWaves)
	want := Remediate{Guard: policy.DefaultSettings(), MaxVerdictAge: time.Hour, Tickets: Tickets{Backend: "sns", JiraIssueType: "Task"},
		Rollout:        policy.RolloutSettings{MaxPerHour: 25, Waves: waves, WaveSoak: 24 * time.Hour},
		PauseParameter: "/imdsguard/paused"}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("remediate defaults = %+v, want %+v", r, want)
	}
}

func TestLoadRemediate(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want Remediate
	}{
		{map[string]string{"IMDSGUARD_TICKET_BACKEND": "jira", "IMDSGUARD_JIRA_SECRET_ARN": jiraARN, "IMDSGUARD_JIRA_PROJECT": "SEC",
			"IMDSGUARD_JIRA_ISSUE_TYPE": "Security Bug", "IMDSGUARD_JIRA_LABELS": "imdsguard,security", "IMDSGUARD_MAX_VERDICT_AGE": "90m"},
			Remediate{MaxVerdictAge: 90 * time.Minute, Tickets: Tickets{Backend: "jira", JiraSecretARN: jiraARN, JiraProject: "SEC",
				JiraIssueType: "Security Bug", JiraLabels: []string{"imdsguard", "security"}}}},
		{map[string]string{"IMDSGUARD_TICKET_BACKEND": "opscenter", "IMDSGUARD_JIRA_PROJECT": "", "IMDSGUARD_MAX_VERDICT_AGE": "24h"},
			Remediate{MaxVerdictAge: 24 * time.Hour, Tickets: Tickets{Backend: "opscenter", JiraIssueType: "Task"}}},
		{map[string]string{"IMDSGUARD_MAX_VERDICT_AGE": "5m", "IMDSGUARD_JIRA_LABELS": "a"},
			Remediate{MaxVerdictAge: 5 * time.Minute, Tickets: Tickets{Backend: "sns", JiraIssueType: "Task", JiraLabels: []string{"a"}}}},
		{map[string]string{"IMDSGUARD_MAX_ENFORCE_PER_HOUR": "3", "IMDSGUARD_MAX_ENFORCE_PER_SWEEP": "2", "IMDSGUARD_WAVES": "team=red|blue",
			"IMDSGUARD_WAVE_SOAK": "0h", "IMDSGUARD_PAUSE_PARAMETER": "/ops/imdsguard-pause"},
			Remediate{MaxVerdictAge: time.Hour, Tickets: Tickets{Backend: "sns", JiraIssueType: "Task"},
				Rollout:        policy.RolloutSettings{MaxPerHour: 3, MaxPerSweep: 2, Waves: []policy.Wave{{Key: "team", Values: []string{"red", "blue"}}}},
				PauseParameter: "/ops/imdsguard-pause"}},
		{map[string]string{"IMDSGUARD_WAVES": ""},
			Remediate{MaxVerdictAge: time.Hour, Tickets: Tickets{Backend: "sns", JiraIssueType: "Task"},
				Rollout: policy.RolloutSettings{MaxPerHour: 25, WaveSoak: 24 * time.Hour}, PauseParameter: "/imdsguard/paused"}},
	}
	defaults := func(r Remediate) Remediate {
		if r.Rollout.MaxPerHour == 0 {
			waves, _ := policy.ParseWaves(policy.DefaultWaves)
			r.Rollout = policy.RolloutSettings{MaxPerHour: 25, Waves: waves, WaveSoak: 24 * time.Hour}
			r.PauseParameter = "/imdsguard/paused"
		}
		return r
	}
	for _, tc := range tests {
		got, err := LoadRemediate(env(tc.env))
		if err != nil {
			t.Errorf("%v: %v", tc.env, err)
			continue
		}
		tc.want.Guard = policy.DefaultSettings()
		tc.want = defaults(tc.want)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v:\n got %+v\nwant %+v", tc.env, got, tc.want)
		}
	}
}

func TestLoadInvalid(t *testing.T) {
	jira := func(extra ...string) map[string]string {
		m := map[string]string{"IMDSGUARD_TICKET_BACKEND": "jira", "IMDSGUARD_JIRA_SECRET_ARN": jiraARN, "IMDSGUARD_JIRA_PROJECT": "SEC"}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	tests := []struct {
		name   string
		detect bool // LoadDetect, not LoadRemediate
		env    map[string]string
		want   []string // parts of the error
	}{
		{"backend typo", false, map[string]string{"IMDSGUARD_TICKET_BACKEND": "Jira"}, []string{"IMDSGUARD_TICKET_BACKEND", `"Jira"`, "sns, opscenter or jira"}},
		{"backend with a space", false, map[string]string{"IMDSGUARD_TICKET_BACKEND": "sns "}, []string{"IMDSGUARD_TICKET_BACKEND", "TicketBackend"}},
		{"backend empty", false, map[string]string{"IMDSGUARD_TICKET_BACKEND": ""}, []string{"IMDSGUARD_TICKET_BACKEND"}},
		{"jira without its secret", false, jira("IMDSGUARD_JIRA_SECRET_ARN", ""), []string{"IMDSGUARD_JIRA_SECRET_ARN", "TicketBackend=jira needs JiraSecretArn"}},
		{"jira without its project", false, jira("IMDSGUARD_JIRA_PROJECT", ""), []string{"IMDSGUARD_JIRA_PROJECT", "TicketBackend=jira needs JiraProject"}},
		{"jira with nothing", false, map[string]string{"IMDSGUARD_TICKET_BACKEND": "jira"}, []string{"JiraSecretArn"}},
		{"partial secret ARN", false, jira("IMDSGUARD_JIRA_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:imdsguard/jira"), []string{"IMDSGUARD_JIRA_SECRET_ARN", "full ARN"}},
		{"secret ARN with a space", false, jira("IMDSGUARD_JIRA_SECRET_ARN", jiraARN+" "), []string{"IMDSGUARD_JIRA_SECRET_ARN"}},
		{"project in lower case", false, jira("IMDSGUARD_JIRA_PROJECT", "sec"), []string{"IMDSGUARD_JIRA_PROJECT", "capital letters"}},
		{"a bad project even for sns", false, map[string]string{"IMDSGUARD_JIRA_PROJECT": "sec"}, []string{"IMDSGUARD_JIRA_PROJECT"}},
		{"issue type empty", false, jira("IMDSGUARD_JIRA_ISSUE_TYPE", ""), []string{"IMDSGUARD_JIRA_ISSUE_TYPE", "1 to 60"}},
		{"issue type with a leading space", false, jira("IMDSGUARD_JIRA_ISSUE_TYPE", " Task"), []string{"IMDSGUARD_JIRA_ISSUE_TYPE", "space"}},
		{"issue type too long", false, jira("IMDSGUARD_JIRA_ISSUE_TYPE", strings.Repeat("a", 61)), []string{"IMDSGUARD_JIRA_ISSUE_TYPE"}},
		{"labels with a trailing comma", false, jira("IMDSGUARD_JIRA_LABELS", "a,"), []string{"IMDSGUARD_JIRA_LABELS", "comma-separated"}},
		{"labels with a space", false, jira("IMDSGUARD_JIRA_LABELS", "a, b"), []string{"IMDSGUARD_JIRA_LABELS"}},
		{"verdict age under 5m", false, map[string]string{"IMDSGUARD_MAX_VERDICT_AGE": "4m"}, []string{"IMDSGUARD_MAX_VERDICT_AGE", "MaxVerdictAge", "5m to 1440m"}},
		{"verdict age over a day", false, map[string]string{"IMDSGUARD_MAX_VERDICT_AGE": "25h"}, []string{"IMDSGUARD_MAX_VERDICT_AGE", "1h to 24h"}},
		{"verdict age compound", false, map[string]string{"IMDSGUARD_MAX_VERDICT_AGE": "1h30m"}, []string{"IMDSGUARD_MAX_VERDICT_AGE"}},
		{"verdict age in seconds", false, map[string]string{"IMDSGUARD_MAX_VERDICT_AGE": "3600s"}, []string{"IMDSGUARD_MAX_VERDICT_AGE"}},
		{"guard setting", false, map[string]string{"IMDSGUARD_LOOKBACK": "100d"}, []string{"IMDSGUARD_LOOKBACK", `"100d"`}},
		{"rule match with a space", true, map[string]string{"IMDSGUARD_CONFIG_RULE_MATCH": "ec2 imdsv2"}, []string{"IMDSGUARD_CONFIG_RULE_MATCH", "1 to 64 letters"}},
		{"rule match empty", true, map[string]string{"IMDSGUARD_CONFIG_RULE_MATCH": ""}, []string{"IMDSGUARD_CONFIG_RULE_MATCH"}},
		{"rule match too long", true, map[string]string{"IMDSGUARD_CONFIG_RULE_MATCH": strings.Repeat("a", 65)}, []string{"IMDSGUARD_CONFIG_RULE_MATCH"}},
		{"detect checks the guard settings", true, map[string]string{"IMDSGUARD_MIN_OBSERVED_HOURS": "200", "IMDSGUARD_LOOKBACK": "8d"}, []string{"min-observed-hours", "9d (216h)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.detect {
				_, err = LoadDetect(env(tc.env))
			} else {
				_, err = LoadRemediate(env(tc.env))
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			var se *SettingError
			var pe *policy.SettingError
			if !errors.As(err, &se) && !errors.As(err, &pe) {
				t.Errorf("error %T is not a SettingError", err)
			}
		})
	}
}

func TestSpecsAreComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Specs {
		if !strings.HasPrefix(s.Env, "IMDSGUARD_") || s.Param == "" || s.Usage == "" || s.Allowed == "" {
			t.Errorf("incomplete spec %+v", s)
		}
		if !s.Constraint.Allows(s.Default) {
			t.Errorf("%s: the default %q is not allowed", s.Env, s.Default)
		}
		if seen[s.Env] || seen[s.Param] {
			t.Errorf("%s or %s defined twice", s.Env, s.Param)
		}
		seen[s.Env], seen[s.Param] = true, true
	}
	read := map[string]int{}
	for _, list := range [][]Spec{DetectSpecs, RemediateSpecs, VerifySpecs} {
		for _, s := range list {
			read[s.Param]++
		}
	}
	// The waves are the one setting two functions share: detect puts a source fix in
	// a wave, remediate holds enforcements to them.
	shared := map[string]int{Waves.Param: 2}
	for _, s := range Specs {
		if want := max(1, shared[s.Param]); read[s.Param] != want {
			t.Errorf("%s is read by %d functions, want %d", s.Param, read[s.Param], want)
		}
	}
	for _, r := range Rules {
		for _, p := range []string{r.When.Param, r.Assertions[0].Assert.Param, r.Assertions[1].Assert.Param} {
			if !seen[p] {
				t.Errorf("rule %s tests %s, which no Spec defines", r.Name, p)
			}
		}
	}
}

// TestMaxVerdictAgePatternIsParse: the template's pattern accepts exactly what the
// function does.
func TestMaxVerdictAgePatternIsParse(t *testing.T) {
	re := regexp.MustCompile(`^(?:` + MaxVerdictAge.Constraint.Pattern() + `)$`)
	var accepted int
	for n := range 3000 {
		for _, unit := range []string{"", "s", "m", "h", "d"} {
			for _, v := range []string{strconv.Itoa(n) + unit, "0" + strconv.Itoa(n) + unit, strconv.Itoa(n) + unit + " "} {
				ok := MaxVerdictAge.Constraint.Allows(v)
				if ok != re.MatchString(v) {
					t.Errorf("%q: the function accepts: %t, the pattern: %t", v, ok, !ok)
				}
				if ok {
					accepted++
				}
			}
		}
	}
	if accepted != 1436+24 {
		t.Errorf("%d spellings accepted, want 1460 (5m to 1440m, 1h to 24h)", accepted)
	}
}

func TestLoadVerify(t *testing.T) {
	v, err := LoadVerify(env(nil))
	if err != nil || v.Window != 72*time.Hour || v.BreakerRollbacks != 3 || !reflect.DeepEqual(v.Guard, policy.DefaultSettings()) {
		t.Errorf("verify defaults = %+v, %v", v, err)
	}
	v, err = LoadVerify(env(map[string]string{"IMDSGUARD_VERIFY_WINDOW": "1h", "IMDSGUARD_BREAKER_ROLLBACKS": "0"}))
	if err != nil || v.Window != time.Hour || v.BreakerRollbacks != 0 {
		t.Errorf("verify = %+v, %v", v, err)
	}
	for name, value := range map[string]string{"IMDSGUARD_VERIFY_WINDOW": "0h", "IMDSGUARD_BREAKER_ROLLBACKS": "101"} {
		if _, err := LoadVerify(env(map[string]string{name: value})); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: %v, want an error naming it", name, value, err)
		}
	}
}

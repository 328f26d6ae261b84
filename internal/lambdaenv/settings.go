package lambdaenv

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// Spec defines once a setting that only the Lambda functions read (the CLI has no flag
// for it): its environment variable, the template.yaml parameter that sets it, its
// default and its allowed values. template.yaml's parameter is generated from it
// (internal/iamcheck), and the function checks its environment with it at start-up, so
// that both accept exactly the same values.
type Spec struct {
	Env     string
	Param   string
	Default string
	// Usage is the parameter's description, after the variable's name.
	Usage string
	// Allowed describes the valid values: the parameter's ConstraintDescription, and part
	// of every error about the setting.
	Allowed    string
	Constraint policy.Constraint
}

// Parameter is the template.yaml parameter that sets the variable.
func (s Spec) Parameter() policy.Parameter {
	return policy.Parameter{
		Name: s.Param, Default: s.Default, Description: s.Env + " " + s.Usage,
		ConstraintDescription: s.Allowed, Constraint: s.Constraint,
	}
}

var maxVerdictAgeNumbers = policy.Numbers{
	{Suffix: "m", Min: 5, Max: 24 * 60, Unit: time.Minute},
	{Suffix: "h", Min: 1, Max: 24, Unit: time.Hour},
}

// The function-only settings.
var (
	MaxVerdictAge = Spec{
		Env: "IMDSGUARD_MAX_VERDICT_AGE", Param: "MaxVerdictAge", Default: "1h",
		Usage:      "(remediate): a verdict older than this is judged again from live evidence before anything is enforced.",
		Allowed:    "whole minutes from 5m to 1440m (30m), or whole hours from 1h to 24h (1h), in plain decimal (no sign, leading zero or space)",
		Constraint: maxVerdictAgeNumbers.Constraint(),
	}
	ConfigRuleMatch = Spec{
		Env: "IMDSGUARD_CONFIG_RULE_MATCH", Param: "ConfigRuleMatch", Default: "ec2-imdsv2-check",
		Usage: "(detect): AWS Config compliance changes are handled for every rule whose name contains this " +
			"(Security Hub names its rule securityhub-ec2-imdsv2-check-<hash>).",
		Allowed:    "1 to 64 letters, digits, - or _",
		Constraint: policy.Constraint{AllowedPattern: `^[A-Za-z0-9_-]{1,64}$`},
	}
	TicketBackend = Spec{
		Env: "IMDSGUARD_TICKET_BACKEND", Param: "TicketBackend", Default: "sns",
		Usage: "(remediate): where tickets are opened. sns: published to the notifications topic; opscenter: " +
			"Systems Manager OpsCenter OpsItems in this account and region; jira: Jira issues (needs JiraSecretArn " +
			"and JiraProject). The role is granted OpsCenter or Secrets Manager access only for the backend chosen.",
		Allowed:    "sns, opscenter or jira",
		Constraint: policy.Constraint{AllowedValues: []string{"sns", "opscenter", "jira"}},
	}
	// JiraSecretArn must be the full ARN, with the six characters Secrets Manager appends to
	// the name: the IAM grant is on exactly this ARN, and a partial ARN would not match.
	JiraSecretArn = Spec{
		Env: "IMDSGUARD_JIRA_SECRET_ARN", Param: "JiraSecretArn", Default: "",
		Usage: "(remediate, TicketBackend=jira): the Secrets Manager secret with the Jira credentials; remediate " +
			"may read this secret and no other. Encrypted with the AWS managed key aws/secretsmanager, or with a " +
			"customer managed key whose key policy lets the remediate role decrypt through Secrets Manager.",
		Allowed: "the full ARN of a Secrets Manager secret, ending in the six characters Secrets Manager adds to its " +
			"name (as arn:aws:secretsmanager:us-east-1:123456789012:secret:imdsguard/jira-AbC123), or empty",
		Constraint: policy.Constraint{AllowedPattern: `^$|^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$`},
	}
	JiraProject = Spec{
		Env: "IMDSGUARD_JIRA_PROJECT", Param: "JiraProject", Default: "",
		Usage:      "(remediate, TicketBackend=jira): key of the Jira project tickets are opened in.",
		Allowed:    "a Jira project key (2 to 10 capital letters, digits or _, starting with a letter, as SEC), or empty",
		Constraint: policy.Constraint{AllowedPattern: `^$|^[A-Z][A-Z0-9_]{1,9}$`},
	}
	JiraIssueType = Spec{
		Env: "IMDSGUARD_JIRA_ISSUE_TYPE", Param: "JiraIssueType", Default: "Task",
		Usage:      "(remediate, TicketBackend=jira): issue type of the tickets, as the project names it.",
		Allowed:    "1 to 60 characters without control characters, not starting or ending with a space (as Task)",
		Constraint: policy.Constraint{AllowedPattern: `^[^\p{Z}\p{Cc}](?:[^\p{Cc}]{0,58}[^\p{Z}\p{Cc}])?$`},
	}
	JiraLabels = Spec{
		Env: "IMDSGUARD_JIRA_LABELS", Param: "JiraLabels", Default: "",
		Usage:      "(remediate, TicketBackend=jira): comma-separated labels set on the tickets.",
		Allowed:    "comma-separated Jira labels without spaces or control characters (as imdsguard,security), at most 1024 characters in all, or empty",
		Constraint: policy.Constraint{AllowedPattern: `^$|^[^,\p{Z}\p{Cc}]+(?:,[^,\p{Z}\p{Cc}]+)*$`, MaxLength: 1024},
	}
)

var (
	maxPerHourNumbers  = policy.Numbers{{Min: 1, Max: 1000}}
	maxPerSweepNumbers = policy.Numbers{{Min: 0, Max: 10000}}
	waveSoakNumbers    = policy.Numbers{{Suffix: "h", Min: 0, Max: 720, Unit: time.Hour}}
)

// waveSelector is one wave as the Waves setting writes it: TagKey=value|value, without
// spaces, control characters or the separators ; = | inside a key or value.
const waveSelector = `[^;=|\p{Z}\p{Cc}]+=[^;=|\p{Z}\p{Cc}]+(?:\|[^;=|\p{Z}\p{Cc}]+)*`

// The rollout's settings (DESIGN.md section 9), read by remediate.
var (
	MaxEnforcePerHour = Spec{
		Env: "IMDSGUARD_MAX_ENFORCE_PER_HOUR", Param: "MaxEnforcePerHour", Default: "25",
		Usage: "(remediate): at most this many enforcements per account-region and clock hour, however many " +
			"invocations run at once; the rest wait as deferred, rollout-budget.",
		Allowed:    "a whole number from 1 to 1000, in plain decimal (no sign, leading zero or space)",
		Constraint: maxPerHourNumbers.Constraint(),
	}
	MaxEnforcePerSweep = Spec{
		Env: "IMDSGUARD_MAX_ENFORCE_PER_SWEEP", Param: "MaxEnforcePerSweep", Default: "0",
		Usage:      "(remediate): at most this many enforcements per account-region from one sweep; 0: no limit beyond the hourly one.",
		Allowed:    "a whole number from 0 to 10000, in plain decimal (no sign, leading zero or space)",
		Constraint: maxPerSweepNumbers.Constraint(),
	}
	Waves = Spec{
		Env: "IMDSGUARD_WAVES", Param: "Waves", Default: policy.DefaultWaves,
		Usage: "(detect, remediate): the rollout's waves before the last, in order, as TagKey=value|value;TagKey=value " +
			"(values compared without regard to case); every other instance is in the last wave. A wave enforces " +
			"only once every earlier wave's enforced instances are verified and have soaked for WaveSoak; a " +
			"launch template fix counts in the latest wave of the instances it launched.",
		Allowed: "waves separated by ;, each a tag key, = and values separated by |, with no spaces or control " +
			"characters, at most 1024 characters in all, or empty for one wave of everything",
		Constraint: policy.Constraint{AllowedPattern: `^$|^` + waveSelector + `(?:;` + waveSelector + `)*$`, MaxLength: 1024},
	}
	WaveSoak = Spec{
		Env: "IMDSGUARD_WAVE_SOAK", Param: "WaveSoak", Default: "24h",
		Usage:      "(remediate): how long an earlier wave's last enforced instance must have been settled before the next wave starts.",
		Allowed:    "whole hours from 0h to 720h, in plain decimal (no sign, leading zero or space)",
		Constraint: waveSoakNumbers.Constraint(),
	}
	PauseParameter = Spec{
		Env: "IMDSGUARD_PAUSE_PARAMETER", Param: "PauseParameter", Default: "/imdsguard/paused",
		Usage: "(remediate): the SSM parameter read on every invocation: the value true pauses every enforcement " +
			"(deferred, paused) without a deploy; a missing parameter is not a pause.",
		Allowed:    "an SSM parameter name: / and 1 to 1000 letters, digits, _ . - or /",
		Constraint: policy.Constraint{AllowedPattern: `^/[A-Za-z0-9_./-]{1,1000}$`},
	}
)

var (
	verifyWindowNumbers     = policy.Numbers{{Suffix: "h", Min: 1, Max: 720, Unit: time.Hour}}
	breakerRollbacksNumbers = policy.Numbers{{Min: 0, Max: 100}}
)

// verify's settings (DESIGN.md sections 8 and 9).
var (
	VerifyWindow = Spec{
		Env: "IMDSGUARD_VERIFY_WINDOW", Param: "VerifyWindow", Default: "72h",
		Usage: "(verify): how long an enforced instance is watched for IMDSv1 calls EC2 rejects; it is verified " +
			"only once this many hours were observed without one.",
		Allowed:    "whole hours from 1h to 720h, in plain decimal (no sign, leading zero or space)",
		Constraint: verifyWindowNumbers.Constraint(),
	}
	BreakerRollbacks = Spec{
		Env: "IMDSGUARD_BREAKER_ROLLBACKS", Param: "BreakerRollbacks", Default: "3",
		Usage: "(verify): this many rollbacks in an account-region within 24 hours open its circuit breaker, which " +
			"stops enforcement there until a person closes it; 0: no breaker.",
		Allowed:    "a whole number from 0 to 100, in plain decimal (no sign, leading zero or space)",
		Constraint: breakerRollbacksNumbers.Constraint(),
	}
)

// Specs are the function-only settings, in template order.
var Specs = []Spec{MaxVerdictAge, ConfigRuleMatch, TicketBackend, JiraSecretArn, JiraProject, JiraIssueType, JiraLabels,
	MaxEnforcePerHour, MaxEnforcePerSweep, Waves, WaveSoak, PauseParameter, VerifyWindow, BreakerRollbacks}

// DetectSpecs, RemediateSpecs and VerifySpecs are the function-only settings each
// function reads; template.yaml passes each to its function only.
var (
	DetectSpecs    = []Spec{ConfigRuleMatch, Waves}
	VerifySpecs    = []Spec{VerifyWindow, BreakerRollbacks}
	RemediateSpecs = []Spec{MaxVerdictAge, TicketBackend, JiraSecretArn, JiraProject, JiraIssueType, JiraLabels,
		MaxEnforcePerHour, MaxEnforcePerSweep, Waves, WaveSoak, PauseParameter}
)

// Rules are the limits across the function-only settings, checked at start-up and
// generated into template.yaml's Rules.
var Rules = []policy.Rule{{
	Name:    "JiraNeedsSecretAndProject",
	Comment: "Checked before any change is made: a jira stack without its secret or project would fail on every ticket instead.",
	When:    policy.Condition{Param: TicketBackend.Param, Values: []string{"jira"}},
	Assertions: []policy.Assertion{
		{
			Assert:      policy.Condition{Param: JiraSecretArn.Param, Values: []string{""}, Not: true},
			Description: "TicketBackend=jira needs JiraSecretArn: the full ARN of the Secrets Manager secret that holds the Jira credentials.",
		},
		{
			Assert:      policy.Condition{Param: JiraProject.Param, Values: []string{""}, Not: true},
			Description: "TicketBackend=jira needs JiraProject: the key of the Jira project to open tickets in (as SEC).",
		},
	},
}}

// SettingError names the variable, the value given and what is allowed, or which limit
// across settings the value breaks.
type SettingError struct {
	Spec  Spec
	Value string
	// Reason is set when the value is valid alone but breaks a rule across settings.
	Reason string
}

func (e *SettingError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("invalid setting %s (parameter %s) = %q: %s", e.Spec.Env, e.Spec.Param, e.Value, e.Reason)
	}
	return fmt.Sprintf("invalid setting %s (parameter %s) = %q: allowed: %s", e.Spec.Env, e.Spec.Param, e.Value, e.Spec.Allowed)
}

// read returns the values of specs by parameter (the default for a variable that is
// not set, every value checked as it is, untrimmed), and checks the Rules that concern
// only these settings.
func read(lookup func(string) (string, bool), specs []Spec) (map[string]string, error) {
	values := make(map[string]string, len(specs))
	bySpec := make(map[string]Spec, len(specs))
	for _, s := range specs {
		v, ok := lookup(s.Env)
		if !ok {
			v = s.Default
		}
		// A default is valid (a test checks every one): no pattern is compiled for it.
		if v != s.Default && !s.Constraint.Allows(v) {
			return nil, &SettingError{Spec: s, Value: v}
		}
		values[s.Param], bySpec[s.Param] = v, s
	}
	value := func(param string) string { return values[param] }
	for _, r := range Rules {
		params := []string{r.When.Param}
		for _, a := range r.Assertions {
			params = append(params, a.Assert.Param)
		}
		if slices.ContainsFunc(params, func(p string) bool { _, ok := bySpec[p]; return !ok && p != "" }) {
			continue
		}
		if a, failed := r.Failed(value); failed {
			return nil, &SettingError{Spec: bySpec[a.Assert.Param], Value: values[a.Assert.Param], Reason: a.Description}
		}
	}
	return values, nil
}

// Detect is what the detect function reads from its environment at start-up.
type Detect struct {
	Guard policy.Settings
	// ConfigRuleMatch: AWS Config rules whose name contains it trigger detect.
	ConfigRuleMatch string
	// Waves are the rollout's, which a launch template fix counts in.
	Waves []policy.Wave
}

// LoadDetect reads and checks detect's settings: the guard's (policy.LoadSettings) and
// its own, exactly as template.yaml's parameters allow them.
func LoadDetect(lookup func(string) (string, bool)) (Detect, error) {
	guard, err := policy.LoadSettings(lookup, nil)
	if err != nil {
		return Detect{}, err
	}
	values, err := read(lookup, DetectSpecs)
	if err != nil {
		return Detect{}, err
	}
	waves, err := policy.ParseWaves(values[Waves.Param])
	if err != nil {
		return Detect{}, &SettingError{Spec: Waves, Value: values[Waves.Param], Reason: err.Error()}
	}
	return Detect{Guard: guard, ConfigRuleMatch: values[ConfigRuleMatch.Param], Waves: waves}, nil
}

// Tickets says where remediate opens tickets.
type Tickets struct {
	// Backend is sns, opscenter or jira.
	Backend string
	// The Jira settings; with Backend jira, JiraSecretARN and JiraProject are set.
	JiraSecretARN, JiraProject, JiraIssueType string
	JiraLabels                                []string
}

// Remediate is what the remediate function reads from its environment at start-up.
type Remediate struct {
	Guard         policy.Settings
	MaxVerdictAge time.Duration
	Tickets       Tickets
	Rollout       policy.RolloutSettings
	// PauseParameter is the SSM parameter whose value true pauses enforcement.
	PauseParameter string
}

// LoadRemediate reads and checks remediate's settings: the guard's (policy.LoadSettings)
// and its own, exactly as template.yaml's parameters and rules allow them.
func LoadRemediate(lookup func(string) (string, bool)) (Remediate, error) {
	guard, err := policy.LoadSettings(lookup, nil)
	if err != nil {
		return Remediate{}, err
	}
	values, err := read(lookup, RemediateSpecs)
	if err != nil {
		return Remediate{}, err
	}
	age, _ := maxVerdictAgeNumbers.Duration(values[MaxVerdictAge.Param])
	var labels []string
	if v := values[JiraLabels.Param]; v != "" {
		labels = strings.Split(v, ",")
	}
	perHour, _, _ := maxPerHourNumbers.Parse(values[MaxEnforcePerHour.Param])
	perSweep, _, _ := maxPerSweepNumbers.Parse(values[MaxEnforcePerSweep.Param])
	soak, _ := waveSoakNumbers.Duration(values[WaveSoak.Param])
	waves, err := policy.ParseWaves(values[Waves.Param])
	if err != nil {
		return Remediate{}, &SettingError{Spec: Waves, Value: values[Waves.Param], Reason: err.Error()}
	}
	return Remediate{Guard: guard, MaxVerdictAge: age, Tickets: Tickets{
		Backend:       values[TicketBackend.Param],
		JiraSecretARN: values[JiraSecretArn.Param],
		JiraProject:   values[JiraProject.Param],
		JiraIssueType: values[JiraIssueType.Param],
		JiraLabels:    labels,
	}, Rollout: policy.RolloutSettings{MaxPerHour: perHour, MaxPerSweep: perSweep, Waves: waves, WaveSoak: soak},
		PauseParameter: values[PauseParameter.Param]}, nil
}

// DefaultRollout is the rollout of a stack deployed with the template's defaults, for
// the demo.
func DefaultRollout() policy.RolloutSettings {
	r, err := LoadRemediate(func(string) (string, bool) { return "", false })
	if err != nil {
		panic("lambdaenv: the default settings are invalid: " + err.Error())
	}
	return r.Rollout
}

// Verify is what the verify function reads from its environment at start-up.
type Verify struct {
	Guard            policy.Settings
	Window           time.Duration
	BreakerRollbacks int
}

// LoadVerify reads and checks verify's settings: the guard's (policy.LoadSettings: the
// mode, and the lookback a rollback holds an instance back for) and its own.
func LoadVerify(lookup func(string) (string, bool)) (Verify, error) {
	guard, err := policy.LoadSettings(lookup, nil)
	if err != nil {
		return Verify{}, err
	}
	values, err := read(lookup, VerifySpecs)
	if err != nil {
		return Verify{}, err
	}
	window, _ := verifyWindowNumbers.Duration(values[VerifyWindow.Param])
	rollbacks, _, _ := breakerRollbacksNumbers.Parse(values[BreakerRollbacks.Param])
	return Verify{Guard: guard, Window: window, BreakerRollbacks: rollbacks}, nil
}

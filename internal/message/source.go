package message

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// SourceSchema identifies the message about a source of instances (DESIGN.md section
// 10): a launch template to fix, or a source to ticket. It shares the queue, the decision
// log and its authentication with the verdicts about instances.
const SourceSchema = "imdsguard.source-verdict/v1"

// SourceVerdict is one decision about one source.
type SourceVerdict struct {
	Schema     string    `json:"schema"`
	DecisionID string    `json:"decision_id"`
	CreatedAt  time.Time `json:"created_at"`
	AccountID  string    `json:"account_id"`
	Region     string    `json:"region"`
	SweepID    string    `json:"sweep_id,omitempty"`
	// Kind and SourceID name the source: a launch template id, a launch configuration's
	// name, or "<account>/<region>" for the account defaults.
	Kind     policy.SourceKind `json:"kind"`
	SourceID string            `json:"source_id"`
	Name     string            `json:"name,omitempty"`
	// Action is fix or ticket; Reasons say why.
	Action  policy.SourceAction `json:"action"`
	Reasons []policy.Reason     `json:"reasons"`
	// Target are the options a fix sets.
	Target *Options `json:"target,omitempty"`
	// SeenVersion is the template's default version the decision saw: remediate changes
	// nothing when it is not the default any more.
	SeenVersion int64 `json:"seen_version,omitempty"`
	// Wave is the rollout wave a fix counts in: the latest wave of the instances the
	// source launched (the last one for the account defaults).
	Wave int `json:"wave"`
	// Instances are the instances the decision was made on, the first MaxSourceInstances
	// of them (InstanceCount says how many there were); Groups the Auto Scaling groups
	// that launch from the source.
	Instances     []string `json:"instances"`
	InstanceCount int      `json:"instance_count"`
	Groups        []string `json:"groups"`
}

// Subject is what the ledger keys the source's decisions, history, snapshot and ticket
// by, in the place of an instance id: the launch template id, "launch-configuration:"
// and its name, or "account-defaults".
func (v SourceVerdict) Subject() string {
	return policy.SourceSubject(v.Kind, v.SourceID)
}

// MaxSourceInstances bounds the instances a source verdict lists, so that the message
// stays far below SQS's limit however large the source.
const MaxSourceInstances = 500

// NewSource builds the message for one judged source, with a fresh decision id.
func NewSource(account, region string, src policy.Source, instances []string, v policy.SourceVerdict, seenVersion int64, wave int, createdAt time.Time) (SourceVerdict, error) {
	id, err := NewDecisionID(createdAt)
	if err != nil {
		return SourceVerdict{}, err
	}
	m := SourceVerdict{
		Schema: SourceSchema, DecisionID: id, CreatedAt: createdAt.UTC().Truncate(time.Millisecond),
		AccountID: account, Region: region, Kind: src.Kind, SourceID: src.ID, Name: src.Name,
		Action: v.Action, Reasons: append([]policy.Reason{}, v.Reasons...), SeenVersion: seenVersion, Wave: wave,
		Instances: append([]string{}, instances[:min(len(instances), MaxSourceInstances)]...), InstanceCount: len(instances),
		Groups: append([]string{}, src.Groups...),
	}
	if v.Action == policy.SourceFix && v.Target != nil {
		m.Target = &Options{HTTPTokens: v.Target.HTTPTokens, HopLimit: v.Target.HopLimit, HTTPEndpoint: v.Target.HTTPEndpoint}
	}
	return m, nil
}

// Encode returns the message body exactly as it is sent, ASCII as Verdict.Encode's.
func (v SourceVerdict) Encode() ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding the verdict on %s %s: %w", v.Kind, v.SourceID, err)
	}
	body := asciiJSON(raw)
	if len(body) > MaxBodyBytes {
		return nil, fmt.Errorf("the verdict on %s %s takes %d bytes, more than the %d a message may", v.Kind, v.SourceID, len(body), MaxBodyBytes)
	}
	return body, nil
}

// SchemaOf returns the schema a message body names, "" when it names none or is not a
// JSON object: remediate picks the parser by it.
func SchemaOf(body string) string {
	var head struct {
		Schema string `json:"schema"`
	}
	if json.Unmarshal([]byte(body), &head) != nil {
		return ""
	}
	return head.Schema
}

// ParseSource decodes and validates a source verdict message, as Parse does a verdict.
func ParseSource(body string) (SourceVerdict, error) {
	if len(body) > MaxBodyBytes {
		return SourceVerdict{}, fmt.Errorf("source verdict message of %d bytes is longer than %d", len(body), MaxBodyBytes)
	}
	var v SourceVerdict
	if err := decodeExactly(body, &v, "source verdict message", SourceSchema); err != nil {
		return SourceVerdict{}, err
	}
	if err := v.Validate(); err != nil {
		return SourceVerdict{}, err
	}
	return v, nil
}

var (
	launchTemplateIDPattern = regexp.MustCompile(`^lt-[0-9a-f]{8}([0-9a-f]{9})?$`)
	// A launch configuration's name: 1 to 255 characters, none of them a control one.
	launchConfigPattern = regexp.MustCompile(`^[^\x00-\x1f\x7f]{1,255}$`)
)

// Validate checks every field remediate relies on.
func (v SourceVerdict) Validate() error {
	problems := envelopeProblems(v.Schema, SourceSchema, v.DecisionID, v.CreatedAt, v.AccountID, v.Region, v.SweepID)
	switch v.Kind {
	case policy.SourceLaunchTemplate:
		if !launchTemplateIDPattern.MatchString(v.SourceID) {
			problems = append(problems, fmt.Sprintf("source_id %q is not a launch template id", v.SourceID))
		}
	case policy.SourceLaunchConfiguration:
		if !launchConfigPattern.MatchString(v.SourceID) || strings.Contains(v.SourceID, "#") {
			problems = append(problems, fmt.Sprintf("source_id %q is not a launch configuration name", v.SourceID))
		}
	case policy.SourceAccountDefaults:
		if v.SourceID != v.AccountID+"/"+v.Region {
			problems = append(problems, fmt.Sprintf("source_id %q of the account defaults is not %s/%s", v.SourceID, v.AccountID, v.Region))
		}
	default:
		problems = append(problems, fmt.Sprintf("kind %q is not launch-template, launch-configuration or account-defaults", v.Kind))
	}
	switch v.Action {
	case policy.SourceFix:
		if v.Kind == policy.SourceLaunchConfiguration {
			problems = append(problems, "a launch configuration cannot be fixed, only ticketed")
		}
		if v.Target == nil || v.Target.HTTPTokens != policy.TokensRequired {
			problems = append(problems, "a fix must have a target with http_tokens required")
		} else if v.Target.HopLimit < 0 || v.Target.HopLimit > 64 {
			problems = append(problems, fmt.Sprintf("target hop_limit %d is outside 0 to 64", v.Target.HopLimit))
		}
		if v.Kind == policy.SourceLaunchTemplate && v.SeenVersion < 1 {
			problems = append(problems, "a launch template fix must name the default version it saw")
		}
	case policy.SourceTicket:
		if v.Target != nil {
			problems = append(problems, "a ticket has no target")
		}
	default:
		problems = append(problems, fmt.Sprintf("action %q is not fix or ticket", v.Action))
	}
	if len(v.Reasons) == 0 || v.Reasons[0].Code == "" {
		problems = append(problems, "reasons are missing")
	}
	if v.Wave < 0 || v.Wave > 64 {
		problems = append(problems, fmt.Sprintf("wave %d is outside 0 to 64", v.Wave))
	}
	for _, id := range v.Instances {
		if !policy.ValidInstanceID(id) {
			problems = append(problems, fmt.Sprintf("instance %q is not an instance id", id))
			break
		}
	}
	if len(problems) > 0 {
		return errors.New("invalid source verdict message: " + strings.Join(problems, "; "))
	}
	return nil
}

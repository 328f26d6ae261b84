// Package message is the verdict message (schema imdsguard.verdict/v1) that detect sends
// to the remediation queue and remediate consumes: one message per non-skip verdict, and
// one per compliant or terminated instance whose ticket is still open, to close it.
package message

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/report"
)

// Schema identifies the message format. A consumer refuses any other.
const Schema = "imdsguard.verdict/v1"

// Verdict is one decision about one instance.
type Verdict struct {
	Schema     string          `json:"schema"`
	DecisionID string          `json:"decision_id"`
	CreatedAt  time.Time       `json:"created_at"`
	AccountID  string          `json:"account_id"`
	Region     string          `json:"region"`
	InstanceID string          `json:"instance_id"`
	Name       string          `json:"name,omitempty"`
	Action     policy.Action   `json:"action"`
	Reasons    []policy.Reason `json:"reasons"`
	// Current are the metadata options the decision saw; remediate re-evaluates when
	// they have changed since.
	Current *report.Options `json:"current"`
	// Target is set only for remediate.
	Target   *report.Options `json:"target,omitempty"`
	Evidence report.Evidence `json:"evidence"`
}

// New builds the message for an assessment, with a fresh decision id.
func New(a guard.Assessment, createdAt time.Time) (Verdict, error) {
	id, err := NewDecisionID(createdAt)
	if err != nil {
		return Verdict{}, err
	}
	in := report.NewInstance(a.Evidence, a.Verdict, a.AccountID, a.Region)
	return Verdict{
		Schema: Schema, DecisionID: id, CreatedAt: createdAt.UTC().Truncate(time.Millisecond),
		AccountID: in.AccountID, Region: in.Region, InstanceID: in.InstanceID, Name: in.Name,
		Action: in.Action, Reasons: in.Reasons, Current: in.Current, Target: in.Target, Evidence: in.Evidence,
	}, nil
}

// NewDecisionID returns a unique id that sorts by creation time.
func NewDecisionID(at time.Time) (string, error) {
	var random [8]byte
	if _, err := rand.Read(random[:]); err != nil {
		return "", fmt.Errorf("making a decision id: %w", err)
	}
	return fmt.Sprintf("%013x-%s", at.UnixMilli(), hex.EncodeToString(random[:])), nil
}

var (
	decisionIDPattern = regexp.MustCompile(`^[0-9a-f]{13}-[0-9a-f]{16}$`)
	instanceIDPattern = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)
	accountIDPattern  = regexp.MustCompile(`^[0-9]{12}$`)
	regionPattern     = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
)

// Parse decodes and validates a message body. Its error names what is wrong.
func Parse(body string) (Verdict, error) {
	var v Verdict
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return Verdict{}, fmt.Errorf("verdict message is not valid %s JSON: %w", Schema, err)
	}
	if err := v.Validate(); err != nil {
		return Verdict{}, err
	}
	return v, nil
}

// Validate checks every field a consumer relies on.
func (v Verdict) Validate() error {
	var problems []string
	if v.Schema != Schema {
		problems = append(problems, fmt.Sprintf("schema is %q, want %q", v.Schema, Schema))
	}
	if !decisionIDPattern.MatchString(v.DecisionID) {
		problems = append(problems, fmt.Sprintf("decision_id %q is malformed", v.DecisionID))
	}
	if v.CreatedAt.IsZero() {
		problems = append(problems, "created_at is missing")
	}
	if !accountIDPattern.MatchString(v.AccountID) {
		problems = append(problems, fmt.Sprintf("account_id %q is not a 12-digit account id", v.AccountID))
	}
	if !regionPattern.MatchString(v.Region) {
		problems = append(problems, fmt.Sprintf("region %q is not a region", v.Region))
	}
	if !instanceIDPattern.MatchString(v.InstanceID) {
		problems = append(problems, fmt.Sprintf("instance_id %q is not an instance id", v.InstanceID))
	}
	switch v.Action {
	case policy.ActionRemediate:
		if v.Target == nil || v.Target.HTTPTokens != policy.TokensRequired || v.Target.HopLimit < 1 || v.Target.HopLimit > 64 {
			problems = append(problems, "a remediate verdict needs a target with http_tokens required and a hop limit from 1 to 64")
		}
	case policy.ActionTicket, policy.ActionDefer:
		if v.Target != nil {
			problems = append(problems, fmt.Sprintf("a %s verdict has a target", v.Action))
		}
	case policy.ActionSkip:
		// detect sends a skip only to close the open ticket of an instance that is now
		// compliant or gone.
		if v.Target != nil || len(v.Reasons) == 0 || (v.Reasons[0].Code != policy.ReasonCompliant && v.Reasons[0].Code != policy.ReasonTerminated) {
			problems = append(problems, "a skip verdict is only sent to close a ticket: its primary reason must be compliant or terminated, with no target")
		}
	default:
		problems = append(problems, fmt.Sprintf("action %q is not remediate, ticket, defer or skip", v.Action))
	}
	if len(v.Reasons) == 0 || v.Reasons[0].Code == "" {
		problems = append(problems, "reasons are missing")
	}
	if len(problems) > 0 {
		return errors.New("invalid verdict message: " + strings.Join(problems, "; "))
	}
	return nil
}

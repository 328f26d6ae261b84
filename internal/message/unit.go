package message

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// UnitSchema identifies a unit of work (DESIGN.md section 11): what detect is to judge
// in one member account-region. The hub queues units on a FIFO queue whose message group
// is the account-region, so one invocation at a time works in each and keeps its
// LookupEvents quota. A unit carries no authority: detect judges from the evidence it
// reads itself, and remediate acts only on the decisions detect recorded.
const UnitSchema = "imdsguard.unit/v1"

// MaxUnitInstances bounds the instances one unit names, so that a continuation of a
// large region stays far below SQS's message size: the rest go in further units.
const MaxUnitInstances = 2000

var athenaQueryIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// maxUnitSources bounds the sources one unit names (an event names one or two).
const maxUnitSources = 100

// Unit is one unit of work.
type Unit struct {
	Schema    string    `json:"schema"`
	UnitID    string    `json:"unit_id"`
	CreatedAt time.Time `json:"created_at"`
	AccountID string    `json:"account_id"`
	Region    string    `json:"region"`
	// SweepID is the sweep's, shared by all its units and their continuations, which
	// the per-sweep enforcement budget counts against; empty for an event's unit.
	SweepID string `json:"sweep_id,omitempty"`
	// Trigger names what asked: the sweep, or the event's "<source> / <detail-type>".
	Trigger string `json:"trigger"`
	// Sweep asks for every instance and source of the account-region; otherwise
	// Instances and Sources name what to judge.
	Sweep     bool         `json:"sweep"`
	Instances []string     `json:"instances"`
	Sources   []UnitSource `json:"sources"`
	// Part counts continuations: 0 for a unit as queued, n for its n-th continuation.
	Part int `json:"part"`
	// TrailQuery is the sweep's query of the organization trail, which gives the
	// CloudTrail evidence instead of LookupEvents; nil for none.
	TrailQuery *UnitTrailQuery `json:"trail_query,omitempty"`
}

// UnitTrailQuery names an Athena query of the organization trail and what it covers.
type UnitTrailQuery struct {
	ID    string    `json:"id"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// UnitSource names a source to judge again, as an event named it.
type UnitSource struct {
	Kind string `json:"kind"` // launch-template, auto-scaling-group, account-defaults
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

// GroupID is the FIFO message group of the unit: its account-region.
func (u Unit) GroupID() string { return u.AccountID + ":" + u.Region }

// DeduplicationID keeps a unit queued twice (a retried send) from being worked twice
// within SQS's five-minute window: the unit and its part.
func (u Unit) DeduplicationID() string { return fmt.Sprintf("%s.%d", u.UnitID, u.Part) }

// NewUnit builds a unit with a fresh id.
func NewUnit(account, region, trigger, sweepID string, sweep bool, instances []string, sources []UnitSource, createdAt time.Time) (Unit, error) {
	id, err := NewDecisionID(createdAt)
	if err != nil {
		return Unit{}, err
	}
	return Unit{Schema: UnitSchema, UnitID: id, CreatedAt: createdAt.UTC().Truncate(time.Millisecond), AccountID: account, Region: region,
		SweepID: sweepID, Trigger: trigger, Sweep: sweep, Instances: slices.Clone(instances), Sources: slices.Clone(sources)}, nil
}

// Continuations are the units that carry on with the instances this one left, in
// parts of at most MaxUnitInstances, under the same unit id, each a part further.
func (u Unit) Continuations(left []string) []Unit {
	var out []Unit
	for chunk := range slices.Chunk(left, MaxUnitInstances) {
		c := u
		c.Sweep, c.Sources, c.Instances = false, nil, slices.Clone(chunk)
		c.Part = u.Part + 1 + len(out)
		out = append(out, c)
	}
	return out
}

// Encode returns the message body.
func (u Unit) Encode() ([]byte, error) {
	if err := u.Validate(); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(u)
	if err != nil {
		return nil, fmt.Errorf("encoding the unit of %s/%s: %w", u.AccountID, u.Region, err)
	}
	return asciiJSON(raw), nil
}

// ParseUnit decodes and validates a unit of work, as Parse does a verdict.
func ParseUnit(body string) (Unit, error) {
	if len(body) > MaxBodyBytes {
		return Unit{}, fmt.Errorf("unit of work of %d bytes is longer than %d", len(body), MaxBodyBytes)
	}
	var u Unit
	if err := decodeExactly(body, &u, "unit of work", UnitSchema); err != nil {
		return Unit{}, err
	}
	if err := u.Validate(); err != nil {
		return Unit{}, err
	}
	return u, nil
}

// Validate checks every field detect relies on.
func (u Unit) Validate() error {
	problems := envelopeProblems(u.Schema, UnitSchema, u.UnitID, u.CreatedAt, u.AccountID, u.Region, u.SweepID)
	if u.Trigger == "" || len(u.Trigger) > 256 {
		problems = append(problems, "trigger must name what asked, in 1 to 256 characters")
	}
	if !u.Sweep && len(u.Instances) == 0 && len(u.Sources) == 0 {
		problems = append(problems, "the unit asks for nothing: no sweep, instances or sources")
	}
	if u.Sweep && (len(u.Instances) > 0 || len(u.Sources) > 0) {
		problems = append(problems, "a sweep judges every instance and source: it names none")
	}
	if len(u.Instances) > MaxUnitInstances {
		problems = append(problems, fmt.Sprintf("%d instances, more than the %d a unit may name", len(u.Instances), MaxUnitInstances))
	}
	for _, id := range u.Instances {
		if !policy.ValidInstanceID(id) {
			problems = append(problems, fmt.Sprintf("instance %q is not an instance id", id))
			break
		}
	}
	if len(u.Sources) > maxUnitSources {
		problems = append(problems, fmt.Sprintf("%d sources, more than the %d a unit may name", len(u.Sources), maxUnitSources))
	}
	for _, s := range u.Sources {
		if p := s.problem(); p != "" {
			problems = append(problems, p)
			break
		}
	}
	if q := u.TrailQuery; q != nil {
		switch {
		case !athenaQueryIDPattern.MatchString(q.ID):
			problems = append(problems, fmt.Sprintf("trail_query id %q is not an Athena query execution id", q.ID))
		case q.Start.IsZero() || !q.Start.Before(q.End) || q.End.Sub(q.Start) > 90*24*time.Hour:
			problems = append(problems, fmt.Sprintf("trail_query window %v to %v is not a window of at most 90 days", q.Start, q.End))
		}
	}
	if u.Part < 0 || u.Part > 10000 {
		problems = append(problems, fmt.Sprintf("part %d is outside 0 to 10000", u.Part))
	}
	if len(problems) > 0 {
		return errors.New("invalid unit of work: " + strings.Join(problems, "; "))
	}
	return nil
}

func (s UnitSource) problem() string {
	switch s.Kind {
	case "launch-template":
		if s.ID == "" && s.Name == "" || s.ID != "" && !launchTemplateIDPattern.MatchString(s.ID) {
			return fmt.Sprintf("launch template %q (%q) is not named by a launch template id or name", s.ID, s.Name)
		}
	case "auto-scaling-group":
		if s.ID != "" || s.Name == "" {
			return "an Auto Scaling group is named by its name alone"
		}
	case "account-defaults":
		if s.ID != "" || s.Name != "" {
			return "the account defaults have no id or name"
		}
	default:
		return fmt.Sprintf("source kind %q is not launch-template, auto-scaling-group or account-defaults", s.Kind)
	}
	if len(s.Name) > 255 || strings.ContainsFunc(s.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Sprintf("source name %q is too long or has control characters", s.Name)
	}
	return ""
}

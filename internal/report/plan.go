// Package report holds the plan document (schema imdsguard.plan/v1, DESIGN.md section 4)
// and renders it for people (table, Markdown) and for machines (JSON, CSV).
package report

import (
	"time"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// Schema is the plan document's schema identifier.
const Schema = "imdsguard.plan/v1"

// Plan is what `imdsguard plan` reports: every instance, what the guard would do to it
// and why, and the evidence.
type Plan struct {
	Schema      string         `json:"schema"`
	GeneratedAt time.Time      `json:"generated_at"`
	Settings    Settings       `json:"settings"`
	Instances   []Instance     `json:"instances"`
	Summary     Summary        `json:"summary"`
	APICalls    map[string]int `json:"api_calls"`
}

// Settings echoes the settings the verdicts depend on.
type Settings struct {
	LookbackHours    int    `json:"lookback_hours"`
	MinObservedHours int    `json:"min_observed_hours"`
	Mode             string `json:"mode"`
}

// Instance is one instance's verdict with its evidence.
type Instance struct {
	AccountID  string `json:"account_id"`
	Region     string `json:"region"`
	InstanceID string `json:"instance_id"`
	Name       string `json:"name"`
	State      string `json:"state"`
	// Current is nil when the instance was not found.
	Current *Options        `json:"current"`
	Action  policy.Action   `json:"action"`
	Reasons []policy.Reason `json:"reasons"`
	// Target is set only when Action is remediate.
	Target   *Options `json:"target,omitempty"`
	Evidence Evidence `json:"evidence"`
}

// Options are an instance's metadata options.
type Options struct {
	HTTPTokens   string `json:"http_tokens"`
	HopLimit     int32  `json:"hop_limit"`
	HTTPEndpoint string `json:"http_endpoint"`
}

// Evidence is what the verdict was based on. A null field was not gathered (the rules
// did not need it, or gathering failed: the reasons say which); it never means zero.
type Evidence struct {
	MetadataNoTokenSum *float64   `json:"metadata_no_token_sum"`
	ObservedHours      *int       `json:"observed_hours"`
	LastDatapoint      *time.Time `json:"last_datapoint"`
	// LastV1Use is the latest IMDSv1 use seen: the last hour with MetadataNoToken above
	// zero, or the last IMDSv1 credential delivery in CloudTrail, whichever is later.
	LastV1Use  *time.Time `json:"last_v1_use"`
	CloudTrail CloudTrail `json:"cloudtrail"`
}

// CloudTrail summarises the instance role's credential deliveries. UserAgents and
// SourceIPs are those of the IMDSv1 deliveries.
type CloudTrail struct {
	Checked      bool     `json:"checked"`
	V1Deliveries int      `json:"v1_deliveries"`
	V2Deliveries int      `json:"v2_deliveries"`
	UserAgents   []string `json:"user_agents"`
	SourceIPs    []string `json:"source_ips"`
}

// Summary counts the instances by action.
type Summary struct {
	Remediate int `json:"remediate"`
	Ticket    int `json:"ticket"`
	Defer     int `json:"defer"`
	Skip      int `json:"skip"`
}

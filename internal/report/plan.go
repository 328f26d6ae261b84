// Package report holds the plan document (schema imdsguard.plan/v1, DESIGN.md section 4)
// and renders it for people (table, Markdown) and for machines (JSON, CSV).
package report

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// Schema is the plan document's schema identifier. docs/schema/plan.schema.json
// describes it; v1 grows by new keys only.
const Schema = "imdsguard.plan/v1"

// Plan is what `imdsguard plan` reports: every instance, what the guard would do to it
// and why, and the evidence.
type Plan struct {
	Schema string `json:"schema"`
	// Version is the version of imdsguard that made the plan.
	Version     string    `json:"version"`
	GeneratedAt time.Time `json:"generated_at"`
	Settings    Settings  `json:"settings"`
	// Scopes are the account-regions planned, in the order they were planned. The
	// instances of a failed scope are missing from the plan.
	Scopes    []Scope    `json:"scopes"`
	Instances []Instance `json:"instances"`
	Summary   Summary    `json:"summary"`
	// Sources are where the instances come from, with the guard's verdict on each
	// (DESIGN.md section 10); SourceSummary counts them by action.
	Sources       []Source       `json:"sources"`
	SourceSummary SourceSummary  `json:"source_summary"`
	APICalls      map[string]int `json:"api_calls"`
}

// ScopeStatus says whether an account-region could be planned.
type ScopeStatus string

// The statuses of a scope.
const (
	ScopeOK     ScopeStatus = "ok"
	ScopeFailed ScopeStatus = "failed"
)

// Scope is one account-region of the plan.
type Scope struct {
	// AccountID is nil when the account could not be told (see the CLI's plan command).
	AccountID *string     `json:"account_id"`
	Region    string      `json:"region"`
	Status    ScopeStatus `json:"status"`
	// Error says why a failed scope failed; empty (and absent from JSON) otherwise.
	Error string `json:"error,omitempty"`
	// SourcesError says why the scope's sources could not be read or judged: its
	// instances are in the plan, its sources are not (none of them is judged on half the
	// evidence). Empty (and absent) otherwise.
	SourcesError string `json:"sources_error,omitempty"`
}

// Label names the scope for people: "eu-west-1 (account 123456789012)", or "(account
// unknown)".
func (s Scope) Label() string {
	account := "unknown"
	if s.AccountID != nil {
		account = *s.AccountID
	}
	region := s.Region
	if region == "" {
		region = "-"
	}
	return region + " (account " + account + ")"
}

// Failed returns the scopes that failed, in plan order.
func (p *Plan) Failed() []Scope {
	var out []Scope
	for _, s := range p.Scopes {
		if s.Status != ScopeOK {
			out = append(out, s)
		}
	}
	return out
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
	// Source is what launched the instance and launches it again when its group
	// replaces it; null when no known source did (or sources were not read).
	Source *Origin `json:"source"`
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
	LastV1Use *time.Time `json:"last_v1_use"`
	// CloudTrail is null in JSON when it was not read.
	CloudTrail CloudTrail `json:"cloudtrail"`
}

// CloudTrail summarises the instance role's credential deliveries. UserAgents and
// SourceIPs are those of the IMDSv1 deliveries.
//
// Checked is false when CloudTrail was not read (the rules did not need it) or reading
// it failed. Such a value is JSON null, whatever its other fields hold, and null decodes
// to the zero value: an object in the plan always has "checked": true. (It stays a value
// rather than a pointer because the verdict message still embeds Evidence.)
type CloudTrail struct {
	Checked      bool     `json:"checked"`
	V1Deliveries int      `json:"v1_deliveries"`
	V2Deliveries int      `json:"v2_deliveries"`
	UserAgents   []string `json:"user_agents"`
	SourceIPs    []string `json:"source_ips"`
}

// cloudTrailJSON is CloudTrail without its methods, for encoding the object form.
type cloudTrailJSON CloudTrail

// MarshalJSON writes null when CloudTrail was not read, else the object with its lists
// as [] rather than null.
func (c CloudTrail) MarshalJSON() ([]byte, error) {
	if !c.Checked {
		return []byte("null"), nil
	}
	if c.UserAgents == nil {
		c.UserAgents = []string{}
	}
	if c.SourceIPs == nil {
		c.SourceIPs = []string{}
	}
	return marshalRaw(cloudTrailJSON(c))
}

// UnmarshalJSON reads null as "not read" (the zero value) and an object as it is.
func (c *CloudTrail) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*c = CloudTrail{}
		return nil
	}
	var v cloudTrailJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = CloudTrail(v)
	return nil
}

// marshalRaw is json.Marshal without HTML escaping, as the plan is written: user agents
// and names stay readable.
func marshalRaw(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Summary counts the instances by action.
type Summary struct {
	Remediate int `json:"remediate"`
	Ticket    int `json:"ticket"`
	Defer     int `json:"defer"`
	Skip      int `json:"skip"`
}

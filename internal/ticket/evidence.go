package ticket

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/imdsguard/imdsguard/internal/message"
)

// evidenceKey is the evidence that makes a ticket new: what was seen, not when or how
// often. Times, observed hours, the reason details (which embed times) and the counts
// (MetadataNoToken sums and delivery counts move with the rolling lookback window on
// every sweep while IMDSv1 is in use) are left out, so a daily sweep over an unchanged
// problem adds nothing to the ticket, while a new caller, address or reason does.
type evidenceKey struct {
	Schema       string   `json:"schema"`
	AccountID    string   `json:"account_id"`
	Region       string   `json:"region"`
	InstanceID   string   `json:"instance_id"`
	Action       string   `json:"action"`
	Primary      string   `json:"primary"`
	Secondary    []string `json:"secondary"`
	MetricUsed   bool     `json:"metric_shows_v1"`
	Checked      bool     `json:"cloudtrail_checked"`
	TrailShowsV1 bool     `json:"cloudtrail_shows_v1"`
	UserAgents   []string `json:"user_agents"`
	SourceIPs    []string `json:"source_ips"`
	// Instances are the instances a source's ticket names (absent from an instance's).
	Instances []string `json:"instances,omitempty"`
}

func newEvidenceKey(v message.Verdict) evidenceKey {
	k := evidenceKey{
		Schema:    "imdsguard.ticket-evidence/v1",
		AccountID: v.AccountID, Region: v.Region, InstanceID: v.InstanceID,
		Action:       string(v.Action),
		Secondary:    []string{},
		Checked:      v.Evidence.CloudTrail != nil,
		TrailShowsV1: v.Evidence.Trail().V1Deliveries > 0,
		UserAgents:   sortedSet(v.Evidence.Trail().UserAgents),
		SourceIPs:    sortedSet(v.Evidence.Trail().SourceIPs),
	}
	for i, r := range v.Reasons {
		if i == 0 {
			k.Primary = string(r.Code)
		} else {
			k.Secondary = append(k.Secondary, string(r.Code))
		}
	}
	k.Secondary = sortedSet(k.Secondary)
	if s := v.Evidence.MetadataNoTokenSum; s != nil && *s > 0 {
		k.MetricUsed = true
	}
	return k
}

// EvidenceDigest is a SHA-256 (hex) of the evidence that matters: action, reason codes,
// whether the metric and CloudTrail show IMDSv1, user agents and source addresses. Two
// verdicts that differ only in decision id, times, counts or wording have the same
// digest; a new user agent, a new address or a new reason changes it.
func (c Content) EvidenceDigest() string {
	b, err := json.Marshal(c.evidence)
	if err != nil {
		// A struct of strings, ints and bools always marshals.
		panic(fmt.Sprintf("ticket: marshalling the evidence key: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func sortedSet(in []string) []string {
	out := append([]string{}, in...)
	slices.Sort(out)
	return slices.Compact(out)
}

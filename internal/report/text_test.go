package report

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/imdsguard/imdsguard/internal/policy"
)

func TestEvidenceText(t *testing.T) {
	s := Settings(policy.DefaultSettings())
	zero, hours := 0.0, 336
	metrics := Evidence{MetadataNoTokenSum: &zero, ObservedHours: &hours, LastDatapoint: at("2026-11-21T23:00:00Z")}
	reason := func(code policy.ReasonCode) []policy.Reason { return []policy.Reason{{Code: code}} }
	cur := &Options{HTTPTokens: "optional", HopLimit: 1, HTTPEndpoint: "disabled"}
	tests := []struct {
		name string
		in   Instance
		want string
	}{
		{"endpoint disabled, hop unchanged", Instance{Reasons: reason(policy.ReasonEndpointDisabled), Current: cur,
			Target: &Options{HTTPTokens: "required", HopLimit: 1, HTTPEndpoint: "disabled"}}, "endpoint disabled"},
		{"last datapoint of another day keeps its date", Instance{Reasons: reason(policy.ReasonIMDSv1Unused), Evidence: metrics},
			"v1 calls 0 in 336h obs, last dp 2026-11-21T23:00Z"},
		{"stale without datapoint", Instance{Reasons: reason(policy.ReasonStaleMetrics)}, "no datapoint in 336h"},
		{"cloudtrail unavailable", Instance{Reasons: reason(policy.ReasonCloudTrailUnavailable), Evidence: metrics},
			"v1 calls 0 in 336h obs, CloudTrail not read"},
		{"several user agents", Instance{Reasons: reason(policy.ReasonIMDSv1UsedCloudTrail), Evidence: Evidence{CloudTrail: CloudTrail{
			Checked: true, V1Deliveries: 5, UserAgents: []string{"Boto3/1.9.0", "aws-sdk-java/1.11"}}}},
			"CloudTrail v1 x5 (Boto3/1.9.0 +1 more)"},
		{"terminated but found", Instance{Reasons: reason(policy.ReasonTerminated), Current: cur}, "-"},
		{"no reasons", Instance{}, "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := evidenceText(tt.in, s, now); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}

	long := Instance{Reasons: reason(policy.ReasonIMDSv1UsedCloudTrail), Evidence: Evidence{CloudTrail: CloudTrail{
		Checked: true, V1Deliveries: 123456, UserAgents: []string{strings.Repeat("ü", 80), "b", "c"}}}}
	got := evidenceText(long, s, now)
	if n := utf8.RuneCountInString(got); n > maxEvidenceRunes || !strings.Contains(got, "...") {
		t.Errorf("long evidence not cut to %d runes: %d %q", maxEvidenceRunes, n, got)
	}
}

func TestSummaryLine(t *testing.T) {
	tests := []struct {
		s    Summary
		want string
	}{
		{Summary{Remediate: 4, Ticket: 3, Defer: 2, Skip: 1}, "4 remediate, 3 ticket, 2 defer, 1 skip (10 instances)"},
		{Summary{Defer: 1}, "0 remediate, 0 ticket, 1 defer, 0 skip (1 instance)"},
		{Summary{}, "0 remediate, 0 ticket, 0 defer, 0 skip (0 instances)"},
	}
	for _, tt := range tests {
		if got := summaryLine(tt.s); got != tt.want {
			t.Errorf("summaryLine(%+v) = %q, want %q", tt.s, got, tt.want)
		}
	}
}

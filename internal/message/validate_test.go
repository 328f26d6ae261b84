package message_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport/schematest"
)

var at = time.Date(2026, 11, 22, 10, 20, 0, 0, time.UTC)

func ptime(t time.Time) *time.Time { return &t }

func webInstance() *policy.Instance {
	return &policy.Instance{
		AccountID: "123456789012", Region: "us-east-1", InstanceID: "i-0123456789abcdef0", Name: "web-1", State: policy.StateRunning,
		Options: policy.MetadataOptions{HTTPTokens: policy.TokensOptional, HopLimit: 2, HTTPEndpoint: policy.EndpointEnabled, State: "applied"},
	}
}

// examples are messages of every shape detect sends: every action, with and without
// each part of the evidence.
func examples(t *testing.T) map[string]message.Verdict {
	t.Helper()
	inst := webInstance()
	metrics := &policy.MetricUsage{ObservedHours: 336, LastDatapoint: ptime(at.Add(-20 * time.Minute))}
	used := &policy.MetricUsage{Sum: 17, ObservedHours: 300, LastDatapoint: ptime(at.Add(-time.Hour)), LastNonZero: ptime(at.Add(-2 * time.Hour))}
	trail := &policy.CloudTrailUsage{V1Deliveries: 1, V2Deliveries: 3, UserAgents: []string{"aws-sdk-java/1.11.500"}, SourceIPs: []string{"203.0.113.9"},
		LastV1Delivery: ptime(at.Add(-90 * time.Minute))}
	cases := map[string]struct {
		ev      policy.Evidence
		verdict policy.Verdict
	}{
		"remediate": {policy.Evidence{InstanceID: inst.InstanceID, Instance: inst, Metrics: metrics, CloudTrail: &policy.CloudTrailUsage{V2Deliveries: 4}},
			policy.Verdict{Action: policy.ActionRemediate, Reasons: []policy.Reason{{Code: policy.ReasonIMDSv1Unused, Detail: "0 calls"}},
				Target: &policy.MetadataOptions{HTTPTokens: policy.TokensRequired, HopLimit: 1}}},
		"ticket on the metric, CloudTrail not read": {policy.Evidence{InstanceID: inst.InstanceID, Instance: inst, Metrics: used},
			policy.Verdict{Action: policy.ActionTicket, Reasons: []policy.Reason{{Code: policy.ReasonIMDSv1UsedMetric, Detail: "17 calls"}}}},
		"ticket on CloudTrail": {policy.Evidence{InstanceID: inst.InstanceID, Instance: inst, Metrics: metrics, CloudTrail: trail},
			policy.Verdict{Action: policy.ActionTicket, Reasons: []policy.Reason{{Code: policy.ReasonIMDSv1UsedCloudTrail}, {Code: policy.ReasonPossibleCredentialTheft}}}},
		"defer on a metric error": {policy.Evidence{InstanceID: inst.InstanceID, Instance: inst, MetricsErr: errors.New("throttled")},
			policy.Verdict{Action: policy.ActionDefer, Reasons: []policy.Reason{{Code: policy.ReasonEvidenceError, Detail: "throttled"}}}},
		"defer, instance not described": {policy.Evidence{InstanceID: inst.InstanceID, InventoryErr: errors.New("timeout")},
			policy.Verdict{Action: policy.ActionDefer, Reasons: []policy.Reason{{Code: policy.ReasonEvidenceError}}}},
		"skip to close a ticket": {policy.Evidence{InstanceID: inst.InstanceID},
			policy.Verdict{Action: policy.ActionSkip, Reasons: []policy.Reason{{Code: policy.ReasonTerminated}}}},
	}
	out := map[string]message.Verdict{}
	for name, c := range cases {
		v, err := message.New(c.ev, c.verdict, "123456789012", "us-east-1", at)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = v
	}
	return out
}

// TestMessagesFollowTheSchema: every message shape detect sends is valid against
// docs/schema/verdict.schema.json and parses back to itself.
func TestMessagesFollowTheSchema(t *testing.T) {
	for name, v := range examples(t) {
		t.Run(name, func(t *testing.T) {
			body, err := v.Encode()
			if err != nil {
				t.Fatal(err)
			}
			schematest.ValidateAgainstSchema(t, "verdict.schema.json", body)
			back, err := message.Parse(string(body))
			if err != nil {
				t.Fatalf("Parse: %v\n%s", err, body)
			}
			again, err := back.Encode()
			if err != nil || string(again) != string(body) {
				t.Errorf("the body does not survive a round trip:\n%s\n%s", body, again)
			}
		})
	}
}

// TestEvidenceIsNullWhenNotGathered: a part that was not gathered, or failed, is null in
// the message, never zero.
func TestEvidenceIsNullWhenNotGathered(t *testing.T) {
	ex := examples(t)
	body, _ := ex["ticket on the metric, CloudTrail not read"].Encode()
	if !strings.Contains(string(body), `"cloudtrail":null`) {
		t.Errorf("CloudTrail not read but not null: %s", body)
	}
	body, _ = ex["defer on a metric error"].Encode()
	for _, want := range []string{`"metadata_no_token_sum":null`, `"observed_hours":null`, `"last_datapoint":null`, `"current":{`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metric failed, want %s in %s", want, body)
		}
	}
	body, _ = ex["defer, instance not described"].Encode()
	if !strings.Contains(string(body), `"current":null`) {
		t.Errorf("instance not described but current not null: %s", body)
	}
}

// TestEncodeIsASCII: the body is pure ASCII whatever the tags hold, so that SQS accepts
// it byte for byte and the digest detect records is the digest remediate computes.
func TestEncodeIsASCII(t *testing.T) {
	inst := webInstance()
	inst.Name = "wéb \u2028 \ufffe \U0001F600 <&>"
	v, err := message.New(policy.Evidence{InstanceID: inst.InstanceID, Instance: inst},
		policy.Verdict{Action: policy.ActionDefer, Reasons: []policy.Reason{{Code: policy.ReasonNotRunning, Detail: "ÿ"}}}, "", "", at)
	if err != nil {
		t.Fatal(err)
	}
	body, err := v.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range body {
		if b >= 0x80 || b < 0x20 {
			t.Fatalf("byte %d of the body is %#x: %s", i, b, body)
		}
	}
	back, err := message.Parse(string(body))
	if err != nil || back.Name != inst.Name || back.Reasons[0].Detail != "ÿ" {
		t.Errorf("parsed back %q / %+v, %v", back.Name, back.Reasons, err)
	}
}

func TestParseRefusesBrokenBodies(t *testing.T) {
	good, err := examples(t)["remediate"].Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := message.Parse(string(good)); err != nil {
		t.Fatalf("good message refused: %v", err)
	}
	replace := func(old, new string) string { return strings.Replace(string(good), old, new, 1) }
	tests := map[string]string{
		"schema is":                   replace(message.Schema, "imdsguard.verdict/v1"),
		"decision_id":                 replace(`"decision_id":"`, `"decision_id":"x`),
		"account_id":                  replace(`"123456789012"`, `"12"`),
		"region":                      replace(`"us-east-1"`, `"moon"`),
		"instance_id":                 replace(`"i-0123456789abcdef0"`, `"web-1"`),
		"is not remediate":            replace(`"action":"remediate"`, `"action":"fix"`),
		"only sent to close a ticket": replace(`"action":"remediate"`, `"action":"skip"`),
		"reasons are missing":         replace(`"reasons":[{"code":"imdsv1-unused","detail":"0 calls"}]`, `"reasons":[]`),
		"created_at":                  replace(`"created_at":"2026-11-22T10:20:00Z"`, `"created_at":"0001-01-01T00:00:00Z"`),
		"hop_limit":                   replace(`"hop_limit":2`, `"hop_limit":65`),
		"unknown field":               replace(`{"schema"`, `{"target":{"http_tokens":"required","hop_limit":64},"schema"`),
		"more after":                  string(good) + ` {"schema":"x"}`,
		"longer than":                 string(good) + strings.Repeat(" ", message.MaxBodyBytes),
		"not valid":                   `{"schema":`,
	}
	for want, body := range tests {
		if _, err := message.Parse(body); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Parse error %v", want, err)
		}
	}
}

package ticket

import (
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
)

func sourceVerdict(code policy.ReasonCode, instances ...string) message.SourceVerdict {
	return message.SourceVerdict{Schema: message.SourceSchema, DecisionID: "0019aa0000001-0000000000000001",
		CreatedAt: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), AccountID: "123456789012", Region: "us-east-1",
		Kind: policy.SourceLaunchTemplate, SourceID: "lt-0123456789abcdef0", Name: "batch", Action: policy.SourceTicket,
		Reasons:   []policy.Reason{{Code: code, Detail: "2 of the 4 running instances still use IMDSv1: " + strings.Join(instances, ", ")}},
		Instances: instances, InstanceCount: len(instances), Groups: []string{"batch-asg"}}
}

func TestSourceTicket(t *testing.T) {
	v := sourceVerdict(policy.ReasonSourceIMDSv1Used, "i-0000000000000000a", "i-0000000000000000b")
	tk := NewSourceTicket(v, ComposeOptions{})
	if tk.Verdict.InstanceID != "lt-0123456789abcdef0" || tk.DedupKey() != "imdsguard:123456789012:us-east-1:lt-0123456789abcdef0" {
		t.Errorf("the ticket is not keyed by the template: %+v", tk.Verdict)
	}
	text := tk.Content.PlainText()
	for _, want := range []string{"IMDSv1 kept alive by launch-template lt-0123456789abcdef0 (batch) in 123456789012/us-east-1",
		"i-0000000000000000a", "batch-asg", "imdsguard fixes this source by itself"} {
		if !strings.Contains(text, want) {
			t.Errorf("the ticket lacks %q:\n%s", want, text)
		}
	}
	// The digest moves with the instances named, not with the decision.
	same := v
	same.DecisionID = "0019aa0000002-0000000000000002"
	if NewSourceTicket(same, ComposeOptions{}).Content.EvidenceDigest() != tk.Content.EvidenceDigest() {
		t.Error("a new decision on the same evidence changed the digest")
	}
	if NewSourceTicket(sourceVerdict(policy.ReasonSourceIMDSv1Used, "i-0000000000000000a"), ComposeOptions{}).Content.EvidenceDigest() == tk.Content.EvidenceDigest() {
		t.Error("fewer IMDSv1 users left the digest as it was")
	}
	for code, want := range map[policy.ReasonCode]string{
		policy.ReasonSourcePinnedVersion: "aws autoscaling update-auto-scaling-group --auto-scaling-group-name batch-asg",
		policy.ReasonSourceLaunchConfig:  "move batch-asg to a launch template",
		policy.ReasonRolledBack:          "undid its own fix",
	} {
		if text := NewSourceTicket(sourceVerdict(code), ComposeOptions{DryRun: true}).Content.PlainText(); !strings.Contains(text, want) || !strings.Contains(text, "[dry-run]") {
			t.Errorf("%s: the next steps lack %q:\n%s", code, want, text)
		}
	}
}

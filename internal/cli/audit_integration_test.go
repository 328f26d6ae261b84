package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport"
	"github.com/imdsguard/imdsguard/internal/testsupport/schematest"
)

// stack is what template.yaml creates (queue, ledger table, topic), in moto, with the
// configuration that reaches it.
type stack struct {
	cfg aws.Config
	db  *dynamodb.Client
	res demo.Resources
}

func newStack(t *testing.T, motoURL string) stack {
	t.Helper()
	cfg := fakeaws.AWSConfig(demo.Region)
	cfg.BaseEndpoint = aws.String(motoURL)
	db := dynamodb.NewFromConfig(cfg)
	res, err := demo.CreateResources(context.Background(), demo.ResourceClients{SQS: sqs.NewFromConfig(cfg), DynamoDB: db, SNS: sns.NewFromConfig(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	return stack{cfg: cfg, db: db, res: res}
}

// TestAudit reads back what the ledger holds for an instance.
func TestAudit(t *testing.T) {
	moto := testsupport.Moto(t)
	ctx := context.Background()
	fx := newStack(t, moto.URL)
	db, res := fx.db, fx.res
	l := &ledger.Ledger{API: db, Table: res.Table}
	ref := ledger.Ref{AccountID: "123456789012", Region: demo.Region, InstanceID: "i-0123456789abcdef0"}
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	prior := policy.MetadataOptions{HTTPTokens: "optional", HopLimit: 2, HTTPEndpoint: "enabled", State: "applied"}
	if _, err := l.Snapshot(ctx, ref, prior, "0019aa0000000-0000000000000001", at); err != nil {
		t.Fatal(err)
	}
	for i, result := range []string{ledger.ResultDeferred, ledger.ResultEnforced} {
		id := "0019aa000000" + string(rune('1'+i)) + "-0000000000000001"
		const digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
		if err := (&decisionlog.Log{API: db, Table: res.Table}).RecordDecisions(ctx, []decisionlog.Decision{{
			AccountID: ref.AccountID, Region: ref.Region, InstanceID: ref.InstanceID,
			DecisionID: id, Action: policy.ActionRemediate, CreatedAt: at, Digest: digest,
		}}); err != nil {
			t.Fatal(err)
		}
		if err := l.Claim(ctx, id, ref, digest, at, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := l.Record(ctx, ledger.Outcome{Ref: ref, DecisionID: id, At: at.Add(time.Duration(i) * time.Hour),
			Action: policy.ActionRemediate, Result: result, Mode: "enforce",
			Reasons: []policy.Reason{{Code: policy.ReasonIMDSv1Unused, Detail: "0 IMDSv1 calls"}}}); err != nil {
			t.Fatal(err)
		}
	}
	w := &world{now: at}
	for k, v := range demo.AWSEnv(moto.URL, moto.URL, t.TempDir()) {
		t.Setenv(k, v)
	}
	code, stdout, stderr := w.run(t, "audit", "--table", res.Table, "--account", ref.AccountID, "--instance-id", ref.InstanceID)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"HttpTokens optional, hop limit 2", "deferred", "enforced", "imdsv1-unused"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("audit output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Index(stdout, "deferred") > strings.Index(stdout, "enforced") {
		t.Errorf("outcomes not oldest first:\n%s", stdout)
	}
	code, stdout, stderr = w.run(t, "audit", "--table", res.Table, "--account", ref.AccountID, "--instance-id", ref.InstanceID, "--format", "json")
	if code != ExitOK {
		t.Fatalf("json audit: exit %d, %s %s", code, stdout, stderr)
	}
	schematest.ValidateAgainstSchema(t, "audit.schema.json", []byte(stdout))
	var doc struct {
		Schema   string `json:"schema"`
		Instance struct {
			AccountID  string `json:"account_id"`
			Region     string `json:"region"`
			InstanceID string `json:"instance_id"`
		} `json:"instance"`
		Snapshot *struct {
			At         time.Time `json:"at"`
			DecisionID string    `json:"decision_id"`
			Options    struct {
				HTTPTokens string `json:"http_tokens"`
				HopLimit   int    `json:"hop_limit"`
			} `json:"options"`
		} `json:"snapshot"`
		Outcomes []struct {
			At      time.Time       `json:"at"`
			Result  string          `json:"result"`
			Reasons []policy.Reason `json:"reasons"`
			Prior   *struct{}       `json:"prior"`
		} `json:"outcomes"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Schema != "imdsguard.audit/v1" || doc.Instance.InstanceID != ref.InstanceID || doc.Instance.AccountID != ref.AccountID ||
		doc.Instance.Region != demo.Region {
		t.Errorf("json audit header: %s", stdout)
	}
	if s := doc.Snapshot; s == nil || !s.At.Equal(at) || s.DecisionID != "0019aa0000000-0000000000000001" ||
		s.Options.HTTPTokens != "optional" || s.Options.HopLimit != 2 {
		t.Errorf("json audit snapshot: %s", stdout)
	}
	if len(doc.Outcomes) != 2 || doc.Outcomes[0].Result != ledger.ResultDeferred || doc.Outcomes[1].Result != ledger.ResultEnforced ||
		!doc.Outcomes[1].At.Equal(at.Add(time.Hour)) || len(doc.Outcomes[0].Reasons) != 1 || doc.Outcomes[0].Prior != nil {
		t.Errorf("json audit outcomes: %s", stdout)
	}

	// An instance with no history: snapshot null, outcomes [].
	other := "i-0123456789abcdef1"
	code, stdout, stderr = w.run(t, "audit", "--table", res.Table, "--account", ref.AccountID, "--instance-id", other, "--format", "json")
	if code != ExitOK || !strings.Contains(stdout, `"snapshot": null`) || !strings.Contains(stdout, `"outcomes": []`) {
		t.Fatalf("empty json audit: exit %d, %s %s", code, stdout, stderr)
	}
	schematest.ValidateAgainstSchema(t, "audit.schema.json", []byte(stdout))
	code, _, stderr = w.run(t, "audit", "--table", res.Table, "--account", "1", "--instance-id", ref.InstanceID)
	if code != ExitUsage || !strings.Contains(stderr, "--account") {
		t.Errorf("bad account: exit %d, %s", code, stderr)
	}
}

package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport"
	"github.com/imdsguard/imdsguard/internal/testsupport/schematest"
)

// TestStatusAndAuditAcrossAccounts: a hub's ledger holds the members' records; status
// --accounts reads every account and --region, one line each, breakers first (JSON:
// imdsguard.status-list/v1), and audit --accounts finds an instance's record in
// whichever account-region it is, without --account.
func TestStatusAndAuditAcrossAccounts(t *testing.T) {
	moto := testsupport.Moto(t)
	ctx := context.Background()
	fx := newStack(t, moto.URL)
	l := &ledger.Ledger{API: fx.db, Table: fx.res.Table}
	now := time.Date(2026, 12, 1, 14, 20, 0, 0, time.UTC)
	const a, b = "222222222222", "333333333333"
	if _, err := l.OpenBreaker(ctx, b, "eu-west-1", now.Add(-time.Hour), "3 rollbacks within 24h"); err != nil {
		t.Fatal(err)
	}
	ref := ledger.Ref{AccountID: b, Region: "eu-west-1", InstanceID: "i-0123456789abcdef0"}
	if err := (&decisionlog.Log{API: fx.db, Table: fx.res.Table}).RecordDecisions(ctx, []decisionlog.Decision{{AccountID: b, Region: "eu-west-1",
		InstanceID: ref.InstanceID, DecisionID: "0019aa0000001-0000000000000001", Action: policy.ActionTicket, CreatedAt: now.Add(-2 * time.Hour),
		Digest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(ctx, ledger.Outcome{Ref: ref, DecisionID: "0019aa0000001-0000000000000001", At: now.Add(-2 * time.Hour),
		Action: policy.ActionTicket, Result: ledger.ResultTicketed, Mode: "enforce",
		Reasons: []policy.Reason{{Code: policy.ReasonIMDSv1UsedMetric, Detail: "12 IMDSv1 calls"}}}); err != nil {
		t.Fatal(err)
	}
	w := &world{now: now}
	for k, v := range demo.AWSEnv(moto.URL, moto.URL, t.TempDir()) {
		t.Setenv(k, v)
	}
	args := []string{"status", "--table", fx.res.Table, "--accounts", a + "," + b, "--region", demo.Region, "--region", "eu-west-1"}
	code, stdout, stderr := w.run(t, args...)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 7 || !strings.Contains(lines[3], b+"  eu-west-1  OPEN: 3 rollbacks within 24h") {
		t.Errorf("status across accounts: want a header and 4 account-regions, the open breaker first:\n%s", stdout)
	}
	code, stdout, stderr = w.run(t, append(args, "--format", "json")...)
	if code != ExitOK {
		t.Fatalf("json: exit %d: %s", code, stderr)
	}
	schematest.ValidateAgainstSchema(t, "status-list.schema.json", []byte(stdout))
	var list statusList
	if err := json.Unmarshal([]byte(stdout), &list); err != nil {
		t.Fatal(err)
	}
	open := 0
	for _, st := range list.AccountRegions {
		if st.Breaker.Open {
			open++
			if st.AccountID != b || st.Region != "eu-west-1" {
				t.Errorf("the open breaker is %s/%s's, want %s/eu-west-1's", st.AccountID, st.Region, b)
			}
		}
	}
	if len(list.AccountRegions) != 4 || open != 1 {
		t.Errorf("%d account-regions, %d open breakers; want 4 and 1", len(list.AccountRegions), open)
	}

	code, stdout, stderr = w.run(t, "audit", "--table", fx.res.Table, "--accounts", a+","+b, "--region", demo.Region, "--region", "eu-west-1",
		"--instance-id", ref.InstanceID)
	if code != ExitOK || !strings.Contains(stdout, ref.InstanceID+" in "+b+"/eu-west-1") || !strings.Contains(stdout, "imdsv1-used-metric") {
		t.Errorf("audit across accounts: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, _, stderr = w.run(t, "audit", "--table", fx.res.Table, "--accounts", a, "--region", demo.Region, "--instance-id", ref.InstanceID)
	if code != ExitFailure || !strings.Contains(stderr, "no record of "+ref.InstanceID+" in any of 1 account-regions") {
		t.Errorf("audit of an instance the accounts do not have: exit %d, %s", code, stderr)
	}
	for _, bad := range [][]string{
		{"status", "--table", fx.res.Table, "--accounts", a, "--account", b},
		{"status", "--table", fx.res.Table, "--accounts", a, "--org"},
		{"status", "--table", fx.res.Table, "--account", a, "--region", demo.Region, "--region", "eu-west-1"},
		{"status", "--table", fx.res.Table, "--accounts", a, "--reset-breaker"},
		{"audit", "--table", fx.res.Table, "--accounts", "12", "--instance-id", ref.InstanceID},
	} {
		if code, _, stderr := w.run(t, bad...); code != ExitUsage {
			t.Errorf("%v: exit %d, want a usage error: %s", bad, code, stderr)
		}
	}
}

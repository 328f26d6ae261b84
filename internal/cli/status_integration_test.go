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

// TestStatus shows an account-region's rollout from the ledger: one instance verifying
// in the first wave (so the later waves wait), one verified and one rolled back, the
// breaker open and the hour's budget; --reset-breaker closes it.
func TestStatus(t *testing.T) {
	moto := testsupport.Moto(t)
	ctx := context.Background()
	fx := newStack(t, moto.URL)
	db, res := fx.db, fx.res
	l := &ledger.Ledger{API: db, Table: res.Table}
	now := time.Date(2026, 12, 1, 14, 20, 0, 0, time.UTC)
	const account = "123456789012"
	enforce := func(id string, n, wave int) ledger.Watch {
		ref := ledger.Ref{AccountID: account, Region: demo.Region, InstanceID: id}
		decision := "0019aa000000" + string(rune('0'+n)) + "-0000000000000001"
		const digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
		if err := (&decisionlog.Log{API: db, Table: res.Table}).RecordDecisions(ctx, []decisionlog.Decision{{
			AccountID: account, Region: demo.Region, InstanceID: id, DecisionID: decision, Action: policy.ActionRemediate, CreatedAt: now, Digest: digest,
		}}); err != nil {
			t.Fatal(err)
		}
		applied := policy.MetadataOptions{HTTPTokens: "required", HopLimit: 1, HTTPEndpoint: "enabled", State: "applied"}
		at := now.Add(-time.Duration(n) * time.Hour)
		if err := l.Record(ctx, ledger.Outcome{Ref: ref, DecisionID: decision, At: at, Action: policy.ActionRemediate,
			Result: ledger.ResultEnforced, Mode: "enforce", Applied: &applied, Wave: wave}); err != nil {
			t.Fatal(err)
		}
		return ledger.Watch{Ref: ref, DecisionID: decision, EnforcedAt: at, Applied: applied, Wave: wave}
	}
	enforce("i-0000000000000d001", 1, 0)
	verified := enforce("i-0000000000000d002", 2, 0)
	broke := enforce("i-0000000000000d003", 3, 0)
	if err := l.Settle(ctx, ledger.Settlement{Watch: verified, Result: ledger.ResultVerified, At: now.Add(-30 * time.Minute), Mode: "enforce"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, ledger.Settlement{Watch: broke, Result: ledger.ResultRolledBack, At: now.Add(-20 * time.Minute), Mode: "enforce",
		Reasons: []policy.Reason{{Code: policy.ReasonRejectedCalls, Detail: "EC2 rejected 2 IMDSv1 calls"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.OpenBreaker(ctx, account, demo.Region, now.Add(-10*time.Minute), "3 rollbacks within 24h"); err != nil {
		t.Fatal(err)
	}
	if err := l.TakeBudget(ctx, ledger.Budget{AccountID: account, Region: demo.Region, Hour: policy.BudgetHourOf(now), MaxPerHour: 25}, now); err != nil {
		t.Fatal(err)
	}

	w := &world{now: now}
	for k, v := range demo.AWSEnv(moto.URL, moto.URL, t.TempDir()) {
		t.Setenv(k, v)
	}
	code, stdout, stderr := w.run(t, "status", "--table", res.Table, "--account", account)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"circuit breaker: OPEN since 2026-12-01T14:10:00Z (3 rollbacks within 24h)", "1 of 25 enforcements used", "24 left",
		"Environment=dev|development", "everything else", "i-0000000000000d001", "EC2 rejected 2 IMDSv1 calls", "no: waits for wave 1 (Environment=dev|development)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, stderr = w.run(t, "status", "--table", res.Table, "--account", account, "--format", "json")
	if code != ExitOK {
		t.Fatalf("json status: exit %d: %s", code, stderr)
	}
	schematest.ValidateAgainstSchema(t, "status.schema.json", []byte(stdout))
	var st status
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Breaker.Open || st.Budget.Used != 1 || len(st.Verifying) != 1 || len(st.RolledBack) != 1 || len(st.Waves) != 4 ||
		st.Waves[0].Verifying != 1 || st.Waves[0].Verified != 1 || st.Waves[0].RolledBack != 1 || !st.Waves[0].MayEnforce || st.Waves[1].MayEnforce {
		t.Errorf("status %+v", st)
	}

	code, stdout, stderr = w.run(t, "status", "--table", res.Table, "--account", account, "--reset-breaker")
	if code != ExitOK || !strings.Contains(stderr, "is closed") || !strings.Contains(stdout, "circuit breaker: closed") {
		t.Errorf("--reset-breaker: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr := w.run(t, "status", "--table", res.Table, "--account", "12"); code != ExitUsage || !strings.Contains(stderr, "--account") {
		t.Errorf("a bad account: exit %d, %s", code, stderr)
	}
}

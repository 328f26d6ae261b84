package ledger_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/rollbacks"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// enforce records an enforcement of the instance, as remediate does, in wave wave.
func enforce(t *testing.T, f *fixture, id string, wave int, at time.Time) ledger.Outcome {
	t.Helper()
	o := outcome(ledger.ResultEnforced, at)
	o.InstanceID, o.DecisionID, o.Wave = id, fmt.Sprintf("019aa8f3c2e00-%016x", at.UnixNano()), wave
	o.Prior = &policy.MetadataOptions{HTTPTokens: policy.TokensOptional, HopLimit: 2, HTTPEndpoint: policy.EndpointEnabled}
	o.Applied = &policy.MetadataOptions{HTTPTokens: policy.TokensRequired, HopLimit: 1, HTTPEndpoint: policy.EndpointEnabled, State: "applied"}
	recordDecisionsOf(t, testContext(t), f.ledger, o)
	if err := f.ledger.Record(testContext(t), o); err != nil {
		t.Fatalf("Record: %v", err)
	}
	return o
}

// TestVerificationLifecycle: an enforcement is watched from its outcome on; settling it
// removes the watch, adds the outcome to the history under the enforcement's decision and
// moves the wave on; a rollback is kept for rule 5b and the breaker; a settlement is done
// once only.
func TestVerificationLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	web := enforce(t, f, "i-0000000000000a001", 0, t0)
	api := enforce(t, f, "i-0000000000000a002", 1, t0.Add(time.Minute))
	dry := outcome(ledger.ResultDryRun, t0)
	dry.InstanceID, dry.DecisionID = "i-0000000000000a003", "019aa8f3c2e00-00000000000000d1"
	recordDecisionsOf(t, ctx, f.ledger, dry)
	if err := f.ledger.Record(ctx, dry); err != nil {
		t.Fatal(err)
	}

	watches, err := f.ledger.Watching(ctx, ref.AccountID, ref.Region)
	if err != nil {
		t.Fatal(err)
	}
	if len(watches) != 2 {
		t.Fatalf("watches %+v, want the two enforcements and not the dry run", watches)
	}
	byID := map[string]ledger.Watch{}
	for _, w := range watches {
		byID[w.InstanceID] = w
	}
	if w := byID[web.InstanceID]; w.DecisionID != web.DecisionID || !w.EnforcedAt.Equal(t0) || w.Wave != 0 ||
		w.Applied.HTTPTokens != policy.TokensRequired || w.Applied.HopLimit != 1 {
		t.Errorf("watch of web = %+v", w)
	}
	r, err := f.ledger.ReadRollout(ctx, ref.AccountID, ref.Region)
	if err != nil {
		t.Fatal(err)
	}
	if r.Verifying[0] != 1 || r.Verifying[1] != 1 || len(r.Rollbacks) != 0 || !r.BreakerOpenedAt.IsZero() {
		t.Errorf("rollout = %+v, want one verifying in each of waves 0 and 1", r)
	}

	verifiedAt := t0.Add(73 * time.Hour)
	if err := f.ledger.Settle(ctx, ledger.Settlement{Watch: byID[web.InstanceID], Result: ledger.ResultVerified, At: verifiedAt,
		Reasons: []policy.Reason{{Code: policy.ReasonVerified, Detail: "72 clean hours"}}, Mode: "enforce"}); err != nil {
		t.Fatal(err)
	}
	rolledAt := t0.Add(5 * time.Hour)
	restored := &policy.MetadataOptions{HTTPTokens: policy.TokensOptional, HopLimit: 2, HTTPEndpoint: policy.EndpointEnabled, State: "applied"}
	if err := f.ledger.Settle(ctx, ledger.Settlement{Watch: byID[api.InstanceID], Result: ledger.ResultRolledBack, At: rolledAt,
		Reasons: []policy.Reason{{Code: policy.ReasonRejectedCalls, Detail: "EC2 rejected 4 IMDSv1 calls"}}, Restored: restored, Mode: "enforce"}); err != nil {
		t.Fatal(err)
	}
	// Settled once: a second run finds the watch gone.
	err = f.ledger.Settle(ctx, ledger.Settlement{Watch: byID[web.InstanceID], Result: ledger.ResultVerified, At: verifiedAt.Add(time.Hour), Mode: "enforce"})
	if !errors.Is(err, ledger.ErrDone) {
		t.Errorf("second settlement: %v, want ErrDone", err)
	}

	if watches, err := f.ledger.Watching(ctx, ref.AccountID, ref.Region); err != nil || len(watches) != 0 {
		t.Errorf("watches after settling: %+v, %v", watches, err)
	}
	r, err = f.ledger.ReadRollout(ctx, ref.AccountID, ref.Region)
	if err != nil {
		t.Fatal(err)
	}
	if !r.LastSettled[0].Equal(verifiedAt) || !r.LastSettled[1].Equal(rolledAt) || r.Verifying[0]+r.Verifying[1] != 0 ||
		r.Verified[0] != 1 || r.RolledBack[1] != 1 || r.Verified[1]+r.RolledBack[0] != 0 {
		t.Errorf("rollout after settling = %+v", r)
	}
	rb, ok := r.Rollbacks[api.InstanceID]
	if !ok || !rb.At.Equal(rolledAt) || rb.Why != "EC2 rejected 4 IMDSv1 calls" || len(r.Rollbacks) != 1 {
		t.Errorf("rollbacks = %+v, want the api instance's", r.Rollbacks)
	}
	if got, err := f.ledger.GetRollback(ctx, api.Ref); err != nil || got == nil || !got.At.Equal(rolledAt) || got.Why != rb.Why {
		t.Errorf("GetRollback of the rolled back instance = %+v, %v", got, err)
	}
	if got, err := f.ledger.GetRollback(ctx, web.Ref); err != nil || got != nil {
		t.Errorf("GetRollback of a verified instance = %+v, %v; want none", got, err)
	}
	// detect's read of the same, with nothing but Query.
	listed, err := (&rollbacks.Index{API: f.api, Table: testTable}).Rollbacks(ctx, ref.AccountID, ref.Region)
	if got, ok := listed[api.InstanceID]; err != nil || len(listed) != 1 || !ok || !got.At.Equal(rolledAt) || got.Why != rb.Why {
		t.Errorf("rollbacks.Index = %+v, %v; want the api instance's only", listed, err)
	}
	hist, err := f.ledger.History(ctx, ledger.Ref{AccountID: ref.AccountID, Region: ref.Region, InstanceID: api.InstanceID})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Result != ledger.ResultEnforced || hist[1].Result != ledger.ResultRolledBack ||
		hist[1].DecisionID != api.DecisionID || hist[1].Applied == nil || *hist[1].Applied != *restored {
		t.Errorf("history of the rolled back instance = %+v", hist)
	}
}

// TestBreakerState: the breaker opens once (the first opening stands), counts only the
// rollbacks since it was last closed, and closes when a person resets it.
func TestBreakerState(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	for i := range 3 {
		o := enforce(t, f, fmt.Sprintf("i-0000000000000b00%d", i), 0, t0.Add(time.Duration(i)*time.Minute))
		w := ledger.Watch{Ref: o.Ref, DecisionID: o.DecisionID, EnforcedAt: o.At, Applied: *o.Applied}
		if err := f.ledger.Settle(ctx, ledger.Settlement{Watch: w, Result: ledger.ResultRolledBack, At: t0.Add(time.Duration(i+1) * time.Hour),
			Reasons: []policy.Reason{{Code: policy.ReasonRejectedCalls, Detail: "rejected"}}, Mode: "enforce"}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := f.ledger.ReadRollout(ctx, ref.AccountID, ref.Region)
	if err != nil {
		t.Fatal(err)
	}
	trips, why := policy.BreakerTrips(r.RollbacksSinceReset(), policy.RolloutSettings{BreakerRollbacks: 3}, t0.Add(4*time.Hour))
	if !trips {
		t.Fatalf("3 rollbacks within a day did not trip the breaker: %+v", r)
	}
	opened, err := f.ledger.OpenBreaker(ctx, ref.AccountID, ref.Region, t0.Add(4*time.Hour), why)
	if err != nil || !opened {
		t.Fatalf("OpenBreaker = %v, %v", opened, err)
	}
	if opened, err := f.ledger.OpenBreaker(ctx, ref.AccountID, ref.Region, t0.Add(5*time.Hour), "again"); err != nil || opened {
		t.Errorf("a second opening = %v, %v; want the first to stand", opened, err)
	}
	r, err = f.ledger.ReadRollout(ctx, ref.AccountID, ref.Region)
	if err != nil {
		t.Fatal(err)
	}
	st := r.State(2)
	if !st.BreakerOpenedAt.Equal(t0.Add(4*time.Hour)) || st.BreakerWhy != why {
		t.Errorf("state = %+v, want the breaker open since the first opening", st)
	}
	if g := policy.RolloutGate(policy.Instance{}, st, policy.RolloutSettings{}, t0.Add(6*time.Hour)); g.Allowed || g.Reason.Code != policy.ReasonBreakerOpen {
		t.Errorf("gate with the breaker open = %+v", g)
	}

	if err := f.ledger.ResetBreaker(ctx, ref.AccountID, ref.Region, t0.Add(6*time.Hour)); err != nil {
		t.Fatal(err)
	}
	r, err = f.ledger.ReadRollout(ctx, ref.AccountID, ref.Region)
	if err != nil {
		t.Fatal(err)
	}
	if !r.BreakerOpenedAt.IsZero() || !r.BreakerResetAt.Equal(t0.Add(6*time.Hour)) || len(r.RollbacksSinceReset()) != 0 {
		t.Errorf("after the reset: %+v, want closed with no rollback counting", r)
	}
	if len(r.Rollbacks) != 3 {
		t.Errorf("the reset dropped the rollbacks rule 5b needs: %+v", r.Rollbacks)
	}
}

func TestRolloutRefusesBadScopes(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	for _, scope := range [][2]string{{"1234#", ref.Region}, {ref.AccountID, "us-east-1#ROLLBACK"}, {"", ""}} {
		if _, err := f.ledger.Watching(ctx, scope[0], scope[1]); err == nil {
			t.Errorf("Watching(%q, %q) read a partition", scope[0], scope[1])
		}
		if _, err := f.ledger.ReadRollout(ctx, scope[0], scope[1]); err == nil {
			t.Errorf("ReadRollout(%q, %q) read a partition", scope[0], scope[1])
		}
		if _, err := f.ledger.OpenBreaker(ctx, scope[0], scope[1], t0, "x"); err == nil {
			t.Errorf("OpenBreaker(%q, %q) wrote", scope[0], scope[1])
		}
	}
}

// TestManualRollback: a rollback by hand ends the watch, is in the history, holds the
// instance back (rule 5b) like verify's, and is not counted by the breaker.
func TestManualRollback(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	o := enforce(t, f, "i-0000000000000e001", 0, t0)
	if got, err := f.ledger.DecisionRef(ctx, o.DecisionID); err != nil || got != o.Ref {
		t.Errorf("DecisionRef = %+v, %v; want %+v", got, err, o.Ref)
	}
	if _, err := f.ledger.DecisionRef(ctx, "019aa8f3c2e00-ffffffffffffffff"); !errors.Is(err, ledger.ErrNotRecorded) {
		t.Errorf("DecisionRef of an unknown decision: %v, want ErrNotRecorded", err)
	}
	restored := policy.MetadataOptions{HTTPTokens: policy.TokensOptional, HopLimit: 2, HTTPEndpoint: policy.EndpointEnabled, State: "applied"}
	if err := f.ledger.RecordManualRollback(ctx, ledger.ManualRollback{Ref: o.Ref, DecisionID: o.DecisionID, At: t0.Add(time.Hour),
		Restored: restored, Why: "the payroll job broke"}); err != nil {
		t.Fatal(err)
	}
	if watches, err := f.ledger.Watching(ctx, ref.AccountID, ref.Region); err != nil || len(watches) != 0 {
		t.Errorf("watches after a manual rollback: %+v, %v", watches, err)
	}
	if rb, err := f.ledger.GetRollback(ctx, o.Ref); err != nil || rb == nil || rb.Why != "the payroll job broke" {
		t.Errorf("GetRollback = %+v, %v", rb, err)
	}
	h, err := f.ledger.History(ctx, o.Ref)
	if err != nil || len(h) != 2 || h[1].Result != ledger.ResultRolledBack || h[1].Mode != "manual" || h[1].Applied == nil || *h[1].Applied != restored {
		t.Errorf("history %+v, %v", h, err)
	}
	r, err := f.ledger.ReadRollout(ctx, ref.AccountID, ref.Region)
	if err != nil || len(r.Rollbacks) != 1 || len(r.RollbacksSinceReset()) != 0 {
		t.Errorf("rollout %+v, %v: want the rollback kept and not counted by the breaker", r, err)
	}
}

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"

	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// verifySummary is the verify function's answer.
type verifySummary struct {
	Watched       int  `json:"watched"`
	Verified      int  `json:"verified"`
	RolledBack    int  `json:"rolled_back"`
	Verifying     int  `json:"verifying"`
	Failed        int  `json:"failed"`
	BreakerOpened bool `json:"breaker_opened"`
}

// sweepAndRemediate runs a sweep through detect and every queued verdict through
// remediate, as the event source would, until the queue is empty.
func (p *pipeline) sweepAndRemediate() {
	p.t.Helper()
	decodeResponse[detectSummary](p.t, p.detect.invoke(p.t, p.ctx, json.RawMessage(`{"sweep": {}}`)))
	p.remediateQueued()
}

func (p *pipeline) remediateQueued() {
	p.t.Helper()
	for {
		batch := p.receive(p.queueURL)
		if len(batch.Records) == 0 {
			return
		}
		resp := decodeResponse[events.SQSEventResponse](p.t, p.remediate.invoke(p.t, p.ctx, batch))
		if len(resp.BatchItemFailures) != 0 {
			p.t.Fatalf("batch item failures %+v", resp.BatchItemFailures)
		}
	}
}

// TestVerifyRollsBackWhatBrokeEndToEnd runs the built bootstraps: a sweep enforces five
// instances; three of them then have IMDSv1 calls rejected. verify puts exactly those
// three back to their snapshots, records them rolled back and sends their tickets through
// remediate; the two others end verified. The breaker, at 3, opens with the third
// rollback, and the next sweep enforces nothing in the account-region: a new candidate is
// deferred (breaker-open) and the rolled back instances are ticketed, not enforced again.
func TestVerifyRollsBackWhatBrokeEndToEnd(t *testing.T) {
	p := newPipelineWith(t, "enforce", func(p *pipeline, env map[string]string) {
		// A one-hour window, so that the test can let it pass by moving the enforcements
		// two hours back in the ledger.
		env["IMDSGUARD_VERIFY_WINDOW"] = "1h"
		env["IMDSGUARD_BREAKER_ROLLBACKS"] = "3"
	})
	now := time.Now().UTC()
	cw := cloudwatch.NewFromConfig(p.cfg)
	seeded, err := demo.Seed(p.ctx, demo.Clients{EC2: p.ec2, CloudWatch: cw, CloudTrail: p.ct}, demo.KindsNamed(now, "static-site"), 5, now)
	if err != nil {
		t.Fatal(err)
	}
	verifyFn := p.start("verify", bootstraps.verify, p.env)

	p.sweepAndRemediate()
	for _, s := range seeded {
		if tokens, _ := p.options(s.ID); tokens != "required" {
			t.Fatalf("%s after the sweep: HttpTokens %s, want required", s.ID, tokens)
		}
	}

	// Two hours pass: the enforcements move back, and the hours since are observed, with
	// rejected IMDSv1 calls on three of the instances.
	broke := map[string]bool{seeded[0].ID: true, seeded[2].ID: true, seeded[4].ID: true}
	for _, s := range seeded {
		if err := p.ledger.BackdateWatch(p.ctx, ledger.Ref{AccountID: account, Region: demo.Region, InstanceID: s.ID}, now.Add(-2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		rejected := 0.0
		if broke[s.ID] {
			rejected = 2
		}
		rejectedPoints(t, p, cw, s.ID, rejected)
	}

	sum := decodeResponse[verifySummary](t, verifyFn.invoke(t, p.ctx, json.RawMessage(`{}`)))
	if want := (verifySummary{Watched: 5, Verified: 2, RolledBack: 3, BreakerOpened: true}); sum != want {
		t.Fatalf("verify summary %+v, want %+v\nverify logs:\n%s", sum, want, verifyFn.proc.Logs())
	}
	for _, s := range seeded {
		tokens, hop := p.options(s.ID)
		h := p.history(s.ID)
		last := h[len(h)-1]
		if broke[s.ID] {
			if tokens != "optional" || hop != 1 || last.Result != ledger.ResultRolledBack {
				t.Errorf("%s broke: HttpTokens %s, hop %d, last outcome %s; want its snapshot back, rolled-back", s.ID, tokens, hop, last.Result)
			}
		} else if tokens != "required" || last.Result != ledger.ResultVerified {
			t.Errorf("%s was clean: HttpTokens %s, last outcome %s; want required, verified", s.ID, tokens, last.Result)
		}
	}

	// The three tickets go through remediate, saying what broke.
	batch := p.receive(p.queueURL)
	if len(batch.Records) != 3 {
		t.Fatalf("%d verdicts queued by verify, want the 3 rollbacks' tickets", len(batch.Records))
	}
	for _, r := range batch.Records {
		v, err := message.Parse(r.Body)
		if err != nil || !broke[v.InstanceID] || v.Action != policy.ActionTicket || v.Reasons[0].Code != policy.ReasonRolledBack {
			t.Errorf("queued verdict %+v (%v), want a rolled-back ticket of a broken instance", v, err)
		}
	}
	resp := decodeResponse[events.SQSEventResponse](t, p.remediate.invoke(t, p.ctx, batch))
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("batch item failures %+v", resp.BatchItemFailures)
	}
	for id := range broke {
		h := p.history(id)
		if last := h[len(h)-1]; last.Result != ledger.ResultTicketed || last.Reasons[0].Code != policy.ReasonRolledBack {
			t.Errorf("%s after its ticket verdict: %+v, want ticketed, rolled-back", id, last)
		}
	}

	// The breaker is open: the next sweep enforces nothing here, not even a new candidate,
	// and the rolled back instances stay as they are.
	fresh, err := demo.Seed(p.ctx, demo.Clients{EC2: p.ec2, CloudWatch: cw, CloudTrail: p.ct}, demo.KindsNamed(now, "static-site"), 1, now)
	if err != nil {
		t.Fatal(err)
	}
	sweep := decodeResponse[detectSummary](t, p.detect.invoke(t, p.ctx, json.RawMessage(`{"sweep": {}}`)))
	p.remediateQueued()
	// detect judges the rolled back instances by rule 5b itself: tickets, not remediations.
	if sweep.Verdicts["ticket"] != 3 || sweep.Verdicts["remediate"] != 1 {
		t.Errorf("the sweep after the rollbacks judged %v, want the 3 rolled back ticketed and the new one remediate", sweep.Verdicts)
	}
	if tokens, _ := p.options(fresh[0].ID); tokens != "optional" {
		t.Errorf("a new candidate was enforced with the breaker open: %s", tokens)
	}
	h := p.history(fresh[0].ID)
	if len(h) != 1 || h[0].Result != ledger.ResultDeferred || h[0].Reasons[0].Code != policy.ReasonBreakerOpen {
		t.Errorf("the new candidate's history %+v, want deferred, breaker-open", h)
	}
	for id := range broke {
		if tokens, _ := p.options(id); tokens != "optional" {
			t.Errorf("%s was enforced again after its rollback: %s", id, tokens)
		}
	}
}

// TestSweepBudgetEndToEnd: a sweep's verdicts carry its id, and remediate enforces at
// most IMDSGUARD_MAX_ENFORCE_PER_SWEEP of them; the rest wait as rollout-budget for the
// next sweep, which has a budget of its own.
func TestSweepBudgetEndToEnd(t *testing.T) {
	p := newPipelineWith(t, "enforce", func(p *pipeline, env map[string]string) {
		env["IMDSGUARD_MAX_ENFORCE_PER_SWEEP"] = "2"
	})
	now := time.Now().UTC()
	seeded, err := demo.Seed(p.ctx, demo.Clients{EC2: p.ec2, CloudWatch: cloudwatch.NewFromConfig(p.cfg), CloudTrail: p.ct},
		demo.KindsNamed(now, "static-site"), 5, now)
	if err != nil {
		t.Fatal(err)
	}
	enforced := func() (n int) {
		for _, s := range seeded {
			if tokens, _ := p.options(s.ID); tokens == "required" {
				n++
			}
		}
		return n
	}
	p.sweepAndRemediate()
	if n := enforced(); n != 2 {
		t.Fatalf("%d enforced by the first sweep, want its budget of 2", n)
	}
	budget := 0
	for _, s := range seeded {
		if h := p.history(s.ID); h[len(h)-1].Result == ledger.ResultDeferred && h[len(h)-1].Reasons[0].Code == policy.ReasonRolloutBudget {
			budget++
		}
	}
	if budget != 3 {
		t.Errorf("%d deferred for the sweep's budget, want 3", budget)
	}
	p.sweepAndRemediate()
	if n := enforced(); n != 4 {
		t.Errorf("%d enforced after the second sweep, want 4", n)
	}
}

// TestWavesEndToEnd: with the waves Environment=dev, then everything else, a sweep
// enforces the dev instance and holds the other back (waiting-for-wave) while the dev
// enforcement is verified and for the soak after it; once the soak has passed, the next
// sweep enforces the other.
func TestWavesEndToEnd(t *testing.T) {
	p := newPipelineWith(t, "enforce", func(p *pipeline, env map[string]string) {
		env["IMDSGUARD_WAVES"] = "Environment=dev"
		env["IMDSGUARD_WAVE_SOAK"] = "1h"
		env["IMDSGUARD_VERIFY_WINDOW"] = "1h"
	})
	now := time.Now().UTC()
	zeros := func(int) (float64, bool) { return 0, true }
	cw := cloudwatch.NewFromConfig(p.cfg)
	seeded, err := demo.Seed(p.ctx, demo.Clients{EC2: p.ec2, CloudWatch: cw, CloudTrail: p.ct}, []demo.Kind{
		{Name: "dev-site", Spec: fakeaws.InstanceSpec{HopLimit: 1, Tags: map[string]string{"Environment": "dev"}}, Series: zeros, Hours: 200},
		{Name: "prod-site", Spec: fakeaws.InstanceSpec{HopLimit: 1, Tags: map[string]string{"Environment": "prod"}}, Series: zeros, Hours: 200},
	}, 1, now)
	if err != nil {
		t.Fatal(err)
	}
	dev, prod := seeded[0].ID, seeded[1].ID
	verifyFn := p.start("verify", bootstraps.verify, p.env)
	last := func(id string) ledger.Outcome {
		h := p.history(id)
		return h[len(h)-1]
	}

	p.sweepAndRemediate()
	if tokens, _ := p.options(dev); tokens != "required" {
		t.Fatalf("the dev instance was not enforced first: %s", tokens)
	}
	if o := last(prod); o.Result != ledger.ResultDeferred || o.Reasons[0].Code != policy.ReasonWaitingForWave {
		t.Fatalf("prod while dev is verified: %+v, want deferred, waiting-for-wave", o)
	}

	// The dev enforcement's window passes clean: verified now, and the soak starts.
	if err := p.ledger.BackdateWatch(p.ctx, ledger.Ref{AccountID: account, Region: demo.Region, InstanceID: dev}, now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	rejectedPoints(t, p, cw, dev, 0)
	if sum := decodeResponse[verifySummary](t, verifyFn.invoke(t, p.ctx, json.RawMessage(`{}`))); sum.Verified != 1 {
		t.Fatalf("verify summary %+v, want the dev instance verified", sum)
	}
	p.sweepAndRemediate()
	if o := last(prod); o.Result != ledger.ResultDeferred || o.Reasons[0].Code != policy.ReasonWaitingForWave ||
		!strings.Contains(o.Reasons[0].Detail, "soak") {
		t.Fatalf("prod during the soak: %+v, want deferred, waiting-for-wave (soak)", o)
	}

	// The soak passes.
	if err := p.ledger.BackdateWaveSettlement(p.ctx, account, demo.Region, 0, time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	p.sweepAndRemediate()
	if tokens, _ := p.options(prod); tokens != "required" {
		t.Errorf("prod after the soak: %s, want required (last outcome %+v)", tokens, last(prod))
	}
}

// rejectedPoints puts two observed hours of MetadataNoTokenRejected for the instance, the
// later with calls rejected.
func rejectedPoints(t *testing.T, p *pipeline, cw *cloudwatch.Client, id string, calls float64) {
	t.Helper()
	now := time.Now().UTC()
	pts := []fakeaws.Point{{Time: now.Add(-90 * time.Minute), Value: calls}, {Time: now.Add(-30 * time.Minute), Value: calls}}
	if err := fakeaws.PutInstanceMetric(p.ctx, cw, evidence.MetadataNoTokenRejected, id, pts); err != nil {
		t.Fatal(err)
	}
}

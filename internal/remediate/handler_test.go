package remediate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/time/rate"

	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/remediate"
	"github.com/imdsguard/imdsguard/internal/testsupport/fakeapi"
	"github.com/imdsguard/imdsguard/internal/ticket"
)

// The handler tests below run the handler against the in-process fakes: every branch,
// in milliseconds, no emulator. remediate_test.go runs the same handler against moto.

const (
	region   = "us-east-1"
	webID    = "i-0aaaaaaaaaaaaaaa1" // uses no IMDSv1: detect says remediate
	legacyID = "i-0bbbbbbbbbbbbbbb2" // uses IMDSv1: detect says ticket
	v2ID     = "i-0ccccccccccccccc3" // HttpTokens required: detect says skip (compliant)
	thinID   = "i-0ddddddddddddddd4" // too few datapoints: detect says defer
)

var (
	// now is the handler's clock; detect judged the instances ten minutes earlier.
	now        = time.Date(2025, 6, 2, 12, 34, 56, 0, time.UTC)
	detectedAt = now.Add(-10 * time.Minute)
)

// The calls as the fakes' journal names them.
const (
	opClaim     = "ledger:Claim"
	opRelease   = "ledger:Release"
	opRecord    = "ledger:Record"
	opSnapshot  = "ledger:Snapshot"
	opGetSnap   = "ledger:GetSnapshot"
	opGetTicket = "ledger:GetTicket"
	opGetRB     = "ledger:GetRollback"
	opRollout   = "ledger:ReadRollout"
	opBudget    = "ledger:TakeBudget"
	opPutTicket = "ledger:PutTicket"
	opDescribe  = "ec2:DescribeInstances"
	opModify    = "ec2:ModifyInstanceMetadataOptions"
	opDryRun    = "ec2:ModifyInstanceMetadataOptions(DryRun)"
	opMetrics   = "cloudwatch:GetMetricData"
	opLookup    = "cloudtrail:LookupEvents"
	opOpen      = "ticket:Open"
	opUpdate    = "ticket:Update"
	opResolve   = "ticket:Resolve"
)

// world is one account-region made of fakes, and a remediate handler working in it.
type world struct {
	ctx     context.Context
	journal *fakeapi.Journal
	ec2     *fakeapi.EC2
	cw      *fakeapi.CloudWatch
	ct      *fakeapi.CloudTrail
	book    *fakeapi.Ledger
	tickets *fakeapi.Tickets
	h       *remediate.Handler
	logs    *bytes.Buffer
	t       *testing.T
}

func newWorld(t *testing.T, mode policy.Mode) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	journal := &fakeapi.Journal{}
	w := &world{
		ctx: ctx, journal: journal, t: t, logs: &bytes.Buffer{},
		ec2: fakeapi.NewEC2(account, journal), cw: fakeapi.NewCloudWatch(journal), ct: fakeapi.NewCloudTrail(journal),
		book: fakeapi.NewLedger(journal), tickets: fakeapi.NewTickets(journal),
	}
	settings := policy.DefaultSettings()
	settings.Mode = mode
	w.h = &remediate.Handler{
		Settings: settings,
		Limits:   policy.RecheckLimits{MaxAge: time.Hour, MaxClockSkew: time.Minute},
		ClaimTTL: 15 * time.Minute,
		Region:   region,
		Clients:  guard.Clients{EC2: w.ec2, CloudWatch: w.cw, CloudTrail: w.ct, LookupLimiter: rate.NewLimiter(rate.Inf, 1)},
		Enforcer: &enforce.Enforcer{EC2: w.ec2, MaxWait: time.Second, FirstDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond},
		Ledger:   w.book,
		Tickets:  w.tickets,
		Rollout:  policy.RolloutSettings{MaxPerHour: 25, WaveSoak: 24 * time.Hour},
		Now:      func() time.Time { return now },
		Log:      slog.New(slog.NewJSONHandler(w.logs, nil)),
		Metrics:  &emf.Emitter{W: w.logs, Now: func() time.Time { return now }},
	}
	return w
}

// add puts a running instance (hop limit 2, IMDSv1 allowed, launched ten days ago, inside
// the lookback, so that its boot hours are not read again) with 200 hours of
// MetadataNoToken zeros up to this hour: detect judges it "imdsv1-unused".
func (w *world) add(id string, change func(*ec2types.Instance)) {
	inst := fakeapi.NewInstance(id, now.AddDate(0, 0, -10))
	inst.MetadataOptions.HttpPutResponseHopLimit = aws.Int32(2)
	if change != nil {
		change(&inst)
	}
	w.ec2.Put(inst)
	w.cw.Put(id, fakeapi.Hourly(now.Truncate(time.Hour), 200, 0)...)
}

// queued is a message on the queue: the verdict and its body, byte for byte.
type queued struct {
	v    message.Verdict
	body string
}

// verdict is the message detect makes about the instance at the given time: guard.Assess
// on the fakes, then message.New.
func (w *world) verdict(id string, at time.Time) message.Verdict {
	w.t.Helper()
	as, err := guard.Assess(w.ctx, w.h.Clients, region, []string{id}, w.h.Settings, at, nil)
	if err != nil || len(as) != 1 {
		w.t.Fatalf("assessing %s: %v", id, err)
	}
	m, err := message.New(as[0].Evidence, as[0].Verdict, as[0].AccountID, as[0].Region, at)
	if err != nil {
		w.t.Fatal(err)
	}
	return m
}

// detect is what detect sends about the instance: its verdict, recorded in the ledger.
func (w *world) detect(id string, at time.Time) queued {
	w.t.Helper()
	return w.record(w.verdict(id, at))
}

// record encodes m and records its digest in the ledger, as detect does before it
// sends a message.
func (w *world) record(m message.Verdict) queued {
	w.t.Helper()
	q := w.unrecorded(m)
	w.recordBody(m, q.body)
	return q
}

func (w *world) recordBody(m message.Verdict, body string) {
	w.t.Helper()
	if err := w.book.RecordDecision(decisionlog.Decision{AccountID: m.AccountID, Region: m.Region, InstanceID: m.InstanceID,
		DecisionID: m.DecisionID, Action: m.Action, CreatedAt: m.CreatedAt, Digest: decisionlog.Digest([]byte(body))}); err != nil {
		w.t.Fatal(err)
	}
}

// unrecorded is m encoded, never recorded: a message detect did not send.
func (w *world) unrecorded(m message.Verdict) queued {
	w.t.Helper()
	body, err := m.Encode()
	if err != nil {
		w.t.Fatal(err)
	}
	return queued{v: m, body: string(body)}
}

// fileTicket gives the instance an open ticket, as an earlier invocation would have,
// in the named backend (the fake backend files it too).
func (w *world) fileTicket(q queued, backend, digest string) string {
	ref := "JIRA-7"
	if backend == w.tickets.Name() {
		ref = w.tickets.File(ticket.NewTicket(q.v, ticket.ComposeOptions{}))
	}
	w.book.SetTicket(ledger.Ticket{Ref: refOf(q.v), Backend: backend, TicketRef: ref, Status: ledger.TicketOpen, Digest: digest,
		Title: "IMDSv1 still used on " + q.v.InstanceID, OpenedAt: now.Add(-48 * time.Hour), UpdatedAt: now.Add(-48 * time.Hour)})
	return ref
}

func refOf(v message.Verdict) ledger.Ref {
	return ledger.Ref{AccountID: v.AccountID, Region: v.Region, InstanceID: v.InstanceID}
}

// forget clears what the fakes recorded while the world was built (detect's calls), so
// that only the handler's calls are seen.
func (w *world) forget() {
	w.journal.Reset()
	w.book.ForgetCalls()
	w.ec2.Describe.ForgetCalls()
	w.ec2.Modify.ForgetCalls()
	w.cw.Get.ForgetCalls()
	w.ct.Lookup.ForgetCalls()
	w.logs.Reset()
}

func (w *world) handle(bodies ...string) events.SQSEventResponse {
	w.t.Helper()
	var batch events.SQSEvent
	for i, b := range bodies {
		batch.Records = append(batch.Records, events.SQSMessage{MessageId: "msg-" + strconv.Itoa(i+1), Body: b})
	}
	resp, err := w.h.Handle(w.ctx, account, batch)
	if err != nil {
		w.t.Fatalf("Handle returned %v; it reports failures per item", err)
	}
	return resp
}

// outcome is what a case expects recorded.
type outcome struct {
	result string
	action policy.Action
	reason policy.ReasonCode // primary
	detail string            // in the detail
	why    string            // in the primary reason's detail
}

// delivery is one delivery of the message and what it must lead to.
type delivery struct {
	failed bool     // a batch item failure
	want   *outcome // nil: nothing recorded
	calls  []string // every call the handler makes, in order
	logs   []string // in the logs
}

type handlerCase struct {
	name    string
	mode    policy.Mode // enforce when empty
	arrange func(w *world) queued
	delivery
	// again, when set, delivers the same message a second time (with no fault left).
	again *delivery
	check func(t *testing.T, w *world, q queued)
}

var (
	enforced = []string{opClaim, opDescribe, opGetRB, opMetrics, opRollout, opBudget, opSnapshot, opModify, opGetTicket, opRecord}
	errBoom  = errors.New("boom")
)

// web is the instance that uses no IMDSv1, and detect's fresh verdict about it.
func web(w *world) queued {
	w.add(webID, nil)
	return w.detect(webID, detectedAt)
}

// webThen is web with the instance changed after the verdict.
func webThen(change func(w *world)) func(w *world) queued {
	return func(w *world) queued {
		q := web(w)
		change(w)
		return q
	}
}

// legacy is the instance that used IMDSv1 5 hours ago, and detect's ticket verdict.
func legacy(w *world) queued {
	w.add(legacyID, nil)
	w.cw.Put(legacyID, fakeapi.Point{Time: now.Truncate(time.Hour).Add(-5 * time.Hour), Value: 4})
	return w.detect(legacyID, detectedAt)
}

// v2CloseOut is the compliant instance with an open ticket, and detect's skip verdict that
// asks to close it.
func v2CloseOut(w *world) queued {
	w.add(v2ID, func(i *ec2types.Instance) { i.MetadataOptions.HttpTokens = ec2types.HttpTokensStateRequired })
	return w.detect(v2ID, detectedAt)
}

func withProfile(i *ec2types.Instance) {
	i.IamInstanceProfile = &ec2types.IamInstanceProfile{Arn: aws.String("arn:aws:iam::" + account + ":instance-profile/web")}
}

func tagged(key, value string) func(*ec2types.Instance) {
	return func(i *ec2types.Instance) {
		i.Tags = append(i.Tags, ec2types.Tag{Key: aws.String(key), Value: aws.String(value)})
	}
}

func hop(n int32) func(*ec2types.Instance) {
	return func(i *ec2types.Instance) { i.MetadataOptions.HttpPutResponseHopLimit = aws.Int32(n) }
}

func TestHandler(t *testing.T) {
	tests := []handlerCase{
		// The safety net: a rollback holds the instance back, and every enforcement passes
		// the rollout's limits first.
		{
			name: "rolled back a day ago: a ticket that says so, never enforced again", arrange: func(w *world) queued {
				q := web(w)
				w.book.SetRollback(refOf(q.v), policy.Rollback{At: now.Add(-24 * time.Hour), Why: "EC2 rejected 3 IMDSv1 calls"})
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultTicketed, policy.ActionTicket, policy.ReasonRolledBack, "ticket", "EC2 rejected 3 IMDSv1 calls"},
				calls: []string{opClaim, opDescribe, opGetRB, opGetTicket, opOpen, opPutTicket, opRecord}},
			check: func(t *testing.T, w *world, q queued) { wantOptions(t, w, webID, "optional", 2, "enabled") },
		},
		{
			name: "the rollbacks cannot be read: deferred, never enforced", arrange: func(w *world) queued {
				q := web(w)
				w.book.FailNext("GetRollback", errBoom)
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultDeferred, policy.ActionDefer, policy.ReasonEvidenceError, "waiting for evidence", "rollbacks"},
				calls: []string{opClaim, opDescribe, opGetRB, opRecord}},
			check: func(t *testing.T, w *world, q queued) { wantOptions(t, w, webID, "optional", 2, "enabled") },
		},
		{
			name: "paused: deferred, nothing changed, no budget taken", arrange: func(w *world) queued {
				w.h.Pause = fixedPause{paused: true, by: "SSM parameter /imdsguard/paused = true"}
				return web(w)
			},
			delivery: delivery{want: &outcome{ledger.ResultDeferred, policy.ActionDefer, policy.ReasonPaused, "enforcement held back", "/imdsguard/paused"},
				calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRollout, opRecord}},
			check: func(t *testing.T, w *world, q queued) {
				wantOptions(t, w, webID, "optional", 2, "enabled")
				if n := w.book.BudgetUsed(policy.BudgetHourOf(now)); n != 0 {
					t.Errorf("%d budget slots taken by a paused enforcement", n)
				}
			},
		},
		{
			name: "a pause switch that cannot be read counts as set", arrange: func(w *world) queued {
				w.h.Pause = fixedPause{err: errBoom}
				return web(w)
			},
			delivery: delivery{want: &outcome{ledger.ResultDeferred, policy.ActionDefer, policy.ReasonPaused, "enforcement held back", "boom"},
				calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRollout, opRecord}},
		},
		{
			name: "the breaker is open: deferred", arrange: func(w *world) queued {
				w.book.SetRollout(ledger.Rollout{BreakerOpenedAt: now.Add(-time.Hour), BreakerWhy: "3 rollbacks within 24h"})
				return web(w)
			},
			delivery: delivery{want: &outcome{ledger.ResultDeferred, policy.ActionDefer, policy.ReasonBreakerOpen, "enforcement held back", "--reset-breaker"},
				calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRollout, opRecord}},
			check: func(t *testing.T, w *world, q queued) { wantOptions(t, w, webID, "optional", 2, "enabled") },
		},
		{
			name: "an earlier wave is still being verified: deferred", arrange: func(w *world) queued {
				w.h.Rollout.Waves = []policy.Wave{{Key: "Environment", Values: []string{"dev"}}}
				w.book.SetRollout(ledger.Rollout{Verifying: map[int]int{0: 2}})
				return web(w)
			},
			delivery: delivery{want: &outcome{ledger.ResultDeferred, policy.ActionDefer, policy.ReasonWaitingForWave, "enforcement held back", "still being verified"},
				calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRollout, opRecord}},
		},
		{
			name: "an instance of the first wave goes while later ones wait", arrange: func(w *world) queued {
				w.h.Rollout.Waves = []policy.Wave{{Key: "Environment", Values: []string{"dev"}}}
				w.book.SetRollout(ledger.Rollout{Verifying: map[int]int{0: 2}})
				w.add(webID, tagged("Environment", "dev"))
				return w.detect(webID, detectedAt)
			},
			delivery: delivery{want: &outcome{ledger.ResultEnforced, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "IMDSv2 enforced", ""}, calls: enforced},
			check: func(t *testing.T, w *world, q queued) {
				if o := w.book.Outcomes()[0]; o.Wave != 0 {
					t.Errorf("enforced in wave %d, want 0", o.Wave)
				}
			},
		},
		{
			name: "the hour's budget is spent: deferred", arrange: func(w *world) queued {
				w.h.Rollout.MaxPerHour = 1
				if err := w.book.TakeBudget(w.ctx, ledger.Budget{AccountID: account, Region: region, Hour: policy.BudgetHourOf(now), MaxPerHour: 1}, now); err != nil {
					w.t.Fatal(err)
				}
				w.book.ForgetCalls()
				w.journal.Reset()
				return web(w)
			},
			delivery: delivery{want: &outcome{ledger.ResultDeferred, policy.ActionDefer, policy.ReasonRolloutBudget, "enforcement held back", "IMDSGUARD_MAX_ENFORCE_PER_HOUR"},
				calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRollout, opBudget, opRecord}},
			check: func(t *testing.T, w *world, q queued) { wantOptions(t, w, webID, "optional", 2, "enabled") },
		},
		{
			name: "no hourly budget set: the message fails, nothing changed", arrange: func(w *world) queued {
				w.h.Rollout.MaxPerHour = 0
				return web(w)
			},
			delivery: delivery{failed: true, calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRelease}},
			check:    func(t *testing.T, w *world, q queued) { wantOptions(t, w, webID, "optional", 2, "enabled") },
		},

		// A fresh verdict detect recorded, in each mode.
		{
			name: "report: a fresh remediate verdict is only recorded", mode: policy.ModeReport, arrange: web,
			delivery: delivery{want: &outcome{ledger.ResultReported, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "report mode: nothing changed", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRecord}},
			check: func(t *testing.T, w *world, q queued) { wantOptions(t, w, webID, "optional", 2, "enabled") },
		},
		{
			name: "dry-run: EC2 is asked with DryRun and nothing changes", mode: policy.ModeDryRun, arrange: web,
			delivery: delivery{want: &outcome{ledger.ResultDryRun, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "dry run allowed by EC2", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opDryRun, opRecord}},
			check: func(t *testing.T, w *world, q queued) {
				wantModify(t, w, true, aws.Int32(1))
				wantOptions(t, w, webID, "optional", 2, "enabled")
			},
		},
		{
			name: "enforce: snapshot, then the change, read after the evidence first", arrange: web,
			delivery: delivery{want: &outcome{ledger.ResultEnforced, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "IMDSv2 enforced", ""}, calls: enforced},
			check: func(t *testing.T, w *world, q queued) {
				wantModify(t, w, false, aws.Int32(1))
				wantOptions(t, w, webID, "required", 1, "enabled")
				prior := policy.MetadataOptions{HTTPTokens: "optional", HopLimit: 2, HTTPEndpoint: "enabled", State: "applied"}
				o := w.book.Outcomes()[0]
				if o.Prior == nil || *o.Prior != prior || o.Applied == nil ||
					*o.Applied != (policy.MetadataOptions{HTTPTokens: "required", HopLimit: 1, HTTPEndpoint: "enabled", State: "applied"}) {
					t.Errorf("outcome prior %+v, applied %+v", o.Prior, o.Applied)
				}
				if s := w.book.SnapshotOf(refOf(q.v)); s == nil || s.Options != prior || s.DecisionID != q.v.DecisionID {
					t.Errorf("snapshot %+v, want the prior options under decision %s", s, q.v.DecisionID)
				}
				// The last look covers the time since the newest bucket of the verdict's evidence,
				// in 5-minute buckets.
				reads := w.cw.Get.Inputs()
				if len(reads) != 1 || !aws.ToTime(reads[0].StartTime).Equal(*q.v.Evidence.LastDatapoint) ||
					aws.ToInt32(reads[0].MetricDataQueries[0].MetricStat.Period) != 300 {
					t.Errorf("recent reads %+v, want one from %s in 5-minute buckets", reads, q.v.Evidence.LastDatapoint)
				}
				if d, _ := w.book.Decision(q.v.DecisionID); d.Status != fakeapi.DecisionDone {
					t.Errorf("decision %s is %s, want done", q.v.DecisionID, d.Status)
				}
			},
		},
		{
			name: "enforce: EC2 reports the change pending twice, then applied", arrange: func(w *world) queued {
				w.ec2.PendingDescribes = 2
				return web(w)
			},
			delivery: delivery{want: &outcome{ledger.ResultEnforced, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "IMDSv2 enforced", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRollout, opBudget, opSnapshot, opModify, opDescribe, opDescribe, opDescribe, opGetTicket, opRecord}},
		},

		// Messages remediate refuses: nothing is done, nothing recorded, the item fails.
		{
			name: "forged: a remediation detect never recorded, for an instance using IMDSv1", arrange: func(w *world) queued {
				legacy(w)
				w.add(webID, nil)
				m := w.verdict(webID, detectedAt)
				m.InstanceID = legacyID
				return w.unrecorded(m)
			},
			delivery: delivery{failed: true, calls: []string{opClaim}, logs: []string{"not recorded by detect"}},
			check: func(t *testing.T, w *world, q queued) {
				wantOptions(t, w, legacyID, "optional", 2, "enabled")
				if _, ok := w.book.Decision(q.v.DecisionID); ok {
					t.Errorf("the forged decision is in the ledger")
				}
			},
		},
		{
			name: "altered: detect recorded a ticket, the queue says remediate", arrange: func(w *world) queued {
				m := legacy(w).v
				m.Action, m.Reasons = policy.ActionRemediate, []policy.Reason{{Code: policy.ReasonIMDSv1Unused, Detail: "0 IMDSv1 calls"}}
				return w.unrecorded(m)
			},
			delivery: delivery{failed: true, calls: []string{opClaim}, logs: []string{"differs from the decision detect recorded"}},
			check: func(t *testing.T, w *world, q queued) {
				if d, _ := w.book.Decision(q.v.DecisionID); d.Status != fakeapi.DecisionRecorded {
					t.Errorf("the recorded decision is %s, want it untouched", d.Status)
				}
			},
		},
		{
			name: "altered: a recorded remediation moved to another instance", arrange: func(w *world) queued {
				legacy(w)
				m := web(w).v
				m.InstanceID = legacyID
				return w.unrecorded(m)
			},
			delivery: delivery{failed: true, calls: []string{opClaim}, logs: []string{"differs from the decision detect recorded"}},
			check:    func(t *testing.T, w *world, q queued) { wantOptions(t, w, legacyID, "optional", 2, "enabled") },
		},
		{
			name: "future-dated beyond the clock skew: refused, the claim released", arrange: func(w *world) queued {
				w.add(webID, nil)
				return w.detect(webID, now.Add(w.h.Limits.MaxClockSkew+time.Minute))
			},
			delivery: delivery{failed: true, calls: []string{opClaim, opRelease}, logs: []string{"in the future"}},
			check: func(t *testing.T, w *world, q queued) {
				if d, _ := w.book.Decision(q.v.DecisionID); d.Status != fakeapi.DecisionReleased {
					t.Errorf("decision %s, want released", d.Status)
				}
			},
		},
		{
			name: "future-dated within the clock skew: acted on", arrange: func(w *world) queued {
				w.add(webID, nil)
				return w.detect(webID, now.Add(w.h.Limits.MaxClockSkew/2))
			},
			delivery: delivery{want: &outcome{ledger.ResultEnforced, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "IMDSv2 enforced", ""}, calls: enforced},
		},
		{
			name: "foreign account: refused before the ledger is asked", arrange: func(w *world) queued {
				w.add(webID, nil)
				m := w.verdict(webID, detectedAt)
				m.AccountID = "210987654321"
				return w.record(m)
			},
			delivery: delivery{failed: true, calls: nil, logs: []string{"another account or region"}},
		},
		{
			name: "foreign region: refused before the ledger is asked", arrange: func(w *world) queued {
				w.add(webID, nil)
				m := w.verdict(webID, detectedAt)
				m.Region = "eu-west-1"
				return w.record(m)
			},
			delivery: delivery{failed: true, calls: nil, logs: []string{"another account or region"}},
		},
		{
			name: "malformed body", arrange: func(w *world) queued {
				w.add(webID, nil)
				return queued{body: `{"schema":"imdsguard.verdict/v1","instance_id":"` + webID + `","action":"remediate"}`}
			},
			delivery: delivery{failed: true, calls: nil, logs: []string{"invalid verdict message"}},
		},
		{
			name: "malformed: a recorded message that carries its own target options", arrange: func(w *world) queued {
				w.add(webID, nil)
				m := w.verdict(webID, detectedAt)
				var fields map[string]any
				body, _ := m.Encode()
				if err := json.Unmarshal(body, &fields); err != nil {
					w.t.Fatal(err)
				}
				fields["target"] = map[string]any{"http_tokens": "required", "hop_limit": 64, "http_endpoint": "enabled"}
				withTarget, _ := json.Marshal(fields)
				w.recordBody(m, string(withTarget))
				return queued{v: m, body: string(withTarget)}
			},
			delivery: delivery{failed: true, calls: nil, logs: []string{`unknown field \"target\"`}},
			check:    func(t *testing.T, w *world, q queued) { wantOptions(t, w, webID, "optional", 2, "enabled") },
		},

		// Redelivery and concurrency.
		{
			name: "a done decision delivered again is ignored", arrange: web,
			delivery: delivery{want: &outcome{ledger.ResultEnforced, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "IMDSv2 enforced", ""}, calls: enforced},
			again:    &delivery{calls: []string{opClaim}, logs: []string{"redelivery ignored"}},
		},
		{
			name: "claimed by another invocation: the item fails and the claim is left alone", arrange: func(w *world) queued {
				q := web(w)
				if err := w.book.Claim(w.ctx, q.v.DecisionID, refOf(q.v), decisionlog.Digest([]byte(q.body)), now.Add(-time.Minute), w.h.ClaimTTL); err != nil {
					w.t.Fatal(err)
				}
				return q
			},
			delivery: delivery{failed: true, calls: []string{opClaim}, logs: []string{"being processed by another invocation"}},
			check: func(t *testing.T, w *world, q queued) {
				d, _ := w.book.Decision(q.v.DecisionID)
				if d.Status != fakeapi.DecisionClaimed || !d.ClaimUntil.Equal(now.Add(-time.Minute).Add(w.h.ClaimTTL)) || d.Attempts != 1 {
					t.Errorf("decision %+v, want the other invocation's claim as it was", d)
				}
			},
		},
		{
			name: "a claim that expired (a crashed invocation) is taken over", arrange: func(w *world) queued {
				q := web(w)
				if err := w.book.Claim(w.ctx, q.v.DecisionID, refOf(q.v), decisionlog.Digest([]byte(q.body)), now.Add(-w.h.ClaimTTL-time.Second), w.h.ClaimTTL); err != nil {
					w.t.Fatal(err)
				}
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultEnforced, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "IMDSv2 enforced", ""}, calls: enforced},
		},

		// The rules that need no usage evidence are applied to the live instance.
		{
			name: "gone since the verdict", arrange: webThen(func(w *world) { w.ec2.Remove(webID) }),
			delivery: delivery{want: &outcome{ledger.ResultSuperseded, policy.ActionSkip, policy.ReasonTerminated, "no longer exists", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opGetTicket, opRecord}},
			check: func(t *testing.T, w *world, q queued) {
				if o := w.book.Outcomes()[0]; o.Prior != nil {
					t.Errorf("prior options %+v for an instance that is gone", o.Prior)
				}
			},
		},
		{
			name: "gone, with an open ticket: the ticket is resolved", arrange: func(w *world) queued {
				q := web(w)
				w.fileTicket(q, "fake", "older")
				w.ec2.Remove(webID)
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultTicketResolved, policy.ActionSkip, policy.ReasonTerminated, "ticket FAKE-1 resolved: The instance no longer exists.", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opGetTicket, opResolve, opPutTicket, opRecord}},
			check: func(t *testing.T, w *world, q queued) { wantTicket(t, w, q, ledger.TicketResolved, "FAKE-1", false) },
		},
		{
			name: "compliant since the verdict", arrange: webThen(func(w *world) {
				w.ec2.Update(webID, func(i *ec2types.Instance) { i.MetadataOptions.HttpTokens = ec2types.HttpTokensStateRequired })
			}),
			delivery: delivery{want: &outcome{ledger.ResultAlreadyCompliant, policy.ActionSkip, policy.ReasonCompliant, "already required", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opGetSnap, opGetTicket, opRecord}},
		},
		{
			name: "exempted since the verdict", arrange: webThen(func(w *world) { w.ec2.Update(webID, tagged("imdsguard:exempt", "true")) }),
			delivery: delivery{want: &outcome{ledger.ResultSuperseded, policy.ActionSkip, policy.ReasonExempt, "nothing to do", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opRecord}},
			check: func(t *testing.T, w *world, q queued) { wantOptions(t, w, webID, "optional", 2, "enabled") },
		},
		{
			name: "stopped since the verdict", arrange: webThen(func(w *world) {
				w.ec2.Update(webID, func(i *ec2types.Instance) { i.State.Name = ec2types.InstanceStateNameStopped })
			}),
			delivery: delivery{want: &outcome{ledger.ResultDeferred, policy.ActionDefer, policy.ReasonNotRunning, "waiting for evidence", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opRecord}},
		},
		{
			name: "endpoint disabled since the verdict: enforced with no usage read, the endpoint never sent", arrange: webThen(func(w *world) {
				w.ec2.Update(webID, func(i *ec2types.Instance) {
					i.MetadataOptions.HttpEndpoint = ec2types.InstanceMetadataEndpointStateDisabled
				})
			}),
			delivery: delivery{want: &outcome{ledger.ResultEnforced, policy.ActionRemediate, policy.ReasonEndpointDisabled, "the live instance changed the verdict", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opRollout, opBudget, opSnapshot, opModify, opGetTicket, opRecord}},
			check: func(t *testing.T, w *world, q queued) {
				wantModify(t, w, false, aws.Int32(1))
				wantOptions(t, w, webID, "required", 1, "disabled")
			},
		},

		// A verdict that no longer holds as it was made is judged again on fresh evidence.
		{
			name: "options changed since the verdict: judged again, still remediate", arrange: webThen(func(w *world) { w.ec2.Update(webID, hop(3)) }),
			delivery: delivery{want: &outcome{ledger.ResultEnforced, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "judged again (the metadata options changed", ""},
				calls: enforced},
			check: func(t *testing.T, w *world, q queued) {
				if reads := w.cw.Get.Inputs(); len(reads) != 1 || aws.ToInt32(reads[0].MetricDataQueries[0].MetricStat.Period) != 3600 {
					t.Errorf("metric reads %+v, want the hourly lookback read of a fresh judgement", reads)
				}
				wantModify(t, w, false, aws.Int32(1))
				wantOptions(t, w, webID, "required", 1, "enabled")
			},
		},
		{
			name: "the verdict is too old: judged again, still remediate", arrange: func(w *world) queued {
				w.add(webID, nil)
				return w.detect(webID, now.Add(-2*time.Hour))
			},
			delivery: delivery{want: &outcome{ledger.ResultEnforced, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "judged again (the verdict is 2h old", ""},
				calls: enforced},
		},
		{
			name: "the verdict is too old: judged again, CloudTrail now shows an IMDSv1 delivery: a ticket", arrange: func(w *world) queued {
				w.add(webID, withProfile)
				w.ct.Add(fakeapi.RoleDelivery(webID, "2.0", "aws-sdk-go-v2/1.30", "10.0.0.10", now.Add(-24*time.Hour)))
				q := w.detect(webID, now.Add(-2*time.Hour))
				if q.v.Action != policy.ActionRemediate {
					w.t.Fatalf("detect's verdict is %s, want remediate", q.v.Action)
				}
				w.ct.Add(fakeapi.RoleDelivery(webID, "1.0", "Boto3/1.9.42 Python/2.7.15", "10.0.0.10", now.Add(-30*time.Minute)))
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultTicketed, policy.ActionTicket, policy.ReasonIMDSv1UsedCloudTrail, "judged again (the verdict is 2h old", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opLookup, opGetTicket, opOpen, opPutTicket, opRecord}},
			check: func(t *testing.T, w *world, q queued) {
				filed := w.tickets.Filed()
				if len(filed) != 1 {
					t.Fatalf("%d tickets filed, want 1", len(filed))
				}
				v := filed[0].Versions[0].Verdict
				if v.DecisionID != q.v.DecisionID || !v.CreatedAt.Equal(q.v.CreatedAt) || v.Evidence.CloudTrail == nil || v.Evidence.CloudTrail.V1Deliveries != 1 {
					t.Errorf("ticket verdict %+v, want the fresh evidence under decision %s", v, q.v.DecisionID)
				}
			},
		},
		{
			name: "options changed and IMDSv1 calls in the metric since: judged again, a ticket", arrange: webThen(func(w *world) {
				w.ec2.Update(webID, hop(3))
				w.cw.Put(webID, fakeapi.Point{Time: now.Truncate(time.Hour).Add(5 * time.Minute), Value: 2})
			}),
			delivery: delivery{want: &outcome{ledger.ResultTicketed, policy.ActionTicket, policy.ReasonIMDSv1UsedMetric, "judged again", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opGetTicket, opOpen, opPutTicket, opRecord}},
		},

		// The last look at the metric before enforcing.
		{
			name: "IMDSv1 calls since the evidence: a ticket, not enforced", arrange: func(w *world) queued {
				q := web(w)
				w.cw.Put(webID, fakeapi.Point{Time: q.v.Evidence.LastDatapoint.Add(10 * time.Minute), Value: 3})
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultTicketed, policy.ActionTicket, policy.ReasonIMDSv1UsedMetric, "IMDSv1 was used after the verdict", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opGetTicket, opOpen, opPutTicket, opRecord}},
			check: func(t *testing.T, w *world, q queued) { wantOptions(t, w, webID, "optional", 2, "enabled") },
		},
		{
			name: "IMDSv1 calls since the evidence, report mode: reported as a ticket", mode: policy.ModeReport, arrange: func(w *world) queued {
				q := web(w)
				w.cw.Put(webID, fakeapi.Point{Time: q.v.Evidence.LastDatapoint.Add(10 * time.Minute), Value: 3})
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultReported, policy.ActionTicket, policy.ReasonIMDSv1UsedMetric, "report mode: no ticket opened", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRecord}},
		},
		{
			name: "the recent read fails: deferred, not enforced", arrange: func(w *world) queued {
				q := web(w)
				w.cw.Get.FailNext(fakeapi.APIError("Throttling", "Rate exceeded"))
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultDeferred, policy.ActionDefer, policy.ReasonEvidenceError, "waiting for evidence", "reading the MetadataNoToken calls since"},
				calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRecord}},
		},
		{
			name: "the recent read is partial: deferred, not enforced", arrange: func(w *world) queued {
				q := web(w)
				w.cw.Status = cwtypes.StatusCodePartialData
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultDeferred, policy.ActionDefer, policy.ReasonEvidenceError, "waiting for evidence", "still partial"},
				calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRecord}},
		},
		{
			name: "the recent read leaves the query unanswered: deferred, not enforced", arrange: func(w *world) queued {
				q := web(w)
				w.cw.Get.ReplyNext(func(context.Context, *cloudwatch.GetMetricDataInput, func(*cloudwatch.GetMetricDataInput) (*cloudwatch.GetMetricDataOutput, error)) (*cloudwatch.GetMetricDataOutput, error) {
					return &cloudwatch.GetMetricDataOutput{MetricDataResults: []cwtypes.MetricDataResult{}}, nil
				})
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultDeferred, policy.ActionDefer, policy.ReasonEvidenceError, "waiting for evidence", "no answer to the query for " + webID},
				calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRecord}},
		},
		{
			name: "describing the instance fails: deferred", arrange: func(w *world) queued {
				q := web(w)
				w.ec2.Describe.FailNext(fakeapi.APIError("RequestLimitExceeded", "Request limit exceeded."))
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultDeferred, policy.ActionDefer, policy.ReasonEvidenceError, "waiting for evidence", "describing the instance again failed"},
				calls: []string{opClaim, opDescribe, opRecord}},
		},

		// The target comes from the settings and the live instance.
		{
			name: "container host at hop limit 1: raised to the container hop limit", arrange: func(w *world) queued {
				w.add(webID, func(i *ec2types.Instance) { tagged("eks:cluster-name", "prod")(i); hop(1)(i) })
				return w.detect(webID, detectedAt)
			},
			delivery: delivery{want: &outcome{ledger.ResultEnforced, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "IMDSv2 enforced", ""}, calls: enforced},
			check: func(t *testing.T, w *world, q queued) {
				wantModify(t, w, false, aws.Int32(2))
				wantOptions(t, w, webID, "required", 2, "enabled")
			},
		},
		{
			name: "container host at hop limit 3: kept, no hop limit sent", arrange: func(w *world) queued {
				w.add(webID, func(i *ec2types.Instance) { tagged("kubernetes.io/cluster/prod", "owned")(i); hop(3)(i) })
				return w.detect(webID, detectedAt)
			},
			delivery: delivery{want: &outcome{ledger.ResultEnforced, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "IMDSv2 enforced", ""}, calls: enforced},
			check: func(t *testing.T, w *world, q queued) {
				wantModify(t, w, false, nil)
				wantOptions(t, w, webID, "required", 3, "enabled")
			},
		},
		{
			name: "no longer a container host: the live instance sets the target, not the verdict", arrange: func(w *world) queued {
				w.add(webID, tagged("aws:ecs:clusterName", "batch"))
				q := w.detect(webID, detectedAt)
				if !slices.ContainsFunc(q.v.Reasons, func(r policy.Reason) bool { return r.Code == policy.ReasonContainerHost }) {
					w.t.Fatalf("detect's reasons %+v do not name a container host", q.v.Reasons)
				}
				w.ec2.Update(webID, func(i *ec2types.Instance) { i.Tags = nil })
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultEnforced, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "IMDSv2 enforced", ""}, calls: enforced},
			check: func(t *testing.T, w *world, q queued) {
				wantModify(t, w, false, aws.Int32(1))
				wantOptions(t, w, webID, "required", 1, "enabled")
			},
		},

		// Failures after the claim: the item fails, the claim is released, nothing is
		// recorded, and the retry can succeed.
		{
			name: "the change fails: released, nothing recorded; the retry enforces", arrange: func(w *world) queued {
				q := web(w)
				w.ec2.Modify.FailNext(fakeapi.APIError("UnauthorizedOperation", "You are not authorized to perform this operation."))
				return q
			},
			delivery: delivery{failed: true, calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRollout, opBudget, opSnapshot, opModify, opRelease}, logs: []string{"UnauthorizedOperation"}},
			again:    &delivery{want: &outcome{ledger.ResultEnforced, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "IMDSv2 enforced", ""}, calls: enforced},
			check: func(t *testing.T, w *world, q queued) {
				if s := w.book.SnapshotOf(refOf(q.v)); s == nil || s.Options.HTTPTokens != "optional" || s.Options.HopLimit != 2 {
					t.Errorf("snapshot %+v, want the original options", s)
				}
				if d, _ := w.book.Decision(q.v.DecisionID); d.Attempts != 2 || d.Status != fakeapi.DecisionDone {
					t.Errorf("decision %+v, want done on the second attempt", d)
				}
			},
		},
		{
			name: "the change is made but its reply is lost: the retry records the enforcement it was", arrange: func(w *world) queued {
				q := web(w)
				w.ec2.Modify.ReplyNext(func(ctx context.Context, in *ec2.ModifyInstanceMetadataOptionsInput,
					answer func(*ec2.ModifyInstanceMetadataOptionsInput) (*ec2.ModifyInstanceMetadataOptionsOutput, error)) (*ec2.ModifyInstanceMetadataOptionsOutput, error) {
					if _, err := answer(in); err != nil {
						return nil, err
					}
					return nil, errBoom
				})
				return q
			},
			delivery: delivery{failed: true, calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRollout, opBudget, opSnapshot, opModify, opRelease}, logs: []string{"boom"}},
			again: &delivery{want: &outcome{ledger.ResultEnforced, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "earlier attempt of this decision", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opGetSnap, opGetTicket, opRecord}},
			check: func(t *testing.T, w *world, q queued) {
				o := w.book.Outcomes()
				if len(o) != 1 || o[0].Prior == nil || o[0].Prior.HTTPTokens != "optional" || o[0].Applied == nil || o[0].Applied.HTTPTokens != "required" {
					t.Errorf("outcomes %+v, want one enforcement from the snapshot's options to the live ones", o)
				}
			},
		},
		{
			name: "recording the outcome fails: released, and the retry records it", arrange: func(w *world) queued {
				q := web(w)
				w.book.FailNext("Record", errBoom)
				return q
			},
			delivery: delivery{failed: true, calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRollout, opBudget, opSnapshot, opModify, opGetTicket, opRecord, opRelease}, logs: []string{"boom"}},
			again: &delivery{want: &outcome{ledger.ResultEnforced, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "earlier attempt of this decision", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opGetSnap, opGetTicket, opRecord}},
		},
		{
			name: "the snapshot cannot be written: nothing is changed", arrange: func(w *world) queued {
				q := web(w)
				w.book.FailNext("Snapshot", errBoom)
				return q
			},
			delivery: delivery{failed: true, calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRollout, opBudget, opSnapshot, opRelease}, logs: []string{"boom"}},
			check:    func(t *testing.T, w *world, q queued) { wantOptions(t, w, webID, "optional", 2, "enabled") },
		},
		{
			name: "dry-run: EC2 refuses the dry run: released, nothing recorded", mode: policy.ModeDryRun, arrange: func(w *world) queued {
				q := web(w)
				w.ec2.Modify.FailNext(fakeapi.APIError("UnauthorizedOperation", "You are not authorized to perform this operation."))
				return q
			},
			delivery: delivery{failed: true, calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opDryRun, opRelease}, logs: []string{"dry run"}},
		},

		// Tickets: one open ticket per instance.
		{
			name: "a ticket verdict opens a ticket", arrange: legacy,
			delivery: delivery{want: &outcome{ledger.ResultTicketed, policy.ActionTicket, policy.ReasonIMDSv1UsedMetric, "ticket FAKE-1 opened in fake", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opGetTicket, opOpen, opPutTicket, opRecord}},
			check: func(t *testing.T, w *world, q queued) {
				tk := wantTicket(t, w, q, ledger.TicketOpen, "FAKE-1", true)
				if tk != nil && tk.Digest != ticket.NewTicket(q.v, ticket.ComposeOptions{}).Content.EvidenceDigest() {
					t.Errorf("ticket digest %s is not the evidence digest", tk.Digest)
				}
				wantOptions(t, w, legacyID, "optional", 2, "enabled")
			},
		},
		{
			name: "a ticket verdict in report mode opens none", mode: policy.ModeReport, arrange: legacy,
			delivery: delivery{want: &outcome{ledger.ResultReported, policy.ActionTicket, policy.ReasonIMDSv1UsedMetric, "no ticket opened", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opRecord}},
		},
		{
			name: "a ticket verdict in dry-run mode opens a ticket marked dry-run", mode: policy.ModeDryRun, arrange: legacy,
			delivery: delivery{want: &outcome{ledger.ResultTicketed, policy.ActionTicket, policy.ReasonIMDSv1UsedMetric, "opened", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opGetTicket, opOpen, opPutTicket, opRecord}},
			check: func(t *testing.T, w *world, q queued) {
				if f := w.tickets.Filed(); len(f) != 1 || !strings.HasPrefix(f[0].Versions[0].Content.Title, "[dry-run] ") {
					t.Errorf("filed %+v, want one dry-run ticket", f)
				}
			},
		},
		{
			name: "an open ticket with other evidence is updated", arrange: func(w *world) queued {
				q := legacy(w)
				w.fileTicket(q, "fake", "older evidence")
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultTicketUpdated, policy.ActionTicket, policy.ReasonIMDSv1UsedMetric, "new evidence added to ticket FAKE-1", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opGetTicket, opUpdate, opPutTicket, opRecord}},
			check: func(t *testing.T, w *world, q queued) {
				tk := wantTicket(t, w, q, ledger.TicketOpen, "FAKE-1", true)
				if tk != nil && (tk.Digest == "older evidence" || !tk.UpdatedAt.Equal(now)) {
					t.Errorf("ticket %+v, want the new digest updated now", tk)
				}
				if f := w.tickets.Filed(); len(f) != 1 || len(f[0].Versions) != 2 {
					t.Errorf("filed %+v, want one ticket with the update", f)
				}
			},
		},
		{
			name: "an open ticket with this evidence is left alone", arrange: func(w *world) queued {
				q := legacy(w)
				w.fileTicket(q, "fake", ticket.NewTicket(q.v, ticket.ComposeOptions{}).Content.EvidenceDigest())
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultTicketUnchanged, policy.ActionTicket, policy.ReasonIMDSv1UsedMetric, "already has this evidence", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opGetTicket, opRecord}},
		},
		{
			name: "a resolved ticket: a new one is opened", arrange: func(w *world) queued {
				q := legacy(w)
				w.book.SetTicket(ledger.Ticket{Ref: refOf(q.v), Backend: "fake", TicketRef: "FAKE-0", Status: ledger.TicketResolved, Digest: "x",
					OpenedAt: now.AddDate(0, 0, -9), UpdatedAt: now.AddDate(0, 0, -8), ResolvedAt: now.AddDate(0, 0, -8)})
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultTicketed, policy.ActionTicket, policy.ReasonIMDSv1UsedMetric, "ticket FAKE-1 opened", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opGetTicket, opOpen, opPutTicket, opRecord}},
			check: func(t *testing.T, w *world, q queued) { wantTicket(t, w, q, ledger.TicketOpen, "FAKE-1", true) },
		},
		{
			name: "an open ticket in a backend no longer configured: one is opened in this one", arrange: func(w *world) queued {
				q := legacy(w)
				w.fileTicket(q, "jira", "older evidence")
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultTicketed, policy.ActionTicket, policy.ReasonIMDSv1UsedMetric, "ticket FAKE-1 opened in fake", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opGetTicket, opOpen, opPutTicket, opRecord}},
		},
		{
			name: "the ticket backend fails: released, nothing recorded; the retry opens the ticket", arrange: func(w *world) queued {
				q := legacy(w)
				w.tickets.FailNext("Open", errBoom)
				return q
			},
			delivery: delivery{failed: true, calls: []string{opClaim, opDescribe, opGetRB, opGetTicket, opOpen, opRelease}, logs: []string{"boom"}},
			again: &delivery{want: &outcome{ledger.ResultTicketed, policy.ActionTicket, policy.ReasonIMDSv1UsedMetric, "ticket FAKE-1 opened", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opGetTicket, opOpen, opPutTicket, opRecord}},
			check: func(t *testing.T, w *world, q queued) { wantTicket(t, w, q, ledger.TicketOpen, "FAKE-1", true) },
		},
		{
			name: "the ticket is opened but not written to the ledger: the retry opens no second one", arrange: func(w *world) queued {
				q := legacy(w)
				w.book.FailNext("PutTicket", errBoom)
				return q
			},
			delivery: delivery{failed: true, calls: []string{opClaim, opDescribe, opGetRB, opGetTicket, opOpen, opPutTicket, opRelease}},
			again: &delivery{want: &outcome{ledger.ResultTicketed, policy.ActionTicket, policy.ReasonIMDSv1UsedMetric, "ticket FAKE-1 opened", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opGetTicket, opOpen, opPutTicket, opRecord}},
			check: func(t *testing.T, w *world, q queued) {
				if f := w.tickets.Filed(); len(f) != 1 {
					t.Errorf("%d tickets filed, want 1", len(f))
				}
			},
		},
		{
			name: "enforcement resolves the instance's open ticket", arrange: func(w *world) queued {
				q := web(w)
				w.fileTicket(q, "fake", "older")
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultEnforced, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "IMDSv2 enforced; ticket FAKE-1 resolved", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRollout, opBudget, opSnapshot, opModify, opGetTicket, opResolve, opPutTicket, opRecord}},
			check: func(t *testing.T, w *world, q queued) { wantTicket(t, w, q, ledger.TicketResolved, "FAKE-1", false) },
		},
		{
			name: "enforced, but the open ticket cannot be resolved: still recorded as enforced", arrange: func(w *world) queued {
				q := web(w)
				w.fileTicket(q, "fake", "older")
				w.tickets.FailNext("Resolve", errBoom)
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultEnforced, policy.ActionRemediate, policy.ReasonIMDSv1Unused, "IMDSv2 enforced; closing the instance's open ticket failed (the next sweep's close-out resolves it): boom", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opMetrics, opRollout, opBudget, opSnapshot, opModify, opGetTicket, opResolve, opRecord},
				logs:  []string{"the next sweep's close-out resolves it"}},
			check: func(t *testing.T, w *world, q queued) {
				wantTicket(t, w, q, ledger.TicketOpen, "FAKE-1", true)
				if o := w.book.Outcomes()[0]; o.Applied == nil || o.Applied.HTTPTokens != "required" {
					t.Errorf("outcome %+v does not show what was applied", o)
				}
			},
		},

		// Close-out: detect asks to close the ticket of an instance that is compliant now.
		{
			name: "close-out: the open ticket is resolved", arrange: func(w *world) queued {
				q := v2CloseOut(w)
				w.fileTicket(q, "fake", "older")
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultTicketResolved, policy.ActionSkip, policy.ReasonCompliant, "ticket FAKE-1 resolved: HttpTokens is now required", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opGetTicket, opResolve, opPutTicket, opRecord}},
			check: func(t *testing.T, w *world, q queued) {
				wantTicket(t, w, q, ledger.TicketResolved, "FAKE-1", false)
				if c := w.tickets.Filed()[0].Closing; c == nil || c.DecisionID != q.v.DecisionID || c.InstanceID != v2ID || !c.At.Equal(now) {
					t.Errorf("closing %+v", c)
				}
			},
		},
		{
			name: "close-out with no open ticket: already compliant", arrange: v2CloseOut,
			delivery: delivery{want: &outcome{ledger.ResultAlreadyCompliant, policy.ActionSkip, policy.ReasonCompliant, "already required", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opGetTicket, opRecord}},
		},
		{
			name: "close-out of a ticket in another backend: resolved in the ledger, closed by hand", arrange: func(w *world) queued {
				q := v2CloseOut(w)
				w.fileTicket(q, "jira", "older")
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultTicketResolved, policy.ActionSkip, policy.ReasonCompliant, "close it there by hand", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opGetTicket, opPutTicket, opRecord}},
		},
		{
			name: "close-out in report mode: the ticket is left alone", mode: policy.ModeReport, arrange: func(w *world) queued {
				q := v2CloseOut(w)
				w.fileTicket(q, "fake", "older")
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultAlreadyCompliant, policy.ActionSkip, policy.ReasonCompliant, "already required", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opRecord}},
		},
		{
			name: "close-out, but HttpTokens is optional again: nothing is done", arrange: func(w *world) queued {
				q := v2CloseOut(w)
				w.fileTicket(q, "fake", "older")
				w.ec2.Update(v2ID, func(i *ec2types.Instance) { i.MetadataOptions.HttpTokens = ec2types.HttpTokensStateOptional })
				return q
			},
			delivery: delivery{want: &outcome{ledger.ResultSuperseded, policy.ActionSkip, policy.ReasonCompliant, "asked to close the ticket", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opRecord}},
			check: func(t *testing.T, w *world, q queued) { wantTicket(t, w, q, ledger.TicketOpen, "FAKE-1", true) },
		},

		// A deferral from the queue is recorded.
		{
			name: "a defer verdict is recorded", arrange: func(w *world) queued {
				w.ec2.Put(fakeapi.NewInstance(thinID, now.Add(-12*time.Hour)))
				w.cw.Put(thinID, fakeapi.Hourly(now.Truncate(time.Hour), 10, 0)...)
				return w.detect(thinID, detectedAt)
			},
			delivery: delivery{want: &outcome{ledger.ResultDeferred, policy.ActionDefer, policy.ReasonInsufficientMetrics, "waiting for evidence", ""},
				calls: []string{opClaim, opDescribe, opGetRB, opRecord}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mode := tc.mode
			if mode == "" {
				mode = policy.ModeEnforce
			}
			w := newWorld(t, mode)
			q := tc.arrange(w)
			w.forget()
			w.expect(t, "", q, w.handle(q.body), tc.delivery)
			if tc.again != nil {
				w.forget()
				w.expect(t, "delivered again: ", q, w.handle(q.body), *tc.again)
			}
			if tc.check != nil && !t.Failed() {
				tc.check(t, w, q)
			}
		})
	}
}

// expect checks one delivery: the batch item failure, every call in order, and the one
// outcome recorded (or none).
func (w *world) expect(t *testing.T, prefix string, q queued, resp events.SQSEventResponse, d delivery) {
	t.Helper()
	var wantFailures []events.SQSBatchItemFailure
	if d.failed {
		wantFailures = []events.SQSBatchItemFailure{{ItemIdentifier: "msg-1"}}
	}
	if !slices.Equal(resp.BatchItemFailures, wantFailures) {
		t.Errorf("%sbatch item failures %+v, want %+v\nlogs:\n%s", prefix, resp.BatchItemFailures, wantFailures, w.logs)
	}
	if got := w.journal.Entries(); !slices.Equal(got, d.calls) {
		t.Errorf("%scalls\n  %v\nwant\n  %v\nlogs:\n%s", prefix, got, d.calls, w.logs)
	}
	var recorded []ledger.Outcome
	for _, c := range w.book.Calls() {
		if c.Op == "Record" && c.Err == nil {
			recorded = append(recorded, *c.Outcome)
		}
	}
	switch {
	case d.want == nil && len(recorded) > 0:
		t.Errorf("%srecorded %+v, want nothing", prefix, recorded)
	case d.want != nil && len(recorded) != 1:
		t.Errorf("%srecorded %d outcomes %+v, want one %s", prefix, len(recorded), recorded, d.want.result)
	case d.want != nil:
		o, want := recorded[0], d.want
		var primary policy.Reason
		if len(o.Reasons) > 0 {
			primary = o.Reasons[0]
		}
		if o.Result != want.result || o.Action != want.action || primary.Code != want.reason || !strings.Contains(o.Detail, want.detail) ||
			!strings.Contains(primary.Detail, want.why) {
			t.Errorf("%soutcome %s, %s (%s: %q): %q\nwant %s, %s (%s: %q) with %q", prefix, o.Result, o.Action, primary.Code, primary.Detail, o.Detail,
				want.result, want.action, want.reason, want.why, want.detail)
		}
		if o.DecisionID != q.v.DecisionID || o.Ref != refOf(q.v) || !o.At.Equal(now) || o.Mode != string(w.h.Settings.Mode) {
			t.Errorf("%soutcome is about %s %+v at %s in %s, want decision %s at %s in %s", prefix, o.DecisionID, o.Ref, o.At, o.Mode,
				q.v.DecisionID, now, w.h.Settings.Mode)
		}
	}
	for _, s := range d.logs {
		if !strings.Contains(w.logs.String(), s) {
			t.Errorf("%slogs do not say %q:\n%s", prefix, s, w.logs)
		}
	}
}

// wantModify checks the one ModifyInstanceMetadataOptions call: tokens required, the
// hop limit only when it changes, never the endpoint.
func wantModify(t *testing.T, w *world, dryRun bool, hop *int32) {
	t.Helper()
	ins := w.ec2.Modify.Inputs()
	if len(ins) != 1 {
		t.Fatalf("%d ModifyInstanceMetadataOptions calls, want 1", len(ins))
	}
	in := ins[0]
	gotHop, wantHop := "none", "none"
	if in.HttpPutResponseHopLimit != nil {
		gotHop = strconv.Itoa(int(*in.HttpPutResponseHopLimit))
	}
	if hop != nil {
		wantHop = strconv.Itoa(int(*hop))
	}
	if in.HttpTokens != ec2types.HttpTokensStateRequired || aws.ToBool(in.DryRun) != dryRun || gotHop != wantHop || in.HttpEndpoint != "" {
		t.Errorf("modify input: tokens %q, DryRun %v, hop limit %s, endpoint %q; want required, %v, %s, none",
			in.HttpTokens, aws.ToBool(in.DryRun), gotHop, in.HttpEndpoint, dryRun, wantHop)
	}
}

// wantOptions checks the instance's metadata options as EC2 holds them now.
func wantOptions(t *testing.T, w *world, id, tokens string, hop int32, endpoint string) {
	t.Helper()
	inst, ok := w.ec2.Instance(id)
	if !ok {
		t.Fatalf("instance %s is gone", id)
	}
	mo := inst.MetadataOptions
	if string(mo.HttpTokens) != tokens || aws.ToInt32(mo.HttpPutResponseHopLimit) != hop || string(mo.HttpEndpoint) != endpoint {
		t.Errorf("%s: tokens %s, hop limit %d, endpoint %s; want %s, %d, %s", id, mo.HttpTokens, aws.ToInt32(mo.HttpPutResponseHopLimit), mo.HttpEndpoint,
			tokens, hop, endpoint)
	}
}

// wantTicket checks the instance's ticket in the ledger and, for the fake backend, there.
func wantTicket(t *testing.T, w *world, q queued, status, ref string, open bool) *ledger.Ticket {
	t.Helper()
	tk := w.book.TicketOf(refOf(q.v))
	if tk == nil || tk.Status != status || tk.TicketRef != ref || tk.Backend != "fake" {
		t.Errorf("ledger ticket %+v, want %s %s in fake", tk, status, ref)
		return tk
	}
	for _, f := range w.tickets.Filed() {
		if f.Ref == ref && f.Open != open {
			t.Errorf("backend ticket %s open %v, want %v", ref, f.Open, open)
		}
	}
	return tk
}

// TestHandlerBatch: in one batch only the messages that failed are reported, and the
// others are carried out.
func TestHandlerBatch(t *testing.T) {
	w := newWorld(t, policy.ModeEnforce)
	legacy(w)
	good := web(w)
	forged := good.v
	forged.DecisionID, forged.InstanceID = "0000000000000-0000000000000000", legacyID
	w.forget()
	resp := w.handle(w.unrecorded(forged).body, good.body, "not json")
	want := []events.SQSBatchItemFailure{{ItemIdentifier: "msg-1"}, {ItemIdentifier: "msg-3"}}
	if !slices.Equal(resp.BatchItemFailures, want) {
		t.Errorf("failures %+v, want %+v\n%s", resp.BatchItemFailures, want, w.logs)
	}
	if o := w.book.Outcomes(); len(o) != 1 || o[0].DecisionID != good.v.DecisionID || o[0].Result != ledger.ResultEnforced {
		t.Errorf("outcomes %+v, want web enforced alone", o)
	}
	wantOptions(t, w, legacyID, "optional", 2, "enabled")
	wantOptions(t, w, webID, "required", 1, "enabled")
}

// fixedPause is a pause switch with a set answer.
type fixedPause struct {
	paused bool
	by     string
	err    error
}

func (p fixedPause) Paused(context.Context) (bool, string, error) { return p.paused, p.by, p.err }

package remediate_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/remediate"
	"github.com/imdsguard/imdsguard/internal/testsupport"
	"github.com/imdsguard/imdsguard/internal/ticket"
)

func TestMain(m *testing.M) { os.Exit(testsupport.RunWithMoto(m)) }

const account = "123456789012"

type rig struct {
	ctx  context.Context
	h    *remediate.Handler
	ec2  *ec2.Client
	cw   *cloudwatch.Client
	book *ledger.Ledger
	// decisions records as detect does.
	decisions *decisionlog.Log
	fleet     map[string]demo.Seeded
	now       time.Time
	logs      *bytes.Buffer
	calls     *awsapi.CallCounter
	ct        *fakeaws.CloudTrail
}

// newRig seeds the named kinds and builds a handler in mode against moto, with the
// CloudTrail stand-in for re-evaluations.
func newRig(t *testing.T, mode policy.Mode, kinds ...string) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	moto := testsupport.Moto(t)
	ct := fakeaws.NewCloudTrail()
	t.Cleanup(ct.Close)
	cfg := fakeaws.AWSConfig(demo.Region)
	cfg.BaseEndpoint = aws.String(moto.URL)
	calls := awsapi.NewCallCounter()
	cfg.APIOptions = append(cfg.APIOptions, calls.AddTo)
	// moto applies a dry run; the proxy answers DryRunOperation as EC2 does.
	dryRun, err := fakeaws.NewEC2DryRun(moto.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dryRun.Close)
	ec2Client := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(dryRun.URL) })
	now := time.Now().UTC()
	chosen := demo.KindsNamed(now, kinds...)
	seeded, err := demo.Seed(ctx, demo.Clients{EC2: ec2Client, CloudWatch: cloudwatch.NewFromConfig(cfg), CloudTrail: ct}, chosen, 1, now)
	if err != nil {
		t.Fatal(err)
	}
	fleet := map[string]demo.Seeded{}
	for _, s := range seeded {
		fleet[s.Kind.Name] = s
	}
	db := dynamodb.NewFromConfig(cfg)
	notifications := sns.NewFromConfig(cfg)
	res, err := demo.CreateResources(ctx, demo.ResourceClients{SQS: sqs.NewFromConfig(cfg), DynamoDB: db, SNS: notifications})
	if err != nil {
		t.Fatal(err)
	}
	settings := policy.DefaultSettings()
	settings.Mode = mode
	book := &ledger.Ledger{API: db, Table: res.Table}
	var logs bytes.Buffer
	h := &remediate.Handler{
		Settings: settings, Limits: policy.RecheckLimits{MaxAge: time.Hour, MaxClockSkew: time.Minute},
		ClaimTTL: 15 * time.Minute, Region: demo.Region,
		Clients: guard.Clients{
			EC2: ec2Client, CloudWatch: cloudwatch.NewFromConfig(cfg),
			CloudTrail:    cloudtrail.NewFromConfig(cfg, func(o *cloudtrail.Options) { o.BaseEndpoint = aws.String(ct.URL) }),
			LookupLimiter: evidence.NewLookupLimiter(100),
		},
		Enforcer: &enforce.Enforcer{EC2: ec2Client, MaxWait: 10 * time.Second, FirstDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond},
		Ledger:   book,
		Rollout:  policy.RolloutSettings{MaxPerHour: 25, WaveSoak: 24 * time.Hour},
		Tickets:  &ticket.SNS{API: notifications, TopicARN: res.TopicARN},
		Now:      func() time.Time { return now },
		Log:      slog.New(slog.NewJSONHandler(&logs, nil)),
		Metrics:  &emf.Emitter{W: &logs, Now: func() time.Time { return now }},
	}
	return &rig{ctx: ctx, h: h, ec2: ec2Client, cw: cloudwatch.NewFromConfig(cfg), book: book, decisions: &decisionlog.Log{API: db, Table: res.Table}, fleet: fleet, now: now, logs: &logs, calls: calls, ct: ct}
}

// sent is a verdict message as detect sends it: recorded in the ledger, then queued.
type sent struct {
	v    message.Verdict
	body string
}

// verdict is the message detect would send for the instance now, recorded in the ledger
// exactly as detect records it.
func (r *rig) verdict(t *testing.T, kind string) sent {
	t.Helper()
	return r.verdictAt(t, kind, r.now)
}

// verdictAt is verdict with the evidence read, and the decision made, at the given time.
func (r *rig) verdictAt(t *testing.T, kind string, at time.Time) sent {
	t.Helper()
	as, err := guard.Assess(r.ctx, r.h.Clients, demo.Region, []string{r.fleet[kind].ID}, r.h.Settings, at, nil)
	if err != nil || len(as) != 1 {
		t.Fatalf("assessing %s: %v", kind, err)
	}
	m, err := message.New(as[0].Evidence, as[0].Verdict, as[0].AccountID, as[0].Region, at)
	if err != nil {
		t.Fatal(err)
	}
	return r.record(t, m)
}

// record records m as detect would and returns it with its body.
func (r *rig) record(t *testing.T, m message.Verdict) sent {
	t.Helper()
	body, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d := decisionlog.Decision{AccountID: m.AccountID, Region: m.Region, InstanceID: m.InstanceID,
		DecisionID: m.DecisionID, Action: m.Action, CreatedAt: m.CreatedAt, Digest: decisionlog.Digest(body)}
	if err := r.decisions.RecordDecisions(r.ctx, []decisionlog.Decision{d}); err != nil {
		t.Fatal(err)
	}
	return sent{v: m, body: string(body)}
}

// unrecorded is m encoded but never recorded: a message detect did not send.
func unrecorded(t *testing.T, m message.Verdict) sent {
	t.Helper()
	body, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return sent{v: m, body: string(body)}
}

func (r *rig) handle(t *testing.T, msgs ...sent) events.SQSEventResponse {
	t.Helper()
	var batch events.SQSEvent
	for i, m := range msgs {
		batch.Records = append(batch.Records, events.SQSMessage{MessageId: "m" + strconv.Itoa(i), Body: m.body})
	}
	resp, err := r.h.Handle(r.ctx, account, batch)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func (r *rig) tokens(t *testing.T, kind string) string {
	t.Helper()
	out, err := r.ec2.DescribeInstances(r.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{r.fleet[kind].ID}})
	if err != nil {
		t.Fatal(err)
	}
	return string(out.Reservations[0].Instances[0].MetadataOptions.HttpTokens)
}

func (r *rig) history(t *testing.T, kind string) []ledger.Outcome {
	t.Helper()
	h, err := r.book.History(r.ctx, ledger.Ref{AccountID: account, Region: demo.Region, InstanceID: r.fleet[kind].ID})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestModes(t *testing.T) {
	tests := []struct {
		mode        policy.Mode
		wantTokens  string
		wantResult  string
		wantModifys int // ModifyInstanceMetadataOptions calls, dry runs included
	}{
		{policy.ModeReport, "optional", ledger.ResultReported, 0},
		{policy.ModeDryRun, "optional", ledger.ResultDryRun, 1},
		{policy.ModeEnforce, "required", ledger.ResultEnforced, 1},
	}
	for _, tc := range tests {
		t.Run(string(tc.mode), func(t *testing.T) {
			r := newRig(t, tc.mode, "web")
			resp := r.handle(t, r.verdict(t, "web"))
			if len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures %+v\n%s", resp.BatchItemFailures, r.logs)
			}
			if got := r.tokens(t, "web"); got != tc.wantTokens {
				t.Errorf("HttpTokens %s, want %s", got, tc.wantTokens)
			}
			if r.modifys() != tc.wantModifys {
				t.Errorf("%d ModifyInstanceMetadataOptions calls, want %d", r.modifys(), tc.wantModifys)
			}
			h := r.history(t, "web")
			if len(h) != 1 || h[0].Result != tc.wantResult || h[0].Mode != string(tc.mode) {
				t.Errorf("history %+v, want one %s outcome", h, tc.wantResult)
			}
		})
	}
}

// TestEnforcementChangesOnlyWhatItMust: tokens become required, the hop limit is set only
// where it changes (a container host keeps a higher one), and a disabled endpoint stays
// disabled.
func TestEnforcementChangesOnlyWhatItMust(t *testing.T) {
	r := newRig(t, policy.ModeEnforce, "endpoint-off", "k8s-node-hop3", "eks-node")
	var msgs []sent
	for _, kind := range []string{"endpoint-off", "k8s-node-hop3", "eks-node"} {
		msgs = append(msgs, r.verdict(t, kind))
	}
	if resp := r.handle(t, msgs...); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %+v\n%s", resp.BatchItemFailures, r.logs)
	}
	want := map[string]ec2types.InstanceMetadataOptionsResponse{
		"endpoint-off":  {HttpTokens: "required", HttpPutResponseHopLimit: aws.Int32(1), HttpEndpoint: "disabled"},
		"k8s-node-hop3": {HttpTokens: "required", HttpPutResponseHopLimit: aws.Int32(3), HttpEndpoint: "enabled"},
		"eks-node":      {HttpTokens: "required", HttpPutResponseHopLimit: aws.Int32(2), HttpEndpoint: "enabled"},
	}
	for kind, w := range want {
		out, err := r.ec2.DescribeInstances(r.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{r.fleet[kind].ID}})
		if err != nil {
			t.Fatal(err)
		}
		mo := out.Reservations[0].Instances[0].MetadataOptions
		if mo.HttpTokens != w.HttpTokens || aws.ToInt32(mo.HttpPutResponseHopLimit) != aws.ToInt32(w.HttpPutResponseHopLimit) || mo.HttpEndpoint != w.HttpEndpoint {
			t.Errorf("%s: tokens %s, hop %d, endpoint %s; want %s, %d, %s", kind, mo.HttpTokens, aws.ToInt32(mo.HttpPutResponseHopLimit), mo.HttpEndpoint,
				w.HttpTokens, aws.ToInt32(w.HttpPutResponseHopLimit), w.HttpEndpoint)
		}
		if h := r.history(t, kind); len(h) != 1 || h[0].Result != ledger.ResultEnforced {
			t.Errorf("%s history %+v, want enforced", kind, h)
		}
	}
}

// TestChangedWorldIsJudgedAgain: a verdict detect did send is not trusted once the world
// moved on: too old, other options, an exemption since, compliant since.
func TestChangedWorldIsJudgedAgain(t *testing.T) {
	r := newRig(t, policy.ModeEnforce, "web", "new", "exempt", "already-v2")

	// An hour and a half old: judged again, the live evidence still says remediate.
	stale := r.verdictAt(t, "web", r.now.Add(-90*time.Minute))
	// Decided while the instance was as seeded; since then its hop limit changed.
	changed := r.verdict(t, "new")
	if _, err := r.ec2.ModifyInstanceMetadataOptions(r.ctx, &ec2.ModifyInstanceMetadataOptionsInput{
		// moto resets the fields a call leaves out (EC2 keeps them): name the tokens too.
		InstanceId: aws.String(r.fleet["new"].ID), HttpPutResponseHopLimit: aws.Int32(3), HttpTokens: ec2types.HttpTokensStateOptional,
	}); err != nil {
		t.Fatal(err)
	}
	// Decided before the instance was exempted... (the kind carries the tag: detect saw it
	// too, so the verdict is a skip and is never sent; a remediate message for it is made
	// the way an earlier sweep, before the tag, would have made it).
	before := r.verdict(t, "web").v
	before.DecisionID = newDecisionID(t, r.now)
	before.InstanceID, before.Name = r.fleet["exempt"].ID, "exempt-1"
	exempt := r.record(t, before)
	// Decided before the instance became compliant.
	before = r.verdict(t, "web").v
	before.DecisionID = newDecisionID(t, r.now)
	before.InstanceID, before.Name = r.fleet["already-v2"].ID, "already-v2-1"
	compliant := r.record(t, before)

	resp := r.handle(t, stale, changed, exempt, compliant)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %+v\n%s", resp.BatchItemFailures, r.logs)
	}
	for kind, want := range map[string]string{"new": ledger.ResultDeferred, "exempt": ledger.ResultSuperseded, "already-v2": ledger.ResultAlreadyCompliant} {
		if got := r.tokens(t, kind); kind != "already-v2" && got != "optional" {
			t.Errorf("%s was enforced on a verdict the world no longer supports", kind)
		}
		if h := r.history(t, kind); len(h) != 1 || h[0].Result != want {
			t.Errorf("%s history %+v, want %s", kind, h, want)
		}
	}
	h := r.history(t, "web")
	if len(h) != 1 || h[0].Result != ledger.ResultEnforced || !strings.Contains(h[0].Detail, "judged again") {
		t.Errorf("web history %+v, want enforced after judging again", h)
	}
	if r.modifys() != 2 { // web's enforcement, and the test's own hop limit change
		t.Errorf("%d ModifyInstanceMetadataOptions calls, want 2", r.modifys())
	}
}

// TestForgedAlteredFutureAndForeignAreRefused: only a message detect recorded, unchanged,
// about this account and region and not from the future is acted on. Every other one
// fails its item (to the DLQ after the retries) and changes nothing, even when it
// claims "remediate" for an instance that uses IMDSv1.
func TestForgedAlteredFutureAndForeignAreRefused(t *testing.T) {
	r := newRig(t, policy.ModeEnforce, "web", "legacy-v1", "sdk-v1")
	genuine := r.verdict(t, "web").v

	// Forged: never recorded, for instances that use IMDSv1 by metric and by CloudTrail.
	var msgs []sent
	for _, kind := range []string{"legacy-v1", "sdk-v1"} {
		m := genuine
		m.DecisionID = newDecisionID(t, r.now)
		m.InstanceID, m.Name = r.fleet[kind].ID, kind
		msgs = append(msgs, unrecorded(t, m))
	}
	// Altered: detect recorded a ticket for legacy-v1; the message on the queue says
	// remediate.
	ticketed := r.verdict(t, "legacy-v1")
	altered := ticketed.v
	altered.Action, altered.Reasons = policy.ActionRemediate, genuine.Reasons
	msgs = append(msgs, sent{v: altered, body: unrecorded(t, altered).body})
	// Altered: a recorded remediate verdict for web, moved to sdk-v1.
	moved := r.verdict(t, "web").v
	moved.InstanceID = r.fleet["sdk-v1"].ID
	msgs = append(msgs, unrecorded(t, moved))
	// Dated ten years from now, and recorded, as a detect with a broken clock would.
	future := r.verdict(t, "web").v
	future.DecisionID = newDecisionID(t, r.now)
	future.CreatedAt = r.now.AddDate(10, 0, 0)
	msgs = append(msgs, r.record(t, future))
	// About another account.
	foreign := r.verdict(t, "web").v
	foreign.DecisionID = newDecisionID(t, r.now)
	foreign.AccountID = "210987654321"
	msgs = append(msgs, r.record(t, foreign))
	// Malformed.
	msgs = append(msgs, sent{body: `{"schema":"imdsguard.verdict/v1"}`})

	resp := r.handle(t, msgs...)
	if len(resp.BatchItemFailures) != len(msgs) {
		t.Fatalf("%d failures %+v, want all %d refused\n%s", len(resp.BatchItemFailures), resp.BatchItemFailures, len(msgs), r.logs)
	}
	if r.modifys() != 0 {
		t.Errorf("%d ModifyInstanceMetadataOptions calls: a refused message changed an instance", r.modifys())
	}
	for _, kind := range []string{"web", "legacy-v1", "sdk-v1"} {
		if got := r.tokens(t, kind); got != "optional" {
			t.Errorf("%s: HttpTokens %s after refused messages", kind, got)
		}
		if h := r.history(t, kind); len(h) != 0 {
			t.Errorf("%s: refused messages were recorded as outcomes: %+v", kind, h)
		}
	}
	for _, want := range []string{"not recorded by detect", "differs from the decision detect recorded", "in the future", "another account or region", "decision_id"} {
		if !strings.Contains(r.logs.String(), want) {
			t.Errorf("logs do not say %q:\n%s", want, r.logs)
		}
	}

	// The genuine ticket verdict is still honoured afterwards, and a replay of it once it
	// is done changes nothing.
	if resp := r.handle(t, ticketed); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("genuine message failed: %+v\n%s", resp.BatchItemFailures, r.logs)
	}
	if resp := r.handle(t, ticketed); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("replayed message failed: %+v", resp.BatchItemFailures)
	}
	if h := r.history(t, "legacy-v1"); len(h) != 1 || h[0].Result != ledger.ResultTicketed {
		t.Errorf("legacy-v1 history %+v, want one ticketed outcome", h)
	}
}

// TestIMDSv1UseAfterTheVerdictTurnsItIntoATicket: remediate reads MetadataNoToken since
// the verdict's evidence before it enforces; a call in between means a ticket.
func TestIMDSv1UseAfterTheVerdictTurnsItIntoATicket(t *testing.T) {
	r := newRig(t, policy.ModeEnforce, "web")
	v := r.verdict(t, "web")
	if v.v.Action != policy.ActionRemediate || v.v.Evidence.LastDatapoint == nil {
		t.Fatalf("web verdict %s with last datapoint %v, want remediate with one", v.v.Action, v.v.Evidence.LastDatapoint)
	}
	// Three IMDSv1 calls between the start of the newest bucket the verdict read and now.
	last := *v.v.Evidence.LastDatapoint
	if err := fakeaws.PutMetadataNoToken(r.ctx, r.cw, r.fleet["web"].ID,
		[]fakeaws.Point{{Time: last.Add(r.now.Sub(last) / 2), Value: 3}}); err != nil {
		t.Fatal(err)
	}
	if resp := r.handle(t, v); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %+v\n%s", resp.BatchItemFailures, r.logs)
	}
	if got := r.tokens(t, "web"); got != "optional" || r.modifys() != 0 {
		t.Errorf("web enforced (HttpTokens %s, %d modify calls) despite IMDSv1 use after the verdict", got, r.modifys())
	}
	h := r.history(t, "web")
	if len(h) != 1 || h[0].Result != ledger.ResultTicketed || h[0].Action != policy.ActionTicket ||
		len(h[0].Reasons) == 0 || h[0].Reasons[0].Code != policy.ReasonIMDSv1UsedMetric {
		t.Errorf("web history %+v, want a ticket for imdsv1-used-metric", h)
	}
}

func newDecisionID(t *testing.T, at time.Time) string {
	t.Helper()
	id, err := message.NewDecisionID(at)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestTicketFailureIsRetried: when the ticket cannot be opened the item fails, the
// claim is released, and a later delivery succeeds.
func TestTicketFailureIsRetried(t *testing.T) {
	r := newRig(t, policy.ModeEnforce, "sdk-v1")
	v := r.verdict(t, "sdk-v1")
	if v.v.Action != policy.ActionTicket {
		t.Fatalf("sdk-v1 verdict %s", v.v.Action)
	}
	topic := r.h.Tickets.(*ticket.SNS).TopicARN
	r.h.Tickets.(*ticket.SNS).TopicARN = topic + "-missing"
	resp := r.handle(t, v)
	if len(resp.BatchItemFailures) != 1 {
		t.Fatalf("failures %+v, want the item to fail when SNS refuses", resp.BatchItemFailures)
	}
	if !strings.Contains(r.logs.String(), "sns:Publish") {
		t.Errorf("logs do not name the failed call:\n%s", r.logs)
	}
	if h := r.history(t, "sdk-v1"); len(h) != 0 {
		t.Fatalf("a failed ticket was recorded: %+v", h)
	}
	r.h.Tickets.(*ticket.SNS).TopicARN = topic
	if resp := r.handle(t, v); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("retry failed: %+v\n%s", resp.BatchItemFailures, r.logs)
	}
	if h := r.history(t, "sdk-v1"); len(h) != 1 || h[0].Result != ledger.ResultTicketed {
		t.Fatalf("history after retry %+v", h)
	}
}

// modifys counts the ModifyInstanceMetadataOptions calls made, dry runs included.
func (r *rig) modifys() int { return r.calls.Counts()["ec2:ModifyInstanceMetadataOptions"] }

// TestTicketLifecycle: a repeat verdict with the same evidence leaves the ticket alone,
// new evidence (another caller) is added to it, and compliance closes it.
func TestTicketLifecycle(t *testing.T) {
	r := newRig(t, policy.ModeEnforce, "sdk-v1")
	inst := r.fleet["sdk-v1"]
	publishes := func() int { return r.calls.Counts()["sns:Publish"] }
	steps := []struct {
		name      string
		before    func()
		result    string
		publishes int
	}{
		{"first verdict opens the ticket", func() {}, ledger.ResultTicketed, 1},
		{"same evidence changes nothing", func() {}, ledger.ResultTicketUnchanged, 1},
		{"a new caller is added", func() {
			r.ct.AddEvent(fakeaws.RoleDeliveryEvent(fakeaws.RoleDelivery{
				InstanceID: inst.ID, Delivery: "1.0", UserAgent: "Boto3/1.9.42 Python/2.7.15 Linux/4.14 Botocore/1.12.42",
				SourceIP: inst.PrivateIP, Time: r.now.Add(-time.Hour),
			}))
		}, ledger.ResultTicketUpdated, 2},
		{"compliance closes it", func() {
			if _, err := r.ec2.ModifyInstanceMetadataOptions(r.ctx, &ec2.ModifyInstanceMetadataOptionsInput{
				InstanceId: aws.String(inst.ID), HttpTokens: ec2types.HttpTokensStateRequired,
			}); err != nil {
				t.Fatal(err)
			}
		}, ledger.ResultTicketResolved, 3},
	}
	for i, step := range steps {
		step.before()
		v := r.verdict(t, "sdk-v1")
		if i == len(steps)-1 {
			v = r.record(t, closeOut(t, v.v))
		}
		if resp := r.handle(t, v); len(resp.BatchItemFailures) != 0 {
			t.Fatalf("%s: failures %+v\n%s", step.name, resp.BatchItemFailures, r.logs)
		}
		got := ""
		for _, o := range r.history(t, "sdk-v1") { // all at the rig's one time: find this decision's
			if o.DecisionID == v.v.DecisionID {
				got = o.Result
			}
		}
		if got != step.result || publishes() != step.publishes {
			t.Fatalf("%s: result %s with %d SNS messages, want %s with %d", step.name, got, publishes(), step.result, step.publishes)
		}
	}
	tk, err := r.book.GetTicket(r.ctx, ledger.Ref{AccountID: account, Region: demo.Region, InstanceID: inst.ID})
	if err != nil || tk == nil || tk.Status != ledger.TicketResolved {
		t.Fatalf("ticket %+v, %v; want resolved", tk, err)
	}
}

// closeOut is the skip verdict detect sends for a compliant instance with an open ticket.
func closeOut(t *testing.T, v message.Verdict) message.Verdict {
	v.DecisionID = newDecisionID(t, v.CreatedAt)
	v.Action = policy.ActionSkip
	v.Reasons = []policy.Reason{{Code: policy.ReasonCompliant, Detail: "HttpTokens is already required"}}
	return v
}

package remediate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
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
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/remediate"
	"github.com/imdsguard/imdsguard/internal/testsupport"
	"github.com/imdsguard/imdsguard/internal/ticket"
)

func TestMain(m *testing.M) { os.Exit(testsupport.RunWithMoto(m)) }

const account = "123456789012"

type rig struct {
	ctx   context.Context
	h     *remediate.Handler
	ec2   *ec2.Client
	fleet map[string]demo.Seeded
	now   time.Time
	logs  *bytes.Buffer
	calls *awsapi.CallCounter
	ct    *testsupport.CloudTrail
}

// newRig seeds the named kinds and builds a handler in mode against moto, with the
// CloudTrail stand-in for re-evaluations.
func newRig(t *testing.T, mode policy.Mode, kinds ...string) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	moto := testsupport.Moto(t)
	ct := testsupport.NewCloudTrail()
	t.Cleanup(ct.Close)
	cfg := testsupport.AWSConfig(demo.Region)
	cfg.BaseEndpoint = aws.String(moto.URL)
	calls := awsapi.NewCallCounter()
	cfg.APIOptions = append(cfg.APIOptions, calls.AddTo)
	// moto applies a dry run; the proxy answers DryRunOperation as EC2 does.
	dryRun, err := testsupport.NewEC2DryRun(moto.URL)
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
	var logs bytes.Buffer
	h := &remediate.Handler{
		Settings: settings, MaxVerdictAge: time.Hour, ClaimTTL: 15 * time.Minute, Region: demo.Region,
		Clients: guard.Clients{
			EC2: ec2Client, CloudWatch: cloudwatch.NewFromConfig(cfg),
			CloudTrail:    cloudtrail.NewFromConfig(cfg, func(o *cloudtrail.Options) { o.BaseEndpoint = aws.String(ct.URL) }),
			LookupLimiter: evidence.NewLookupLimiter(100),
		},
		Enforcer: &enforce.Enforcer{EC2: ec2Client, MaxWait: 10 * time.Second, FirstDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond},
		Ledger:   &ledger.Ledger{API: db, Table: res.Table},
		Tickets:  &ticket.SNS{API: notifications, TopicARN: res.TopicARN},
		Now:      func() time.Time { return now },
		Log:      slog.New(slog.NewJSONHandler(&logs, nil)),
		Metrics:  &emf.Emitter{W: &logs, Now: func() time.Time { return now }},
	}
	return &rig{ctx: ctx, h: h, ec2: ec2Client, fleet: fleet, now: now, logs: &logs, calls: calls, ct: ct}
}

// verdict is the message detect would send for the instance now.
func (r *rig) verdict(t *testing.T, kind string) message.Verdict {
	t.Helper()
	as, err := guard.Assess(r.ctx, r.h.Clients, demo.Region, []string{r.fleet[kind].ID}, r.h.Settings, r.now, nil)
	if err != nil || len(as) != 1 {
		t.Fatalf("assessing %s: %v", kind, err)
	}
	m, err := message.New(as[0], r.now)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (r *rig) handle(t *testing.T, msgs ...message.Verdict) events.SQSEventResponse {
	t.Helper()
	var batch events.SQSEvent
	for i, m := range msgs {
		body, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		batch.Records = append(batch.Records, events.SQSMessage{MessageId: "m" + string(rune('0'+i)), Body: string(body)})
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
	h, err := r.h.Ledger.History(r.ctx, ledger.Ref{AccountID: account, Region: demo.Region, InstanceID: r.fleet[kind].ID})
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

// TestStaleOrForgedVerdictsAreReEvaluated: remediate never enforces on a verdict the
// live evidence no longer supports.
func TestStaleOrForgedVerdictsAreReEvaluated(t *testing.T) {
	r := newRig(t, policy.ModeEnforce, "web", "new", "exempt", "already-v2")

	// A remediate verdict for an instance whose metrics are too short, an hour and a
	// half old: re-evaluation finds insufficient metrics and defers.
	forged := r.verdict(t, "web")
	forged.InstanceID, forged.Name = r.fleet["new"].ID, "new-1"
	forged.CreatedAt = r.now.Add(-90 * time.Minute)

	// A fresh remediate verdict whose recorded options differ from the live ones.
	changed := r.verdict(t, "web")
	changed.Current.HopLimit = 5

	// A remediate verdict for an instance that carries an exemption tag now.
	exempt := r.verdict(t, "web")
	exempt.InstanceID = r.fleet["exempt"].ID

	// A verdict for an instance that is compliant by now.
	compliant := r.verdict(t, "web")
	compliant.InstanceID = r.fleet["already-v2"].ID

	resp := r.handle(t, forged, changed, exempt, compliant)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %+v\n%s", resp.BatchItemFailures, r.logs)
	}
	for kind, want := range map[string]string{"new": ledger.ResultDeferred, "exempt": ledger.ResultSuperseded, "already-v2": ledger.ResultAlreadyCompliant} {
		if got := r.tokens(t, kind); kind != "already-v2" && got != "optional" {
			t.Errorf("%s was enforced on a stale or forged verdict", kind)
		}
		if h := r.history(t, kind); len(h) != 1 || h[0].Result != want {
			t.Errorf("%s history %+v, want %s", kind, h, want)
		}
	}
	// The verdict with changed options was re-evaluated on fresh evidence, which still
	// says remediate.
	h := r.history(t, "web")
	if len(h) != 1 || h[0].Result != ledger.ResultEnforced || !strings.Contains(h[0].Detail, "re-evaluated") {
		t.Errorf("web history %+v, want enforced after re-evaluation", h)
	}
	if r.modifys() != 1 {
		t.Errorf("%d ModifyInstanceMetadataOptions calls, want 1 (web only)", r.modifys())
	}
}

// TestTicketFailureIsRetried: when the ticket cannot be opened the item fails, the
// claim is released, and a later delivery succeeds.
func TestTicketFailureIsRetried(t *testing.T) {
	r := newRig(t, policy.ModeEnforce, "sdk-v1")
	v := r.verdict(t, "sdk-v1")
	if v.Action != policy.ActionTicket {
		t.Fatalf("sdk-v1 verdict %s", v.Action)
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

// TestRefusesForeignAndMalformed: messages for another account, or that do not parse,
// fail their item and change nothing.
func TestRefusesForeignAndMalformed(t *testing.T) {
	r := newRig(t, policy.ModeEnforce, "web")
	foreign := r.verdict(t, "web")
	foreign.AccountID = "210987654321"
	batch := events.SQSEvent{Records: []events.SQSMessage{{MessageId: "bad", Body: `{"schema":"imdsguard.verdict/v1"}`}}}
	body, _ := json.Marshal(foreign)
	batch.Records = append(batch.Records, events.SQSMessage{MessageId: "foreign", Body: string(body)})
	resp, err := r.h.Handle(r.ctx, account, batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.BatchItemFailures) != 2 {
		t.Fatalf("failures %+v, want both", resp.BatchItemFailures)
	}
	if r.tokens(t, "web") != "optional" || r.modifys() != 0 {
		t.Errorf("a refused message changed the instance")
	}
	for _, want := range []string{"decision_id", "210987654321"} {
		if !strings.Contains(r.logs.String(), want) {
			t.Errorf("logs do not say %q:\n%s", want, r.logs)
		}
	}
}

func TestMessageValidation(t *testing.T) {
	good := message.Verdict{
		Schema: message.Schema, DecisionID: "0019a2b3c4d5e-0123456789abcdef", CreatedAt: time.Now(),
		AccountID: account, Region: "us-east-1", InstanceID: "i-0123456789abcdef0", Action: policy.ActionDefer,
		Reasons: []policy.Reason{{Code: policy.ReasonNotRunning, Detail: "stopped"}},
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("good message refused: %v", err)
	}
	tests := map[string]func(*message.Verdict){
		"schema":                      func(v *message.Verdict) { v.Schema = "imdsguard.verdict/v2" },
		"decision_id":                 func(v *message.Verdict) { v.DecisionID = "x" },
		"account_id":                  func(v *message.Verdict) { v.AccountID = "12" },
		"region":                      func(v *message.Verdict) { v.Region = "moon" },
		"instance_id":                 func(v *message.Verdict) { v.InstanceID = "web-1" },
		"is not remediate":            func(v *message.Verdict) { v.Action = "fix" },
		"only sent to close a ticket": func(v *message.Verdict) { v.Action = policy.ActionSkip },
		"reasons":                     func(v *message.Verdict) { v.Reasons = nil },
		"needs a target":              func(v *message.Verdict) { v.Action = policy.ActionRemediate },
		"created_at":                  func(v *message.Verdict) { v.CreatedAt = time.Time{} },
	}
	for want, mutate := range tests {
		v := good
		mutate(&v)
		err := v.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v", want, err)
		}
	}
	if _, err := message.Parse(`{"schema":"imdsguard.verdict/v1","surprise":1}`); err == nil || !strings.Contains(err.Error(), "surprise") {
		t.Errorf("unknown field accepted: %v", err)
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
			r.ct.AddEvent(testsupport.RoleDeliveryEvent(testsupport.RoleDelivery{
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
			v = closeOut(v)
		}
		if resp := r.handle(t, v); len(resp.BatchItemFailures) != 0 {
			t.Fatalf("%s: failures %+v\n%s", step.name, resp.BatchItemFailures, r.logs)
		}
		got := ""
		for _, o := range r.history(t, "sdk-v1") { // all at the rig's one time: find this decision's
			if o.DecisionID == v.DecisionID {
				got = o.Result
			}
		}
		if got != step.result || publishes() != step.publishes {
			t.Fatalf("%s: result %s with %d SNS messages, want %s with %d", step.name, got, publishes(), step.result, step.publishes)
		}
	}
	tk, err := r.h.Ledger.GetTicket(r.ctx, ledger.Ref{AccountID: account, Region: demo.Region, InstanceID: inst.ID})
	if err != nil || tk == nil || tk.Status != ledger.TicketResolved {
		t.Fatalf("ticket %+v, %v; want resolved", tk, err)
	}
}

// closeOut is the skip verdict detect sends for a compliant instance with an open ticket.
func closeOut(v message.Verdict) message.Verdict {
	v.Action, v.Target = policy.ActionSkip, nil
	v.Reasons = []policy.Reason{{Code: policy.ReasonCompliant, Detail: "HttpTokens is already required"}}
	return v
}

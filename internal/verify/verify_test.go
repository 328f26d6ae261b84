package verify_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport"
	"github.com/imdsguard/imdsguard/internal/verdictqueue"
	"github.com/imdsguard/imdsguard/internal/verify"
)

func TestMain(m *testing.M) { os.Exit(testsupport.RunWithMoto(m)) }

const account = "123456789012"

// rig is the verify handler with the real clients: EC2, DynamoDB and SQS on moto,
// MetadataNoTokenRejected on the CloudWatch stand-in.
type rig struct {
	ctx   context.Context
	h     *verify.Handler
	ec2   *ec2.Client
	cw    *fakeaws.CloudWatch
	sqs   *sqs.Client
	book  *ledger.Ledger
	res   demo.Resources
	now   time.Time
	logs  *bytes.Buffer
	enf   *enforce.Enforcer
	saved map[string]policy.MetadataOptions // each instance's options before its enforcement
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	moto := testsupport.Moto(t)
	cw := fakeaws.NewCloudWatch()
	t.Cleanup(cw.Close)
	cfg := fakeaws.AWSConfig(demo.Region)
	cfg.BaseEndpoint = aws.String(moto.URL)
	// moto resets the metadata options a change leaves out; the proxy keeps them, as EC2.
	proxy, err := fakeaws.NewEC2DryRun(moto.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	ec2Client := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(proxy.URL) })
	db := dynamodb.NewFromConfig(cfg)
	queue := sqs.NewFromConfig(cfg)
	res, err := demo.CreateResources(ctx, demo.ResourceClients{SQS: queue, DynamoDB: db, SNS: sns.NewFromConfig(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	book := &ledger.Ledger{API: db, Table: res.Table}
	enf := &enforce.Enforcer{EC2: ec2Client, MaxWait: 10 * time.Second, FirstDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond}
	settings := policy.DefaultSettings()
	settings.Mode = policy.ModeEnforce
	var logs bytes.Buffer
	r := &rig{ctx: ctx, ec2: ec2Client, cw: cw, sqs: queue, book: book, res: res, now: time.Now().UTC(), logs: &logs, enf: enf,
		saved: map[string]policy.MetadataOptions{}}
	r.h = &verify.Handler{
		Settings: settings, Window: 72 * time.Hour, Rollout: policy.RolloutSettings{BreakerRollbacks: 2}, Region: demo.Region,
		EC2:        ec2Client,
		CloudWatch: cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(cw.URL) }),
		Ledger:     book, Restorer: enf,
		Verdicts: &verdictqueue.Sender{Queue: queue, QueueURL: res.QueueURL, Decisions: &decisionlog.Log{API: db, Table: res.Table}},
		Now:      func() time.Time { return r.now },
		Log:      slog.New(slog.NewJSONHandler(&logs, nil)),
		Metrics:  &emf.Emitter{W: &logs, Now: time.Now},
	}
	return r
}

// enforced seeds an instance with IMDSv1 allowed and hop limit 2, enforces it as
// remediate does (snapshot, apply, record) at enforcedAt, and returns its id.
func (r *rig) enforced(t *testing.T, name string, enforcedAt time.Time) string {
	t.Helper()
	seeded, err := fakeaws.SeedInstances(r.ctx, r.ec2, fakeaws.InstanceSpec{Name: name, HttpTokens: "optional", HopLimit: 2})
	if err != nil {
		t.Fatal(err)
	}
	id := seeded[0].ID
	prior := policy.MetadataOptions{HTTPTokens: policy.TokensOptional, HopLimit: 2, HTTPEndpoint: policy.EndpointEnabled, State: "applied"}
	r.saved[id] = prior
	ref := ledger.Ref{AccountID: account, Region: demo.Region, InstanceID: id}
	decision := fmt.Sprintf("%013x-%016x", enforcedAt.UnixMilli(), len(r.saved))
	if err := (&decisionlog.Log{API: r.book.API, Table: r.book.Table}).RecordDecisions(r.ctx, []decisionlog.Decision{{
		AccountID: account, Region: demo.Region, InstanceID: id, DecisionID: decision, Action: policy.ActionRemediate,
		CreatedAt: enforcedAt, Digest: strings.Repeat("0", 64)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.book.Snapshot(r.ctx, ref, prior, decision, enforcedAt); err != nil {
		t.Fatal(err)
	}
	applied, err := r.enf.Apply(r.ctx, id, prior, policy.MetadataOptions{HTTPTokens: policy.TokensRequired, HopLimit: 1, HTTPEndpoint: policy.EndpointEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.book.Record(r.ctx, ledger.Outcome{Ref: ref, DecisionID: decision, At: enforcedAt, Action: policy.ActionRemediate,
		Result: ledger.ResultEnforced, Mode: "enforce", Prior: &prior, Applied: &applied}); err != nil {
		t.Fatal(err)
	}
	return id
}

// rejected puts MetadataNoTokenRejected for the instance: one datapoint per hour for the
// given hours before now, with calls in the hour hoursAgo (0 for none).
func (r *rig) rejected(id string, hours, callsHoursAgo int, calls float64) {
	end := r.now.Truncate(time.Hour).Add(time.Hour)
	r.cw.PutPoints(fakeaws.MetadataNoTokenNamespace, evidence.MetadataNoTokenRejected,
		map[string]string{fakeaws.MetadataNoTokenDimension: id},
		fakeaws.HourlyPoints(end, hours, func(i int) (float64, bool) {
			if hours-i == callsHoursAgo {
				return calls, true
			}
			return 0, true
		}))
}

func (r *rig) options(t *testing.T, id string) *ec2types.InstanceMetadataOptionsResponse {
	t.Helper()
	out, err := r.ec2.DescribeInstances(r.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Reservations[0].Instances[0].MetadataOptions
}

// TestVerifyRollsBackWhatBroke: of four enforced instances, the one whose IMDSv1 calls
// EC2 rejected is put back exactly to its snapshot (tokens optional, hop limit 2, the
// endpoint untouched), recorded rolled-back and ticketed through remediate's queue; the
// one observed clean for the window is verified; the one without data stays verifying;
// the one someone reverted after rejected calls counts as rolled back without a change;
// and two rollbacks open the breaker (set at 2).
func TestVerifyRollsBackWhatBroke(t *testing.T) {
	r := newRig(t)
	enforcedAt := r.now.Add(-80 * time.Hour)
	broke := r.enforced(t, "broke", enforcedAt)
	clean := r.enforced(t, "clean", enforcedAt)
	silent := r.enforced(t, "silent", enforcedAt)
	reverted := r.enforced(t, "reverted", enforcedAt)
	r.rejected(broke, 80, 5, 3)
	r.rejected(clean, 80, 0, 0)
	r.rejected(reverted, 80, 7, 1)
	if _, err := r.ec2.ModifyInstanceMetadataOptions(r.ctx, &ec2.ModifyInstanceMetadataOptionsInput{
		InstanceId: aws.String(reverted), HttpTokens: ec2types.HttpTokensStateOptional}); err != nil {
		t.Fatal(err)
	}

	sum, err := r.h.Handle(r.ctx, account)
	if err != nil {
		t.Fatalf("Handle: %v\n%s", err, r.logs)
	}
	want := verify.Summary{Watched: 4, Verified: 1, RolledBack: 2, Verifying: 1, BreakerOpened: true}
	if sum != want {
		t.Errorf("summary %+v, want %+v\n%s", sum, want, r.logs)
	}

	if mo := r.options(t, broke); mo.HttpTokens != ec2types.HttpTokensStateOptional || aws.ToInt32(mo.HttpPutResponseHopLimit) != 2 ||
		mo.HttpEndpoint != ec2types.InstanceMetadataEndpointStateEnabled {
		t.Errorf("%s after the rollback: tokens %s, hop %d, endpoint %s; want its snapshot", broke, mo.HttpTokens, aws.ToInt32(mo.HttpPutResponseHopLimit), mo.HttpEndpoint)
	}
	if mo := r.options(t, clean); mo.HttpTokens != ec2types.HttpTokensStateRequired {
		t.Errorf("the verified instance was changed: %s", mo.HttpTokens)
	}

	watches, err := r.book.Watching(r.ctx, account, demo.Region)
	if err != nil || len(watches) != 1 || watches[0].InstanceID != silent {
		t.Errorf("watches after the run: %+v, %v; want only the silent one", watches, err)
	}
	history := func(id string) []ledger.Outcome {
		h, err := r.book.History(r.ctx, ledger.Ref{AccountID: account, Region: demo.Region, InstanceID: id})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h := history(broke); len(h) != 2 || h[1].Result != ledger.ResultRolledBack || h[1].Applied == nil ||
		h[1].Applied.HTTPTokens != policy.TokensOptional || h[1].Applied.HopLimit != 2 || !strings.Contains(h[1].Detail, "rejected 3 IMDSv1 calls") {
		t.Errorf("history of %s: %+v", broke, h)
	}
	if h := history(clean); len(h) != 2 || h[1].Result != ledger.ResultVerified {
		t.Errorf("history of %s: %+v", clean, h)
	}

	rollout, err := r.book.ReadRollout(r.ctx, account, demo.Region)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rollout.Rollbacks[broke]; !ok || len(rollout.Rollbacks) != 2 || rollout.BreakerOpenedAt.IsZero() {
		t.Errorf("rollout %+v, want the two rollbacks and the breaker open", rollout)
	}

	// The tickets go through remediate: one verdict each, recorded, saying what broke.
	batch, err := demo.Receive(r.ctx, r.sqs, r.res.QueueURL, r.res.QueueARN, 10)
	if err != nil {
		t.Fatal(err)
	}
	tickets := map[string]message.Verdict{}
	for _, rec := range batch.Records {
		v, err := message.Parse(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		tickets[v.InstanceID] = v
		claim := r.book.Claim(r.ctx, v.DecisionID, ledger.Ref{AccountID: v.AccountID, Region: v.Region, InstanceID: v.InstanceID},
			decisionlog.Digest([]byte(rec.Body)), r.now, time.Minute)
		if claim != nil {
			t.Errorf("the ticket verdict of %s was not recorded as sent: %v", v.InstanceID, claim)
		}
	}
	if len(tickets) != 2 {
		t.Fatalf("queued verdicts for %v, want the two rolled back instances", tickets)
	}
	v := tickets[broke]
	if v.Action != policy.ActionTicket || len(v.Reasons) == 0 || v.Reasons[0].Code != policy.ReasonRolledBack ||
		!strings.Contains(v.Reasons[0].Detail, "rejected 3 IMDSv1 calls") {
		t.Errorf("ticket verdict of %s: %+v", broke, v)
	}

	// The next run has only the silent one to watch, and touches nothing else.
	sum, err = r.h.Handle(r.ctx, account)
	if err != nil || sum != (verify.Summary{Watched: 1, Verifying: 1}) {
		t.Errorf("second run: %+v, %v", sum, err)
	}
}

// TestVerifyReportModeChangesNothing: in report mode a broken enforcement is logged and
// stays watched; nothing is restored or recorded.
func TestVerifyReportModeChangesNothing(t *testing.T) {
	r := newRig(t)
	r.h.Settings.Mode = policy.ModeReport
	broke := r.enforced(t, "broke", r.now.Add(-10*time.Hour))
	r.rejected(broke, 10, 2, 5)
	sum, err := r.h.Handle(r.ctx, account)
	if err != nil || sum != (verify.Summary{Watched: 1, Verifying: 1}) {
		t.Errorf("summary %+v, %v", sum, err)
	}
	if mo := r.options(t, broke); mo.HttpTokens != ec2types.HttpTokensStateRequired {
		t.Errorf("report mode rolled back: %s", mo.HttpTokens)
	}
}

// TestVerifyWithoutSnapshotFails: an enforcement whose snapshot is missing cannot be put
// back; the run fails naming it, and the instance stays watched.
func TestVerifyWithoutSnapshotFails(t *testing.T) {
	r := newRig(t)
	broke := r.enforced(t, "broke", r.now.Add(-10*time.Hour))
	r.rejected(broke, 10, 2, 5)
	r.h.Ledger = snapshotless{r.book}
	sum, err := r.h.Handle(r.ctx, account)
	if err == nil || !strings.Contains(err.Error(), "no snapshot") || sum.Failed != 1 {
		t.Errorf("summary %+v, error %v; want a failure naming the missing snapshot", sum, err)
	}
	if watches, _ := r.book.Watching(r.ctx, account, demo.Region); len(watches) != 1 {
		t.Errorf("the instance is no longer watched: %+v", watches)
	}
}

// snapshotless is the ledger with every snapshot lost.
type snapshotless struct{ *ledger.Ledger }

func (snapshotless) GetSnapshot(context.Context, ledger.Ref) (*ledger.Snapshot, error) {
	return nil, nil
}

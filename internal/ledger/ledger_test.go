package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport"
)

var (
	t0  = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ttl = 15 * time.Minute
	ref = ledger.Ref{AccountID: "123456789012", Region: "us-east-1", InstanceID: "i-0123456789abcdef0"}
)

const (
	decisionID = "019aa8f3c2e00-0123456789abcdef"
	// digest stands for the SHA-256 of the message body detect recorded.
	digest      = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	otherDigest = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
)

// recorded is the decision detect records before it queues the message.
var recorded = decisionlog.Decision{AccountID: ref.AccountID, Region: ref.Region, InstanceID: ref.InstanceID,
	DecisionID: decisionID, Action: policy.ActionRemediate, CreatedAt: t0, Digest: digest}

// recordDecision records the decision as detect does, through the ledger's own client.
func recordDecision(t *testing.T, ctx context.Context, l *ledger.Ledger) {
	t.Helper()
	if err := (&decisionlog.Log{API: l.API, Table: l.Table}).RecordDecisions(ctx, []decisionlog.Decision{recorded}); err != nil {
		t.Fatalf("RecordDecisions: %v", err)
	}
}

// recordDecisionsOf records the decisions the outcomes are about, as detect would have.
func recordDecisionsOf(t *testing.T, ctx context.Context, l *ledger.Ledger, outcomes ...ledger.Outcome) {
	t.Helper()
	var ds []decisionlog.Decision
	for _, o := range outcomes {
		ds = append(ds, decisionlog.Decision{AccountID: o.AccountID, Region: o.Region, InstanceID: o.InstanceID,
			DecisionID: o.DecisionID, Action: policy.ActionRemediate, CreatedAt: t0, Digest: digest})
	}
	if err := (&decisionlog.Log{API: l.API, Table: l.Table}).RecordDecisions(ctx, ds); err != nil {
		t.Fatalf("RecordDecisions: %v", err)
	}
}

func outcome(result string, at time.Time) ledger.Outcome {
	return ledger.Outcome{
		Ref: ref, DecisionID: decisionID, At: at, Action: policy.ActionRemediate, Result: result,
		Mode: string(policy.ModeEnforce), Reasons: []policy.Reason{{Code: policy.ReasonIMDSv1Unused, Detail: "0 calls"}},
	}
}

// oldItemStripper hides the item DynamoDB returns with a failed condition, as an
// implementation without ReturnValuesOnConditionCheckFailure would, so that Claim's
// fallback read is exercised too.
type oldItemStripper struct{ ledger.DynamoDBAPI }

func (s oldItemStripper) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out, err := s.DynamoDBAPI.UpdateItem(ctx, in, opts...)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		ccf.Item = nil
	}
	return out, err
}

func (s oldItemStripper) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	out, err := s.DynamoDBAPI.PutItem(ctx, in, opts...)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		ccf.Item = nil
	}
	return out, err
}

// apiVariants runs a test with the real client and with the old item hidden.
var apiVariants = []struct {
	name string
	wrap func(ledger.DynamoDBAPI) ledger.DynamoDBAPI
}{
	{"old item returned", func(a ledger.DynamoDBAPI) ledger.DynamoDBAPI { return a }},
	{"old item read back", func(a ledger.DynamoDBAPI) ledger.DynamoDBAPI { return oldItemStripper{a} }},
}

func TestClaimLifecycle(t *testing.T) {
	type step struct {
		op     string        // claim, release or record
		at     time.Duration // now (claim) or outcome time (record), after t0
		result string        // record only
		want   error         // nil, ErrDone, ErrInProgress, ErrNotRecorded or ErrAltered
		digest string        // claim only: the message's digest, when not the recorded one
		ref    *ledger.Ref   // claim only: the message's instance, when not the recorded one
	}
	otherRef := ref
	otherRef.InstanceID = "i-0fedcba9876543210"
	cases := []struct {
		name        string
		unrecorded  bool // detect did not record the decision
		steps       []step
		wantHistory []string // results in the history afterwards, oldest first
	}{
		{
			name:       "a decision detect did not record cannot be claimed or recorded",
			unrecorded: true,
			steps: []step{
				{op: "claim", want: ledger.ErrNotRecorded},
				{op: "record", result: ledger.ResultEnforced, want: ledger.ErrNotRecorded},
				{op: "claim", at: time.Minute, want: ledger.ErrNotRecorded},
			},
		},
		{
			name: "a message with another digest is altered, and leaves the decision to the real one",
			steps: []step{
				{op: "claim", digest: otherDigest, want: ledger.ErrAltered},
				{op: "claim"},
			},
		},
		{
			name: "a message about another instance is altered",
			steps: []step{
				{op: "claim", ref: &otherRef, want: ledger.ErrAltered},
				{op: "claim"},
				{op: "claim", ref: &otherRef, want: ledger.ErrAltered},
			},
		},
		{
			name: "an altered message is refused even once the decision is done",
			steps: []step{
				{op: "claim"},
				{op: "record", at: time.Minute, result: ledger.ResultEnforced},
				{op: "claim", at: 2 * time.Minute, digest: otherDigest, want: ledger.ErrAltered},
			},
			wantHistory: []string{ledger.ResultEnforced},
		},
		{
			name: "claim, record, claim again is done, even after the ttl",
			steps: []step{
				{op: "claim"},
				{op: "record", at: time.Minute, result: ledger.ResultEnforced},
				{op: "claim", at: 2 * time.Minute, want: ledger.ErrDone},
				{op: "claim", at: 3 * ttl, want: ledger.ErrDone},
			},
			wantHistory: []string{ledger.ResultEnforced},
		},
		{
			name: "claim twice is in progress",
			steps: []step{
				{op: "claim"},
				{op: "claim", want: ledger.ErrInProgress},
				{op: "claim", at: ttl - time.Millisecond, want: ledger.ErrInProgress},
			},
		},
		{
			name: "claim after ttl expiry succeeds and holds a new claim",
			steps: []step{
				{op: "claim"},
				{op: "claim", at: ttl},
				{op: "claim", at: 2*ttl - time.Millisecond, want: ledger.ErrInProgress},
				{op: "claim", at: 2 * ttl},
			},
		},
		{
			name: "release then claim succeeds",
			steps: []step{
				{op: "claim"},
				{op: "release"},
				{op: "claim", at: time.Minute},
				{op: "claim", at: 2 * time.Minute, want: ledger.ErrInProgress},
			},
		},
		{
			name: "release does not undo a done decision",
			steps: []step{
				{op: "claim"},
				{op: "record", at: time.Minute, result: ledger.ResultTicketed},
				{op: "release"},
				{op: "claim", at: 2 * time.Minute, want: ledger.ErrDone},
			},
			wantHistory: []string{ledger.ResultTicketed},
		},
		{
			name: "release before any claim does nothing",
			steps: []step{
				{op: "release"},
				{op: "claim"},
				{op: "claim", want: ledger.ErrInProgress},
			},
		},
		{
			name: "a failed outcome lets the retry claim",
			steps: []step{
				{op: "claim"},
				{op: "record", at: time.Minute, result: ledger.ResultFailed},
				{op: "claim", at: 2 * time.Minute},
				{op: "record", at: 3 * time.Minute, result: ledger.ResultEnforced},
				{op: "claim", at: 4 * time.Minute, want: ledger.ErrDone},
			},
			wantHistory: []string{ledger.ResultFailed, ledger.ResultEnforced},
		},
		{
			name: "record without a claim marks the decision done",
			steps: []step{
				{op: "record", result: ledger.ResultDeferred},
				{op: "claim", at: time.Minute, want: ledger.ErrDone},
			},
			wantHistory: []string{ledger.ResultDeferred},
		},
		{
			name: "a second record of a done decision is refused and not written",
			steps: []step{
				{op: "claim"},
				{op: "record", at: time.Minute, result: ledger.ResultEnforced},
				{op: "record", at: 2 * time.Minute, result: ledger.ResultSuperseded, want: ledger.ErrDone},
			},
			wantHistory: []string{ledger.ResultEnforced},
		},
	}
	for _, v := range apiVariants {
		for _, tc := range cases {
			t.Run(v.name+"/"+tc.name, func(t *testing.T) {
				f := newFixture(t)
				ctx := testContext(t)
				l := &ledger.Ledger{API: v.wrap(f.api), Table: testTable}
				if !tc.unrecorded {
					recordDecision(t, ctx, l)
				}
				for i, s := range tc.steps {
					var err error
					switch s.op {
					case "claim":
						d, r := digest, ref
						if s.digest != "" {
							d = s.digest
						}
						if s.ref != nil {
							r = *s.ref
						}
						err = l.Claim(ctx, decisionID, r, d, t0.Add(s.at), ttl)
					case "release":
						err = l.Release(ctx, decisionID)
					case "record":
						err = l.Record(ctx, outcome(s.result, t0.Add(s.at)))
					default:
						t.Fatalf("unknown op %q", s.op)
					}
					if !errors.Is(err, s.want) || (s.want == nil && err != nil) {
						t.Fatalf("step %d (%s at +%v): err = %v, want %v", i, s.op, s.at, err, s.want)
					}
					if err != nil && (!strings.Contains(err.Error(), decisionID) || !strings.Contains(err.Error(), testTable)) {
						t.Errorf("step %d: error %q does not name the decision and the table", i, err)
					}
				}
				hist, err := l.History(ctx, ref)
				if err != nil {
					t.Fatalf("History: %v", err)
				}
				var got []string
				for _, o := range hist {
					got = append(got, o.Result)
				}
				if !reflect.DeepEqual(got, tc.wantHistory) {
					t.Errorf("history results = %q, want %q", got, tc.wantHistory)
				}
			})
		}
	}
}

func TestDecisionItemLayout(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	pk := "DECISION#" + decisionID

	recordDecision(t, ctx, f.ledger)
	item := f.rawItem(t, pk, "DECISION")
	if item == nil {
		t.Fatalf("no decision item at pk=%s sk=DECISION", pk)
	}
	for name, want := range map[string]string{
		"type": "decision", "decision_id": decisionID, "status": "recorded", "digest": digest, "action": "remediate",
		"created_at": "2026-11-22T10:00:00.000000000Z", "account_id": ref.AccountID, "region": ref.Region, "instance_id": ref.InstanceID,
	} {
		if got := attrS(t, item, name); got != want {
			t.Errorf("recorded item: %s = %q, want %q", name, got, want)
		}
	}
	if got := attrN(t, item, "claim_until"); got != "0" {
		t.Errorf("recorded item: claim_until = %s, want 0", got)
	}

	if err := f.ledger.Claim(ctx, decisionID, ref, digest, t0, ttl); err != nil {
		t.Fatal(err)
	}
	item = f.rawItem(t, pk, "DECISION")
	for name, want := range map[string]string{
		"type": "decision", "decision_id": decisionID, "status": "claimed", "claimed_at": "2026-11-22T10:00:00.000000000Z",
		"account_id": ref.AccountID, "region": ref.Region, "instance_id": ref.InstanceID, "digest": digest,
	} {
		if got := attrS(t, item, name); got != want {
			t.Errorf("claimed item: %s = %q, want %q", name, got, want)
		}
	}
	for name, want := range map[string]int64{
		"attempts":          1,
		"claim_until":       t0.Add(ttl).UnixMilli(),
		ledger.TTLAttribute: t0.Add(90 * 24 * time.Hour).Unix(),
	} {
		if got := attrN(t, item, name); got != strconv.FormatInt(want, 10) {
			t.Errorf("claimed item: %s = %s, want %d", name, got, want)
		}
	}

	// A takeover after expiry counts as a second attempt.
	if err := f.ledger.Claim(ctx, decisionID, ref, digest, t0.Add(ttl), ttl); err != nil {
		t.Fatal(err)
	}
	if got := attrN(t, f.rawItem(t, pk, "DECISION"), "attempts"); got != "2" {
		t.Errorf("attempts after a takeover = %s, want 2", got)
	}
}

func TestRecordIsAtomic(t *testing.T) {
	at := t0.Add(time.Minute)
	instancePK := "INSTANCE#123456789012#us-east-1#i-0123456789abcdef0"
	outcomeSK := "OUTCOME#2026-11-22T10:01:00.000000000Z#" + decisionID

	t.Run("both items are written", func(t *testing.T) {
		f := newFixture(t)
		ctx := testContext(t)
		recordDecision(t, ctx, f.ledger)
		if err := f.ledger.Claim(ctx, decisionID, ref, digest, t0, ttl); err != nil {
			t.Fatal(err)
		}
		if err := f.ledger.Record(ctx, outcome(ledger.ResultEnforced, at)); err != nil {
			t.Fatal(err)
		}
		hist := f.rawItem(t, instancePK, outcomeSK)
		if hist == nil {
			t.Fatalf("no history item at pk=%s sk=%s", instancePK, outcomeSK)
		}
		if got := attrS(t, hist, "result"); got != ledger.ResultEnforced {
			t.Errorf("history result = %q", got)
		}
		if _, ok := hist[ledger.TTLAttribute]; ok {
			t.Errorf("history item has %s: the audit trail must not expire", ledger.TTLAttribute)
		}
		dec := f.rawItem(t, "DECISION#"+decisionID, "DECISION")
		for name, want := range map[string]string{
			"status": "done", "result": ledger.ResultEnforced, "outcome_sk": outcomeSK, "recorded_at": "2026-11-22T10:01:00.000000000Z",
		} {
			if got := attrS(t, dec, name); got != want {
				t.Errorf("decision item: %s = %q, want %q", name, got, want)
			}
		}
		if got, want := attrN(t, dec, ledger.TTLAttribute), strconv.FormatInt(at.Add(ledger.DecisionRetention).Unix(), 10); got != want {
			t.Errorf("decision item %s = %s, want %s", ledger.TTLAttribute, got, want)
		}
	})

	t.Run("a history conflict leaves the decision claimed", func(t *testing.T) {
		f := newFixture(t)
		ctx := testContext(t)
		recordDecision(t, ctx, f.ledger)
		if err := f.ledger.Claim(ctx, decisionID, ref, digest, t0, ttl); err != nil {
			t.Fatal(err)
		}
		// An item already sits where the outcome would go: the transaction must cancel
		// as a whole, so the decision is not marked done.
		if _, err := f.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(testTable),
			Item: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: instancePK},
				"sk": &types.AttributeValueMemberS{Value: outcomeSK},
			},
		}); err != nil {
			t.Fatal(err)
		}
		err := f.ledger.Record(ctx, outcome(ledger.ResultEnforced, at))
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) || errors.Is(err, ledger.ErrDone) {
			t.Fatalf("Record over an existing history item: err = %v, want a TransactionCanceledException that is not ErrDone", err)
		}
		if !strings.Contains(err.Error(), testTable) || !strings.Contains(err.Error(), decisionID) {
			t.Errorf("error %q does not name the table and the decision", err)
		}
		if got := attrS(t, f.rawItem(t, "DECISION#"+decisionID, "DECISION"), "status"); got != "claimed" {
			t.Errorf("decision status after a cancelled Record = %q, want claimed", got)
		}
	})

	t.Run("a done decision cancels the history write", func(t *testing.T) {
		f := newFixture(t)
		ctx := testContext(t)
		recordDecision(t, ctx, f.ledger)
		if err := f.ledger.Record(ctx, outcome(ledger.ResultEnforced, at)); err != nil {
			t.Fatal(err)
		}
		later := at.Add(time.Minute)
		if err := f.ledger.Record(ctx, outcome(ledger.ResultSuperseded, later)); !errors.Is(err, ledger.ErrDone) {
			t.Fatalf("second Record: err = %v, want ErrDone", err)
		}
		if item := f.rawItem(t, instancePK, "OUTCOME#2026-11-22T10:02:00.000000000Z#"+decisionID); item != nil {
			t.Errorf("the refused outcome was written to the history: %v", item)
		}
	})
}

func TestSnapshot(t *testing.T) {
	for _, v := range apiVariants {
		t.Run(v.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := testContext(t)
			l := &ledger.Ledger{API: v.wrap(f.api), Table: testTable}

			if s, err := l.GetSnapshot(ctx, ref); err != nil || s != nil {
				t.Fatalf("GetSnapshot of an unknown instance = %+v, %v; want nil, nil", s, err)
			}
			first := policy.MetadataOptions{HTTPTokens: "optional", HopLimit: 2, HTTPEndpoint: "enabled", State: "applied"}
			want := ledger.Snapshot{Ref: ref, Options: first, DecisionID: decisionID, At: t0}
			got, err := l.Snapshot(ctx, ref, first, decisionID, t0)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("first Snapshot = %+v, %v; want %+v", got, err, want)
			}

			// After a rollback and a second enforcement, the original options stay.
			second := policy.MetadataOptions{HTTPTokens: "required", HopLimit: 1, HTTPEndpoint: "enabled", State: "applied"}
			got, err = l.Snapshot(ctx, ref, second, "019aa8f3c2e01-fedcba9876543210", t0.Add(time.Hour))
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("second Snapshot = %+v, %v; want the first %+v", got, err, want)
			}
			stored, err := l.GetSnapshot(ctx, ref)
			if err != nil || stored == nil || !reflect.DeepEqual(*stored, want) {
				t.Fatalf("GetSnapshot = %+v, %v; want %+v", stored, err, want)
			}

			// The same instance id in another region is another instance. Zero values
			// round-trip too.
			other := ref
			other.Region = "eu-west-1"
			if s, err := l.GetSnapshot(ctx, other); err != nil || s != nil {
				t.Fatalf("GetSnapshot of %v = %+v, %v; want nil, nil", other, s, err)
			}
			zero := policy.MetadataOptions{}
			at := time.Date(2026, 11, 22, 12, 0, 0, 1, time.FixedZone("CET", 3600))
			got, err = l.Snapshot(ctx, other, zero, decisionID, at)
			wantOther := ledger.Snapshot{Ref: other, Options: zero, DecisionID: decisionID, At: at.UTC()}
			if err != nil || !reflect.DeepEqual(got, wantOther) {
				t.Fatalf("Snapshot of %v = %+v, %v; want %+v", other, got, err, wantOther)
			}
			if stored, err := l.GetSnapshot(ctx, other); err != nil || stored == nil || !reflect.DeepEqual(*stored, wantOther) {
				t.Fatalf("GetSnapshot of %v = %+v, %v; want %+v", other, stored, err, wantOther)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	const n = 35
	f.ledger.PageSize = 4

	// Times 250 ms apart mix whole seconds with fractions: with time.RFC3339Nano's
	// trimmed fractions "10:00:00Z" would sort after "10:00:00.25Z".
	want := make([]ledger.Outcome, n)
	for i := range n {
		o := ledger.Outcome{
			Ref:        ref,
			DecisionID: fmt.Sprintf("019aa8f3c2e%02d-0123456789abcdef", i),
			At:         t0.Add(time.Duration(i) * 250 * time.Millisecond),
			Action:     policy.Actions[i%len(policy.Actions)],
			Result:     ledger.Results[i%len(ledger.Results)],
			Mode:       []string{"report", "dry-run", "enforce", ""}[i%4],
			Detail:     []string{"", "ModifyInstanceMetadataOptions: applied ✓", "ticket OPS-42"}[i%3],
		}
		if i%2 == 1 {
			o.Prior = &policy.MetadataOptions{HTTPTokens: "optional", HopLimit: int32(i%3 + 1), HTTPEndpoint: "enabled", State: "applied"}
		}
		if i%3 == 1 {
			o.Applied = &policy.MetadataOptions{HTTPTokens: "required", HopLimit: 2, HTTPEndpoint: "enabled", State: "pending"}
		}
		if i%5 != 0 {
			o.Reasons = []policy.Reason{{Code: policy.ReasonIMDSv1Unused, Detail: fmt.Sprintf("%d observed hours", 168+i)}}
			if i%5 == 2 {
				o.Reasons = append(o.Reasons, policy.Reason{Code: policy.ReasonContainerHost}, policy.Reason{Code: policy.ReasonNoInstanceProfile, Detail: "none"})
			}
		}
		want[i] = o
	}
	want[4].Prior = &policy.MetadataOptions{} // non-nil zero options stay non-nil
	// A time given in another zone comes back as the same instant in UTC.
	want[6].At = want[6].At.In(time.FixedZone("UTC-5", -5*3600))
	// Two outcomes at the same instant sort by decision id.
	want[21].At = want[20].At

	recordDecisionsOf(t, ctx, f.ledger, want...)
	// Record in a scrambled order (13 is coprime with 35, so every outcome is recorded once).
	for k := range n {
		if err := f.ledger.Record(ctx, want[(k*13)%n]); err != nil {
			t.Fatalf("Record %d: %v", (k*13)%n, err)
		}
	}
	want[6].At = want[6].At.UTC()

	// Noise in the same partition (the snapshot) and in another instance's partition.
	if _, err := f.ledger.Snapshot(ctx, ref, policy.MetadataOptions{HTTPTokens: "optional", HopLimit: 1}, want[0].DecisionID, t0); err != nil {
		t.Fatal(err)
	}
	otherRef := ledger.Ref{AccountID: ref.AccountID, Region: ref.Region, InstanceID: "i-0fedcba9876543210"}
	otherOutcome := want[0]
	otherOutcome.Ref, otherOutcome.DecisionID = otherRef, "019aa8f3c2eff-0123456789abcdef"
	recordDecisionsOf(t, ctx, f.ledger, otherOutcome)
	if err := f.ledger.Record(ctx, otherOutcome); err != nil {
		t.Fatal(err)
	}

	before := f.api.queries.Load()
	got, err := f.ledger.History(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if queries := f.api.queries.Load() - before; queries < (n+3)/4 {
		t.Errorf("History made %d Query calls with PageSize 4 for %d outcomes, want at least %d", queries, n, (n+3)/4)
	}
	if len(got) != n {
		t.Fatalf("History returned %d outcomes, want %d", len(got), n)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("outcome %d:\n got %s\nwant %s", i, show(got[i]), show(want[i]))
		}
	}

	if got, err := f.ledger.History(ctx, otherRef); err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], otherOutcome) {
		t.Errorf("History of %v = %v, %v; want only its own outcome", otherRef, got, err)
	}
	if got, err := f.ledger.History(ctx, ledger.Ref{AccountID: ref.AccountID, Region: "eu-west-1", InstanceID: ref.InstanceID}); err != nil || len(got) != 0 {
		t.Errorf("History of an instance without outcomes = %v, %v; want none", got, err)
	}
}

func show(o ledger.Outcome) string {
	opt := func(p *policy.MetadataOptions) string {
		if p == nil {
			return "nil"
		}
		return fmt.Sprintf("%+v", *p)
	}
	return fmt.Sprintf("%+v prior=%s applied=%s", o, opt(o.Prior), opt(o.Applied))
}

func TestMissingTableIsNamed(t *testing.T) {
	f := newFixture(t)
	const missing = "imdsguard-ledger-does-not-exist"
	l := &ledger.Ledger{API: f.client, Table: missing}
	ops := []struct {
		name string
		call func(context.Context) error
	}{
		{"RecordDecisions", func(ctx context.Context) error {
			return (&decisionlog.Log{API: f.client, Table: missing}).RecordDecisions(ctx, []decisionlog.Decision{recorded})
		}},
		{"Claim", func(ctx context.Context) error { return l.Claim(ctx, decisionID, ref, digest, t0, ttl) }},
		{"Release", func(ctx context.Context) error { return l.Release(ctx, decisionID) }},
		{"Record", func(ctx context.Context) error { return l.Record(ctx, outcome(ledger.ResultEnforced, t0)) }},
		{"Snapshot", func(ctx context.Context) error {
			_, err := l.Snapshot(ctx, ref, policy.MetadataOptions{HTTPTokens: "optional"}, decisionID, t0)
			return err
		}},
		{"GetSnapshot", func(ctx context.Context) error { _, err := l.GetSnapshot(ctx, ref); return err }},
		{"History", func(ctx context.Context) error { _, err := l.History(ctx, ref); return err }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			err := op.call(testContext(t))
			if err == nil {
				t.Fatal("no error for a missing table")
			}
			if !strings.Contains(err.Error(), missing) {
				t.Errorf("error %q does not name the table", err)
			}
			var rnf *types.ResourceNotFoundException
			if !errors.As(err, &rnf) {
				t.Errorf("error %q does not wrap ResourceNotFoundException", err)
			}
			if errors.Is(err, ledger.ErrDone) || errors.Is(err, ledger.ErrInProgress) {
				t.Errorf("error %q must not read as done or in progress", err)
			}
		})
	}
}

// refusingAPI fails the test on any call: invalid input must be refused before IO.
type refusingAPI struct{ t *testing.T }

func (r refusingAPI) fail(op string) error {
	r.t.Errorf("%s called for invalid input", op)
	return errors.New("unexpected call")
}

func (r refusingAPI) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return nil, r.fail("GetItem")
}

func (r refusingAPI) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return nil, r.fail("PutItem")
}

func (r refusingAPI) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return nil, r.fail("UpdateItem")
}

func (r refusingAPI) Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return nil, r.fail("Query")
}

func (r refusingAPI) TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	return nil, r.fail("TransactWriteItems")
}

func TestInvalidInputIsRefused(t *testing.T) {
	noInstance := ref
	noInstance.InstanceID = ""
	hashRegion := ref
	hashRegion.Region = "us-east-1#x"
	withResult := func(r string) ledger.Outcome { return outcome(r, t0) }
	cases := []struct {
		name string
		call func(*ledger.Ledger) error
		want string
	}{
		{"claim without decision id", func(l *ledger.Ledger) error { return l.Claim(context.Background(), "", ref, digest, t0, ttl) }, "decision id is empty"},
		{"claim without instance id", func(l *ledger.Ledger) error {
			return l.Claim(context.Background(), decisionID, noInstance, digest, t0, ttl)
		}, "instance id is empty"},
		{"claim with zero ttl", func(l *ledger.Ledger) error { return l.Claim(context.Background(), decisionID, ref, digest, t0, 0) }, "ttl 0s is not positive"},
		{"claim at the zero time", func(l *ledger.Ledger) error {
			return l.Claim(context.Background(), decisionID, ref, digest, time.Time{}, ttl)
		}, "zero time"},
		{"release with '#' in the decision id", func(l *ledger.Ledger) error { return l.Release(context.Background(), "a#b") }, "contains '#'"},
		{"record an unknown result", func(l *ledger.Ledger) error { return l.Record(context.Background(), withResult("done")) }, `result "done" is not one of`},
		{"record at the zero time", func(l *ledger.Ledger) error {
			return l.Record(context.Background(), outcome(ledger.ResultEnforced, time.Time{}))
		}, "zero time"},
		{"record without action", func(l *ledger.Ledger) error {
			o := withResult(ledger.ResultEnforced)
			o.Action = ""
			return l.Record(context.Background(), o)
		}, "action is empty"},
		{"snapshot without decision id", func(l *ledger.Ledger) error {
			_, err := l.Snapshot(context.Background(), ref, policy.MetadataOptions{}, "", t0)
			return err
		}, "decision id is empty"},
		{"history with '#' in the region", func(l *ledger.Ledger) error { _, err := l.History(context.Background(), hashRegion); return err }, "contains '#'"},
		{"get snapshot without instance id", func(l *ledger.Ledger) error { _, err := l.GetSnapshot(context.Background(), noInstance); return err }, "instance id is empty"},
		{"no table name", func(l *ledger.Ledger) error { l.Table = ""; return l.Release(context.Background(), decisionID) }, "no table name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(&ledger.Ledger{API: refusingAPI{t}, Table: testTable})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestLostRepliesAreRecognised loses the reply of a claim and of a record after each
// took effect (the connection is reset once the table has the write): the SDK's retry
// finds the write already made, and the ledger knows it for its own. Neither call fails,
// the claim still keeps every other invocation out, and the history has the outcome once.
func TestLostRepliesAreRecognised(t *testing.T) {
	for _, v := range apiVariants {
		t.Run(v.name, func(t *testing.T) {
			ctx := testContext(t)
			f := newFixture(t)
			recordDecision(t, ctx, f.ledger)
			proxy := testsupport.FaultProxyFor(t, aws.ToString(f.client.Options().BaseEndpoint), fakeaws.FaultPlan{Ops: map[string]fakeaws.OpFaults{
				"dynamodb:UpdateItem":         {Script: []fakeaws.FaultKind{fakeaws.FaultResetAfterUpstream}},
				"dynamodb:TransactWriteItems": {Script: []fakeaws.FaultKind{fakeaws.FaultResetAfterUpstream}},
			}})
			lossy := &ledger.Ledger{API: v.wrap(dynamodb.NewFromConfig(fakeaws.AWSConfig(testRegion), func(o *dynamodb.Options) {
				o.BaseEndpoint = aws.String(proxy.URL)
			})), Table: testTable}

			if err := lossy.Claim(ctx, decisionID, ref, digest, t0, ttl); err != nil {
				t.Fatalf("a claim whose reply was lost: %v, want nil", err)
			}
			if err := f.ledger.Claim(ctx, decisionID, ref, digest, t0.Add(time.Second), ttl); !errors.Is(err, ledger.ErrInProgress) {
				t.Fatalf("another invocation's claim: %v, want ErrInProgress", err)
			}
			if err := lossy.Record(ctx, outcome(ledger.ResultEnforced, t0.Add(2*time.Second))); err != nil {
				t.Fatalf("a record whose reply was lost: %v, want nil", err)
			}
			if err := f.ledger.Record(ctx, outcome(ledger.ResultTicketed, t0.Add(3*time.Second))); !errors.Is(err, ledger.ErrDone) {
				t.Fatalf("another outcome of the done decision: %v, want ErrDone", err)
			}
			if n := proxy.Faults("", fakeaws.FaultResetAfterUpstream); n != 2 {
				t.Fatalf("%d replies lost, want 2 (the claim's and the record's)", n)
			}
			hist, err := f.ledger.History(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if len(hist) != 1 || hist[0].Result != ledger.ResultEnforced {
				t.Fatalf("history %+v, want the one enforced outcome", hist)
			}
			if err := f.ledger.Claim(ctx, decisionID, ref, digest, t0.Add(time.Hour), ttl); !errors.Is(err, ledger.ErrDone) {
				t.Fatalf("a redelivery's claim: %v, want ErrDone", err)
			}
		})
	}
}

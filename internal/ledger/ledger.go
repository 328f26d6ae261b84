package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// DynamoDBAPI is the part of the DynamoDB client the ledger uses (*dynamodb.Client
// satisfies it).
type DynamoDBAPI interface {
	GetItem(ctx context.Context, params *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, params *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, params *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, params *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, params *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// TTLAttribute is the attribute holding the expiry (Unix seconds) of decision items. The
// table's TimeToLiveSpecification must name it.
const TTLAttribute = decisionlog.TTLAttribute

// DecisionRetention is how long a decision item is kept after its last write, far longer
// than SQS can hold or redeliver a message (14 days at most).
const DecisionRetention = decisionlog.Retention

// Results of an outcome.
const (
	ResultEnforced         = "enforced"          // the target options were applied
	ResultDryRun           = "dry-run"           // EC2 accepted the change with DryRun=true
	ResultReported         = "reported"          // report mode: decided and logged only
	ResultTicketed         = "ticketed"          // a ticket was opened
	ResultDeferred         = "deferred"          // the deferral was recorded
	ResultAlreadyCompliant = "already-compliant" // the live instance already had HttpTokens=required
	ResultSuperseded       = "superseded"        // re-evaluation on live data changed the action
	ResultFailed           = "failed"            // the attempt failed; the decision may be retried
)

// Results lists every result.
var Results = []string{
	ResultEnforced, ResultDryRun, ResultReported, ResultTicketed,
	ResultDeferred, ResultAlreadyCompliant, ResultSuperseded, ResultFailed,
	ResultTicketUpdated, ResultTicketUnchanged, ResultTicketResolved,
}

var (
	// ErrDone means the decision was already fully processed: the message is done.
	ErrDone = errors.New("decision already processed")
	// ErrInProgress means another invocation holds an unexpired claim on the decision:
	// fail the message so that SQS delivers it again later.
	ErrInProgress = errors.New("decision is being processed by another invocation")
	// ErrNotRecorded means no decision with the message's id was ever recorded by detect
	// (package decisionlog): the message was not sent by detect, and nothing may be done
	// about it.
	ErrNotRecorded = errors.New("decision was not recorded by detect")
	// ErrAltered means a decision with the message's id was recorded, but for another
	// digest or instance: the message was changed on its way, or forged with a real id.
	ErrAltered = errors.New("message differs from the decision detect recorded")
)

// Ref names one instance.
type Ref = policy.Ref

// Ledger reads and writes the ledger table. The zero PageSize lets DynamoDB choose the
// page size (up to 1 MB) of History's queries.
type Ledger struct {
	API   DynamoDBAPI
	Table string
	// PageSize, when positive, is the Limit of each History query page.
	PageSize int32
}

// Snapshot is an instance's metadata options from before imdsguard first changed them.
type Snapshot struct {
	Ref
	Options    policy.MetadataOptions
	DecisionID string
	At         time.Time
}

// Outcome is what became of one decision, as recorded in the instance's history.
type Outcome struct {
	Ref
	DecisionID string
	At         time.Time
	Action     policy.Action // the verdict's action
	Result     string        // one of the Result* constants
	Mode       string
	Reasons    []policy.Reason
	// Prior are the options before the change and Applied those after it; nil when not
	// known or not relevant.
	Prior, Applied *policy.MetadataOptions
	Detail         string
}

// Item layout constants; see the package documentation.
const (
	attrPK         = "pk"
	attrSK         = "sk"
	decisionPrefix = decisionlog.PartitionPrefix
	instancePrefix = "INSTANCE#"
	outcomePrefix  = "OUTCOME#"
	decisionSK     = decisionlog.SortKey
	snapshotSK     = "SNAPSHOT"

	typeDecision = decisionlog.TypeDecision
	typeOutcome  = "outcome"
	typeSnapshot = "snapshot"

	statusClaimed  = "claimed"
	statusReleased = "released"
	statusFailed   = "failed"
	statusDone     = "done"

	// timeLayout is RFC 3339 with a fixed nine-digit fraction, so that lexical order is
	// time order (time.RFC3339Nano drops trailing zeros). Times are formatted in UTC.
	timeLayout = decisionlog.TimeLayout

	// claimRetries bounds how often Claim re-tries when the item changed between its
	// conditional write and the read that explains why the write failed.
	claimRetries = 3
)

type optionsItem struct {
	HTTPTokens   string `dynamodbav:"http_tokens,omitempty"`
	HopLimit     int32  `dynamodbav:"hop_limit"`
	HTTPEndpoint string `dynamodbav:"http_endpoint,omitempty"`
	State        string `dynamodbav:"state,omitempty"`
}

type reasonItem struct {
	Code   string `dynamodbav:"code"`
	Detail string `dynamodbav:"detail,omitempty"`
}

// decisionItem is a decision item as the ledger reads it: what detect recorded, and what
// the claims and the outcome added.
type decisionItem struct {
	decisionlog.Item
	Attempts   int64  `dynamodbav:"attempts"`
	ClaimedAt  string `dynamodbav:"claimed_at"`
	Result     string `dynamodbav:"result"`
	RecordedAt string `dynamodbav:"recorded_at"`
	OutcomeSK  string `dynamodbav:"outcome_sk"`
}

type outcomeItem struct {
	PK         string       `dynamodbav:"pk"`
	SK         string       `dynamodbav:"sk"`
	Type       string       `dynamodbav:"type"`
	AccountID  string       `dynamodbav:"account_id"`
	Region     string       `dynamodbav:"region"`
	InstanceID string       `dynamodbav:"instance_id"`
	DecisionID string       `dynamodbav:"decision_id"`
	At         string       `dynamodbav:"at"`
	Action     string       `dynamodbav:"action"`
	Result     string       `dynamodbav:"result"`
	Mode       string       `dynamodbav:"mode,omitempty"`
	Reasons    []reasonItem `dynamodbav:"reasons,omitempty"`
	Prior      *optionsItem `dynamodbav:"prior,omitempty"`
	Applied    *optionsItem `dynamodbav:"applied,omitempty"`
	Detail     string       `dynamodbav:"detail,omitempty"`
}

type snapshotItem struct {
	PK         string      `dynamodbav:"pk"`
	SK         string      `dynamodbav:"sk"`
	Type       string      `dynamodbav:"type"`
	AccountID  string      `dynamodbav:"account_id"`
	Region     string      `dynamodbav:"region"`
	InstanceID string      `dynamodbav:"instance_id"`
	DecisionID string      `dynamodbav:"decision_id"`
	At         string      `dynamodbav:"at"`
	Options    optionsItem `dynamodbav:"options"`
}

// Claim marks a decision as being processed, with a conditional write, so that a
// redelivered SQS message is a no-op, and authenticates the message while it does: the
// decision must have been recorded by detect (package decisionlog) for the same instance and
// with the same digest as the message body. It returns ErrNotRecorded or ErrAltered when
// it was not (nothing may be done about the message), ErrDone when the decision was
// already fully processed (the caller treats the message as done) and ErrInProgress when
// another invocation holds an unexpired claim (the caller fails the item so SQS retries
// later). A claim expires after ttl (the queue's visibility timeout), so a crashed
// invocation does not block the decision forever. A decision released by Release, or
// whose last outcome was ResultFailed, can be claimed again at once.
func (l *Ledger) Claim(ctx context.Context, decisionID string, ref Ref, digest string, now time.Time, ttl time.Duration) error {
	if err := l.check(); err != nil {
		return err
	}
	if err := validDecisionID(decisionID); err != nil {
		return fmt.Errorf("ledger: claim: %w", err)
	}
	if err := validRef(ref); err != nil {
		return fmt.Errorf("ledger: claim decision %s: %w", decisionID, err)
	}
	if ttl <= 0 {
		return fmt.Errorf("ledger: claim decision %s: ttl %v is not positive", decisionID, ttl)
	}
	if now.IsZero() {
		return fmt.Errorf("ledger: claim decision %s: now is the zero time", decisionID)
	}
	nowMS := now.UnixMilli()
	in := &dynamodb.UpdateItemInput{
		TableName:        aws.String(l.Table),
		Key:              decisionKey(decisionID),
		UpdateExpression: aws.String("SET #status = :claimed, #claimed_at = :claimed_at, #until = :until, #exp = :exp ADD #attempts :one"),
		ConditionExpression: aws.String("attribute_exists(#pk) AND #digest = :digest AND #acct = :acct AND #region = :region AND #inst = :inst " +
			"AND #status <> :done AND #until <= :now"),
		ExpressionAttributeNames: map[string]string{
			"#pk": attrPK, "#digest": "digest", "#acct": "account_id", "#region": "region",
			"#inst": "instance_id", "#status": "status", "#claimed_at": "claimed_at", "#until": "claim_until",
			"#exp": TTLAttribute, "#attempts": "attempts",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":digest":     str(digest),
			":acct":       str(ref.AccountID),
			":region":     str(ref.Region),
			":inst":       str(ref.InstanceID),
			":claimed":    str(statusClaimed),
			":claimed_at": str(formatTime(now)),
			":until":      num(now.Add(ttl).UnixMilli()),
			":exp":        num(expiry(now)),
			":one":        num(1),
			":done":       str(statusDone),
			":now":        num(nowMS),
		},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	for range claimRetries {
		_, err := l.API.UpdateItem(ctx, in)
		if err == nil {
			return nil
		}
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return fmt.Errorf("ledger: claim decision %s in table %s: %w", decisionID, l.Table, err)
		}
		old := ccf.Item
		if old == nil {
			// Not every implementation returns the item with the failure: read it.
			if old, err = l.get(ctx, decisionKey(decisionID)); err != nil {
				return fmt.Errorf("ledger: claim decision %s in table %s: reading the existing claim: %w", decisionID, l.Table, err)
			}
		}
		if old == nil {
			return fmt.Errorf("ledger: decision %s about %s is not in table %s: %w", decisionID, ref.Name(), l.Table, ErrNotRecorded)
		}
		var d decisionItem
		if err := attributevalue.UnmarshalMap(old, &d); err != nil {
			return fmt.Errorf("ledger: claim decision %s in table %s: decoding the existing item: %w", decisionID, l.Table, err)
		}
		switch {
		case d.Digest != digest || d.AccountID != ref.AccountID || d.Region != ref.Region || d.InstanceID != ref.InstanceID:
			return fmt.Errorf("ledger: decision %s in table %s was recorded about %s/%s/%s with digest %.12s, the message is about %s with digest %.12s: %w",
				decisionID, l.Table, d.AccountID, d.Region, d.InstanceID, d.Digest, ref.Name(), digest, ErrAltered)
		case d.Status == statusDone:
			return fmt.Errorf("ledger: decision %s in table %s was recorded %s as %s: %w",
				decisionID, l.Table, d.RecordedAt, d.Result, ErrDone)
		case d.ClaimUntil > nowMS:
			return fmt.Errorf("ledger: decision %s in table %s was claimed at %s until %s (attempt %d): %w",
				decisionID, l.Table, d.ClaimedAt, formatTime(time.UnixMilli(d.ClaimUntil)), d.Attempts, ErrInProgress)
		}
		// The item changed after the write failed (released or expired): try again.
	}
	return fmt.Errorf("ledger: decision %s in table %s kept changing while being claimed: %w", decisionID, l.Table, ErrInProgress)
}

// Release drops a claim after a failure so that the retry can claim again. It does
// nothing when the decision is not claimed: unknown, already released, or done (a done
// decision stays done).
func (l *Ledger) Release(ctx context.Context, decisionID string) error {
	if err := l.check(); err != nil {
		return err
	}
	if err := validDecisionID(decisionID); err != nil {
		return fmt.Errorf("ledger: release: %w", err)
	}
	_, err := l.API.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(l.Table),
		Key:                      decisionKey(decisionID),
		UpdateExpression:         aws.String("SET #status = :released, #until = :zero"),
		ConditionExpression:      aws.String("#status = :claimed"),
		ExpressionAttributeNames: map[string]string{"#status": "status", "#until": "claim_until"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":released": str(statusReleased), ":zero": num(0), ":claimed": str(statusClaimed),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("ledger: release decision %s in table %s: %w", decisionID, l.Table, err)
	}
	return nil
}

// Record writes the outcome to the instance's history and marks the decision done,
// atomically (one TransactWriteItems). A ResultFailed outcome instead marks the decision
// failed and drops its claim, so that the retry can claim it again. It returns ErrDone,
// and writes nothing, when the decision was already done. The outcome needs a decision
// id, a complete Ref, a non-zero At, an Action and one of the Result* constants.
func (l *Ledger) Record(ctx context.Context, o Outcome) error {
	if err := l.check(); err != nil {
		return err
	}
	if err := o.valid(); err != nil {
		return fmt.Errorf("ledger: record: %w", err)
	}
	hist := outcomeItem{
		PK: instancePK(o.Ref), SK: outcomeSK(o.At, o.DecisionID), Type: typeOutcome,
		AccountID: o.AccountID, Region: o.Region, InstanceID: o.InstanceID, DecisionID: o.DecisionID,
		At: formatTime(o.At), Action: string(o.Action), Result: o.Result, Mode: o.Mode,
		Prior: toOptionsItem(o.Prior), Applied: toOptionsItem(o.Applied), Detail: o.Detail,
	}
	for _, r := range o.Reasons {
		hist.Reasons = append(hist.Reasons, reasonItem{Code: string(r.Code), Detail: r.Detail})
	}
	item, err := attributevalue.MarshalMap(hist)
	if err != nil {
		return fmt.Errorf("ledger: record decision %s: encoding the outcome: %w", o.DecisionID, err)
	}
	status := statusDone
	if o.Result == ResultFailed {
		status = statusFailed
	}
	in := &dynamodb.TransactWriteItemsInput{
		// The token makes an SDK retry of a transaction that did succeed a success too.
		ClientRequestToken: aws.String(requestToken(l.Table, o.DecisionID, hist.SK, o.Result)),
		TransactItems: []types.TransactWriteItem{
			{Put: &types.Put{
				TableName:                aws.String(l.Table),
				Item:                     item,
				ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
				ExpressionAttributeNames: map[string]string{"#pk": attrPK},
			}},
			{Update: &types.Update{
				TableName: aws.String(l.Table),
				Key:       decisionKey(o.DecisionID),
				UpdateExpression: aws.String("SET #type = :type, #did = :did, #acct = :acct, #region = :region, #inst = :inst, " +
					"#status = :status, #result = :result, #recorded_at = :at, #outcome_sk = :osk, #exp = :exp, " +
					"#until = :zero"),
				// Only a decision detect recorded has outcomes.
				ConditionExpression: aws.String("attribute_exists(#pk) AND #status <> :done"),
				ExpressionAttributeNames: map[string]string{
					"#pk": attrPK, "#type": "type", "#did": "decision_id", "#acct": "account_id", "#region": "region",
					"#inst": "instance_id", "#status": "status", "#result": "result", "#recorded_at": "recorded_at",
					"#outcome_sk": "outcome_sk", "#exp": TTLAttribute, "#until": "claim_until",
				},
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":type":   str(typeDecision),
					":did":    str(o.DecisionID),
					":acct":   str(o.AccountID),
					":region": str(o.Region),
					":inst":   str(o.InstanceID),
					":status": str(status),
					":result": str(o.Result),
					":at":     str(formatTime(o.At)),
					":osk":    str(hist.SK),
					":exp":    num(expiry(o.At)),
					":done":   str(statusDone),
					":zero":   num(0),
				},
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}},
		},
	}
	_, err = l.API.TransactWriteItems(ctx, in)
	if err == nil {
		return nil
	}
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) && len(tce.CancellationReasons) == 2 {
		if aws.ToString(tce.CancellationReasons[1].Code) == "ConditionalCheckFailed" {
			if len(tce.CancellationReasons[1].Item) == 0 {
				return fmt.Errorf("ledger: record %s for decision %s of %s in table %s: %w", o.Result, o.DecisionID, o.Ref.Name(), l.Table, ErrNotRecorded)
			}
			var d decisionItem
			earlier := ""
			if attributevalue.UnmarshalMap(tce.CancellationReasons[1].Item, &d) == nil && d.Result != "" {
				earlier = fmt.Sprintf(" (recorded %s as %s)", d.RecordedAt, d.Result)
			}
			return fmt.Errorf("ledger: record %s for decision %s of %s in table %s: already done%s: %w",
				o.Result, o.DecisionID, o.Ref.Name(), l.Table, earlier, ErrDone)
		}
		if aws.ToString(tce.CancellationReasons[0].Code) == "ConditionalCheckFailed" {
			return fmt.Errorf("ledger: record %s for decision %s of %s in table %s: an outcome of this decision at %s is already in the history: %w",
				o.Result, o.DecisionID, o.Ref.Name(), l.Table, formatTime(o.At), err)
		}
	}
	return fmt.Errorf("ledger: record %s for decision %s of %s in table %s: %w", o.Result, o.DecisionID, o.Ref.Name(), l.Table, err)
}

// Snapshot stores the instance's metadata options from before imdsguard first changed
// them. The first snapshot is kept (conditional write): a later enforcement after a
// rollback must not overwrite the original options. It returns the snapshot in force.
func (l *Ledger) Snapshot(ctx context.Context, ref Ref, prior policy.MetadataOptions, decisionID string, at time.Time) (Snapshot, error) {
	if err := l.check(); err != nil {
		return Snapshot{}, err
	}
	if err := validRef(ref); err != nil {
		return Snapshot{}, fmt.Errorf("ledger: snapshot: %w", err)
	}
	if err := validDecisionID(decisionID); err != nil {
		return Snapshot{}, fmt.Errorf("ledger: snapshot of %s: %w", ref.Name(), err)
	}
	if err := validTime(at); err != nil {
		return Snapshot{}, fmt.Errorf("ledger: snapshot of %s: %w", ref.Name(), err)
	}
	want := snapshotItem{
		PK: instancePK(ref), SK: snapshotSK, Type: typeSnapshot,
		AccountID: ref.AccountID, Region: ref.Region, InstanceID: ref.InstanceID,
		DecisionID: decisionID, At: formatTime(at), Options: *toOptionsItem(&prior),
	}
	item, err := attributevalue.MarshalMap(want)
	if err != nil {
		return Snapshot{}, fmt.Errorf("ledger: snapshot of %s: encoding: %w", ref.Name(), err)
	}
	_, err = l.API.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           aws.String(l.Table),
		Item:                                item,
		ConditionExpression:                 aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames:            map[string]string{"#pk": attrPK},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		return want.snapshot()
	}
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return Snapshot{}, fmt.Errorf("ledger: snapshot of %s in table %s: %w", ref.Name(), l.Table, err)
	}
	old := ccf.Item
	if old == nil {
		if old, err = l.get(ctx, snapshotKey(ref)); err != nil {
			return Snapshot{}, fmt.Errorf("ledger: snapshot of %s in table %s: reading the existing snapshot: %w", ref.Name(), l.Table, err)
		}
		if old == nil {
			// Only a snapshot is ever written under this key and none is deleted.
			return Snapshot{}, fmt.Errorf("ledger: snapshot of %s in table %s: the write found a snapshot that the read did not", ref.Name(), l.Table)
		}
	}
	s, err := decodeSnapshot(old)
	if err != nil {
		return Snapshot{}, fmt.Errorf("ledger: snapshot of %s in table %s: %w", ref.Name(), l.Table, err)
	}
	return s, nil
}

// GetSnapshot returns the instance's snapshot, or nil (and no error) when there is none.
func (l *Ledger) GetSnapshot(ctx context.Context, ref Ref) (*Snapshot, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	if err := validRef(ref); err != nil {
		return nil, fmt.Errorf("ledger: get snapshot: %w", err)
	}
	item, err := l.get(ctx, snapshotKey(ref))
	if err != nil {
		return nil, fmt.Errorf("ledger: get snapshot of %s from table %s: %w", ref.Name(), l.Table, err)
	}
	if item == nil {
		return nil, nil
	}
	s, err := decodeSnapshot(item)
	if err != nil {
		return nil, fmt.Errorf("ledger: get snapshot of %s from table %s: %w", ref.Name(), l.Table, err)
	}
	return &s, nil
}

// History returns the instance's recorded outcomes, oldest first (ties in time by
// decision id). It reads every page of a strongly consistent Query.
func (l *Ledger) History(ctx context.Context, ref Ref) ([]Outcome, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	if err := validRef(ref); err != nil {
		return nil, fmt.Errorf("ledger: history: %w", err)
	}
	in := &dynamodb.QueryInput{
		TableName:                aws.String(l.Table),
		KeyConditionExpression:   aws.String("#pk = :pk AND begins_with(#sk, :prefix)"),
		ExpressionAttributeNames: map[string]string{"#pk": attrPK, "#sk": attrSK},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(instancePK(ref)), ":prefix": str(outcomePrefix),
		},
		ConsistentRead:   aws.Bool(true),
		ScanIndexForward: aws.Bool(true),
	}
	if l.PageSize > 0 {
		in.Limit = aws.Int32(l.PageSize)
	}
	var out []Outcome
	pages := dynamodb.NewQueryPaginator(l.API, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("ledger: history of %s from table %s: %w", ref.Name(), l.Table, err)
		}
		var items []outcomeItem
		if err := attributevalue.UnmarshalListOfMaps(page.Items, &items); err != nil {
			return nil, fmt.Errorf("ledger: history of %s from table %s: decoding: %w", ref.Name(), l.Table, err)
		}
		for _, it := range items {
			o, err := it.outcome()
			if err != nil {
				return nil, fmt.Errorf("ledger: history of %s from table %s: item %s: %w", ref.Name(), l.Table, it.SK, err)
			}
			out = append(out, o)
		}
	}
	return out, nil
}

func (l *Ledger) check() error {
	if l == nil || l.API == nil {
		return errors.New("ledger: no DynamoDB client")
	}
	if l.Table == "" {
		return errors.New("ledger: no table name")
	}
	return nil
}

// get reads one item with a strongly consistent GetItem; nil when it does not exist.
func (l *Ledger) get(ctx context.Context, key map[string]types.AttributeValue) (map[string]types.AttributeValue, error) {
	out, err := l.API.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.Table), Key: key, ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

// validRef checks that a ref can be part of a key: every part set, none with a '#'.
func validRef(r Ref) error {
	for _, f := range []struct{ name, v string }{
		{"account id", r.AccountID}, {"region", r.Region}, {"instance id", r.InstanceID},
	} {
		if f.v == "" {
			return fmt.Errorf("instance %s: %s is empty", r.Name(), f.name)
		}
		if strings.Contains(f.v, "#") {
			return fmt.Errorf("instance %s: %s %q contains '#'", r.Name(), f.name, f.v)
		}
	}
	return nil
}

func validDecisionID(id string) error {
	if id == "" {
		return errors.New("decision id is empty")
	}
	if strings.Contains(id, "#") {
		return fmt.Errorf("decision id %q contains '#'", id)
	}
	return nil
}

func validTime(t time.Time) error {
	if t.IsZero() {
		return errors.New("time is the zero time")
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("time %v is outside years 1 to 9999", t)
	}
	return nil
}

func (o Outcome) valid() error {
	if err := validDecisionID(o.DecisionID); err != nil {
		return err
	}
	if err := validRef(o.Ref); err != nil {
		return fmt.Errorf("decision %s: %w", o.DecisionID, err)
	}
	if err := validTime(o.At); err != nil {
		return fmt.Errorf("decision %s: %w", o.DecisionID, err)
	}
	if !slices.Contains(Results, o.Result) {
		return fmt.Errorf("decision %s: result %q is not one of %s", o.DecisionID, o.Result, strings.Join(Results, ", "))
	}
	if o.Action == "" {
		return fmt.Errorf("decision %s: action is empty", o.DecisionID)
	}
	return nil
}

func instancePK(r Ref) string {
	return instancePrefix + r.AccountID + "#" + r.Region + "#" + r.InstanceID
}

func outcomeSK(at time.Time, decisionID string) string {
	return outcomePrefix + formatTime(at) + "#" + decisionID
}

func decisionKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(decisionPrefix + id), attrSK: str(decisionSK)}
}

func snapshotKey(r Ref) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(instancePK(r)), attrSK: str(snapshotSK)}
}

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// expiry is the TTL value of a decision item written at t.
func expiry(t time.Time) int64 { return t.Add(DecisionRetention).Unix() }

func requestToken(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:32] // ClientRequestToken allows 1 to 36 characters
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func toOptionsItem(o *policy.MetadataOptions) *optionsItem {
	if o == nil {
		return nil
	}
	return &optionsItem{HTTPTokens: o.HTTPTokens, HopLimit: o.HopLimit, HTTPEndpoint: o.HTTPEndpoint, State: o.State}
}

func (o *optionsItem) options() *policy.MetadataOptions {
	if o == nil {
		return nil
	}
	return &policy.MetadataOptions{HTTPTokens: o.HTTPTokens, HopLimit: o.HopLimit, HTTPEndpoint: o.HTTPEndpoint, State: o.State}
}

func (it outcomeItem) outcome() (Outcome, error) {
	at, err := parseTime(it.At)
	if err != nil {
		return Outcome{}, fmt.Errorf("at: %w", err)
	}
	o := Outcome{
		Ref:        Ref{AccountID: it.AccountID, Region: it.Region, InstanceID: it.InstanceID},
		DecisionID: it.DecisionID, At: at, Action: policy.Action(it.Action), Result: it.Result, Mode: it.Mode,
		Prior: it.Prior.options(), Applied: it.Applied.options(), Detail: it.Detail,
	}
	for _, r := range it.Reasons {
		o.Reasons = append(o.Reasons, policy.Reason{Code: policy.ReasonCode(r.Code), Detail: r.Detail})
	}
	return o, nil
}

func (it snapshotItem) snapshot() (Snapshot, error) {
	at, err := parseTime(it.At)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot at: %w", err)
	}
	return Snapshot{
		Ref:        Ref{AccountID: it.AccountID, Region: it.Region, InstanceID: it.InstanceID},
		Options:    *it.Options.options(),
		DecisionID: it.DecisionID,
		At:         at,
	}, nil
}

func decodeSnapshot(item map[string]types.AttributeValue) (Snapshot, error) {
	var it snapshotItem
	if err := attributevalue.UnmarshalMap(item, &it); err != nil {
		return Snapshot{}, fmt.Errorf("decoding the snapshot: %w", err)
	}
	return it.snapshot()
}

package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// Sources of instances (DESIGN.md section 10). A source's decisions, outcomes, ticket and
// snapshot are kept as an instance's are, under its subject (message.SourceSubject: the
// launch template id, or "account-defaults") in the place of the instance id. Its
// snapshot has its own sort key and shape:
//
//	pk               S  INSTANCE#<account id>#<region>#<subject>
//	sk               S  SOURCE-SNAPSHOT
//	type             S  source-snapshot
//	account_id, region, instance_id (the subject), decision_id  S
//	at               S  when it was taken
//	default_version  N  a launch template's default version before the fix
//	http_tokens      S  the account defaults' HttpTokens before it ("" for no preference)
//	fixed_version    N  the version the fix made the default, once it is recorded
//
// Unlike an instance's, it is the source as it was before imdsguard's latest fix: a
// template's owners make versions of their own between fixes, and a rollback must not
// bring back an AMI or user data they replaced since. A retry of the same decision keeps
// the snapshot its first attempt took.
//
// Source watch items, one per launch template fix being verified, written with the fix's
// outcome (Record) and deleted when it settles (SettleSource):
//
//	pk             S  SOURCEWATCH#<account id>#<region>
//	sk             S  <subject>
//	type           S  source-watch
//	account_id, region, instance_id (the subject), decision_id  S  (the fix's decision)
//	fixed_at       S  when the fix was made
//	fixed_version  N  the version it made the default
//	wave           N  the rollout wave the fix counts in: it holds the later waves back
//	                  while it is verified, as an instance's enforcement does

// ResultSourceFixed is the outcome of a source fix: a launch template's new default
// version, or the account defaults, with HttpTokens required. A launch template's fix
// starts a source watch: verify watches the instances launched from the fixed version.
const ResultSourceFixed = "source-fixed"

const (
	sourceSnapshotSK   = "SOURCE-SNAPSHOT"
	typeSourceSnapshot = "source-snapshot"
)

// SourceSnapshot is a source as it was before imdsguard's latest fix of it.
type SourceSnapshot struct {
	Ref
	DecisionID string
	At         time.Time
	// DefaultVersion is a launch template's; HTTPTokens the account defaults'.
	DefaultVersion int64
	HTTPTokens     string
	// FixedVersion is the version the fix made the default; 0 until the fix is recorded.
	FixedVersion int64
}

type sourceSnapshotItem struct {
	instanceItem
	DecisionID     string `dynamodbav:"decision_id"`
	At             string `dynamodbav:"at"`
	DefaultVersion int64  `dynamodbav:"default_version"`
	HTTPTokens     string `dynamodbav:"http_tokens"`
	FixedVersion   int64  `dynamodbav:"fixed_version,omitempty"`
}

func sourceSnapshotKey(r Ref) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(instancePK(r)), attrSK: str(sourceSnapshotSK)}
}

// SnapshotSource stores the source as it is before the fix of decision s.DecisionID,
// unless that decision took its snapshot already (a retry), and returns the snapshot in
// force.
func (l *Ledger) SnapshotSource(ctx context.Context, s SourceSnapshot) (SourceSnapshot, error) {
	if err := l.check(); err != nil {
		return SourceSnapshot{}, err
	}
	if err := validRef(s.Ref); err != nil {
		return SourceSnapshot{}, fmt.Errorf("ledger: source snapshot: %w", err)
	}
	if err := validDecisionID(s.DecisionID); err != nil {
		return SourceSnapshot{}, fmt.Errorf("ledger: source snapshot of %s: %w", s.Name(), err)
	}
	if err := validTime(s.At); err != nil {
		return SourceSnapshot{}, fmt.Errorf("ledger: source snapshot of %s: %w", s.Name(), err)
	}
	item, err := attributevalue.MarshalMap(sourceSnapshotItem{
		instanceItem: newInstanceItem(s.Ref, sourceSnapshotSK, typeSourceSnapshot),
		DecisionID:   s.DecisionID, At: formatTime(s.At), DefaultVersion: s.DefaultVersion, HTTPTokens: s.HTTPTokens,
	})
	if err != nil {
		return SourceSnapshot{}, fmt.Errorf("ledger: source snapshot of %s: encoding: %w", s.Name(), err)
	}
	_, err = l.API.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(l.Table), Item: item,
		ConditionExpression:       aws.String("attribute_not_exists(#pk) OR #did <> :did"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK, "#did": "decision_id"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":did": str(s.DecisionID)},
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return s, nil
	case !errors.As(err, &ccf):
		return SourceSnapshot{}, fmt.Errorf("ledger: source snapshot of %s in table %s: %w", s.Name(), l.Table, err)
	}
	old, err := l.GetSourceSnapshot(ctx, s.Ref)
	if err == nil && old == nil {
		// Only a snapshot is ever written under this key and none is deleted.
		err = errors.New("the write found a snapshot that the read did not")
	}
	if err != nil {
		return SourceSnapshot{}, fmt.Errorf("ledger: source snapshot of %s in table %s: %w", s.Name(), l.Table, err)
	}
	return *old, nil
}

// GetSourceSnapshot returns the source's snapshot, or nil (and no error) when there is
// none.
func (l *Ledger) GetSourceSnapshot(ctx context.Context, ref Ref) (*SourceSnapshot, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	item, err := l.get(ctx, sourceSnapshotKey(ref))
	if err != nil || item == nil {
		return nil, err
	}
	var it sourceSnapshotItem
	if err := attributevalue.UnmarshalMap(item, &it); err != nil {
		return nil, fmt.Errorf("ledger: source snapshot of %s: %w", ref.Name(), err)
	}
	at, err := parseTime(it.At)
	if err != nil {
		return nil, fmt.Errorf("ledger: source snapshot of %s: at %q: %w", ref.Name(), it.At, err)
	}
	return &SourceSnapshot{Ref: it.ref(), DecisionID: it.DecisionID, At: at, DefaultVersion: it.DefaultVersion, HTTPTokens: it.HTTPTokens,
		FixedVersion: it.FixedVersion}, nil
}

const (
	sourceWatchPrefix = "SOURCEWATCH#"
	typeSourceWatch   = "source-watch"
)

// SourceWatch is a launch template fix being verified.
type SourceWatch struct {
	Ref
	DecisionID   string
	FixedAt      time.Time
	FixedVersion int64
	Wave         int
}

type sourceWatchItem struct {
	PK           string `dynamodbav:"pk"`
	SK           string `dynamodbav:"sk"`
	Type         string `dynamodbav:"type"`
	AccountID    string `dynamodbav:"account_id"`
	Region       string `dynamodbav:"region"`
	InstanceID   string `dynamodbav:"instance_id"`
	DecisionID   string `dynamodbav:"decision_id"`
	FixedAt      string `dynamodbav:"fixed_at"`
	FixedVersion int64  `dynamodbav:"fixed_version"`
	Wave         int    `dynamodbav:"wave"`
}

func sourceWatchPK(account, region string) string { return sourceWatchPrefix + account + "#" + region }

// sourceFixedUpdate is the Update, in the fix's Record, that notes in the snapshot the
// version the fix made the default: a rollback by hand checks it is still the default.
func sourceFixedUpdate(table string, o Outcome) *types.Update {
	return &types.Update{
		TableName:                 aws.String(table),
		Key:                       sourceSnapshotKey(o.Ref),
		UpdateExpression:          aws.String("SET #fixed = :fixed"),
		ConditionExpression:       aws.String("#did = :did"),
		ExpressionAttributeNames:  map[string]string{"#fixed": "fixed_version", "#did": "decision_id"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":fixed": num(o.FixedVersion), ":did": str(o.DecisionID)},
	}
}

func sourceWatchPut(table string, o Outcome) (*types.Put, error) {
	item, err := attributevalue.MarshalMap(sourceWatchItem{
		PK: sourceWatchPK(o.AccountID, o.Region), SK: o.InstanceID, Type: typeSourceWatch,
		AccountID: o.AccountID, Region: o.Region, InstanceID: o.InstanceID, DecisionID: o.DecisionID,
		FixedAt: formatTime(o.At), FixedVersion: o.FixedVersion, Wave: o.Wave,
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: record decision %s: encoding the source watch: %w", o.DecisionID, err)
	}
	return &types.Put{TableName: aws.String(table), Item: item}, nil
}

// WatchingSources returns the launch template fixes of the account-region being
// verified.
func (l *Ledger) WatchingSources(ctx context.Context, account, region string) ([]SourceWatch, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	if err := validScope(account, region); err != nil {
		return nil, err
	}
	var out []SourceWatch
	err := l.queryAll(ctx, sourceWatchPK(account, region), func(item map[string]types.AttributeValue) error {
		var w sourceWatchItem
		if err := attributevalue.UnmarshalMap(item, &w); err != nil {
			return err
		}
		at, err := parseTime(w.FixedAt)
		if err != nil {
			return fmt.Errorf("source watch of %s: fixed_at %q: %w", w.InstanceID, w.FixedAt, err)
		}
		out = append(out, SourceWatch{Ref: Ref{AccountID: w.AccountID, Region: w.Region, InstanceID: w.InstanceID},
			DecisionID: w.DecisionID, FixedAt: at, FixedVersion: w.FixedVersion, Wave: w.Wave})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: source watches of %s/%s in table %s: %w", account, region, l.Table, err)
	}
	return out, nil
}

// SourceSettlement is how the verification of a source fix ended.
type SourceSettlement struct {
	Watch SourceWatch
	// Result is ResultVerified, ResultRolledBack or ResultSuperseded.
	Result  string
	At      time.Time
	Reasons []policy.Reason
	Detail  string
	Mode    string
}

// SettleSource ends the verification of a source fix in one transaction, as Settle does
// an instance's: the watch is removed (only that of this very fix), the outcome is added
// to the source's history under the fix's decision, and a rollback is kept, by verify:
// the breaker counts it, and the source is not fixed again for a lookback. It returns
// ErrDone when the watch is gone already.
func (l *Ledger) SettleSource(ctx context.Context, s SourceSettlement) error {
	w := s.Watch
	return l.settle(ctx, settling{
		outcome: Outcome{Ref: w.Ref, DecisionID: w.DecisionID, At: s.At, Action: policy.Action(policy.SourceFix), Result: s.Result,
			Mode: s.Mode, Reasons: s.Reasons, Detail: s.Detail},
		watchKey: map[string]types.AttributeValue{attrPK: str(sourceWatchPK(w.AccountID, w.Region)), attrSK: str(w.InstanceID)},
		wave:     w.Wave, token: "settle-source",
	})
}

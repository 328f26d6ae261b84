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
//	default_version  N  a launch template's default version before imdsguard's first fix
//	http_tokens      S  the account defaults' HttpTokens before it ("" for no preference)
//
// Like an instance's, it is written once and never overwritten, so that a rollback
// restores what was there before imdsguard, not an intermediate state.

// ResultSourceFixed is the outcome of a source fix: a launch template's new default
// version, or the account defaults, with HttpTokens required. It starts no watch: the
// instances the source launches from then on are judged, and verified, one by one.
const ResultSourceFixed = "source-fixed"

const (
	sourceSnapshotSK   = "SOURCE-SNAPSHOT"
	typeSourceSnapshot = "source-snapshot"
)

// SourceSnapshot is a source as it was before imdsguard first fixed it.
type SourceSnapshot struct {
	Ref
	DecisionID string
	At         time.Time
	// DefaultVersion is a launch template's; HTTPTokens the account defaults'.
	DefaultVersion int64
	HTTPTokens     string
}

type sourceSnapshotItem struct {
	instanceItem
	DecisionID     string `dynamodbav:"decision_id"`
	At             string `dynamodbav:"at"`
	DefaultVersion int64  `dynamodbav:"default_version"`
	HTTPTokens     string `dynamodbav:"http_tokens"`
}

func sourceSnapshotKey(r Ref) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(instancePK(r)), attrSK: str(sourceSnapshotSK)}
}

// SnapshotSource stores the source as it was before imdsguard first fixed it, unless a
// snapshot is there already, and returns the snapshot in force.
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
		ConditionExpression: aws.String("attribute_not_exists(#pk)"), ExpressionAttributeNames: map[string]string{"#pk": attrPK},
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
	return &SourceSnapshot{Ref: it.ref(), DecisionID: it.DecisionID, At: at, DefaultVersion: it.DefaultVersion, HTTPTokens: it.HTTPTokens}, nil
}

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
		instanceItem: newInstanceItem(ref, snapshotSK, typeSnapshot),
		DecisionID:   decisionID, At: formatTime(at), Options: *toOptionsItem(&prior),
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

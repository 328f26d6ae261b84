package ledger

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

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
	// The token tells this claim from any other: when its reply is lost and the SDK's retry
	// finds the item claimed, the claim it finds is this one if the token is.
	token := rand.Text()
	in := &dynamodb.UpdateItemInput{
		TableName:        aws.String(l.Table),
		Key:              decisionKey(decisionID),
		UpdateExpression: aws.String("SET #status = :claimed, #claimed_at = :claimed_at, #until = :until, #token = :token, #exp = :exp ADD #attempts :one"),
		ConditionExpression: aws.String("attribute_exists(#pk) AND #digest = :digest AND #acct = :acct AND #region = :region AND #inst = :inst " +
			"AND #status <> :done AND #until <= :now"),
		ExpressionAttributeNames: map[string]string{
			"#pk": attrPK, "#digest": "digest", "#acct": "account_id", "#region": "region",
			"#inst": "instance_id", "#status": "status", "#claimed_at": "claimed_at", "#until": "claim_until",
			"#exp": TTLAttribute, "#attempts": "attempts", "#token": "claim_token",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":digest":     str(digest),
			":acct":       str(ref.AccountID),
			":region":     str(ref.Region),
			":inst":       str(ref.InstanceID),
			":claimed":    str(statusClaimed),
			":claimed_at": str(formatTime(now)),
			":until":      num(now.Add(ttl).UnixMilli()),
			":token":      str(token),
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
		case d.Status == statusClaimed && d.ClaimToken == token:
			return nil // this claim took effect; only its reply was lost
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
	hist := newOutcomeItem(o)
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
	if o.Result == ResultEnforced && o.Applied != nil {
		// An enforcement is verified from now on (verify watches it).
		watch, err := watchPut(l.Table, o)
		if err != nil {
			return err
		}
		in.TransactItems = append(in.TransactItems, types.TransactWriteItem{Put: watch})
	}
	if o.Result == ResultSourceFixed && o.FixedVersion > 0 {
		// A launch template's fix is verified on the instances launched from it.
		watch, err := sourceWatchPut(l.Table, o)
		if err != nil {
			return err
		}
		in.TransactItems = append(in.TransactItems, types.TransactWriteItem{Put: watch}, types.TransactWriteItem{Update: sourceFixedUpdate(l.Table, o)})
	}
	_, err = l.API.TransactWriteItems(ctx, in)
	if err == nil {
		return nil
	}
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) && len(tce.CancellationReasons) >= 2 {
		if aws.ToString(tce.CancellationReasons[1].Code) == "ConditionalCheckFailed" {
			if len(tce.CancellationReasons[1].Item) == 0 {
				return fmt.Errorf("ledger: record %s for decision %s of %s in table %s: %w", o.Result, o.DecisionID, o.Ref.Name(), l.Table, ErrNotRecorded)
			}
			var d decisionItem
			earlier := ""
			if attributevalue.UnmarshalMap(tce.CancellationReasons[1].Item, &d) == nil && d.Result != "" {
				if d.OutcomeSK == hist.SK && d.Result == o.Result {
					// This very outcome is recorded: a retry of the transaction, whose first
					// reply was lost, found its own write (DynamoDB's request token does
					// this for a retry within 10 minutes; not every implementation does).
					return nil
				}
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

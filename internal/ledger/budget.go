package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// The enforcement budget (DESIGN.md section 9) is a counter item per account-region and
// clock hour, and one per account-region and sweep:
//
//	pk          S  BUDGET#<account id>#<region>
//	sk          S  HOUR#<the hour, RFC 3339 UTC> | SWEEP#<sweep id>
//	type        S  budget
//	used        N  enforcements counted so far
//	expires_at  N  TTL: Unix seconds, BudgetRetention after the hour (or the first take)
//
// A slot is taken with one conditional UpdateItem per counter (ADD used 1 if used is
// below the limit), which DynamoDB applies atomically however many remediate
// invocations take slots at once: the budget holds under concurrency without a lock.

const (
	budgetPrefix = "BUDGET#"
	hourPrefix   = "HOUR#"
	sweepPrefix  = "SWEEP#"
	typeBudget   = "budget"
	attrUsed     = "used"
	// hourLayout names a clock hour in a sort key.
	hourLayout = "2006-01-02T15Z"
)

// BudgetRetention is how long a budget counter is kept: long enough for `imdsguard
// status` to show the last day's use.
const BudgetRetention = 48 * time.Hour

// Budget is the enforcement budget of one account-region that an enforcement takes a
// slot of: the clock hour's, and the sweep's when the verdict came from a sweep.
type Budget struct {
	AccountID, Region string
	// Hour is the clock hour (policy.BudgetHourOf) the enforcement counts against.
	Hour time.Time
	// SweepID names the sweep the verdict came from; empty for an event's verdict.
	SweepID                 string
	MaxPerHour, MaxPerSweep int
}

// BudgetSpentError is TakeBudget's refusal: the budget of Kind had no slot left.
type BudgetSpentError struct {
	Kind policy.BudgetKind
}

func (e *BudgetSpentError) Error() string {
	if e.Kind == policy.BudgetSweep {
		return "ledger: the sweep's enforcement budget is spent"
	}
	return "ledger: the hour's enforcement budget is spent"
}

// TakeBudget takes one enforcement slot of the sweep's budget (when there is a sweep and
// a limit for it) and of the hour's, or returns a *BudgetSpentError naming the budget
// that had none left. The sweep's slot is taken first and given back when the hour has
// none; should that give-back fail (or the process die between the two), a slot of the
// sweep is lost, which only ever enforces less.
func (l *Ledger) TakeBudget(ctx context.Context, b Budget, now time.Time) error {
	if err := l.check(); err != nil {
		return err
	}
	if err := b.valid(); err != nil {
		return err
	}
	if b.MaxPerHour <= 0 {
		return fmt.Errorf("ledger: budget of %s/%s: the hourly limit %d is not positive", b.AccountID, b.Region, b.MaxPerHour)
	}
	sweep := b.SweepID != "" && b.MaxPerSweep > 0
	if sweep {
		ok, err := l.takeSlot(ctx, budgetKey(b, sweepPrefix+b.SweepID), b.MaxPerSweep, now.Add(BudgetRetention))
		if err != nil {
			return err
		}
		if !ok {
			return &BudgetSpentError{Kind: policy.BudgetSweep}
		}
	}
	ok, err := l.takeSlot(ctx, budgetKey(b, hourPrefix+b.Hour.UTC().Format(hourLayout)), b.MaxPerHour, b.Hour.Add(BudgetRetention))
	if err == nil && ok {
		return nil
	}
	if sweep {
		if giveErr := l.giveSlot(ctx, budgetKey(b, sweepPrefix+b.SweepID)); giveErr != nil {
			err = errors.Join(err, giveErr)
		}
	}
	if err != nil {
		return err
	}
	return &BudgetSpentError{Kind: policy.BudgetHour}
}

// BudgetUsed returns how many slots of the hour's and the sweep's budget are taken (the
// sweep's is 0 without a sweep id).
func (l *Ledger) BudgetUsed(ctx context.Context, b Budget) (hour, sweep int, err error) {
	if err := l.check(); err != nil {
		return 0, 0, err
	}
	if err := b.valid(); err != nil {
		return 0, 0, err
	}
	read := func(sk string) (int, error) {
		item, err := l.get(ctx, budgetKey(b, sk))
		if err != nil || item == nil {
			return 0, err
		}
		n, ok := item[attrUsed].(*types.AttributeValueMemberN)
		if !ok {
			return 0, fmt.Errorf("budget item %s has no number %s", sk, attrUsed)
		}
		used, err := strconv.Atoi(n.Value)
		if err != nil {
			return 0, fmt.Errorf("budget item %s: %s = %q: %w", sk, attrUsed, n.Value, err)
		}
		return used, nil
	}
	if hour, err = read(hourPrefix + b.Hour.UTC().Format(hourLayout)); err != nil {
		return 0, 0, fmt.Errorf("ledger: budget of %s/%s in table %s: %w", b.AccountID, b.Region, l.Table, err)
	}
	if b.SweepID != "" {
		if sweep, err = read(sweepPrefix + b.SweepID); err != nil {
			return 0, 0, fmt.Errorf("ledger: budget of %s/%s in table %s: %w", b.AccountID, b.Region, l.Table, err)
		}
	}
	return hour, sweep, nil
}

// takeSlot adds one to the counter if it is below limit; false when it is not.
func (l *Ledger) takeSlot(ctx context.Context, key map[string]types.AttributeValue, limit int, expires time.Time) (bool, error) {
	_, err := l.API.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(l.Table),
		Key:                 key,
		UpdateExpression:    aws.String("ADD #used :one SET #type = :type, #ttl = if_not_exists(#ttl, :ttl)"),
		ConditionExpression: aws.String("attribute_not_exists(#used) OR #used < :limit"),
		ExpressionAttributeNames: map[string]string{
			"#used": attrUsed, "#type": "type", "#ttl": TTLAttribute,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":one":   num(1),
			":limit": num(int64(limit)),
			":type":  str(typeBudget),
			":ttl":   num(expires.Unix()),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ccf):
		return false, nil
	}
	return false, fmt.Errorf("ledger: taking an enforcement slot (%s) in table %s: %w", skOf(key), l.Table, err)
}

// giveSlot gives back a slot takeSlot took.
func (l *Ledger) giveSlot(ctx context.Context, key map[string]types.AttributeValue) error {
	_, err := l.API.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.Table),
		Key:                       key,
		UpdateExpression:          aws.String("ADD #used :minus"),
		ConditionExpression:       aws.String("#used > :zero"),
		ExpressionAttributeNames:  map[string]string{"#used": attrUsed},
		ExpressionAttributeValues: map[string]types.AttributeValue{":minus": num(-1), ":zero": num(0)},
	})
	if err != nil {
		return fmt.Errorf("ledger: giving back an enforcement slot (%s) in table %s: %w", skOf(key), l.Table, err)
	}
	return nil
}

// valid checks the parts of the budget's keys: a sort key made of a bad sweep id could
// count against another budget.
func (b Budget) valid() error {
	if err := validScope(b.AccountID, b.Region); err != nil {
		return fmt.Errorf("budget: %w", err)
	}
	switch {
	case b.Hour.IsZero() || !b.Hour.Equal(b.Hour.Truncate(time.Hour)):
		return fmt.Errorf("ledger: budget of %s/%s: %s is not the start of a clock hour", b.AccountID, b.Region, b.Hour)
	case strings.ContainsAny(b.SweepID, "#\x00") || len(b.SweepID) > 128:
		return fmt.Errorf("ledger: budget of %s/%s: sweep id %q has '#' or is longer than 128", b.AccountID, b.Region, b.SweepID)
	}
	return nil
}

func budgetKey(b Budget, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(budgetPrefix + b.AccountID + "#" + b.Region), attrSK: str(sk)}
}

func skOf(key map[string]types.AttributeValue) string {
	if s, ok := key[attrSK].(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return "?"
}

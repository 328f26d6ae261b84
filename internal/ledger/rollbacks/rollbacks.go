// Package rollbacks lists an account-region's latest rollbacks, from the ledger table's
// rollout partition, for rule 5b, and which of its enforced instances are being verified
// or were verified, which the verdicts on sources need (DESIGN.md section 10). It is apart
// from package ledger so that detect, which only reads these lists, needs (and is
// granted) nothing but dynamodb:Query.
package rollbacks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// The keys of the rollout partition (see package ledger).
const (
	// PartitionPrefix, the account id, "#" and the region make the partition key of an
	// account-region's rollout items.
	PartitionPrefix = "ROLLOUT#"
	// SortPrefix and the instance id make the sort key of its latest rollback.
	SortPrefix = "ROLLBACK#"
	// VerifiedPrefix and the instance id make the sort key of its latest verified
	// enforcement, in the same partition.
	VerifiedPrefix = "VERIFIED#"
	// WatchPrefix, the account id, "#" and the region make the partition key of the
	// enforcements being verified; the sort key is the instance id.
	WatchPrefix = "WATCH#"
)

// PartitionKey is the pk of an account-region's rollout items.
func PartitionKey(account, region string) string { return PartitionPrefix + account + "#" + region }

// QueryAPI is the part of the DynamoDB client the list needs.
type QueryAPI interface {
	Query(ctx context.Context, params *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Index reads the rollbacks of the ledger table.
type Index struct {
	API   QueryAPI
	Table string
}

// Rollbacks returns the latest rollback of each instance of the account-region that has
// one, by instance id.
func (x *Index) Rollbacks(ctx context.Context, account, region string) (map[string]policy.Rollback, error) {
	pages := dynamodb.NewQueryPaginator(x.API, &dynamodb.QueryInput{
		TableName:              aws.String(x.Table),
		KeyConditionExpression: aws.String("#pk = :pk AND begins_with(#sk, :prefix)"),
		ExpressionAttributeNames: map[string]string{
			"#pk": "pk", "#sk": "sk", "#at": "at", "#why": "why",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk":     &types.AttributeValueMemberS{Value: PartitionKey(account, region)},
			":prefix": &types.AttributeValueMemberS{Value: SortPrefix},
		},
		ProjectionExpression: aws.String("#sk, #at, #why"),
		ConsistentRead:       aws.Bool(true),
	})
	out := map[string]policy.Rollback{}
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("dynamodb:Query rollbacks of %s/%s in table %s: %w", account, region, x.Table, err)
		}
		for _, item := range page.Items {
			sk, ok1 := item["sk"].(*types.AttributeValueMemberS)
			at, ok2 := item["at"].(*types.AttributeValueMemberS)
			why, _ := item["why"].(*types.AttributeValueMemberS)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("rollbacks of %s/%s in table %s: an item without its sk or at", account, region, x.Table)
			}
			t, err := time.Parse(time.RFC3339Nano, at.Value)
			if err != nil {
				return nil, fmt.Errorf("rollbacks of %s/%s in table %s: %s: at %q: %w", account, region, x.Table, sk.Value, at.Value, err)
			}
			rb := policy.Rollback{At: t.UTC()}
			if why != nil {
				rb.Why = why.Value
			}
			out[strings.TrimPrefix(sk.Value, SortPrefix)] = rb
		}
	}
	return out, nil
}

// Enforcements returns the instances of the account-region that imdsguard enforced and
// is verifying now, and those whose latest enforcement was verified: two Queries.
func (x *Index) Enforcements(ctx context.Context, account, region string) (verifying, verified map[string]bool, err error) {
	verifying, err = x.sortKeys(ctx, WatchPrefix+account+"#"+region, "", "watches of "+account+"/"+region)
	if err != nil {
		return nil, nil, err
	}
	verified, err = x.sortKeys(ctx, PartitionKey(account, region), VerifiedPrefix, "verified enforcements of "+account+"/"+region)
	if err != nil {
		return nil, nil, err
	}
	return verifying, verified, nil
}

// sortKeys returns the sort keys, less prefix, of a partition's items that begin with it.
func (x *Index) sortKeys(ctx context.Context, pk, prefix, what string) (map[string]bool, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(x.Table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": "pk", "#sk": "sk"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: pk}},
		ProjectionExpression:      aws.String("#sk"),
		ConsistentRead:            aws.Bool(true),
	}
	if prefix != "" {
		in.KeyConditionExpression = aws.String("#pk = :pk AND begins_with(#sk, :prefix)")
		in.ExpressionAttributeValues[":prefix"] = &types.AttributeValueMemberS{Value: prefix}
	}
	out := map[string]bool{}
	pages := dynamodb.NewQueryPaginator(x.API, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("dynamodb:Query %s in table %s: %w", what, x.Table, err)
		}
		for _, item := range page.Items {
			sk, ok := item["sk"].(*types.AttributeValueMemberS)
			if !ok {
				return nil, fmt.Errorf("%s in table %s: an item without its sk", what, x.Table)
			}
			out[strings.TrimPrefix(sk.Value, prefix)] = true
		}
	}
	return out, nil
}

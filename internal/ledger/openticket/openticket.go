// Package openticket lists the instances whose ticket is open, from the ledger table's
// open-ticket partition. It is apart from package ledger so that detect, which only reads
// this list, needs (and is granted) nothing but dynamodb:Query.
package openticket

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// QueryAPI is the part of the DynamoDB client the list needs.
type QueryAPI interface {
	Query(ctx context.Context, params *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// PartitionKey is the pk of an account-region's open-ticket items; their sk is the
// instance id.
func PartitionKey(account, region string) string { return "OPENTICKETS#" + account + "#" + region }

// Index reads the open-ticket list of the ledger table.
type Index struct {
	API   QueryAPI
	Table string
}

// OpenTickets returns the ids of the instances of an account-region with an open ticket.
func (x *Index) OpenTickets(ctx context.Context, account, region string) ([]string, error) {
	pages := dynamodb.NewQueryPaginator(x.API, &dynamodb.QueryInput{
		TableName:                 aws.String(x.Table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": "pk"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: PartitionKey(account, region)}},
		ProjectionExpression:      aws.String("sk"),
	})
	var out []string
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("dynamodb:Query open tickets of %s/%s in table %s: %w", account, region, x.Table, err)
		}
		for _, item := range page.Items {
			sk, ok := item["sk"].(*types.AttributeValueMemberS)
			if !ok {
				return nil, fmt.Errorf("open tickets of %s/%s in table %s: an item without a string sk", account, region, x.Table)
			}
			out = append(out, sk.Value)
		}
	}
	return out, nil
}

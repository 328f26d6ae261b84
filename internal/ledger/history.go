package ledger

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

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

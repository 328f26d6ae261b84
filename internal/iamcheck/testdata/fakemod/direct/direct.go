// Package direct calls clients directly.
package direct

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Calls is found as: sqs:SendMessageBatch (IAM sqs:SendMessage), sns:Publish,
// sts:GetCallerIdentity (no permission), dynamodb:TransactWriteItems with a Put and a
// ConditionCheck item (IAM dynamodb:PutItem, dynamodb:ConditionCheckItem),
// cloudwatch:GetMetricData through a paginator, ec2:DescribeInstances through a waiter,
// sts:AssumeRole through the assume-role credentials provider.
func Calls(ctx context.Context, q *sqs.Client, t *sns.Client, s *sts.Client, d *dynamodb.Client, cw *cloudwatch.Client, e *ec2.Client) {
	_, _ = q.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{})
	_, _ = t.Publish(ctx, &sns.PublishInput{})
	_, _ = s.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	_, _ = d.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []ddb.TransactWriteItem{
			{Put: &ddb.Put{}},
			{ConditionCheck: &ddb.ConditionCheck{}},
		},
	})
	_ = cloudwatch.NewGetMetricDataPaginator(cw, nil)
	_ = ec2.NewInstanceRunningWaiter(e)
	_ = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(s, "arn:aws:iam::111111111111:role/r"))
}

package demo

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Resources are what template.yaml creates around the functions, made in an emulator:
// the remediation queue with its DLQ (redrive after 5 receives), the ledger table, the
// notifications topic, and an inbox queue subscribed to the topic so tickets can be read.
type Resources struct {
	QueueURL, QueueARN string
	DLQURL             string
	Table              string
	TopicARN           string
	InboxURL           string
}

// ResourceClients are the clients Resources are made with.
type ResourceClients struct {
	SQS      *sqs.Client
	DynamoDB *dynamodb.Client
	SNS      *sns.Client
}

// CreateResources makes the resources.
func CreateResources(ctx context.Context, c ResourceClients) (Resources, error) {
	var r Resources
	var err error
	var dlqARN, inboxARN string
	if r.DLQURL, dlqARN, err = createQueue(ctx, c.SQS, "imdsguard-remediation-dlq", nil); err != nil {
		return r, err
	}
	if r.QueueURL, r.QueueARN, err = createQueue(ctx, c.SQS, "imdsguard-remediation", map[string]string{
		"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":"%s","maxReceiveCount":"5"}`, dlqARN),
	}); err != nil {
		return r, err
	}
	r.Table = "imdsguard-ledger"
	if _, err := c.DynamoDB.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(r.Table),
		BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: ddbtypes.ScalarAttributeTypeS},
		},
		KeySchema: []ddbtypes.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: ddbtypes.KeyTypeRange},
		},
	}); err != nil {
		return r, fmt.Errorf("creating the ledger table: %w", err)
	}
	topic, err := c.SNS.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("imdsguard-notifications")})
	if err != nil {
		return r, fmt.Errorf("creating the notifications topic: %w", err)
	}
	r.TopicARN = aws.ToString(topic.TopicArn)
	if r.InboxURL, inboxARN, err = createQueue(ctx, c.SQS, "imdsguard-ticket-inbox", nil); err != nil {
		return r, err
	}
	if _, err := c.SNS.Subscribe(ctx, &sns.SubscribeInput{
		TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(inboxARN),
	}); err != nil {
		return r, fmt.Errorf("subscribing the inbox to the topic: %w", err)
	}
	return r, nil
}

func createQueue(ctx context.Context, c *sqs.Client, name string, attrs map[string]string) (url, arn string, err error) {
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		return "", "", fmt.Errorf("creating queue %s: %w", name, err)
	}
	got, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", "", fmt.Errorf("reading queue %s: %w", name, err)
	}
	return aws.ToString(out.QueueUrl), got.Attributes[string(sqstypes.QueueAttributeNameQueueArn)], nil
}

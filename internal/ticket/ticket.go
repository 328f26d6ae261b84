// Package ticket tells an instance's owners that IMDSv1 is still in use, with the
// evidence, so they can fix their software before enforcement. Backends sit behind one
// interface.
package ticket

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
)

// SNSAPI is the part of the SNS client the SNS backend uses.
type SNSAPI interface {
	Publish(ctx context.Context, in *sns.PublishInput, optFns ...func(*sns.Options)) (*sns.PublishOutput, error)
}

// SNS publishes tickets as readable messages to a topic, for e-mail or chat
// subscriptions. SNS keeps no tickets, so the reference is the instance's dedup key and
// the ledger alone knows which instances have an open one.
type SNS struct {
	API      SNSAPI
	TopicARN string
}

// Name implements Backend.
func (s *SNS) Name() string { return "sns" }

// Open publishes the ticket.
func (s *SNS) Open(ctx context.Context, t Ticket) (string, error) {
	if err := s.publish(ctx, t.Verdict.InstanceID, "open", t.Content.Title, t.Content.PlainText()); err != nil {
		return "", err
	}
	return t.DedupKey(), nil
}

// Update publishes the ticket again, marked as new evidence.
func (s *SNS) Update(ctx context.Context, _ string, t Ticket) error {
	return s.publish(ctx, t.Verdict.InstanceID, "update", "New evidence: "+t.Content.Title,
		"New evidence for an open imdsguard ticket.\n\n"+t.Content.PlainText())
}

// Resolve publishes the closing note.
func (s *SNS) Resolve(ctx context.Context, _ string, c Closing) error {
	return s.publish(ctx, c.InstanceID, "resolve", c.Title(), c.Text())
}

func (s *SNS) publish(ctx context.Context, instanceID, event, title, body string) error {
	_, err := s.API.Publish(ctx, &sns.PublishInput{
		TopicArn: aws.String(s.TopicARN),
		Subject:  aws.String(subject(title)),
		Message:  aws.String(body),
		MessageAttributes: map[string]snstypes.MessageAttributeValue{
			"instance_id": {DataType: aws.String("String"), StringValue: aws.String(instanceID)},
			"event":       {DataType: aws.String("String"), StringValue: aws.String(event)},
		},
	})
	if err != nil {
		return fmt.Errorf("sns:Publish (%s) for %s to %s: %w", event, instanceID, s.TopicARN, err)
	}
	return nil
}

// subject fits SNS's limit of 100 characters, printable ASCII with no newline.
func subject(title string) string {
	b := []byte(title)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	if len(b) > 100 {
		return string(b[:97]) + "..."
	}
	return string(b)
}

package ticket

import (
	"context"
	"fmt"
	"strings"
	"unicode"

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

// snsMaxSubject is the longest SNS subject: the API wants fewer than 100 characters.
const snsMaxSubject = 99

// subject is a valid SNS Subject for any title. SNS documents it as ASCII text that
// begins with a letter, number or punctuation mark, without line breaks or control
// characters, fewer than 100 characters long (newer documentation allows UTF-8; ASCII
// satisfies both): white space becomes one space, any other character outside
// printable ASCII a "?", leading characters that are neither letters, digits nor
// punctuation go, and a long subject is cut with "...".
func subject(title string) string {
	var b strings.Builder
	space := false
	for _, r := range safeLine(title) {
		switch {
		case r == ' ':
			space = b.Len() > 0
			continue
		case r < ' ' || r > '~':
			r = '?'
		case b.Len() == 0 && !(unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsPunct(r)):
			continue // "$", "+", "<", "=", ">", "^", "`", "|" and "~" are symbols, not punctuation
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	s := b.String()
	if len(s) > snsMaxSubject {
		s = strings.TrimRight(s[:snsMaxSubject-len("...")], " ") + "..."
	}
	if s == "" {
		return fallbackTitle
	}
	return s
}

// Package decisionlog records detect's decisions in the ledger table before their
// messages are queued, so that remediate acts only on a message detect sent: the
// message body's digest is recorded, and package ledger's Claim succeeds only for the
// same digest (DESIGN.md section 7). It is apart from package ledger so that detect,
// which only adds decisions, needs (and is granted) nothing but dynamodb:PutItem on
// DECISION# items.
package decisionlog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// TransactAPI is the part of the DynamoDB client the log needs.
type TransactAPI interface {
	TransactWriteItems(ctx context.Context, params *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Item layout shared with package ledger, which claims and completes the decisions.
const (
	// PartitionPrefix starts the pk of a decision item: DECISION#<decision id>.
	PartitionPrefix = "DECISION#"
	// SortKey is the sk of every decision item.
	SortKey = "DECISION"
	// TypeDecision is the item's type attribute.
	TypeDecision = "decision"
	// StatusRecorded is a decision detect recorded and remediate has not claimed yet.
	StatusRecorded = "recorded"
	// TTLAttribute holds the item's expiry, in Unix seconds.
	TTLAttribute = "expires_at"
	// Retention is how long a decision item is kept after its last write, far longer
	// than SQS can hold or redeliver a message (14 days at most).
	Retention = 90 * 24 * time.Hour
	// TimeLayout is RFC 3339 with a fixed nine-digit fraction, in UTC, so that lexical
	// order is time order.
	TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"
)

// PartitionKey is the pk of a decision's item.
func PartitionKey(decisionID string) string { return PartitionPrefix + decisionID }

// Decision is what detect records about a verdict before it queues the message: the
// instance and action it is about and the digest of the message body.
type Decision struct {
	AccountID, Region, InstanceID string
	DecisionID                    string
	Action                        policy.Action
	CreatedAt                     time.Time
	// Digest is the message body's SHA-256, in hex (see Digest).
	Digest string
}

// Digest is the SHA-256 of a message body, in hex: what detect records and remediate
// compares. It covers the body byte for byte, so any change to a message shows.
func Digest(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// Log writes decisions to the ledger table.
type Log struct {
	API   TransactAPI
	Table string
}

// Item is the decision item as detect writes it (package ledger reads it with what the
// claims and the outcome add). claim_until is 0 so that the first claim's condition
// (claim_until <= now) holds.
type Item struct {
	PK         string `dynamodbav:"pk"`
	SK         string `dynamodbav:"sk"`
	Type       string `dynamodbav:"type"`
	DecisionID string `dynamodbav:"decision_id"`
	AccountID  string `dynamodbav:"account_id"`
	Region     string `dynamodbav:"region"`
	InstanceID string `dynamodbav:"instance_id"`
	Status     string `dynamodbav:"status"`
	Action     string `dynamodbav:"action"`
	CreatedAt  string `dynamodbav:"created_at"`
	Digest     string `dynamodbav:"digest"`
	ClaimUntil int64  `dynamodbav:"claim_until"`
	ExpiresAt  int64  `dynamodbav:"expires_at"`
}

// maxTransactItems is TransactWriteItems' limit on items per call.
const maxTransactItems = 100

// RecordDecisions writes the decisions, up to 100 in one TransactWriteItems call, each
// on condition that no item with its id exists: a recorded decision is never rewritten,
// so its digest stays the message's content as detect made it. Either every decision of
// a call is recorded or none is.
func (l *Log) RecordDecisions(ctx context.Context, decisions []Decision) error {
	if l == nil || l.API == nil || l.Table == "" {
		return errors.New("decision log: no DynamoDB client or table name")
	}
	for _, d := range decisions {
		if err := d.valid(); err != nil {
			return fmt.Errorf("decision log: %w", err)
		}
	}
	for chunk := range slices.Chunk(decisions, maxTransactItems) {
		items := make([]types.TransactWriteItem, len(chunk))
		for i, d := range chunk {
			av, err := attributevalue.MarshalMap(Item{
				PK: PartitionKey(d.DecisionID), SK: SortKey, Type: TypeDecision, DecisionID: d.DecisionID,
				AccountID: d.AccountID, Region: d.Region, InstanceID: d.InstanceID, Status: StatusRecorded,
				Action: string(d.Action), CreatedAt: d.CreatedAt.UTC().Format(TimeLayout), Digest: d.Digest,
				ExpiresAt: d.CreatedAt.Add(Retention).Unix(),
			})
			if err != nil {
				return fmt.Errorf("decision log: encoding decision %s: %w", d.DecisionID, err)
			}
			items[i] = types.TransactWriteItem{Put: &types.Put{
				TableName:                aws.String(l.Table),
				Item:                     av,
				ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
				ExpressionAttributeNames: map[string]string{"#pk": "pk"},
			}}
		}
		in := &dynamodb.TransactWriteItemsInput{
			// An SDK retry of a transaction that did succeed is then a success too.
			ClientRequestToken: aws.String(requestToken(l.Table, chunk[0].DecisionID, chunk[len(chunk)-1].DecisionID)),
			TransactItems:      items,
		}
		if _, err := l.API.TransactWriteItems(ctx, in); err != nil {
			return fmt.Errorf("decision log: recording %d decisions from %s in table %s: %w", len(chunk), chunk[0].DecisionID, l.Table, err)
		}
	}
	return nil
}

var digestPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (d Decision) valid() error {
	if d.DecisionID == "" || strings.Contains(d.DecisionID, "#") {
		return fmt.Errorf("decision id %q is empty or contains '#'", d.DecisionID)
	}
	for _, f := range []struct{ name, v string }{{"account id", d.AccountID}, {"region", d.Region}, {"instance id", d.InstanceID}} {
		if f.v == "" || strings.Contains(f.v, "#") {
			return fmt.Errorf("decision %s: %s %q is empty or contains '#'", d.DecisionID, f.name, f.v)
		}
	}
	if d.CreatedAt.IsZero() {
		return fmt.Errorf("decision %s: created at the zero time", d.DecisionID)
	}
	if d.Action == "" {
		return fmt.Errorf("decision %s: action is empty", d.DecisionID)
	}
	if !digestPattern.MatchString(d.Digest) {
		return fmt.Errorf("decision %s: digest %q is not a hex SHA-256", d.DecisionID, d.Digest)
	}
	return nil
}

// requestToken is a ClientRequestToken (1 to 36 characters) made of the parts.
func requestToken(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

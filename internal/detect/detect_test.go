package detect_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"golang.org/x/time/rate"

	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/detect"
	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport"
)

func TestMain(m *testing.M) { os.Exit(testsupport.RunWithMoto(m)) }

// TestLookupsStopInTimeToQueue: a sweep with more CloudTrail lookups than the
// invocation's time allows defers the instances it could not look up, and still queues
// every verdict before the deadline.
func TestLookupsStopInTimeToQueue(t *testing.T) {
	moto := testsupport.Moto(t)
	ct := fakeaws.NewCloudTrail()
	t.Cleanup(ct.Close)
	cfg := fakeaws.AWSConfig(demo.Region)
	cfg.BaseEndpoint = aws.String(moto.URL)
	now := time.Now().UTC()
	// The invocation has an hour; lookups are granted one per half hour. Without a
	// reserve the second lookup would wait half an hour inside the invocation.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	sqsClient := sqs.NewFromConfig(cfg)
	db := dynamodb.NewFromConfig(cfg)
	res, err := demo.CreateResources(ctx, demo.ResourceClients{SQS: sqsClient, DynamoDB: db, SNS: sns.NewFromConfig(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := demo.Seed(ctx, demo.Clients{EC2: ec2.NewFromConfig(cfg), CloudWatch: cloudwatch.NewFromConfig(cfg), CloudTrail: ct},
		demo.KindsNamed(now, "web"), 3, now)
	if err != nil {
		t.Fatal(err)
	}
	h := &detect.Handler{
		Settings: policy.DefaultSettings(), RuleMatch: "ec2-imdsv2-check", Region: demo.Region,
		Clients: guard.Clients{
			EC2: ec2.NewFromConfig(cfg), CloudWatch: cloudwatch.NewFromConfig(cfg),
			CloudTrail:    cloudtrail.NewFromConfig(cfg, func(o *cloudtrail.Options) { o.BaseEndpoint = aws.String(ct.URL) }),
			LookupLimiter: rate.NewLimiter(rate.Every(30*time.Minute), 1),
		},
		Queue: sqsClient, QueueURL: res.QueueURL, QueueingReserve: 59 * time.Minute,
		Decisions: &decisionlog.Log{API: db, Table: res.Table},
		Now:       func() time.Time { return now }, Log: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Metrics: &emf.Emitter{W: io.Discard, Now: time.Now},
	}
	sum, err := h.Handle(ctx, "123456789012", json.RawMessage(`{"sweep": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Verdicts["remediate"] != 1 || sum.Verdicts["defer"] != 2 || sum.Sent != 3 {
		t.Fatalf("summary %+v, want 1 remediate and 2 deferred, all queued", sum)
	}
	batch, err := demo.Receive(ctx, sqsClient, res.QueueURL, res.QueueARN, 10)
	if err != nil {
		t.Fatal(err)
	}
	deferred := 0
	for _, r := range batch.Records {
		v, err := message.Parse(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		// Every queued message was recorded, with its body's digest, for remediate to check.
		item, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(res.Table), ConsistentRead: aws.Bool(true),
			Key: map[string]dbtypes.AttributeValue{
				"pk": &dbtypes.AttributeValueMemberS{Value: decisionlog.PartitionKey(v.DecisionID)},
				"sk": &dbtypes.AttributeValueMemberS{Value: decisionlog.SortKey},
			}})
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := item.Item["digest"].(*dbtypes.AttributeValueMemberS); !ok || d.Value != decisionlog.Digest([]byte(r.Body)) {
			t.Errorf("decision %s: recorded item %v, want the digest of the queued body", v.DecisionID, item.Item)
		}
		if v.Action == policy.ActionDefer {
			deferred++
			if v.Reasons[0].Code != policy.ReasonCloudTrailUnavailable || !strings.Contains(v.Reasons[0].Detail, "deadline") {
				t.Errorf("deferred for %+v, want cloudtrail-unavailable naming the deadline", v.Reasons[0])
			}
		}
	}
	if deferred != 2 || len(fleet) != 3 {
		t.Errorf("%d deferred verdicts on the queue, want 2", deferred)
	}
}

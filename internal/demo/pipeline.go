package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/imdsguard/imdsguard/internal/detect"
	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/remediate"
	"github.com/imdsguard/imdsguard/internal/ticket"
	"github.com/imdsguard/imdsguard/internal/wiring"
)

// RunPipeline runs what `sam deploy` installs, in process and against the emulators:
// a scheduled sweep reaches detect, its verdicts go through the remediation queue to
// remediate in enforce mode, and the outcomes are read back from the ledger.
func (e *Emulators) RunPipeline(ctx context.Context, now time.Time, out io.Writer) error {
	cfg := fakeaws.AWSConfig(Region)
	cfg.BaseEndpoint = aws.String(e.Moto.URL)
	// moto would apply a dry run; the proxy answers as EC2 does.
	dryRun, err := fakeaws.NewEC2DryRun(e.Moto.URL)
	if err != nil {
		return err
	}
	defer dryRun.Close()
	awsClients := wiring.New(cfg, wiring.Options{
		LookupsPerSecond: 50,
		Endpoints:        wiring.Endpoints{EC2: dryRun.URL, CloudTrail: e.CloudTrail.URL},
	})
	ec2Client := awsClients.EC2()
	sqsClient := wiring.Client(awsClients, sqs.ServiceID, sqs.NewFromConfig)
	snsClient := wiring.Client(awsClients, sns.ServiceID, sns.NewFromConfig)
	db := wiring.Client(awsClients, dynamodb.ServiceID, dynamodb.NewFromConfig)
	res, err := CreateResources(ctx, ResourceClients{SQS: sqsClient, DynamoDB: db, SNS: snsClient})
	if err != nil {
		return err
	}
	clients := awsClients.Guard()
	settings := policy.DefaultSettings()
	settings.Mode = policy.ModeEnforce
	quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))
	metrics := &emf.Emitter{W: io.Discard, Now: time.Now}
	clock := func() time.Time { return now }

	book := &ledger.Ledger{API: db, Table: res.Table}
	detector := &detect.Handler{
		Settings: settings, RuleMatch: "ec2-imdsv2-check", Region: Region, Clients: clients,
		Queue: sqsClient, QueueURL: res.QueueURL, Decisions: &decisionlog.Log{API: db, Table: res.Table}, Now: clock, Log: quiet, Metrics: metrics,
	}
	sum, err := detector.Handle(ctx, accountID, []byte(`{"sweep": {}}`))
	if err != nil {
		return fmt.Errorf("detect: %w", err)
	}
	fmt.Fprintf(out, "detect (scheduled sweep): %d instances judged, %d verdicts queued\n", sum.Instances, sum.Sent)

	remediator := &remediate.Handler{
		Settings: settings, Limits: policy.RecheckLimits{MaxAge: time.Hour, MaxClockSkew: time.Minute},
		ClaimTTL: 15 * time.Minute, Region: Region, Clients: clients,
		Enforcer: &enforce.Enforcer{EC2: ec2Client, MaxWait: 30 * time.Second, FirstDelay: 50 * time.Millisecond, MaxDelay: time.Second},
		Ledger:   book,
		Tickets:  &ticket.SNS{API: snsClient, TopicARN: res.TopicARN},
		Now:      clock, Log: quiet, Metrics: metrics,
	}
	handled := 0
	for {
		batch, err := Receive(ctx, sqsClient, res.QueueURL, res.QueueARN, 10)
		if err != nil {
			return err
		}
		if len(batch.Records) == 0 {
			break
		}
		resp, err := remediator.Handle(ctx, accountID, batch)
		if err != nil {
			return fmt.Errorf("remediate: %w", err)
		}
		if len(resp.BatchItemFailures) > 0 {
			return fmt.Errorf("remediate failed %d of %d messages", len(resp.BatchItemFailures), len(batch.Records))
		}
		handled += len(batch.Records)
	}
	fmt.Fprintf(out, "remediate (enforce mode): %d verdicts handled\n\n", handled)
	return e.printOutcomes(ctx, out, book, sqsClient, res.InboxURL)
}

func (e *Emulators) printOutcomes(ctx context.Context, out io.Writer, l *ledger.Ledger, sqsClient *sqs.Client, inboxURL string) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tNAME\tACTION\tRESULT\tNOW")
	counts := map[string]int{}
	fleet := slices.Clone(e.Fleet)
	slices.SortFunc(fleet, func(a, b Seeded) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range fleet {
		hist, err := l.History(ctx, ledger.Ref{AccountID: accountID, Region: Region, InstanceID: s.ID})
		if err != nil {
			return err
		}
		if len(hist) == 0 {
			continue // skipped by detect: nothing to record
		}
		last := hist[len(hist)-1]
		counts[last.Result]++
		now := "-"
		if last.Applied != nil {
			now = fmt.Sprintf("%s, hop %d", last.Applied.HTTPTokens, last.Applied.HopLimit)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Name, last.Action, last.Result, now)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	tickets, err := sqsClient.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(inboxURL), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages},
	})
	if err != nil {
		return fmt.Errorf("reading the ticket inbox: %w", err)
	}
	results := slices.Sorted(maps.Keys(counts))
	fmt.Fprint(out, "\nledger:")
	for _, r := range results {
		fmt.Fprintf(out, " %d %s", counts[r], r)
	}
	fmt.Fprintf(out, "; tickets on the notifications topic: %s\n",
		tickets.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	return nil
}

// Receive takes up to max messages from the queue, deletes them, and shapes them into
// the event the Lambda SQS event source delivers.
func Receive(ctx context.Context, c *sqs.Client, url, arn string, max int32) (events.SQSEvent, error) {
	var ev events.SQSEvent
	got, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(url), MaxNumberOfMessages: max,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
	})
	if err != nil {
		return ev, fmt.Errorf("receiving from %s: %w", url, err)
	}
	for _, m := range got.Messages {
		ev.Records = append(ev.Records, events.SQSMessage{
			MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
			Attributes: m.Attributes, Md5OfBody: aws.ToString(m.MD5OfBody),
			EventSource: "aws:sqs", EventSourceARN: arn, AWSRegion: Region,
		})
		if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
			return ev, fmt.Errorf("deleting from %s: %w", url, err)
		}
	}
	return ev, nil
}

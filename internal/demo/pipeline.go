package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/imdsguard/imdsguard/internal/detect"
	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/lambdaenv"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/ledger/rollbacks"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/remediate"
	"github.com/imdsguard/imdsguard/internal/sourcefix"
	"github.com/imdsguard/imdsguard/internal/sources"
	"github.com/imdsguard/imdsguard/internal/ticket"
	"github.com/imdsguard/imdsguard/internal/verdictqueue"
	"github.com/imdsguard/imdsguard/internal/wiring"
)

// RunPipeline runs what `sam deploy` installs, in process and against the emulators:
// a scheduled sweep reaches detect, its verdicts go through the remediation queue to
// remediate in enforce mode, and the outcomes are read back from the ledger and the
// tickets from the notifications topic, into result.
func (e *Emulators) RunPipeline(ctx context.Context, now time.Time, result *Pipeline) error {
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
		Queue: sqsClient, QueueURL: res.QueueURL, Decisions: &decisionlog.Log{API: db, Table: res.Table},
		Rollbacks: &rollbacks.Index{API: db, Table: res.Table}, Now: clock, Log: quiet, Metrics: metrics,
		Sources: &detect.Sources{EC2: ec2Client, AutoScaling: wiring.Client(awsClients, autoscaling.ServiceID, autoscaling.NewFromConfig),
			Enforcements: &rollbacks.Index{API: db, Table: res.Table}},
		Waves: lambdaenv.DefaultRollout().Waves,
	}
	sum, err := detector.Handle(ctx, accountID, []byte(`{"sweep": {}}`))
	if err != nil {
		return fmt.Errorf("detect: %w", err)
	}
	result.Judged, result.Queued = sum.Instances, sum.Sent

	enforcer := &enforce.Enforcer{EC2: ec2Client, MaxWait: 30 * time.Second, FirstDelay: 50 * time.Millisecond, MaxDelay: time.Second}
	remediator := &remediate.Handler{
		Settings: settings, Limits: policy.RecheckLimits{MaxAge: time.Hour, MaxClockSkew: time.Minute},
		ClaimTTL: 15 * time.Minute, Region: Region, Clients: clients,
		Enforcer: enforcer,
		Ledger:   book,
		Sources:  &sourcefix.Fixer{EC2: ec2Client}, SourceLedger: book,
		Tickets: &ticket.SNS{API: snsClient, TopicARN: res.TopicARN},
		Rollout: lambdaenv.DefaultRollout(),
		Now:     clock, Log: quiet, Metrics: metrics,
	}
	drain := func() (int, error) {
		handled := 0
		for {
			batch, err := Receive(ctx, sqsClient, res.QueueURL, res.QueueARN, 10)
			if err != nil {
				return handled, err
			}
			if len(batch.Records) == 0 {
				return handled, nil
			}
			resp, err := remediator.Handle(ctx, accountID, batch)
			if err != nil {
				return handled, fmt.Errorf("remediate: %w", err)
			}
			if len(resp.BatchItemFailures) > 0 {
				return handled, fmt.Errorf("remediate failed %d of %d messages", len(resp.BatchItemFailures), len(batch.Records))
			}
			handled += len(batch.Records)
		}
	}
	if result.Handled, err = drain(); err != nil {
		return err
	}
	if err := e.readOutcomes(ctx, result, book, sqsClient, res.InboxURL); err != nil {
		return err
	}
	if result.Sources, err = readSourceOutcomes(ctx, ec2Client, book); err != nil {
		return err
	}
	// The safety net: verify watches the enforcements, and puts back the one that broke.
	sender := &verdictqueue.Sender{Queue: sqsClient, QueueURL: res.QueueURL, Decisions: &decisionlog.Log{API: db, Table: res.Table}}
	if result.SafetyNet, err = e.runSafetyNet(ctx, now, result, book, awsClients.CloudWatch(), enforcer, sender, Region); err != nil {
		return fmt.Errorf("the safety net: %w", err)
	}
	// The rollback's ticket goes through remediate like any verdict.
	_, err = drain()
	return err
}

// Pipeline is what the deployed pipeline did to the fleet.
type Pipeline struct {
	// Judged is the number of instances detect judged; Queued, the verdicts it sent to
	// the remediation queue (one per instance it did not skip).
	Judged, Queued int
	// Handled is the number of verdicts remediate took from the queue.
	Handled int
	// Outcomes has one entry per instance of the fleet, in the fleet's order.
	Outcomes []Outcome
	// Tickets are the messages on the notifications topic, in the order they were read.
	Tickets []Ticket
	// SafetyNet is what verify did after the enforcements; nil when nothing was enforced.
	SafetyNet *SafetyNet
	// Sources is what became of each launch template and of the account defaults, in
	// the order of their ids (the account defaults last).
	Sources []SourceOutcome
}

// SourceOutcome is what became of one source of instances.
type SourceOutcome struct {
	// Kind, ID and Name name it; DefaultVersion is a template's default version after
	// the pipeline ran.
	Kind           policy.SourceKind
	ID, Name       string
	DefaultVersion int64
	// Last is its latest outcome in the ledger; nil when detect queued nothing for it.
	Last *ledger.Outcome
}

// Outcome is what became of one instance of the fleet.
type Outcome struct {
	Seeded
	// Last is the latest outcome in the instance's ledger history; nil when there is
	// none, as for an instance detect skipped (it queues no verdict for it).
	Last *ledger.Outcome
}

// Ticket is one message of the notifications topic, as a subscriber receives it.
type Ticket struct {
	// InstanceID and Event ("open", "update", "resolve") are the message's attributes.
	InstanceID, Event string
	Subject, Body     string
}

// readOutcomes reads each instance's last outcome from the ledger, and every message
// the notifications topic delivered to its inbox queue.
func (e *Emulators) readOutcomes(ctx context.Context, p *Pipeline, l *ledger.Ledger, sqsClient *sqs.Client, inboxURL string) error {
	for _, s := range e.Fleet {
		hist, err := l.History(ctx, ledger.Ref{AccountID: accountID, Region: Region, InstanceID: s.ID})
		if err != nil {
			return err
		}
		o := Outcome{Seeded: s}
		if len(hist) > 0 {
			o.Last = &hist[len(hist)-1]
		}
		p.Outcomes = append(p.Outcomes, o)
	}
	for {
		batch, err := Receive(ctx, sqsClient, inboxURL, "", 10)
		if err != nil {
			return fmt.Errorf("reading the tickets: %w", err)
		}
		if len(batch.Records) == 0 {
			return nil
		}
		for _, m := range batch.Records {
			t, err := parseNotification(m.Body)
			if err != nil {
				return fmt.Errorf("reading the tickets: message %s: %w", m.MessageId, err)
			}
			p.Tickets = append(p.Tickets, t)
		}
	}
}

// readSourceOutcomes reads each launch template's default version and the last outcome
// of each source from the ledger.
func readSourceOutcomes(ctx context.Context, client *ec2.Client, l *ledger.Ledger) ([]SourceOutcome, error) {
	templates, err := sources.LaunchTemplates(ctx, client)
	if err != nil {
		return nil, err
	}
	out := make([]SourceOutcome, 0, len(templates)+1)
	for _, lt := range templates {
		out = append(out, SourceOutcome{Kind: policy.SourceLaunchTemplate, ID: lt.ID, Name: lt.Name, DefaultVersion: lt.DefaultVersion})
	}
	out = append(out, SourceOutcome{Kind: policy.SourceAccountDefaults, ID: accountID + "/" + Region})
	for i := range out {
		hist, err := l.History(ctx, ledger.Ref{AccountID: accountID, Region: Region, InstanceID: policy.SourceSubject(out[i].Kind, out[i].ID)})
		if err != nil {
			return nil, err
		}
		if len(hist) > 0 {
			out[i].Last = &hist[len(hist)-1]
		}
	}
	return out, nil
}

// parseNotification reads the envelope in which SNS delivers a message to an SQS
// subscriber (without raw message delivery).
func parseNotification(body string) (Ticket, error) {
	var n struct {
		Type, Subject, Message string
		MessageAttributes      map[string]struct{ Type, Value string }
	}
	if err := json.Unmarshal([]byte(body), &n); err != nil {
		return Ticket{}, fmt.Errorf("not an SNS notification: %w", err)
	}
	if n.Type != "Notification" {
		return Ticket{}, fmt.Errorf("SNS message of type %q, want Notification", n.Type)
	}
	return Ticket{
		InstanceID: n.MessageAttributes["instance_id"].Value, Event: n.MessageAttributes["event"].Value,
		Subject: n.Subject, Body: n.Message,
	}, nil
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

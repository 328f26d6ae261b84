// Command remediate is the remediate Lambda: verdicts from the queue in, enforcement,
// tickets and ledger records out.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/lambdaenv"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/remediate"
	"github.com/imdsguard/imdsguard/internal/ticket"
	"github.com/imdsguard/imdsguard/internal/ticket/jira"
)

// maxClockSkew is how far in the future a verdict's created_at may lie: detect and
// remediate run on NTP-synchronised Lambda hosts of the same region.
const maxClockSkew = time.Minute

func main() {
	log := lambdaenv.Logger()
	fail := func(msg string, err error) {
		log.Error(msg, "error", err.Error())
		os.Exit(1)
	}
	settings, err := lambdaenv.LoadRemediate(os.LookupEnv)
	if err != nil {
		fail("invalid settings", err)
	}
	table, err := lambdaenv.Required(os.LookupEnv, "IMDSGUARD_LEDGER_TABLE")
	if err != nil {
		fail("invalid settings", err)
	}
	topic, err := lambdaenv.Required(os.LookupEnv, "IMDSGUARD_TOPIC_ARN")
	if err != nil {
		fail("invalid settings", err)
	}
	claimTTL, err := lambdaenv.Duration(os.LookupEnv, "IMDSGUARD_CLAIM_TTL", 15*time.Minute)
	if err != nil {
		fail("invalid settings", err)
	}
	cfg, err := awsapi.Load(context.Background(), awsapi.Options{CallTimeout: settings.Guard.CallTimeout})
	if err != nil {
		fail("loading the AWS configuration", err)
	}
	tickets, err := ticketBackend(cfg, topic, settings.Tickets)
	if err != nil {
		fail("invalid settings", err)
	}
	ec2Client := ec2.NewFromConfig(cfg)
	h := &remediate.Handler{
		Settings: settings.Guard,
		Limits:   policy.RecheckLimits{MaxAge: settings.MaxVerdictAge, MaxClockSkew: maxClockSkew},
		ClaimTTL: claimTTL,
		Region:   cfg.Region,
		Clients: guard.Clients{
			EC2:           ec2Client,
			CloudWatch:    cloudwatch.NewFromConfig(cfg),
			CloudTrail:    cloudtrail.NewFromConfig(cfg),
			LookupLimiter: evidence.NewLookupLimiter(evidence.LookupEventsPerSecond),
		},
		Enforcer: &enforce.Enforcer{EC2: ec2Client, MaxWait: time.Minute, FirstDelay: time.Second, MaxDelay: 8 * time.Second},
		Ledger:   &ledger.Ledger{API: dynamodb.NewFromConfig(cfg), Table: table},
		Tickets:  tickets,
		Now:      time.Now,
		Log:      log,
		Metrics:  &emf.Emitter{W: os.Stdout, Now: time.Now},
	}
	lambda.Start(func(ctx context.Context, batch events.SQSEvent) (events.SQSEventResponse, error) {
		account, err := lambdaenv.AccountID(ctx)
		if err != nil {
			return events.SQSEventResponse{}, err
		}
		return h.Handle(ctx, account, batch)
	})
}

// ticketBackend is the backend the settings name (IMDSGUARD_TICKET_BACKEND, checked at
// start-up with the Jira settings it needs). Jira's secret is read when the first ticket
// is due.
func ticketBackend(cfg aws.Config, topic string, t lambdaenv.Tickets) (ticket.Backend, error) {
	switch t.Backend {
	case "sns":
		return &ticket.SNS{API: sns.NewFromConfig(cfg), TopicARN: topic}, nil
	case "opscenter":
		return &ticket.OpsCenter{API: ssm.NewFromConfig(cfg)}, nil
	case "jira":
		secrets := secretsmanager.NewFromConfig(cfg)
		return &ticket.Lazy{BackendName: t.Backend, Build: func(ctx context.Context) (ticket.Backend, error) {
			secret, err := jira.LoadSecret(ctx, secrets, t.JiraSecretARN)
			if err != nil {
				return nil, err
			}
			return ticket.NewJira(secret, t.JiraProject, t.JiraIssueType, t.JiraLabels)
		}}, nil
	default:
		return nil, fmt.Errorf("IMDSGUARD_TICKET_BACKEND = %q: allowed: sns, opscenter, jira", t.Backend)
	}
}

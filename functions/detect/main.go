// Command detect is the detect Lambda: events about instances in, verdicts to the queue.
package main

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/detect"
	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/lambdaenv"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/ledger/openticket"
)

func main() {
	log := lambdaenv.Logger()
	settings, err := lambdaenv.LoadDetect(os.LookupEnv)
	if err != nil {
		log.Error("invalid settings", "error", err.Error())
		os.Exit(1)
	}
	queueURL, err := lambdaenv.Required(os.LookupEnv, "IMDSGUARD_QUEUE_URL")
	if err != nil {
		log.Error("invalid settings", "error", err.Error())
		os.Exit(1)
	}
	table, err := lambdaenv.Required(os.LookupEnv, "IMDSGUARD_LEDGER_TABLE")
	if err != nil {
		log.Error("invalid settings", "error", err.Error())
		os.Exit(1)
	}
	cfg, err := awsapi.Load(context.Background(), awsapi.Options{CallTimeout: settings.Guard.CallTimeout})
	if err != nil {
		log.Error("loading the AWS configuration", "error", err.Error())
		os.Exit(1)
	}
	h := &detect.Handler{
		Settings:  settings.Guard,
		RuleMatch: settings.ConfigRuleMatch,
		Region:    cfg.Region,
		Clients: guard.Clients{
			EC2:           ec2.NewFromConfig(cfg),
			CloudWatch:    cloudwatch.NewFromConfig(cfg),
			CloudTrail:    cloudtrail.NewFromConfig(cfg),
			LookupLimiter: evidence.NewLookupLimiter(evidence.LookupEventsPerSecond),
		},
		Queue:    sqs.NewFromConfig(cfg),
		QueueURL: queueURL,
		Now:      time.Now,
		Log:      log,
		Metrics:  &emf.Emitter{W: os.Stdout, Now: time.Now},
	}
	// detect records every decision in the ledger before queueing it, and reads the list
	// of open tickets there, to ask remediate to close those of compliant instances.
	db := dynamodb.NewFromConfig(cfg)
	h.Decisions = &decisionlog.Log{API: db, Table: table}
	h.Tickets = &openticket.Index{API: db, Table: table}
	lambda.Start(func(ctx context.Context, event json.RawMessage) (detect.Summary, error) {
		account, err := lambdaenv.AccountID(ctx)
		if err != nil {
			return detect.Summary{}, err
		}
		return h.Handle(ctx, account, event)
	})
}

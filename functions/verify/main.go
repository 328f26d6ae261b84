// Command verify is the verify Lambda: on a schedule, every enforced instance of its
// account-region is watched; what broke is rolled back and ticketed through remediate.
package main

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/lambdaenv"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/sourcefix/launchtemplate"
	"github.com/imdsguard/imdsguard/internal/verdictqueue"
	"github.com/imdsguard/imdsguard/internal/verify"
	"github.com/imdsguard/imdsguard/internal/wiring"
)

func main() {
	log := lambdaenv.Logger()
	fail := func(err error) {
		log.Error("invalid settings", "error", err.Error())
		os.Exit(1)
	}
	settings, err := lambdaenv.LoadVerify(os.LookupEnv)
	if err != nil {
		fail(err)
	}
	queueURL, err := lambdaenv.Required(os.LookupEnv, "IMDSGUARD_QUEUE_URL")
	if err != nil {
		fail(err)
	}
	table, err := lambdaenv.Required(os.LookupEnv, "IMDSGUARD_LEDGER_TABLE")
	if err != nil {
		fail(err)
	}
	// The AWS configuration is loaded, and the clients built, by the first invocation:
	// before lambda.Start there is only the parsing of the settings above.
	handler := lambdaenv.NewLazy(log, func(ctx context.Context) (*verify.Handler, error) {
		cfg, err := awsapi.Load(ctx, awsapi.Options{CallTimeout: settings.Guard.CallTimeout})
		if err != nil {
			return nil, err
		}
		clients := wiring.New(cfg, wiring.Options{})
		db := wiring.Client(clients, dynamodb.ServiceID, dynamodb.NewFromConfig)
		book := &ledger.Ledger{API: db, Table: table}
		return &verify.Handler{
			Settings:   settings.Guard,
			Window:     settings.Window,
			Rollout:    policy.RolloutSettings{BreakerRollbacks: settings.BreakerRollbacks},
			Region:     clients.Region(),
			EC2:        clients.EC2(),
			CloudWatch: clients.CloudWatch(),
			Ledger:     book,
			// imdsguard's launch template fixes, watched on the instances launched from them.
			Sources:  &verify.Sources{Ledger: book, Templates: &launchtemplate.Client{EC2: clients.EC2()}},
			Restorer: &enforce.Enforcer{EC2: clients.EC2(), MaxWait: time.Minute, FirstDelay: time.Second, MaxDelay: 8 * time.Second},
			Verdicts: &verdictqueue.Sender{Queue: wiring.Client(clients, sqs.ServiceID, sqs.NewFromConfig), QueueURL: queueURL,
				Decisions: &decisionlog.Log{API: db, Table: table}},
			Now:     time.Now,
			Log:     log,
			Metrics: &emf.Emitter{W: os.Stdout, Now: time.Now},
		}, nil
	})
	// The schedule's event says nothing: every run watches the whole account-region.
	lambda.Start(func(ctx context.Context, _ json.RawMessage) (verify.Summary, error) {
		account, err := lambdaenv.AccountID(ctx)
		if err != nil {
			return verify.Summary{}, err
		}
		h, err := handler.Get(ctx)
		if err != nil {
			return verify.Summary{}, err
		}
		return h.Handle(ctx, account)
	})
}

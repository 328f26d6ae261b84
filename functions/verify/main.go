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
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/lambdaenv"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/organization"
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
	hub, isHub, err := lambdaenv.LoadHub(os.LookupEnv)
	if err != nil {
		fail(err)
	}
	// The AWS configuration is loaded, and the clients built, by the first invocation:
	// before lambda.Start there is only the parsing of the settings above.
	var org *verify.Organization // set by the first invocation, on a hub
	handler := lambdaenv.NewLazy(log, func(ctx context.Context) (*verify.Handler, error) {
		cfg, err := awsapi.Load(ctx, awsapi.Options{CallTimeout: settings.Guard.CallTimeout})
		if err != nil {
			return nil, err
		}
		clients := wiring.New(cfg, wiring.Options{})
		db := wiring.Client(clients, dynamodb.ServiceID, dynamodb.NewFromConfig)
		book := &ledger.Ledger{API: db, Table: table}
		restorerOf := func(c *wiring.Clients) *enforce.Enforcer {
			return &enforce.Enforcer{EC2: c.EC2(), MaxWait: time.Minute, FirstDelay: time.Second, MaxDelay: 8 * time.Second}
		}
		if isHub {
			account, err := lambdaenv.AccountID(ctx)
			if err != nil {
				return nil, err
			}
			// Every member's enforcements are watched from the hub's ledger, through the
			// member's enforce role.
			sessions := wiring.NewSessions(cfg, wiring.SessionsOptions{Home: account, RoleName: hub.EnforceRole, SessionName: "imdsguard-verify"})
			org = &verify.Organization{
				Scope:    hub.Organization,
				Accounts: organization.Lister{API: wiring.Client(clients, organizations.ServiceID, organizations.NewFromConfig), Units: hub.Organization.Units},
				Members: verify.MembersFunc(func(account, region string) verify.Member {
					c := sessions.Clients(account, region)
					return verify.Member{EC2: c.EC2(), CloudWatch: c.CloudWatch(), Restorer: restorerOf(c), Templates: &launchtemplate.Client{EC2: c.EC2()}}
				}),
			}
		}
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
			Restorer: restorerOf(clients),
			Verdicts: &verdictqueue.Sender{Queue: wiring.Client(clients, sqs.ServiceID, sqs.NewFromConfig), QueueURL: queueURL,
				Decisions: &decisionlog.Log{API: db, Table: table}},
			Now:     time.Now,
			Log:     log,
			Metrics: &emf.Emitter{W: os.Stdout, Now: time.Now},
		}, nil
	})
	// The schedule's event says nothing: every run watches the whole account-region, or
	// the hub's every member account-region.
	lambda.Start(func(ctx context.Context, _ json.RawMessage) (any, error) {
		account, err := lambdaenv.AccountID(ctx)
		if err != nil {
			return nil, err
		}
		h, err := handler.Get(ctx)
		if err != nil {
			return nil, err
		}
		if org != nil {
			return h.HandleOrganization(ctx, *org)
		}
		return h.Handle(ctx, account)
	})
}

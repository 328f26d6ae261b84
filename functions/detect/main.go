// Command detect is the detect Lambda: events about instances in, verdicts to the queue.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/athena"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/detect"
	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/lambdaenv"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/ledger/openticket"
	"github.com/imdsguard/imdsguard/internal/ledger/rollbacks"
	"github.com/imdsguard/imdsguard/internal/organization"
	"github.com/imdsguard/imdsguard/internal/trailquery"
	"github.com/imdsguard/imdsguard/internal/wiring"
)

func main() {
	log := lambdaenv.Logger()
	fail := func(err error) {
		log.Error("invalid settings", "error", err.Error())
		os.Exit(1)
	}
	settings, err := lambdaenv.LoadDetect(os.LookupEnv)
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
	if isHub && hub.UnitsQueueURL == "" {
		fail(fmt.Errorf("the hub's detect needs %s, the FIFO queue of units of work", lambdaenv.EnvUnitsQueueURL))
	}
	var trailTable *trailquery.Table
	if isHub && hub.Trail != nil {
		t := trailquery.Table(*hub.Trail)
		if err := t.Validate(); err != nil {
			fail(fmt.Errorf("the organization trail's table (%s, %s): %w", lambdaenv.EnvTrailDatabase, lambdaenv.EnvTrailTable, err))
		}
		trailTable = &t
	}
	// The AWS configuration is loaded, and the clients built, by the first invocation:
	// before lambda.Start there is only the parsing of the settings above.
	handler := lambdaenv.NewLazy(log, func(ctx context.Context) (*detect.Handler, error) {
		cfg, err := awsapi.Load(ctx, awsapi.Options{CallTimeout: settings.Guard.CallTimeout})
		if err != nil {
			return nil, err
		}
		clients := wiring.New(cfg, wiring.Options{})
		// detect records every decision in the ledger before queueing it, and reads the
		// list of open tickets there, to ask remediate to close those of compliant instances.
		db := wiring.Client(clients, dynamodb.ServiceID, dynamodb.NewFromConfig)
		queue := wiring.Client(clients, sqs.ServiceID, sqs.NewFromConfig)
		sourcesOf := func(c *wiring.Clients) *detect.Sources {
			return &detect.Sources{EC2: c.EC2(), AutoScaling: wiring.Client(c, autoscaling.ServiceID, autoscaling.NewFromConfig),
				Enforcements: &rollbacks.Index{API: db, Table: table}}
		}
		var hubOf *detect.Hub
		if isHub {
			account, err := lambdaenv.AccountID(ctx)
			if err != nil {
				return nil, err
			}
			// The members are reached through their read role; the hub's own account
			// with its own credentials.
			sessions := wiring.NewSessions(cfg, wiring.SessionsOptions{Home: account, RoleName: hub.ReadRole, SessionName: "imdsguard-detect",
				Clients: wiring.Options{LookupsPerSecond: evidence.MemberLookupsPerSecond}})
			hubOf = &detect.Hub{
				Organization: hub.Organization,
				Accounts:     organization.Lister{API: wiring.Client(clients, organizations.ServiceID, organizations.NewFromConfig), Units: hub.Organization.Units},
				Units:        queue, UnitsURL: hub.UnitsQueueURL,
				Trail: trailOf(trailTable, clients),
				Members: detect.MembersFunc(func(account, region string) detect.Member {
					c := sessions.Clients(account, region)
					return detect.Member{Clients: c.Guard(), Sources: sourcesOf(c),
						Reachable: func(ctx context.Context) error { return sessions.Reachable(ctx, account) }}
				}),
			}
		}
		return &detect.Handler{
			Settings:  settings.Guard,
			RuleMatch: settings.ConfigRuleMatch,
			Region:    clients.Region(),
			Clients:   clients.Guard(),
			Queue:     queue,
			QueueURL:  queueURL,
			Decisions: &decisionlog.Log{API: db, Table: table},
			Tickets:   &openticket.Index{API: db, Table: table},
			Rollbacks: &rollbacks.Index{API: db, Table: table},
			// Sweeps and events about sources judge the launch templates, groups and
			// account defaults too (DESIGN.md section 10).
			Sources: sourcesOf(clients),
			Hub:     hubOf,
			Waves:   settings.Waves,
			Now:     time.Now,
			Log:     log,
			Metrics: &emf.Emitter{W: os.Stdout, Now: time.Now},
		}, nil
	})
	lambda.Start(func(ctx context.Context, event json.RawMessage) (any, error) {
		account, err := lambdaenv.AccountID(ctx)
		if err != nil {
			return nil, err
		}
		h, err := handler.Get(ctx)
		if err != nil {
			return nil, err
		}
		if batch, ok := detect.AsUnits(event); ok {
			// The units queue's event source mapping reads only the batch item failures.
			sum, resp, err := h.HandleUnits(ctx, batch)
			log.InfoContext(ctx, "units of work judged", "summary", sum, "failed", len(resp.BatchItemFailures))
			return resp, err
		}
		return h.Handle(ctx, account, event)
	})
}

// trailOf is the organization trail's table with the hub's Athena client; nil without one.
func trailOf(t *trailquery.Table, clients *wiring.Clients) *detect.Trail {
	if t == nil {
		return nil
	}
	return &detect.Trail{Table: *t, Athena: wiring.Client(clients, athena.ServiceID, athena.NewFromConfig)}
}

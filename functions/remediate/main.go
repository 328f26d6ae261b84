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
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/lambdaenv"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/pause"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/remediate"
	"github.com/imdsguard/imdsguard/internal/sourcefix"
	"github.com/imdsguard/imdsguard/internal/ticket"
	"github.com/imdsguard/imdsguard/internal/ticket/jira"
	"github.com/imdsguard/imdsguard/internal/wiring"
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
	tickets, err := ticketBackend(topic, settings.Tickets)
	if err != nil {
		fail("invalid settings", err)
	}
	hub, isHub, err := lambdaenv.LoadHub(os.LookupEnv)
	if err != nil {
		fail("invalid settings", err)
	}
	// The AWS configuration is loaded, and the clients built, by the first invocation:
	// before lambda.Start there is only the parsing of the settings above.
	handler := lambdaenv.NewLazy(log, func(ctx context.Context) (*remediate.Handler, error) {
		cfg, err := awsapi.Load(ctx, awsapi.Options{CallTimeout: settings.Guard.CallTimeout})
		if err != nil {
			return nil, err
		}
		clients := wiring.New(cfg, wiring.Options{})
		book := &ledger.Ledger{API: wiring.Client(clients, dynamodb.ServiceID, dynamodb.NewFromConfig), Table: table}
		enforcerOf := func(c *wiring.Clients) *enforce.Enforcer {
			return &enforce.Enforcer{EC2: c.EC2(), MaxWait: time.Minute, FirstDelay: time.Second, MaxDelay: 8 * time.Second}
		}
		var org *policy.Organization
		var members remediate.Members
		if isHub {
			account, err := lambdaenv.AccountID(ctx)
			if err != nil {
				return nil, err
			}
			// The members are acted on through their enforce role; the ledger, the
			// tickets and the pause switch stay the hub's.
			sessions := wiring.NewSessions(cfg, wiring.SessionsOptions{Home: account, RoleName: hub.EnforceRole, SessionName: "imdsguard-remediate"})
			org = &hub.Organization
			members = remediate.MembersFunc(func(account, region string) remediate.Member {
				c := sessions.Clients(account, region)
				return remediate.Member{Clients: c.Guard(), Enforcer: enforcerOf(c), Sources: &sourcefix.Fixer{EC2: c.EC2()}}
			})
		}
		return &remediate.Handler{
			Settings: settings.Guard,
			Limits:   policy.RecheckLimits{MaxAge: settings.MaxVerdictAge, MaxClockSkew: maxClockSkew},
			ClaimTTL: claimTTL,
			Region:   clients.Region(),
			Clients:  clients.Guard(),
			Enforcer: enforcerOf(clients),
			Ledger:   book,
			// Launch templates and the account defaults, fixed on detect's verdicts.
			Sources:      &sourcefix.Fixer{EC2: clients.EC2()},
			SourceLedger: book,
			Tickets:      tickets(clients),
			Rollout:      settings.Rollout,
			Pause:        &pause.Switch{API: wiring.Client(clients, ssm.ServiceID, ssm.NewFromConfig), Name: settings.PauseParameter},
			Organization: org,
			Members:      members,
			Now:          time.Now,
			Log:          log,
			Metrics:      &emf.Emitter{W: os.Stdout, Now: time.Now},
		}, nil
	})
	lambda.Start(func(ctx context.Context, batch events.SQSEvent) (events.SQSEventResponse, error) {
		account, err := lambdaenv.AccountID(ctx)
		if err != nil {
			return events.SQSEventResponse{}, err
		}
		h, err := handler.Get(ctx)
		if err != nil {
			return events.SQSEventResponse{}, err
		}
		return h.Handle(ctx, account, batch)
	})
}

// ticketBackend checks, at start-up, the backend the settings name
// (IMDSGUARD_TICKET_BACKEND, with the Jira settings it needs) and returns how to build it
// from the clients, on the first invocation. Jira's secret is read when the first ticket
// is due.
func ticketBackend(topic string, t lambdaenv.Tickets) (func(*wiring.Clients) ticket.Backend, error) {
	switch t.Backend {
	case "sns":
		return func(c *wiring.Clients) ticket.Backend {
			return &ticket.SNS{API: wiring.Client(c, sns.ServiceID, sns.NewFromConfig), TopicARN: topic}
		}, nil
	case "opscenter":
		return func(c *wiring.Clients) ticket.Backend {
			return &ticket.OpsCenter{API: wiring.Client(c, ssm.ServiceID, ssm.NewFromConfig)}
		}, nil
	case "jira":
		return func(c *wiring.Clients) ticket.Backend {
			secrets := wiring.Client(c, secretsmanager.ServiceID, secretsmanager.NewFromConfig)
			return &ticket.Lazy{BackendName: t.Backend, Build: func(ctx context.Context) (ticket.Backend, error) {
				secret, err := jira.LoadSecret(ctx, secrets, t.JiraSecretARN)
				if err != nil {
					return nil, err
				}
				return ticket.NewJira(secret, t.JiraProject, t.JiraIssueType, t.JiraLabels)
			}}
		}, nil
	default:
		return nil, fmt.Errorf("IMDSGUARD_TICKET_BACKEND = %q: allowed: sns, opscenter, jira", t.Backend)
	}
}

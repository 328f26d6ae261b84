package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/ledger"
)

// v1Users are five kinds of instance that still use IMDSv1.
var v1Users = []string{"legacy-v1", "weekly-cron-v1", "new-and-v1", "sdk-v1", "stolen-creds"}

// ticketBackend is one backend as the tests see it: how many tickets it holds, and
// which of them are resolved.
type ticketBackend struct {
	name  string
	setup func(t *testing.T, p *pipeline, env map[string]string)
	// tickets returns the instance ids of the open and of the resolved tickets.
	tickets func(t *testing.T, p *pipeline) (open, resolved []string)
}

func backends() []ticketBackend {
	var ops *fakeaws.OpsItems
	var jira *fakeaws.Jira
	return []ticketBackend{
		{
			name:  "sns",
			setup: func(*testing.T, *pipeline, map[string]string) {},
			tickets: func(t *testing.T, p *pipeline) (open, resolved []string) {
				for _, m := range p.receive(p.noticesURL).Records {
					var n struct {
						Message           string
						MessageAttributes map[string]struct{ Value string }
					}
					if err := json.Unmarshal([]byte(m.Body), &n); err != nil {
						t.Fatal(err)
					}
					id := n.MessageAttributes["instance_id"].Value
					switch n.MessageAttributes["event"].Value {
					case "open":
						open = append(open, id)
					case "resolve":
						resolved = append(resolved, id)
					default:
						t.Errorf("unexpected %s notification for %s", n.MessageAttributes["event"].Value, id)
					}
				}
				return open, resolved
			},
		},
		{
			name: "opscenter",
			setup: func(t *testing.T, p *pipeline, env map[string]string) {
				ops = fakeaws.NewOpsItems()
				t.Cleanup(ops.Close)
				env["IMDSGUARD_TICKET_BACKEND"] = "opscenter"
				env["AWS_ENDPOINT_URL_SSM"] = ops.URL
			},
			tickets: func(t *testing.T, p *pipeline) (open, resolved []string) {
				for _, item := range ops.Items() {
					id := item.OperationalData["imdsguard:instance_id"].Value
					if item.Status == "Resolved" {
						resolved = append(resolved, id)
					} else {
						open = append(open, id)
					}
				}
				return open, resolved
			},
		},
		{
			name: "jira",
			setup: func(t *testing.T, p *pipeline, env map[string]string) {
				jira = fakeaws.NewJira(fakeaws.JiraOptions{Flavor: fakeaws.JiraCloud, Projects: []string{"SEC"}, RetryAfter: "0"})
				t.Cleanup(jira.Close)
				secret, err := secretsmanager.NewFromConfig(p.cfg).CreateSecret(p.ctx, &secretsmanager.CreateSecretInput{
					Name: aws.String("imdsguard/jira"),
					SecretString: aws.String(fmt.Sprintf(`{"site_url":%q,"flavour":"cloud","email":%q,"api_token":%q}`,
						jira.URL, fakeaws.JiraTestEmail, fakeaws.JiraTestAPIToken)),
				})
				if err != nil {
					t.Fatal(err)
				}
				env["IMDSGUARD_TICKET_BACKEND"] = "jira"
				env["IMDSGUARD_JIRA_SECRET_ARN"] = aws.ToString(secret.ARN)
				env["IMDSGUARD_JIRA_PROJECT"] = "SEC"
			},
			tickets: func(t *testing.T, p *pipeline) (open, resolved []string) {
				for _, issue := range jira.Issues() {
					id := ""
					for _, l := range issue.Labels {
						if strings.HasPrefix(l, "imdsguard-i-") {
							id = strings.TrimPrefix(l, "imdsguard-")
						}
					}
					if issue.StatusCategory == "done" {
						resolved = append(resolved, id)
					} else {
						open = append(open, id)
					}
				}
				return open, resolved
			},
		},
	}
}

// sweep runs one scheduled sweep through both functions.
func (p *pipeline) sweep(t *testing.T) {
	t.Helper()
	decodeResponse[detectSummary](t, p.detect.invoke(t, p.ctx, json.RawMessage(`{"sweep": {}}`)))
	batch := p.receive(p.queueURL)
	for len(batch.Records) > 0 {
		n := min(10, len(batch.Records))
		resp := decodeResponse[events.SQSEventResponse](t, p.remediate.invoke(t, p.ctx, events.SQSEvent{Records: batch.Records[:n]}))
		if len(resp.BatchItemFailures) != 0 {
			t.Fatalf("batch item failures %+v\nremediate logs:\n%s", resp.BatchItemFailures, p.remediate.proc.Logs())
		}
		batch.Records = batch.Records[n:]
	}
}

// TestTicketsOncePerInstance: three sweeps over five instances that use IMDSv1 give
// exactly five tickets in each backend; when one instance is fixed, the next sweep
// resolves exactly its ticket.
func TestTicketsOncePerInstance(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			p := newPipelineWith(t, "enforce", func(p *pipeline, env map[string]string) { b.setup(t, p, env) }, v1Users...)
			var allOpen []string
			for range 3 {
				p.sweep(t)
				open, resolved := b.tickets(t, p)
				allOpen = append(allOpen, open...)
				if len(resolved) != 0 {
					t.Fatalf("tickets resolved while nothing changed: %v", resolved)
				}
			}
			// SNS notifications are consumed as read; the others are counted in place.
			if b.name != "sns" {
				allOpen, _ = b.tickets(t, p)
			}
			if len(allOpen) != len(v1Users) {
				t.Fatalf("%d tickets after three sweeps, want %d: %v", len(allOpen), len(v1Users), allOpen)
			}
			for _, kind := range v1Users {
				if h := p.history(p.fleet[kind].ID); len(h) != 3 || h[0].Result != ledger.ResultTicketed ||
					h[1].Result != ledger.ResultTicketUnchanged || h[2].Result != ledger.ResultTicketUnchanged {
					t.Errorf("%s history: %s", kind, results(h))
				}
			}

			// The owners of one instance fix it.
			fixed := p.fleet["sdk-v1"].ID
			if _, err := p.ec2.ModifyInstanceMetadataOptions(p.ctx, &ec2.ModifyInstanceMetadataOptionsInput{
				InstanceId: aws.String(fixed), HttpTokens: ec2types.HttpTokensStateRequired,
			}); err != nil {
				t.Fatal(err)
			}
			p.sweep(t)
			open, resolved := b.tickets(t, p)
			if len(resolved) != 1 || resolved[0] != fixed {
				t.Fatalf("resolved %v, want only %s", resolved, fixed)
			}
			if b.name != "sns" && len(open) != len(v1Users)-1 {
				t.Fatalf("%d tickets still open, want %d", len(open), len(v1Users)-1)
			}
			if h := p.history(fixed); h[len(h)-1].Result != ledger.ResultTicketResolved {
				t.Errorf("fixed instance history: %s", results(h))
			}
		})
	}
}

func results(h []ledger.Outcome) string {
	var out []string
	for _, o := range h {
		out = append(out, o.Result)
	}
	return strings.Join(out, ",")
}

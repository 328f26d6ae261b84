// Package detect is the detect Lambda's logic: an event becomes instance refs, the guard
// judges them, and every verdict that asks for something (all but skip) goes to the
// remediation queue as one imdsguard.verdict/v2 message, recorded in the ledger first.
package detect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/trigger"
)

// QueueAPI is the part of the SQS client detect uses.
type QueueAPI interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// DecisionLog records decisions before their messages are queued, so that remediate can
// tell a message detect sent from any other (decisionlog.Log implements it).
type DecisionLog interface {
	RecordDecisions(ctx context.Context, decisions []decisionlog.Decision) error
}

// OpenTickets lists the instances of an account-region whose ticket is still open
// (openticket.Index implements it).
type OpenTickets interface {
	OpenTickets(ctx context.Context, account, region string) ([]string, error)
}

// Handler handles one detect invocation.
type Handler struct {
	Settings policy.Settings
	// RuleMatch is the substring that marks the Config rule (ec2-imdsv2-check).
	RuleMatch string
	Region    string
	Clients   guard.Clients
	Queue     QueueAPI
	QueueURL  string
	// Decisions records every verdict before it is queued; remediate acts on nothing else.
	Decisions DecisionLog
	// Tickets, when set, lets detect ask remediate to close the ticket of an instance
	// that has become compliant or is gone.
	Tickets OpenTickets
	// QueueingReserve is the time kept at the end of an invocation for queueing the
	// verdicts; zero means defaultQueueingReserve.
	QueueingReserve time.Duration
	Now             func() time.Time
	Log             *slog.Logger
	Metrics         *emf.Emitter
}

// Summary is what one invocation did; it is the invocation's result.
type Summary struct {
	Source    string         `json:"source"`
	Ignored   string         `json:"ignored,omitempty"`
	Instances int            `json:"instances"`
	Verdicts  map[string]int `json:"verdicts"`
	Sent      int            `json:"sent"`
	Foreign   []string       `json:"foreign,omitempty"`
}

// maxBatch is SendMessageBatch's limit; sendAttempts bounds the retries of entries
// SQS reports as failed in an otherwise successful call.
const (
	maxBatch     = 10
	sendAttempts = 3

	// defaultQueueingReserve covers queueing 10,000 verdicts in batches of 10.
	defaultQueueingReserve = 90 * time.Second
)

// Handle judges the instances the event names. A malformed or unknown event is an error
// naming it, and nothing is judged; so is a failure to queue a verdict, so that Lambda
// retries the event (duplicates are harmless: remediate is idempotent and re-checks).
func (h *Handler) Handle(ctx context.Context, accountID string, event json.RawMessage) (Summary, error) {
	req, err := trigger.Parse(event, trigger.Config{AccountID: accountID, Region: h.Region, RuleSubstring: h.RuleMatch})
	if err != nil {
		h.count("Errors", 1, map[string]string{"Stage": "trigger"})
		return Summary{}, err
	}
	sum := Summary{Source: req.Source, Ignored: req.Ignored, Verdicts: map[string]int{}}
	for _, ref := range req.Foreign {
		sum.Foreign = append(sum.Foreign, ref.Name())
	}
	for _, region := range req.ForeignRegions {
		sum.Foreign = append(sum.Foreign, "region "+region)
	}
	if len(sum.Foreign) > 0 {
		h.Log.WarnContext(ctx, "instances outside this function's account and region are reported, not acted on",
			"source", req.Source, "foreign", sum.Foreign)
	}
	if req.Ignored != "" {
		h.Log.InfoContext(ctx, "event asks for nothing", "source", req.Source, "why", req.Ignored)
		return sum, nil
	}
	var ids []string
	for _, ref := range req.Refs {
		ids = append(ids, ref.InstanceID)
	}
	if len(ids) == 0 && len(req.Sweep) == 0 {
		return sum, nil
	}
	now := h.Now().UTC()
	assessments, err := guard.Assess(h.judgingTime(ctx), h.Clients, h.Region, ids, h.Settings, now, nil)
	if err != nil {
		h.count("Errors", 1, map[string]string{"Stage": "evidence"})
		return sum, fmt.Errorf("judging the instances of %s: %w", req.Source, err)
	}
	sum.Instances = len(assessments)
	closeOut, err := h.ticketsToClose(ctx, accountID, assessments)
	if err != nil {
		h.count("Errors", 1, map[string]string{"Stage": "tickets"})
		return sum, err
	}
	var messages []outgoing
	for _, a := range assessments {
		sum.Verdicts[string(a.Verdict.Action)]++
		h.logVerdict(ctx, req.Source, a)
		if a.Verdict.Action == policy.ActionSkip && !closeOut[a.Evidence.InstanceID] {
			continue
		}
		if a.AccountID == "" {
			// Not found, or describing failed for every instance asked about: the
			// instances are the function's own account's.
			a.AccountID = accountID
		}
		m, err := newOutgoing(a, now)
		if err != nil {
			return sum, err
		}
		messages = append(messages, m)
	}
	for action, n := range sum.Verdicts {
		h.count("Verdicts", n, map[string]string{"Action": action})
	}
	sent, err := h.recordAndSend(ctx, messages)
	sum.Sent = sent
	if err != nil {
		h.count("Errors", 1, map[string]string{"Stage": "queue"})
		return sum, err
	}
	return sum, nil
}

// outgoing is one verdict message, encoded exactly as it is recorded and sent.
type outgoing struct {
	decision decisionlog.Decision
	body     string
}

func newOutgoing(a guard.Assessment, now time.Time) (outgoing, error) {
	m, err := message.New(a.Evidence, a.Verdict, a.AccountID, a.Region, now)
	if err != nil {
		return outgoing{}, err
	}
	body, err := m.Encode()
	if err != nil {
		return outgoing{}, err
	}
	return outgoing{
		decision: decisionlog.Decision{
			AccountID: m.AccountID, Region: m.Region, InstanceID: m.InstanceID,
			DecisionID: m.DecisionID, Action: m.Action, CreatedAt: m.CreatedAt, Digest: decisionlog.Digest(body),
		},
		body: string(body),
	}, nil
}

// recordsPerRound is how many decisions are recorded before their messages are sent.
const recordsPerRound = 100

// recordAndSend records the decisions in the ledger and then queues their messages, a
// round at a time: a message is never on the queue before its decision is recorded, and
// a failure leaves at most one round recorded but not sent (remediate never sees those;
// the ledger forgets them after their retention).
func (h *Handler) recordAndSend(ctx context.Context, messages []outgoing) (int, error) {
	if len(messages) > 0 && h.Decisions == nil {
		return 0, errors.New("detect has no ledger to record its decisions in: set IMDSGUARD_LEDGER_TABLE")
	}
	sent := 0
	for round := range slices.Chunk(messages, recordsPerRound) {
		decisions := make([]decisionlog.Decision, len(round))
		for i, m := range round {
			decisions[i] = m.decision
		}
		if err := h.Decisions.RecordDecisions(ctx, decisions); err != nil {
			return sent, fmt.Errorf("recording %d decisions before queueing them: %w", len(decisions), err)
		}
		n, err := h.send(ctx, round)
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// judgingTime leaves the end of the invocation for queueing the verdicts. A large sweep
// can have more CloudTrail lookups than 2 a second allow before Lambda's timeout: the
// lookups still waiting when judging time is up fail at once, and their instances are
// deferred (cloudtrail-unavailable) to a later sweep, rather than the whole invocation
// being killed with nothing queued.
func (h *Handler) judgingTime(ctx context.Context) context.Context {
	deadline, ok := ctx.Deadline()
	if !ok {
		return ctx
	}
	reserve := h.QueueingReserve
	if reserve <= 0 {
		reserve = defaultQueueingReserve
	}
	judging, cancel := context.WithDeadline(ctx, deadline.Add(-reserve))
	context.AfterFunc(ctx, cancel)
	return judging
}

// ticketsToClose names the skipped instances (compliant or gone) whose ticket is still
// open: their skip verdicts go to remediate, which closes the tickets.
func (h *Handler) ticketsToClose(ctx context.Context, accountID string, assessments []guard.Assessment) (map[string]bool, error) {
	closable := map[string]bool{}
	for _, a := range assessments {
		if code := a.Verdict.Primary(); a.Verdict.Action == policy.ActionSkip &&
			(code == policy.ReasonCompliant || code == policy.ReasonTerminated) {
			closable[a.Evidence.InstanceID] = true
		}
	}
	out := map[string]bool{}
	if h.Tickets == nil || len(closable) == 0 {
		return out, nil
	}
	open, err := h.Tickets.OpenTickets(ctx, accountID, h.Region)
	if err != nil {
		return nil, fmt.Errorf("listing open tickets: %w", err)
	}
	for _, id := range open {
		if closable[id] {
			out[id] = true
		}
	}
	return out, nil
}

func (h *Handler) logVerdict(ctx context.Context, source string, a guard.Assessment) {
	attrs := []any{
		"source", source, "account_id", a.AccountID, "region", a.Region, "instance_id", a.Evidence.InstanceID,
		"action", a.Verdict.Action, "reasons", a.Verdict.Reasons,
	}
	if a.Verdict.Target != nil {
		attrs = append(attrs, "target", *a.Verdict.Target)
	}
	h.Log.InfoContext(ctx, "verdict", attrs...)
}

// send queues the messages in batches, retrying the entries SQS reports as failed.
func (h *Handler) send(ctx context.Context, messages []outgoing) (int, error) {
	sent := 0
	for batch := range slices.Chunk(messages, maxBatch) {
		pending := make(map[string]sqstypes.SendMessageBatchRequestEntry, len(batch))
		for i, m := range batch {
			id := strconv.Itoa(i)
			pending[id] = sqstypes.SendMessageBatchRequestEntry{Id: aws.String(id), MessageBody: aws.String(m.body)}
		}
		for attempt := 1; len(pending) > 0; attempt++ {
			entries := make([]sqstypes.SendMessageBatchRequestEntry, 0, len(pending))
			for _, e := range pending {
				entries = append(entries, e)
			}
			out, err := h.Queue.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(h.QueueURL), Entries: entries})
			if err != nil {
				return sent, fmt.Errorf("sqs:SendMessageBatch to %s: %w", h.QueueURL, err)
			}
			for _, ok := range out.Successful {
				if _, known := pending[aws.ToString(ok.Id)]; known {
					delete(pending, aws.ToString(ok.Id))
					sent++
				}
			}
			if len(out.Failed) == 0 {
				continue
			}
			var failures []error
			for _, f := range out.Failed {
				failures = append(failures, fmt.Errorf("entry %s: %s: %s", aws.ToString(f.Id), aws.ToString(f.Code), aws.ToString(f.Message)))
				if f.SenderFault {
					// The message itself is wrong: retrying cannot help.
					return sent, fmt.Errorf("sqs:SendMessageBatch to %s refused a verdict: %w", h.QueueURL, errors.Join(failures...))
				}
			}
			if attempt == sendAttempts {
				return sent, fmt.Errorf("sqs:SendMessageBatch to %s failed %d times: %w", h.QueueURL, attempt, errors.Join(failures...))
			}
		}
	}
	return sent, nil
}

func (h *Handler) count(metric string, n int, dims map[string]string) {
	if err := h.Metrics.Count(metric, n, dims); err != nil {
		h.Log.Error("writing a metric failed", "metric", metric, "error", err)
	}
}

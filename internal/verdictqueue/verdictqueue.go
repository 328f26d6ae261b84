// Package verdictqueue sends verdicts to remediate: each is recorded in the ledger
// (package decisionlog) before its message is queued, so that remediate can tell a
// message imdsguard sent from any other. detect sends its verdicts this way, and verify
// the ticket verdict of an enforcement it rolled back.
package verdictqueue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// QueueAPI is the part of the SQS client a Sender uses.
type QueueAPI interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// DecisionLog records decisions before their messages are queued (decisionlog.Log
// implements it).
type DecisionLog interface {
	RecordDecisions(ctx context.Context, decisions []decisionlog.Decision) error
}

// Sender records and queues verdict messages.
type Sender struct {
	Queue     QueueAPI
	QueueURL  string
	Decisions DecisionLog
}

// maxBatch is SendMessageBatch's limit; sendAttempts bounds the retries of entries
// SQS reports as failed in an otherwise successful call.
const (
	maxBatch     = 10
	sendAttempts = 3
)

// Outgoing is one verdict message, encoded exactly as it is recorded and sent.
type Outgoing struct {
	decision decisionlog.Decision
	body     string
}

// Decision is the decision the message is recorded under.
func (o Outgoing) Decision() decisionlog.Decision { return o.decision }

// Body is the message as it is queued.
func (o Outgoing) Body() string { return o.body }

// NewOutgoing encodes the verdict about an instance of account and region as its
// message, made at now; sweepID names the sweep it came from ("" for none).
func NewOutgoing(ev policy.Evidence, v policy.Verdict, account, region, sweepID string, now time.Time) (Outgoing, error) {
	m, err := message.New(ev, v, account, region, now)
	if err != nil {
		return Outgoing{}, err
	}
	m.SweepID = sweepID
	body, err := m.Encode()
	if err != nil {
		return Outgoing{}, err
	}
	return Outgoing{
		decision: decisionlog.Decision{
			AccountID: m.AccountID, Region: m.Region, InstanceID: m.InstanceID,
			DecisionID: m.DecisionID, Action: m.Action, CreatedAt: m.CreatedAt, Digest: decisionlog.Digest(body),
		},
		body: string(body),
	}, nil
}

// recordsPerRound is how many decisions are recorded before their messages are sent.
const recordsPerRound = 100

// RecordAndSend records the decisions in the ledger and then queues their messages, a
// round at a time: a message is never on the queue before its decision is recorded, and
// a failure leaves at most one round recorded but not sent (remediate never sees those;
// the ledger forgets them after their retention).
func (s *Sender) RecordAndSend(ctx context.Context, messages []Outgoing) (int, error) {
	if len(messages) > 0 && s.Decisions == nil {
		return 0, errors.New("no ledger to record the decisions in: set IMDSGUARD_LEDGER_TABLE")
	}
	sent := 0
	for round := range slices.Chunk(messages, recordsPerRound) {
		decisions := make([]decisionlog.Decision, len(round))
		for i, m := range round {
			decisions[i] = m.decision
		}
		if err := s.Decisions.RecordDecisions(ctx, decisions); err != nil {
			return sent, fmt.Errorf("recording %d decisions before queueing them: %w", len(decisions), err)
		}
		n, err := s.send(ctx, round)
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// send queues the messages in batches.
func (s *Sender) send(ctx context.Context, messages []Outgoing) (int, error) {
	entries := make([]Entry, len(messages))
	for i, m := range messages {
		entries[i] = Entry{Body: m.body}
	}
	return Send(ctx, s.Queue, s.QueueURL, entries)
}

// Entry is one message to queue. GroupID and DeduplicationID are a FIFO queue's
// (empty for a standard queue).
type Entry struct {
	Body, GroupID, DeduplicationID string
}

// Send queues the entries in batches, retrying those SQS reports as failed, and
// returns how many were queued. It is the one sender of every queue: the verdicts, and
// the hub's units of work.
func Send(ctx context.Context, api QueueAPI, queueURL string, entries []Entry) (int, error) {
	sent := 0
	for batch := range slices.Chunk(entries, maxBatch) {
		pending := make(map[string]sqstypes.SendMessageBatchRequestEntry, len(batch))
		for i, m := range batch {
			id := strconv.Itoa(i)
			e := sqstypes.SendMessageBatchRequestEntry{Id: aws.String(id), MessageBody: aws.String(m.Body)}
			if m.GroupID != "" {
				e.MessageGroupId, e.MessageDeduplicationId = aws.String(m.GroupID), aws.String(m.DeduplicationID)
			}
			pending[id] = e
		}
		for attempt := 1; len(pending) > 0; attempt++ {
			entries := make([]sqstypes.SendMessageBatchRequestEntry, 0, len(pending))
			for _, e := range pending {
				entries = append(entries, e)
			}
			out, err := api.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: entries})
			if err != nil {
				return sent, fmt.Errorf("sqs:SendMessageBatch to %s: %w", queueURL, err)
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
					return sent, fmt.Errorf("sqs:SendMessageBatch to %s refused a message: %w", queueURL, errors.Join(failures...))
				}
			}
			if attempt == sendAttempts {
				return sent, fmt.Errorf("sqs:SendMessageBatch to %s failed %d times: %w", queueURL, attempt, errors.Join(failures...))
			}
		}
	}
	return sent, nil
}

// NewOutgoingSource encodes a verdict about a source as its message. Its decision is
// recorded under the source's ledger subject (message.SourceVerdict.Subject) in the
// place of an instance id.
func NewOutgoingSource(m message.SourceVerdict) (Outgoing, error) {
	body, err := m.Encode()
	if err != nil {
		return Outgoing{}, err
	}
	return Outgoing{
		decision: decisionlog.Decision{
			AccountID: m.AccountID, Region: m.Region, InstanceID: m.Subject(),
			DecisionID: m.DecisionID, Action: policy.Action(m.Action), CreatedAt: m.CreatedAt, Digest: decisionlog.Digest(body),
		},
		body: string(body),
	}, nil
}

package detect_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/time/rate"

	"github.com/imdsguard/imdsguard/internal/detect"
	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport/fakeapi"
)

const (
	account  = "123456789012"
	region   = "us-east-1"
	webID    = "i-0aaaaaaaaaaaaaaa1" // uses no IMDSv1: remediate
	legacyID = "i-0bbbbbbbbbbbbbbb2" // IMDSv1 calls by the metric: ticket
	v2ID     = "i-0ccccccccccccccc3" // already required: skip
	newID    = "i-0ddddddddddddddd4" // too few datapoints: defer
)

var now = time.Date(2025, 6, 2, 12, 34, 56, 0, time.UTC)

// fakeQueue is SQS SendMessageBatch, recording every body it accepts in the journal; it
// can be told to fail entries.
type fakeQueue struct {
	mu      sync.Mutex
	journal *[]string
	bodies  []string
	// failEntries fails the first n entries of the next calls, with senderFault.
	failEntries int
	senderFault bool
	err         error
}

func (q *fakeQueue) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return nil, q.err
	}
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		if q.failEntries > 0 {
			q.failEntries--
			out.Failed = append(out.Failed, sqstypes.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"),
				Message: aws.String("try again"), SenderFault: q.senderFault})
			continue
		}
		body := aws.ToString(e.MessageBody)
		q.bodies = append(q.bodies, body)
		*q.journal = append(*q.journal, "send:"+decisionlog.Digest([]byte(body)))
		out.Successful = append(out.Successful, sqstypes.SendMessageBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

// fakeLog is the decision log, recording every digest in the journal.
type fakeLog struct {
	journal   *[]string
	decisions []decisionlog.Decision
	err       error
}

func (l *fakeLog) RecordDecisions(_ context.Context, ds []decisionlog.Decision) error {
	if l.err != nil {
		return l.err
	}
	for _, d := range ds {
		l.decisions = append(l.decisions, d)
		*l.journal = append(*l.journal, "record:"+d.Digest)
	}
	return nil
}

type fakeOpenTickets struct{ ids []string }

func (f fakeOpenTickets) OpenTickets(context.Context, string, string) ([]string, error) {
	return f.ids, nil
}

// world is one account-region of fakes and a detect handler in it.
type world struct {
	ctx     context.Context
	ec2     *fakeapi.EC2
	cw      *fakeapi.CloudWatch
	queue   *fakeQueue
	log     *fakeLog
	journal []string
	logs    *bytes.Buffer
	h       *detect.Handler
}

func newWorld(t *testing.T) *world {
	t.Helper()
	// The handler keeps QueueingReserve of the invocation's time for queueing.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	j := &fakeapi.Journal{}
	w := &world{ctx: ctx, ec2: fakeapi.NewEC2(account, j), cw: fakeapi.NewCloudWatch(j), logs: &bytes.Buffer{}}
	w.queue, w.log = &fakeQueue{journal: &w.journal}, &fakeLog{journal: &w.journal}
	ct := fakeapi.NewCloudTrail(j)
	w.h = &detect.Handler{
		Settings: policy.DefaultSettings(), RuleMatch: "ec2-imdsv2-check", Region: region,
		Clients: guard.Clients{EC2: w.ec2, CloudWatch: w.cw, CloudTrail: ct, LookupLimiter: rate.NewLimiter(rate.Inf, 1)},
		Queue:   w.queue, QueueURL: "https://sqs.us-east-1.amazonaws.com/123456789012/imdsguard-remediation",
		Decisions: w.log, QueueingReserve: time.Second, Now: func() time.Time { return now },
		Log: slog.New(slog.NewJSONHandler(w.logs, nil)), Metrics: &emf.Emitter{W: w.logs, Now: func() time.Time { return now }},
	}
	return w
}

// add puts an instance with 200 hourly MetadataNoToken datapoints of value, up to now.
func (w *world) add(id string, value float64, hours int, tokens string) {
	inst := fakeapi.NewInstance(id, now.AddDate(0, -1, 0))
	inst.MetadataOptions.HttpTokens = ec2types.HttpTokensState(tokens)
	w.ec2.Put(inst)
	w.cw.Put(id, fakeapi.Hourly(now.Truncate(time.Hour), hours, value)...)
}

func (w *world) fleet() {
	w.add(webID, 0, 200, "optional")
	w.add(legacyID, 3, 200, "optional")
	w.add(v2ID, 0, 200, "required")
	w.add(newID, 0, 20, "optional")
}

func (w *world) invoke(event string) (detect.Summary, error) {
	return w.h.Handle(w.ctx, account, json.RawMessage(event))
}

// sent parses every message the queue accepted.
func (w *world) sent(t *testing.T) map[string]message.Verdict {
	t.Helper()
	out := map[string]message.Verdict{}
	for _, b := range w.queue.bodies {
		v, err := message.Parse(b)
		if err != nil {
			t.Fatalf("detect sent a message remediate cannot parse: %v\n%s", err, b)
		}
		out[v.InstanceID] = v
	}
	return out
}

func direct(ids ...string) string {
	b, _ := json.Marshal(map[string]any{"instance_ids": ids})
	return string(b)
}

func TestHandle(t *testing.T) {
	tests := []struct {
		name    string
		arrange func(*world)
		event   string
		wantErr string
		// sent maps instance id to the action of its message; nil: nothing is sent.
		sent map[string]policy.Action
		// noDescribe: the event must be refused before any AWS call.
		noDescribe bool
		check      func(*testing.T, *world, detect.Summary)
	}{
		{
			name: "a direct invoke: one message per verdict that asks for something", event: direct(webID, legacyID, v2ID, newID),
			sent: map[string]policy.Action{webID: policy.ActionRemediate, legacyID: policy.ActionTicket, newID: policy.ActionDefer},
			check: func(t *testing.T, w *world, s detect.Summary) {
				if s.Instances != 4 || s.Sent != 3 || s.Verdicts["skip"] != 1 {
					t.Errorf("summary %+v, want 4 instances, 3 sent, 1 skip", s)
				}
			},
		},
		{name: "a sweep judges every instance", event: `{"sweep": {}}`,
			sent: map[string]policy.Action{webID: policy.ActionRemediate, legacyID: policy.ActionTicket, newID: policy.ActionDefer}},
		{
			name: "a compliant instance with an open ticket gets a close-out", event: direct(webID, v2ID),
			arrange: func(w *world) { w.h.Tickets = fakeOpenTickets{ids: []string{v2ID}} },
			sent:    map[string]policy.Action{webID: policy.ActionRemediate, v2ID: policy.ActionSkip},
		},
		{
			name: "an unknown instance with an open ticket gets a close-out as terminated", event: direct("i-0eeeeeeeeeeeeeee5"),
			arrange: func(w *world) { w.h.Tickets = fakeOpenTickets{ids: []string{"i-0eeeeeeeeeeeeeee5"}} },
			sent:    map[string]policy.Action{"i-0eeeeeeeeeeeeeee5": policy.ActionSkip},
			check: func(t *testing.T, w *world, _ detect.Summary) {
				if v := w.sent(t)["i-0eeeeeeeeeeeeeee5"]; v.AccountID != account || v.Reasons[0].Code != policy.ReasonTerminated {
					t.Errorf("close-out %+v, want this account's, terminated", v)
				}
			},
		},
		{name: "a malformed event is an error, and nothing is judged", event: `{"source": "aws.config"`, wantErr: "not valid JSON", noDescribe: true},
		{name: "an unknown event is an error naming its keys", event: `{"hello": 1}`, wantErr: "hello", noDescribe: true},
		{
			name: "an event about another region is reported, not judged", noDescribe: true,
			event: `{"instance_ids": ["i-0aaaaaaaaaaaaaaa1"], "region": "eu-west-1"}`,
			check: func(t *testing.T, w *world, s detect.Summary) {
				if len(s.Foreign) == 0 && s.Ignored == "" {
					t.Errorf("summary %+v: the foreign instance is neither reported nor the event ignored", s)
				}
			},
		},
		{
			name: "recording fails: nothing is sent", event: direct(webID, legacyID), wantErr: "recording",
			arrange: func(w *world) { w.log.err = errors.New("ProvisionedThroughputExceededException") },
		},
		{
			name: "the queue refuses the call: an error naming the queue", event: direct(webID), wantErr: "imdsguard-remediation",
			arrange: func(w *world) { w.queue.err = errors.New("AccessDenied") },
		},
		{
			name: "entries SQS failed are sent again", event: direct(webID, legacyID),
			arrange: func(w *world) { w.queue.failEntries = 1 },
			sent:    map[string]policy.Action{webID: policy.ActionRemediate, legacyID: policy.ActionTicket},
		},
		{
			name: "an entry SQS refuses as the sender's fault is not retried", event: direct(webID), wantErr: "refused a message",
			arrange: func(w *world) { w.queue.failEntries, w.queue.senderFault = 1, true },
		},
		{
			name: "the inventory of a sweep cannot be read: an error", event: `{"sweep": {}}`, wantErr: "ec2:DescribeInstances",
			arrange: func(w *world) { w.ec2.Describe.FailNext(fakeapi.APIError("UnauthorizedOperation", "denied")) },
		},
		{
			name: "the inventory of named instances cannot be read: each is deferred", event: direct(webID, legacyID),
			arrange: func(w *world) { w.ec2.Describe.FailNext(fakeapi.APIError("UnauthorizedOperation", "denied")) },
			sent:    map[string]policy.Action{webID: policy.ActionDefer, legacyID: policy.ActionDefer},
			check: func(t *testing.T, w *world, _ detect.Summary) {
				for id, v := range w.sent(t) {
					if v.AccountID != account || v.Reasons[0].Code != policy.ReasonEvidenceError {
						t.Errorf("%s: %+v, want this account's, evidence-error", id, v)
					}
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.fleet()
			if tc.arrange != nil {
				tc.arrange(w)
			}
			sum, err := w.invoke(tc.event)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatalf("Handle: %v\n%s", err, w.logs)
			}
			if tc.noDescribe && w.ec2.Describe.Count() != 0 {
				t.Errorf("%d DescribeInstances calls for an event that asks for nothing", w.ec2.Describe.Count())
			}
			got := map[string]policy.Action{}
			for id, v := range w.sent(t) {
				got[id] = v.Action
			}
			if len(got) == 0 {
				got = nil
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.sent) {
				t.Errorf("sent %v, want %v", got, tc.sent)
			}
			checkRecordedFirst(t, w)
			if tc.check != nil {
				tc.check(t, w, sum)
			}
		})
	}
}

// checkRecordedFirst: every message sent was recorded, with its body's digest, before
// it was sent.
func checkRecordedFirst(t *testing.T, w *world) {
	t.Helper()
	for i, e := range w.journal {
		digest, isSend := strings.CutPrefix(e, "send:")
		if isSend && !slices.Contains(w.journal[:i], "record:"+digest) {
			t.Errorf("a message was sent before its decision was recorded (journal %v)", w.journal)
		}
	}
	for _, d := range w.log.decisions {
		if d.AccountID != account || d.Region != region || !policy.ValidInstanceID(d.InstanceID) || d.CreatedAt.IsZero() {
			t.Errorf("recorded decision %+v lacks its instance or time", d)
		}
	}
}

// TestRecordsInRoundsBeforeSending: a sweep of 250 instances records its decisions in
// rounds of at most 100, each before its messages go out, and sends all of them.
func TestRecordsInRoundsBeforeSending(t *testing.T) {
	w := newWorld(t)
	for i := range 250 {
		w.add(fmt.Sprintf("i-%017x", i+1), 0, 20, "optional") // too few datapoints: each defers
	}
	sum, err := w.invoke(`{"sweep": {}}`)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 250 || len(w.log.decisions) != 250 {
		t.Fatalf("sent %d, recorded %d, want 250 each", sum.Sent, len(w.log.decisions))
	}
	checkRecordedFirst(t, w)
	// The journal interleaves rounds: records of round n, then its sends.
	rounds, last := 0, ""
	for _, e := range w.journal {
		kind, _, _ := strings.Cut(e, ":")
		if kind == "record" && last != "record" {
			rounds++
		}
		last = kind
	}
	if rounds != 3 {
		t.Errorf("%d rounds of recording, want 3 (100, 100, 50)", rounds)
	}
}

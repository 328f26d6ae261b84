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
	"time"

	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/sources"
	"github.com/imdsguard/imdsguard/internal/trigger"
	"github.com/imdsguard/imdsguard/internal/verdictqueue"
)

// QueueAPI is the part of the SQS client detect uses.
type QueueAPI = verdictqueue.QueueAPI

// DecisionLog records decisions before their messages are queued, so that remediate can
// tell a message detect sent from any other (decisionlog.Log implements it).
type DecisionLog = verdictqueue.DecisionLog

// OpenTickets lists the instances of an account-region whose ticket is still open
// (openticket.Index implements it).
type OpenTickets interface {
	OpenTickets(ctx context.Context, account, region string) ([]string, error)
}

// Rollbacks lists the latest rollbacks of an account-region (rollbacks.Index implements
// it), which rule 5b holds instances back for.
type Rollbacks interface {
	Rollbacks(ctx context.Context, account, region string) (map[string]policy.Rollback, error)
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
	// Rollbacks, when set, are read once per invocation, before the evidence, so that
	// rolled back instances are judged by rule 5b without reading their metrics or
	// CloudTrail (remediate checks each one again before it acts).
	Rollbacks Rollbacks
	// Sources, when set, has detect judge the sources of instances too (DESIGN.md
	// section 10): on a sweep, and when an event names a source. Waves are the rollout's,
	// which a source fix counts in.
	Sources *Sources
	Waves   []policy.Wave
	// Hub, when set, makes this the organization's detect (DESIGN.md section 11): events
	// and sweeps become units of work, which HandleUnits judges in the members.
	Hub *Hub
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
	// Sources counts the source verdicts by action.
	Sources map[string]int `json:"sources,omitempty"`
	Sent    int            `json:"sent"`
	Foreign []string       `json:"foreign,omitempty"`
	// Units counts the units of work a hub queued.
	Units int `json:"units,omitempty"`
}

// defaultQueueingReserve covers queueing 10,000 verdicts in batches of 10.
const defaultQueueingReserve = 90 * time.Second

// Handle judges the instances the event names. A malformed or unknown event is an error
// naming it, and nothing is judged; so is a failure to queue a verdict, so that Lambda
// retries the event (duplicates are harmless: remediate is idempotent and re-checks).
// A hub (Hub set) judges nothing here: it queues the event's work, and a sweep's, as
// units of work for each account-region (HandleUnits).
func (h *Handler) Handle(ctx context.Context, accountID string, event json.RawMessage) (Summary, error) {
	req, err := trigger.Parse(event, trigger.Config{AccountID: accountID, Region: h.Region, RuleSubstring: h.RuleMatch})
	if err != nil {
		h.count("Errors", 1, map[string]string{"Stage": "trigger"})
		return Summary{}, err
	}
	sum := Summary{Source: req.Source, Ignored: req.Ignored, Verdicts: map[string]int{}}
	if h.Hub != nil {
		return h.dispatch(ctx, accountID, req, sum)
	}
	for _, ref := range req.Foreign {
		sum.Foreign = append(sum.Foreign, ref.Name())
	}
	for _, region := range req.ForeignRegions {
		sum.Foreign = append(sum.Foreign, "region "+region)
	}
	for _, src := range req.ForeignSources {
		sum.Foreign = append(sum.Foreign, src.Name())
	}
	if len(sum.Foreign) > 0 {
		h.Log.WarnContext(ctx, "instances outside this function's account and region are reported, not acted on",
			"source", req.Source, "foreign", sum.Foreign)
	}
	if req.Ignored != "" {
		h.Log.InfoContext(ctx, "event asks for nothing", "source", req.Source, "why", req.Ignored)
		return sum, nil
	}
	w := work{trigger: req.Source, sweep: len(req.Sweep) > 0, sources: req.Sources}
	for _, ref := range req.Refs {
		w.ids = append(w.ids, ref.InstanceID)
	}
	_, err = h.judge(ctx, h.home(accountID), w, &sum)
	return sum, err
}

// accountRegion is where a piece of work is judged: the function's own account-region,
// or a member's, reached through a session of its read role.
type accountRegion struct {
	account, region string
	clients         guard.Clients
	// sources is nil where the sources of instances are not judged.
	sources *Sources
}

func (h *Handler) home(accountID string) accountRegion {
	return accountRegion{account: accountID, region: h.Region, clients: h.Clients, sources: h.Sources}
}

// work is what to judge in one account-region.
type work struct {
	trigger string
	// sweep asks for every instance and source; otherwise ids and sources name them.
	sweep   bool
	ids     []string
	sources []trigger.SourceRef
	// sweepID is the sweep's, for a unit of one; a sweep without one gets a new one.
	sweepID string
	// continues is set for a unit of work: an instance whose evidence could not be read
	// in time is left over (judge returns it) instead of deferred.
	continues bool
}

// judge judges the work in ar and queues the verdicts. It returns the instances it left
// over for lack of time, when the work continues.
func (h *Handler) judge(ctx context.Context, ar accountRegion, w work, sum *Summary) (left []string, err error) {
	ids := w.ids
	// Which sources to judge: all of them on a sweep, the named ones for an event about
	// sources (with the instances they launched).
	var scope sourceScope
	var inv *sources.Inventory
	switch {
	case ar.sources == nil:
		if len(w.sources) > 0 && len(ids) == 0 && !w.sweep {
			h.Log.WarnContext(ctx, "the event names sources, which this function is not set up to judge", "source", w.trigger)
			return nil, nil
		}
	case w.sweep:
		scope.all = true
	case len(w.sources) > 0:
		var members []string
		members, scope, inv, err = h.sourceRequest(ctx, ar, w.sources)
		if err != nil {
			h.count("Errors", 1, map[string]string{"Stage": "sources"})
			return nil, err
		}
		if !scope.all && len(scope.named) == 0 {
			h.Log.InfoContext(ctx, "the sources the event names are not in the inventory (deleted since)", "source", w.trigger)
			if len(ids) == 0 {
				return nil, nil
			}
		}
		ids = append(ids, members...)
		if scope.all {
			ids = nil // every instance of the region
		} else if len(ids) == 0 {
			// Sources without instances: judged from none (they wait).
			return nil, h.queueSources(ctx, ar, w, sum, inv, scope)
		}
	}
	if len(ids) == 0 && !w.sweep && !scope.all {
		return nil, nil
	}
	now := h.Now().UTC()
	rolledBack, err := h.rollbacks(ctx, ar)
	if err != nil {
		h.count("Errors", 1, map[string]string{"Stage": "ledger"})
		return nil, err
	}
	judging := h.judgingTime(ctx, w.continues)
	assessments, err := guard.AssessKnowing(judging, ar.clients, ar.region, ids, h.Settings, now, nil, rolledBack)
	if err != nil {
		h.count("Errors", 1, map[string]string{"Stage": "evidence"})
		return nil, fmt.Errorf("judging the instances of %s in %s/%s: %w", w.trigger, ar.account, ar.region, err)
	}
	if w.continues {
		// The instances whose evidence ran out of time are the continuation's. Their
		// defers stay in the assessments the sources are judged from, which wait for them.
		for _, a := range assessments {
			if guard.OutOfTime(a) {
				left = append(left, a.Evidence.InstanceID)
			}
		}
	}
	sum.Instances += len(assessments) - len(left)
	h.holdLaterWaves(ctx, w.trigger, assessments)
	closeOut, err := h.ticketsToClose(ctx, ar, assessments)
	if err != nil {
		h.count("Errors", 1, map[string]string{"Stage": "tickets"})
		return nil, err
	}
	// A sweep's verdicts carry its id: remediate's per-sweep enforcement budget counts
	// against it.
	sweepID := w.sweepID
	if w.sweep && sweepID == "" {
		if sweepID, err = message.NewDecisionID(now); err != nil {
			return nil, err
		}
	}
	if sum.Verdicts == nil {
		sum.Verdicts = map[string]int{}
	}
	verdicts := map[string]int{}
	var messages []verdictqueue.Outgoing
	for _, a := range assessments {
		if w.continues && guard.OutOfTime(a) {
			continue
		}
		verdicts[string(a.Verdict.Action)]++
		h.logVerdict(ctx, w.trigger, a)
		if a.Verdict.Action == policy.ActionSkip && !closeOut[a.Evidence.InstanceID] {
			continue
		}
		if a.AccountID == "" {
			// Not found, or describing failed for every instance asked about: the
			// instances are the account-region's own.
			a.AccountID = ar.account
		}
		m, err := verdictqueue.NewOutgoing(a.Evidence, a.Verdict, a.AccountID, a.Region, sweepID, now)
		if err != nil {
			return nil, err
		}
		messages = append(messages, m)
	}
	for action, n := range verdicts {
		sum.Verdicts[action] += n
		h.count("Verdicts", n, map[string]string{"Action": action})
	}
	// A source that cannot be judged must not hold back the instances' verdicts: they
	// are queued, and the invocation then fails on the sources, to be retried.
	var sourcesErr error
	if scope.all || len(scope.named) > 0 {
		srcMessages, counts, err := h.judgeSources(ctx, ar, inv, scope, assessments, sweepID, now)
		if err != nil {
			h.count("Errors", 1, map[string]string{"Stage": "sources"})
			sourcesErr = err
		}
		addCounts(&sum.Sources, counts)
		for action, n := range counts {
			h.count("SourceVerdicts", n, map[string]string{"Action": action})
		}
		messages = append(messages, srcMessages...)
	}
	q := verdictqueue.Sender{Queue: h.Queue, QueueURL: h.QueueURL, Decisions: h.Decisions}
	sent, err := q.RecordAndSend(ctx, messages)
	sum.Sent += sent
	if err != nil {
		h.count("Errors", 1, map[string]string{"Stage": "queue"})
		return nil, errors.Join(err, sourcesErr)
	}
	return left, sourcesErr
}

// addCounts adds counts to *into, making it when it is nil.
func addCounts(into *map[string]int, counts map[string]int) {
	if len(counts) == 0 {
		return
	}
	if *into == nil {
		*into = map[string]int{}
	}
	for k, n := range counts {
		(*into)[k] += n
	}
}

// queueSources judges and queues the named sources alone, without instances.
func (h *Handler) queueSources(ctx context.Context, ar accountRegion, w work, sum *Summary, inv *sources.Inventory, scope sourceScope) error {
	messages, counts, err := h.judgeSources(ctx, ar, inv, scope, nil, w.sweepID, h.Now().UTC())
	if err != nil {
		h.count("Errors", 1, map[string]string{"Stage": "sources"})
		return err
	}
	addCounts(&sum.Sources, counts)
	q := verdictqueue.Sender{Queue: h.Queue, QueueURL: h.QueueURL, Decisions: h.Decisions}
	sent, err := q.RecordAndSend(ctx, messages)
	sum.Sent += sent
	if err != nil {
		h.count("Errors", 1, map[string]string{"Stage": "queue"})
		return fmt.Errorf("queueing the verdicts of %s: %w", w.trigger, err)
	}
	return nil
}

// holdLaterWaves defers the remediations of later waves than the earliest one with a
// remediation in this batch (policy.HoldLaterWaves): the queue does not keep order, so
// the earlier wave's candidates must be enforced, and so watched, before the gate can
// hold the later ones back.
func (h *Handler) holdLaterWaves(ctx context.Context, source string, assessments []guard.Assessment) {
	instances := make([]*policy.Instance, len(assessments))
	verdicts := make([]policy.Verdict, len(assessments))
	for i, a := range assessments {
		instances[i], verdicts[i] = a.Evidence.Instance, a.Verdict
	}
	if held := policy.HoldLaterWaves(instances, verdicts, h.Waves); held > 0 {
		for i := range assessments {
			assessments[i].Verdict = verdicts[i]
		}
		h.Log.InfoContext(ctx, "remediations of later waves held back for the earlier waves of this batch", "source", source, "held", held)
	}
}

// judgingTime leaves the end of the invocation for queueing the verdicts. A large sweep
// can have more CloudTrail lookups than 2 a second allow before Lambda's timeout: the
// lookups still waiting when judging time is up fail at once, and their instances are
// deferred (cloudtrail-unavailable) to a later sweep, rather than the whole invocation
// being killed with nothing queued.
func (h *Handler) judgingTime(ctx context.Context, continues bool) context.Context {
	deadline, ok := ctx.Deadline()
	if !ok {
		return ctx
	}
	reserve := h.QueueingReserve
	if reserve <= 0 {
		reserve = defaultQueueingReserve
	}
	if continues {
		reserve = h.unitReserve()
	}
	judging, cancel := context.WithDeadline(ctx, deadline.Add(-reserve))
	context.AfterFunc(ctx, cancel)
	return judging
}

// rollbacks reads the account-region's rollbacks, which rule 5b holds instances back
// for; none without a ledger.
func (h *Handler) rollbacks(ctx context.Context, ar accountRegion) (map[string]policy.Rollback, error) {
	if h.Rollbacks == nil {
		return nil, nil
	}
	rbs, err := h.Rollbacks.Rollbacks(ctx, ar.account, ar.region)
	if err != nil {
		return nil, fmt.Errorf("reading the rollbacks: %w", err)
	}
	return rbs, nil
}

// ticketsToClose names the skipped instances (compliant or gone) whose ticket is still
// open: their skip verdicts go to remediate, which closes the tickets.
func (h *Handler) ticketsToClose(ctx context.Context, ar accountRegion, assessments []guard.Assessment) (map[string]bool, error) {
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
	open, err := h.Tickets.OpenTickets(ctx, ar.account, ar.region)
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

func (h *Handler) count(metric string, n int, dims map[string]string) {
	if err := h.Metrics.Count(metric, n, dims); err != nil {
		h.Log.Error("writing a metric failed", "metric", metric, "error", err)
	}
}

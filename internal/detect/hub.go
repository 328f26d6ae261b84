package detect

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/trailquery"
	"github.com/imdsguard/imdsguard/internal/trigger"
	"github.com/imdsguard/imdsguard/internal/verdictqueue"
)

// The organization's detect (DESIGN.md section 11). Events and sweeps reach the hub's
// detect, which judges nothing then: it queues one unit of work per account-region on a
// FIFO queue whose message group is the account-region. The same function consumes that
// queue (HandleUnits): one invocation at a time per account-region, through a session of
// the member's read role, so that the member's LookupEvents quota is kept and a burst of
// events about one account-region is judged as one batch. A unit that cannot finish
// before its invocation's deadline queues its own continuation.

// Hub is what the organization's detect needs beyond a single account's.
type Hub struct {
	Organization policy.Organization
	// Accounts lists the accounts of the organization's units, for a sweep.
	Accounts AccountLister
	// Units is the FIFO queue of units of work.
	Units    QueueAPI
	UnitsURL string
	// Members are the clients of a member account-region, through its read role.
	Members Members
	// Concurrency bounds the account-regions judged at once by one invocation; zero
	// means defaultUnitConcurrency.
	Concurrency int
	// Reserve is the time a unit keeps at the end of its invocation for queueing its
	// verdicts and continuation; zero means defaultUnitReserve.
	Reserve time.Duration
	// Trail, when set, has each sweep query the organization trail's Athena table once
	// for the CloudTrail evidence of every member account-region, instead of LookupEvents.
	Trail *Trail
}

// Trail is the organization trail's table and the Athena client that queries it.
type Trail struct {
	Table  trailquery.Table
	Athena trailquery.API
}

// AccountLister lists the organization's member accounts (organization.Lister
// implements it).
type AccountLister interface {
	Accounts(ctx context.Context) ([]string, error)
}

// Members gives the clients of a member account-region.
type Members interface {
	Member(account, region string) Member
}

// Member is one member account-region's clients: the guard's, and those the sources
// are read with (nil: the sources are not judged).
type Member struct {
	Clients guard.Clients
	Sources *Sources
	// Reachable, when set, gets the member's session first: a member whose role cannot
	// be assumed fails its units, visibly, rather than defer every instance it names.
	Reachable func(ctx context.Context) error
}

const (
	defaultUnitConcurrency = 4
	// defaultUnitReserve keeps a unit's invocation more than a minute from its
	// deadline: judging stops two minutes before it, and queueing the verdicts of what
	// was judged (at 2 lookups a second, at most a few thousand) takes seconds.
	defaultUnitReserve = 2 * time.Minute
)

// dispatch queues the request's work as units of work: a sweep of the organization, one
// unit per member account-region, or one unit per account-region an event names.
func (h *Handler) dispatch(ctx context.Context, accountID string, req trigger.Request, sum Summary) (Summary, error) {
	now := h.Now().UTC()
	var units []message.Unit
	refuse := func(name, why string) {
		sum.Foreign = append(sum.Foreign, name+": "+why)
	}
	if req.Source == trigger.SourceSweep {
		accounts, err := h.Hub.Accounts.Accounts(ctx)
		if err != nil {
			h.count("Errors", 1, map[string]string{"Stage": "organization"})
			return sum, fmt.Errorf("the sweep of the organization: %w", err)
		}
		sweepID, err := message.NewDecisionID(now)
		if err != nil {
			return sum, err
		}
		members := h.Hub.Organization.Accounts(accounts)
		query, err := h.startTrailQuery(ctx, members, sweepID, now)
		if err != nil {
			h.count("Errors", 1, map[string]string{"Stage": "trail-query"})
			return sum, fmt.Errorf("the sweep of the organization: %w", err)
		}
		for _, account := range members {
			for _, region := range h.Hub.Organization.Regions {
				u, err := message.NewUnit(account, region, req.Source, sweepID, true, nil, nil, now)
				if err != nil {
					return sum, err
				}
				u.TrailQuery = query
				units = append(units, u)
			}
		}
	} else {
		if req.Ignored != "" && len(req.Foreign) == 0 && len(req.ForeignSources) == 0 {
			h.Log.InfoContext(ctx, "event asks for nothing", "source", req.Source, "why", req.Ignored)
			return sum, nil
		}
		type key struct{ account, region string }
		var order []key
		work := map[key]*message.Unit{}
		add := func(account, region string) *message.Unit {
			k := key{account, region}
			if u, ok := work[k]; ok {
				return u
			}
			order = append(order, k)
			work[k] = &message.Unit{}
			return work[k]
		}
		for _, ref := range append(slices.Clone(req.Refs), req.Foreign...) {
			if why := h.Hub.Organization.Admits(ref.AccountID, ref.Region); why != "" {
				refuse(ref.Name(), why)
				continue
			}
			u := add(ref.AccountID, ref.Region)
			if !slices.Contains(u.Instances, ref.InstanceID) {
				u.Instances = append(u.Instances, ref.InstanceID)
			}
		}
		sources := make([]trigger.ForeignSource, 0, len(req.Sources)+len(req.ForeignSources))
		for _, src := range req.Sources {
			sources = append(sources, trigger.ForeignSource{AccountID: accountID, Region: h.Region, Source: src})
		}
		for _, src := range append(sources, req.ForeignSources...) {
			if why := h.Hub.Organization.Admits(src.AccountID, src.Region); why != "" {
				refuse(src.Name(), why)
				continue
			}
			u := add(src.AccountID, src.Region)
			u.Sources = append(u.Sources, message.UnitSource{Kind: string(src.Source.Kind), ID: src.Source.ID, Name: src.Source.Name})
		}
		for _, k := range order {
			w := work[k]
			for chunk := range slices.Chunk(w.Instances, message.MaxUnitInstances) {
				u, err := message.NewUnit(k.account, k.region, req.Source, "", false, chunk, w.Sources, now)
				if err != nil {
					return sum, err
				}
				units = append(units, u)
				w.Sources = nil // once, with the first part
			}
			if len(w.Sources) > 0 {
				u, err := message.NewUnit(k.account, k.region, req.Source, "", false, nil, w.Sources, now)
				if err != nil {
					return sum, err
				}
				units = append(units, u)
			}
		}
	}
	if len(sum.Foreign) > 0 {
		h.Log.WarnContext(ctx, "instances and sources outside the organization's scope are reported, not acted on",
			"source", req.Source, "refused", sum.Foreign)
	}
	sent, err := h.queueUnits(ctx, units)
	sum.Units = sent
	if err != nil {
		h.count("Errors", 1, map[string]string{"Stage": "units"})
		return sum, fmt.Errorf("queueing the units of work of %s: %w", req.Source, err)
	}
	h.count("Units", sent, nil)
	h.Log.InfoContext(ctx, "units of work queued", "source", req.Source, "units", sent)
	return sum, nil
}

// startTrailQuery starts the sweep's query of the organization trail over the members
// and the lookback, or returns nil without a trail table. A query that cannot be started
// fails the sweep: its units would have no CloudTrail evidence.
func (h *Handler) startTrailQuery(ctx context.Context, accounts []string, sweepID string, now time.Time) (*message.UnitTrailQuery, error) {
	if h.Hub.Trail == nil || len(accounts) == 0 {
		return nil, nil
	}
	end := now.UTC().Truncate(time.Millisecond)
	w := trailquery.Window{Accounts: accounts, Regions: h.Hub.Organization.Regions, Start: end.Add(-h.Settings.Lookback), End: end}
	id, err := trailquery.Start(ctx, h.Hub.Trail.Athena, h.Hub.Trail.Table, w, "imdsguard-sweep-"+sweepID)
	if err != nil {
		return nil, err
	}
	h.Log.InfoContext(ctx, "the organization trail's query started", "query_execution_id", id, "accounts", len(accounts),
		"regions", len(w.Regions), "start", w.Start, "end", w.End)
	return &message.UnitTrailQuery{ID: id, Start: w.Start, End: w.End}, nil
}

// queueUnits sends units to the FIFO queue, each in its account-region's group.
func (h *Handler) queueUnits(ctx context.Context, units []message.Unit) (int, error) {
	entries := make([]verdictqueue.Entry, 0, len(units))
	for _, u := range units {
		body, err := u.Encode()
		if err != nil {
			return 0, err
		}
		entries = append(entries, verdictqueue.Entry{Body: string(body), GroupID: u.GroupID(), DeduplicationID: u.DeduplicationID()})
	}
	return verdictqueue.Send(ctx, h.Hub.Units, h.Hub.UnitsURL, entries)
}

// unitGroup is the units of one account-region in a batch, judged together.
type unitGroup struct {
	account, region string
	units           []message.Unit
	messageIDs      []string
}

// HandleUnits judges a batch of units of work from the FIFO queue and reports the
// messages that failed, so that SQS retries them (and, after its receive limit, moves
// them to the dead-letter queue). The units of one account-region are merged: a burst
// of events about it becomes one judgement. A unit that is malformed, or outside the
// organization's scope, fails alone, and so does every later unit of its account-region
// in the batch (a FIFO group keeps its order).
func (h *Handler) HandleUnits(ctx context.Context, batch events.SQSEvent) (UnitsSummary, events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	var sum UnitsSummary
	if h.Hub == nil {
		return sum, resp, fmt.Errorf("units of work reached a detect that is not the organization's hub (IMDSGUARD_UNITS_QUEUE_URL is not set)")
	}
	var groups []*unitGroup
	byKey := map[string]*unitGroup{}
	failed := map[string]bool{} // account-regions with a failed unit in this batch
	fail := func(messageID string) {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: messageID})
	}
	for _, rec := range batch.Records {
		group := rec.Attributes["MessageGroupId"]
		u, err := message.ParseUnit(rec.Body)
		if err == nil {
			if why := h.Hub.Organization.Admits(u.AccountID, u.Region); why != "" {
				err = fmt.Errorf("unit %s refused: %s", u.UnitID, why)
			} else if group != "" && group != u.GroupID() {
				err = fmt.Errorf("unit %s about %s came in message group %q", u.UnitID, u.GroupID(), group)
			}
		}
		if err != nil || (group != "" && failed[group]) {
			if err != nil {
				h.count("Refused", 1, map[string]string{"Stage": "units"})
				h.Log.ErrorContext(ctx, "unit of work refused; it goes to the dead-letter queue after its retries",
					"message_id", rec.MessageId, "error", err.Error())
			}
			if group != "" {
				failed[group] = true
				if g, ok := byKey[group]; ok {
					// The group's earlier units are retried with it, in order.
					for _, id := range g.messageIDs {
						fail(id)
					}
					delete(byKey, group)
					groups = slices.DeleteFunc(groups, func(x *unitGroup) bool { return x == g })
				}
			}
			fail(rec.MessageId)
			continue
		}
		g, ok := byKey[u.GroupID()]
		if !ok {
			g = &unitGroup{account: u.AccountID, region: u.Region}
			byKey[u.GroupID()] = g
			groups = append(groups, g)
		}
		g.units = append(g.units, u)
		g.messageIDs = append(g.messageIDs, rec.MessageId)
	}

	concurrency := h.Hub.Concurrency
	if concurrency <= 0 {
		concurrency = defaultUnitConcurrency
	}
	var mu sync.Mutex
	slots := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i, g := range groups {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			judge := h.judgeUnits
			if i >= concurrency && h.tooLateToStart(ctx) {
				// It waited for its turn until too close to the end of the invocation's
				// judging time: it is queued again as it is, to start an invocation of its
				// own, rather than be judged on no time and failed. (The first ones are
				// judged whatever the time: they continue, or fail when they judge nothing.)
				judge = h.requeueUnits
			}
			one, err := judge(ctx, g)
			mu.Lock()
			defer mu.Unlock()
			sum.add(one)
			if err != nil {
				h.count("Errors", 1, map[string]string{"Stage": "units"})
				h.Log.ErrorContext(ctx, "units of work failed; SQS will retry them", "account_id", g.account, "region", g.region,
					"messages", g.messageIDs, "error", err.Error())
				for _, id := range g.messageIDs {
					fail(id)
				}
			}
		})
	}
	wg.Wait()
	return sum, resp, nil
}

// minUnitTime is the least judging time an account-region is started with; one whose
// turn in a batch comes later is queued again.
const minUnitTime = time.Minute

// tooLateToStart reports whether the invocation's judging time (its deadline less the
// reserve) has less than minUnitTime left.
func (h *Handler) tooLateToStart(ctx context.Context) bool {
	deadline, ok := ctx.Deadline()
	return ok && time.Until(deadline.Add(-h.unitReserve())) < minUnitTime
}

// requeueUnits queues the account-region's units again as they are, each a part further
// (a new deduplication id), and counts them as continued.
func (h *Handler) requeueUnits(ctx context.Context, g *unitGroup) (UnitsSummary, error) {
	sum := UnitsSummary{AccountRegions: 1, Continued: 1, Summary: Summary{Verdicts: map[string]int{}}}
	again := make([]message.Unit, len(g.units))
	for i, u := range g.units {
		u.Part++
		again[i] = u
	}
	sent, err := h.queueUnits(ctx, again)
	sum.Units = sent
	if err != nil {
		return sum, fmt.Errorf("%s/%s: queueing its units again: %w", g.account, g.region, err)
	}
	h.Log.InfoContext(ctx, "units queued again: their turn came too late in this invocation", "account_id", g.account, "region", g.region, "units", len(again))
	return sum, nil
}

// UnitsSummary is what one invocation over units of work did.
type UnitsSummary struct {
	Summary
	// AccountRegions is how many account-regions were judged; Continued how many of
	// them left instances to a continuation, and Left how many instances in all.
	AccountRegions int `json:"account_regions"`
	Continued      int `json:"continued"`
	Left           int `json:"left"`
}

func (s *UnitsSummary) add(o UnitsSummary) {
	if s.Verdicts == nil {
		s.Verdicts = map[string]int{}
	}
	s.Source = "units"
	s.Instances += o.Instances
	s.Sent += o.Sent
	s.Units += o.Units
	addCounts(&s.Verdicts, o.Verdicts)
	addCounts(&s.Sources, o.Sources)
	s.AccountRegions += o.AccountRegions
	s.Continued += o.Continued
	s.Left += o.Left
}

// judgeUnits judges the merged units of one account-region through its member session,
// and queues the continuation of what it left over.
func (h *Handler) judgeUnits(ctx context.Context, g *unitGroup) (UnitsSummary, error) {
	sum := UnitsSummary{AccountRegions: 1, Summary: Summary{Verdicts: map[string]int{}}}
	member := h.Hub.Members.Member(g.account, g.region)
	if member.Reachable != nil {
		if err := member.Reachable(ctx); err != nil {
			return sum, fmt.Errorf("%s/%s cannot be reached: %w", g.account, g.region, err)
		}
	}
	ar := accountRegion{account: g.account, region: g.region, clients: member.Clients, sources: member.Sources}
	if q := trailQueryOf(g.units); q != nil {
		if h.Hub.Trail == nil {
			return sum, fmt.Errorf("%s/%s: the unit names the trail query %s, and this hub has no trail table", g.account, g.region, q.ID)
		}
		ar.clients.Trail = &trailquery.Results{API: h.Hub.Trail.Athena, Table: h.Hub.Trail.Table, QueryID: q.ID, Account: g.account, Region: g.region,
			Window: trailquery.Window{Start: q.Start, End: q.End}}
	}
	w := work{continues: true}
	var triggers []string
	var seenSources []message.UnitSource
	for _, u := range g.units {
		if !slices.Contains(triggers, u.Trigger) {
			triggers = append(triggers, u.Trigger)
		}
		if u.Sweep {
			w.sweep = true
		}
		if w.sweepID == "" {
			w.sweepID = u.SweepID
		}
		w.ids = append(w.ids, u.Instances...)
		for _, s := range u.Sources {
			if !slices.Contains(seenSources, s) {
				seenSources = append(seenSources, s)
				w.sources = append(w.sources, trigger.SourceRef{Kind: trigger.SourceRefKind(s.Kind), ID: s.ID, Name: s.Name})
			}
		}
	}
	if w.sweep {
		w.ids, w.sources = nil, nil
	}
	slices.Sort(w.ids)
	w.ids = slices.Compact(w.ids)
	w.trigger = fmt.Sprintf("%s (units of %s/%s)", triggers[0], g.account, g.region)
	left, err := h.judge(ctx, ar, w, &sum.Summary)
	if err != nil {
		return sum, fmt.Errorf("%s/%s: %w", g.account, g.region, err)
	}
	if len(left) == 0 {
		return sum, nil
	}
	if sum.Instances == 0 {
		// Nothing could be judged in the time this invocation had: a continuation would
		// fare no better. The unit fails, to be retried, and reaches the dead-letter queue
		// if it never can.
		return sum, fmt.Errorf("%s/%s: no instance of %d could be judged before the invocation's deadline, less its reserve of %v",
			g.account, g.region, len(left), h.unitReserve())
	}
	// The continuation carries the latest unit's id and part on, with the sweep's id.
	last := g.units[len(g.units)-1]
	for _, u := range g.units {
		if u.Part > last.Part {
			last = u
		}
	}
	last.SweepID = w.sweepID
	last.Trigger = triggers[0]
	last.TrailQuery = trailQueryOf(g.units)
	next := last.Continuations(left)
	sent, err := h.queueUnits(ctx, next)
	sum.Units += sent
	if err != nil {
		return sum, fmt.Errorf("%s/%s: queueing the continuation of %d instances: %w", g.account, g.region, len(left), err)
	}
	sum.Continued, sum.Left = 1, len(left)
	h.Log.InfoContext(ctx, "unit continues: instances left for lack of time", "account_id", g.account, "region", g.region,
		"left", len(left), "continuations", len(next), "part", next[0].Part)
	return sum, nil
}

func (h *Handler) unitReserve() time.Duration {
	if h.Hub.Reserve > 0 {
		return h.Hub.Reserve
	}
	return defaultUnitReserve
}

// trailQueryOf is the trail query of the units, a sweep's: it covers every instance of
// the account-region, and so those of the events merged with it.
func trailQueryOf(units []message.Unit) *message.UnitTrailQuery {
	for _, u := range units {
		if u.TrailQuery != nil {
			return u.TrailQuery
		}
	}
	return nil
}

// MembersFunc makes a function a Members.
type MembersFunc func(account, region string) Member

// Member calls f.
func (f MembersFunc) Member(account, region string) Member { return f(account, region) }

// AsUnits returns the SQS batch an invocation brings, when it is one: the hub's units of
// work. Anything else (EventBridge events, sweeps, direct invocations) is not.
func AsUnits(event json.RawMessage) (events.SQSEvent, bool) {
	var batch events.SQSEvent
	if json.Unmarshal(event, &batch) != nil || len(batch.Records) == 0 {
		return events.SQSEvent{}, false
	}
	for _, r := range batch.Records {
		if r.EventSource != "aws:sqs" {
			return events.SQSEvent{}, false
		}
	}
	return batch, true
}

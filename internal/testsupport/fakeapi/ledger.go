package fakeapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// Decision statuses, as package ledger keeps them.
const (
	DecisionRecorded = decisionlog.StatusRecorded
	DecisionClaimed  = "claimed"
	DecisionReleased = "released"
	DecisionFailed   = "failed"
	DecisionDone     = "done"
)

// Decision is a decision as the fake ledger holds it: what detect recorded, and what
// became of it.
type Decision struct {
	decisionlog.Decision
	Status     string
	ClaimUntil time.Time
	Attempts   int
	Result     string
}

// LedgerCall is one call of the remediate.Ledger interface.
type LedgerCall struct {
	Op         string // "Claim", "Release", "Record", "Snapshot", "GetTicket", "PutTicket"
	DecisionID string
	Ref        ledger.Ref
	Outcome    *ledger.Outcome // Record
	Ticket     *ledger.Ticket  // PutTicket
	Err        error           // what the call returned
}

// Ledger is an in-process ledger implementing remediate.Ledger with the semantics of
// ledger.Ledger: Claim authenticates the message against the decisions detect recorded
// (RecordDecision) and returns ledger.ErrNotRecorded, ErrAltered, ErrDone or
// ErrInProgress as it does; Release drops only a claim; Record marks the decision done
// (failed for ResultFailed) and refuses a second record of a done decision with
// ErrDone; Snapshot keeps the first snapshot of an instance.
type Ledger struct {
	Journal *Journal

	mu        sync.Mutex
	decisions map[string]*Decision
	snapshots map[ledger.Ref]ledger.Snapshot
	tickets   map[ledger.Ref]ledger.Ticket
	outcomes  []ledger.Outcome
	calls     []LedgerCall
	fail      failures
	rollbacks map[ledger.Ref]policy.Rollback
	rollout   ledger.Rollout
	budget    map[time.Time]int // slots taken by clock hour
}

// NewLedger returns an empty ledger.
func NewLedger(journal *Journal) *Ledger {
	return &Ledger{
		Journal:   journal,
		decisions: map[string]*Decision{},
		snapshots: map[ledger.Ref]ledger.Snapshot{},
		tickets:   map[ledger.Ref]ledger.Ticket{},
		rollbacks: map[ledger.Ref]policy.Rollback{},
		budget:    map[time.Time]int{},
		fail: failures{known: []string{"Claim", "Release", "Record", "Snapshot", "GetTicket", "PutTicket",
			"GetRollback", "ReadRollout", "TakeBudget"}},
	}
}

// SetRollback keeps a rollback of the instance, as verify would have.
func (l *Ledger) SetRollback(ref ledger.Ref, rb policy.Rollback) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rollbacks[ref] = rb
}

// SetRollout sets what ReadRollout returns (its rollbacks aside, which are SetRollback's).
func (l *Ledger) SetRollout(r ledger.Rollout) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rollout = r
}

// BudgetUsed is how many enforcement slots were taken in the hour.
func (l *Ledger) BudgetUsed(hour time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.budget[hour]
}

// GetRollback implements remediate.Ledger.
func (l *Ledger) GetRollback(ctx context.Context, ref ledger.Ref) (*policy.Rollback, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.begin(LedgerCall{Op: "GetRollback", Ref: ref})
	if err != nil {
		return nil, l.end(n, err)
	}
	rb, ok := l.rollbacks[ref]
	if !ok {
		return nil, l.end(n, ctx.Err())
	}
	return &rb, l.end(n, ctx.Err())
}

// ReadRollout implements remediate.Ledger.
func (l *Ledger) ReadRollout(ctx context.Context, account, region string) (ledger.Rollout, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.begin(LedgerCall{Op: "ReadRollout", Ref: ledger.Ref{AccountID: account, Region: region}})
	if err != nil {
		return ledger.Rollout{}, l.end(n, err)
	}
	r := l.rollout
	r.Rollbacks = map[string]policy.Rollback{}
	for ref, rb := range l.rollbacks {
		if ref.AccountID == account && ref.Region == region {
			r.Rollbacks[ref.InstanceID] = rb
		}
	}
	return r, l.end(n, ctx.Err())
}

// TakeBudget implements remediate.Ledger: the hourly limit only, one counter per hour.
func (l *Ledger) TakeBudget(ctx context.Context, b ledger.Budget, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.begin(LedgerCall{Op: "TakeBudget", Ref: ledger.Ref{AccountID: b.AccountID, Region: b.Region}})
	if err != nil {
		return l.end(n, err)
	}
	if l.budget[b.Hour] >= b.MaxPerHour {
		return l.end(n, &ledger.BudgetSpentError{Kind: policy.BudgetHour})
	}
	l.budget[b.Hour]++
	return l.end(n, ctx.Err())
}

// RecordDecision records a decision as detect does (decisionlog.Log): never twice under
// one id. It is not a call of remediate.Ledger and is not recorded as one.
func (l *Ledger) RecordDecision(d decisionlog.Decision) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d.DecisionID == "" || d.Digest == "" || d.CreatedAt.IsZero() {
		return fmt.Errorf("fakeapi: decision %q needs an id, a digest and a creation time", d.DecisionID)
	}
	if _, ok := l.decisions[d.DecisionID]; ok {
		return fmt.Errorf("fakeapi: decision %s is already recorded", d.DecisionID)
	}
	l.decisions[d.DecisionID] = &Decision{Decision: d, Status: DecisionRecorded}
	return nil
}

// FailNext makes the next calls of op ("Claim", "Record", ...) fail, one per error; a
// nil error lets that call through.
func (l *Ledger) FailNext(op string, errs ...error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail.failNext(op, errs...)
}

// Decision returns the decision as it is now.
func (l *Ledger) Decision(id string) (Decision, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d, ok := l.decisions[id]
	if !ok {
		return Decision{}, false
	}
	return *d, true
}

// Outcomes returns the outcomes recorded, oldest first.
func (l *Ledger) Outcomes() []ledger.Outcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.outcomes)
}

// SnapshotOf returns the instance's snapshot, or nil.
func (l *Ledger) SnapshotOf(ref ledger.Ref) *ledger.Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.snapshots[ref]
	if !ok {
		return nil
	}
	return &s
}

// TicketOf returns the instance's ticket, or nil; no call is recorded.
func (l *Ledger) TicketOf(ref ledger.Ref) *ledger.Ticket {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.tickets[ref]
	if !ok {
		return nil
	}
	return &t
}

// SetTicket stores the instance's ticket as an earlier invocation would have; no call is
// recorded.
func (l *Ledger) SetTicket(t ledger.Ticket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tickets[t.Ref] = t
}

// Calls returns the calls made so far, oldest first.
func (l *Ledger) Calls() []LedgerCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// ForgetCalls forgets the calls recorded so far; the state stays.
func (l *Ledger) ForgetCalls() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = nil
}

// begin records the call and returns the error set for it. The caller holds l.mu.
func (l *Ledger) begin(c LedgerCall) (int, error) {
	l.Journal.add("ledger:" + c.Op)
	l.calls = append(l.calls, c)
	return len(l.calls) - 1, l.fail.take(c.Op)
}

// end notes what call n returned.
func (l *Ledger) end(n int, err error) error {
	l.calls[n].Err = err
	return err
}

// Claim implements remediate.Ledger.
func (l *Ledger) Claim(ctx context.Context, decisionID string, ref ledger.Ref, digest string, now time.Time, ttl time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.begin(LedgerCall{Op: "Claim", DecisionID: decisionID, Ref: ref})
	if err != nil {
		return l.end(n, err)
	}
	return l.end(n, l.claim(ctx, decisionID, ref, digest, now, ttl))
}

func (l *Ledger) claim(ctx context.Context, decisionID string, ref ledger.Ref, digest string, now time.Time, ttl time.Duration) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case validID(decisionID) != nil:
		return fmt.Errorf("ledger: claim: %w", validID(decisionID))
	case validRef(ref) != nil:
		return fmt.Errorf("ledger: claim decision %s: %w", decisionID, validRef(ref))
	case ttl <= 0:
		return fmt.Errorf("ledger: claim decision %s: ttl %v is not positive", decisionID, ttl)
	case now.IsZero():
		return fmt.Errorf("ledger: claim decision %s: now is the zero time", decisionID)
	}
	d, ok := l.decisions[decisionID]
	switch {
	case !ok:
		return fmt.Errorf("ledger: decision %s about %s is not in the fake ledger: %w", decisionID, refName(ref), ledger.ErrNotRecorded)
	case d.Digest != digest || d.AccountID != ref.AccountID || d.Region != ref.Region || d.InstanceID != ref.InstanceID:
		return fmt.Errorf("ledger: decision %s was recorded about %s/%s/%s with digest %.12s, the message is about %s with digest %.12s: %w",
			decisionID, d.AccountID, d.Region, d.InstanceID, d.Digest, refName(ref), digest, ledger.ErrAltered)
	case d.Status == DecisionDone:
		return fmt.Errorf("ledger: decision %s was recorded as %s: %w", decisionID, d.Result, ledger.ErrDone)
	case d.ClaimUntil.After(now):
		return fmt.Errorf("ledger: decision %s is claimed until %s (attempt %d): %w", decisionID, d.ClaimUntil.Format(time.RFC3339), d.Attempts, ledger.ErrInProgress)
	}
	d.Status, d.ClaimUntil = DecisionClaimed, now.Add(ttl)
	d.Attempts++
	return nil
}

// Release implements remediate.Ledger: it drops a claim, and does nothing to a decision
// that is not claimed.
func (l *Ledger) Release(ctx context.Context, decisionID string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.begin(LedgerCall{Op: "Release", DecisionID: decisionID})
	if err != nil {
		return l.end(n, err)
	}
	if err := ctx.Err(); err != nil {
		return l.end(n, err)
	}
	if err := validID(decisionID); err != nil {
		return l.end(n, fmt.Errorf("ledger: release: %w", err))
	}
	if d, ok := l.decisions[decisionID]; ok && d.Status == DecisionClaimed {
		d.Status, d.ClaimUntil = DecisionReleased, time.Time{}
	}
	return l.end(n, nil)
}

// Record implements remediate.Ledger.
func (l *Ledger) Record(ctx context.Context, o ledger.Outcome) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.begin(LedgerCall{Op: "Record", DecisionID: o.DecisionID, Ref: o.Ref, Outcome: &o})
	if err != nil {
		return l.end(n, err)
	}
	if err := ctx.Err(); err != nil {
		return l.end(n, err)
	}
	if err := validOutcome(o); err != nil {
		return l.end(n, fmt.Errorf("ledger: record: %w", err))
	}
	d, ok := l.decisions[o.DecisionID]
	switch {
	case !ok:
		return l.end(n, fmt.Errorf("ledger: record %s for decision %s: %w", o.Result, o.DecisionID, ledger.ErrNotRecorded))
	case d.Status == DecisionDone:
		return l.end(n, fmt.Errorf("ledger: record %s for decision %s: already done (recorded as %s): %w", o.Result, o.DecisionID, d.Result, ledger.ErrDone))
	}
	d.Status, d.Result, d.ClaimUntil = DecisionDone, o.Result, time.Time{}
	if o.Result == ledger.ResultFailed {
		d.Status = DecisionFailed
	}
	l.outcomes = append(l.outcomes, o)
	return l.end(n, nil)
}

// Snapshot implements remediate.Ledger: the first snapshot of an instance is kept and
// returned.
func (l *Ledger) Snapshot(ctx context.Context, ref ledger.Ref, prior policy.MetadataOptions, decisionID string, at time.Time) (ledger.Snapshot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.begin(LedgerCall{Op: "Snapshot", DecisionID: decisionID, Ref: ref})
	if err != nil {
		return ledger.Snapshot{}, l.end(n, err)
	}
	switch {
	case ctx.Err() != nil:
		return ledger.Snapshot{}, l.end(n, ctx.Err())
	case validRef(ref) != nil:
		return ledger.Snapshot{}, l.end(n, fmt.Errorf("ledger: snapshot: %w", validRef(ref)))
	case validID(decisionID) != nil:
		return ledger.Snapshot{}, l.end(n, fmt.Errorf("ledger: snapshot of %s: %w", refName(ref), validID(decisionID)))
	case at.IsZero():
		return ledger.Snapshot{}, l.end(n, fmt.Errorf("ledger: snapshot of %s: time is the zero time", refName(ref)))
	}
	if s, ok := l.snapshots[ref]; ok {
		return s, l.end(n, nil)
	}
	s := ledger.Snapshot{Ref: ref, Options: prior, DecisionID: decisionID, At: at.UTC()}
	l.snapshots[ref] = s
	return s, l.end(n, nil)
}

// GetSnapshot implements remediate.Ledger: the instance's snapshot, or nil.
func (l *Ledger) GetSnapshot(ctx context.Context, ref ledger.Ref) (*ledger.Snapshot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.begin(LedgerCall{Op: "GetSnapshot", Ref: ref})
	if err != nil {
		return nil, l.end(n, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, l.end(n, err)
	}
	s, ok := l.snapshots[ref]
	if !ok {
		return nil, l.end(n, nil)
	}
	return &s, l.end(n, nil)
}

// GetTicket implements remediate.Ledger.
func (l *Ledger) GetTicket(ctx context.Context, ref ledger.Ref) (*ledger.Ticket, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.begin(LedgerCall{Op: "GetTicket", Ref: ref})
	if err != nil {
		return nil, l.end(n, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, l.end(n, err)
	}
	t, ok := l.tickets[ref]
	if !ok {
		return nil, l.end(n, nil)
	}
	return &t, l.end(n, nil)
}

// PutTicket implements remediate.Ledger.
func (l *Ledger) PutTicket(ctx context.Context, t ledger.Ticket) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.begin(LedgerCall{Op: "PutTicket", Ref: t.Ref, Ticket: &t})
	if err != nil {
		return l.end(n, err)
	}
	if err := ctx.Err(); err != nil {
		return l.end(n, err)
	}
	if err := validRef(t.Ref); err != nil {
		return l.end(n, fmt.Errorf("ledger: ticket: %w", err))
	}
	switch {
	case t.Backend == "" || t.TicketRef == "":
		return l.end(n, fmt.Errorf("ledger: ticket of %s needs a backend and a reference", refName(t.Ref)))
	case t.Status != ledger.TicketOpen && t.Status != ledger.TicketResolved:
		return l.end(n, fmt.Errorf("ledger: ticket of %s: status %q is not open or resolved", refName(t.Ref), t.Status))
	case t.OpenedAt.IsZero() || t.UpdatedAt.IsZero():
		return l.end(n, fmt.Errorf("ledger: ticket of %s needs its opened and updated times", refName(t.Ref)))
	}
	l.tickets[t.Ref] = t
	return l.end(n, nil)
}

func refName(r ledger.Ref) string { return r.AccountID + "/" + r.Region + "/" + r.InstanceID }

func validID(id string) error {
	if id == "" || strings.Contains(id, "#") {
		return fmt.Errorf("decision id %q is empty or contains '#'", id)
	}
	return nil
}

func validRef(r ledger.Ref) error {
	for _, v := range []string{r.AccountID, r.Region, r.InstanceID} {
		if v == "" || strings.Contains(v, "#") {
			return fmt.Errorf("instance %s: an account id, region or instance id is empty or contains '#'", refName(r))
		}
	}
	return nil
}

func validOutcome(o ledger.Outcome) error {
	var errs []error
	if err := validID(o.DecisionID); err != nil {
		errs = append(errs, err)
	}
	if err := validRef(o.Ref); err != nil {
		errs = append(errs, err)
	}
	if o.At.IsZero() {
		errs = append(errs, errors.New("the outcome's time is the zero time"))
	}
	if !slices.Contains(ledger.Results, o.Result) {
		errs = append(errs, fmt.Errorf("result %q is not one of %s", o.Result, strings.Join(ledger.Results, ", ")))
	}
	if o.Action == "" {
		errs = append(errs, errors.New("action is empty"))
	}
	return errors.Join(errs...)
}

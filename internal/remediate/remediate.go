// Package remediate is the remediate Lambda's logic: each verdict message from the queue
// is authenticated against the ledger, checked against the instance as it is now by the
// policy (policy.RecheckQueued), and then enforced, ticketed or recorded as deferred;
// every outcome is written to the ledger exactly once. The handler gathers, the policy
// decides, the handler writes.
package remediate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/ticket"
)

// Enforcer changes an instance's metadata options (enforce.Enforcer implements it).
type Enforcer interface {
	DryRun(ctx context.Context, instanceID string, current, target policy.MetadataOptions) error
	Apply(ctx context.Context, instanceID string, current, target policy.MetadataOptions) (policy.MetadataOptions, error)
}

// Ledger is the part of the ledger remediate uses (ledger.Ledger implements it).
type Ledger interface {
	Claim(ctx context.Context, decisionID string, ref ledger.Ref, digest string, now time.Time, ttl time.Duration) error
	Release(ctx context.Context, decisionID string) error
	Record(ctx context.Context, o ledger.Outcome) error
	Snapshot(ctx context.Context, ref ledger.Ref, prior policy.MetadataOptions, decisionID string, at time.Time) (ledger.Snapshot, error)
	GetSnapshot(ctx context.Context, ref ledger.Ref) (*ledger.Snapshot, error)
	GetTicket(ctx context.Context, ref ledger.Ref) (*ledger.Ticket, error)
	PutTicket(ctx context.Context, t ledger.Ticket) error
	GetRollback(ctx context.Context, ref ledger.Ref) (*policy.Rollback, error)
	ReadRollout(ctx context.Context, account, region string) (ledger.Rollout, error)
	TakeBudget(ctx context.Context, b ledger.Budget, now time.Time) error
}

// PauseSwitch is the operators' kill switch (pause.Switch implements it).
type PauseSwitch interface {
	Paused(ctx context.Context) (paused bool, by string, err error)
}

// Handler handles one batch of verdict messages.
type Handler struct {
	Settings policy.Settings
	// Limits bound how long and how far ahead of now a queued verdict is trusted.
	Limits policy.RecheckLimits
	// ClaimTTL is how long a decision stays claimed by an invocation that may have
	// crashed: the queue's visibility timeout.
	ClaimTTL time.Duration
	Region   string
	Clients  guard.Clients
	Enforcer Enforcer
	Ledger   Ledger
	// Tickets is where tickets are opened; nil for none (the CLI's apply), in which case
	// no ticket is opened or closed here.
	Tickets ticket.Backend
	// Rollout are the limits every enforcement passes (DESIGN.md section 9); Pause is the
	// kill switch, read before each enforcement (nil: there is none).
	Rollout policy.RolloutSettings
	Pause   PauseSwitch
	// Sources and SourceLedger fix the sources of instances (DESIGN.md section 10); a
	// Handler without them refuses to fix one (the message fails, and is retried).
	Sources      SourceFixer
	SourceLedger SourceLedger
	// Organization and Members, when set, make this the organization's remediate
	// (DESIGN.md section 11): a verdict about a member account-region the organization
	// admits is acted on there, through the member's enforce role. Every other account
	// and region than the function's own is foreign, and refused.
	Organization *policy.Organization
	Members      Members
	Now          func() time.Time
	Log          *slog.Logger
	Metrics      *emf.Emitter
}

// Members gives the clients of a member account-region.
type Members interface {
	Member(account, region string) Member
}

// Member is what remediate acts with in one member account-region.
type Member struct {
	Clients  guard.Clients
	Enforcer Enforcer
	Sources  SourceFixer
}

// MembersFunc makes a function a Members.
type MembersFunc func(account, region string) Member

// Member calls f.
func (f MembersFunc) Member(account, region string) Member { return f(account, region) }

// in returns the handler that acts in account's region, and whether that is foreign:
// neither the function's own account-region (home's) nor a member the organization
// admits. A member's handler is this one with the member's clients.
func (h *Handler) in(home, account, region string) (*Handler, bool) {
	if account == home && region == h.Region {
		return h, false
	}
	if h.Members == nil || h.Organization == nil || h.Organization.Admits(account, region) != "" {
		return h, true
	}
	m := h.Members.Member(account, region)
	member := *h
	member.Region, member.Clients, member.Enforcer, member.Sources = region, m.Clients, m.Enforcer, m.Sources
	return &member, false
}

// RefusedError is a message remediate will not act on: forged, altered, foreign or
// dated in the future. It fails the message, so that after the queue's receive limit it
// lands on the dead-letter queue, where its alarm calls for a person.
type RefusedError struct {
	MessageID, DecisionID, InstanceID string
	Why                               string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("message %s (decision %s about %s) refused: %s", e.MessageID, e.DecisionID, e.InstanceID, e.Why)
}

// Handle processes every message of the batch and reports the ones that failed, so SQS
// retries only those (and, after the queue's receive limit, moves them to the DLQ).
// accountID is the function's own account: verdicts about any other are refused.
func (h *Handler) Handle(ctx context.Context, accountID string, batch events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	for _, rec := range batch.Records {
		if err := h.process(ctx, accountID, rec); err != nil {
			var refused *RefusedError
			if errors.As(err, &refused) {
				h.count("Refused", nil)
				h.Log.ErrorContext(ctx, "verdict message refused; it goes to the dead-letter queue after its retries",
					"message_id", rec.MessageId, "decision_id", refused.DecisionID, "instance_id", refused.InstanceID, "why", refused.Why)
			} else {
				h.count("Errors", map[string]string{"Stage": "remediate"})
				h.Log.ErrorContext(ctx, "verdict message failed; SQS will retry it", "message_id", rec.MessageId, "error", err.Error())
			}
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		}
	}
	return resp, nil
}

func (h *Handler) process(ctx context.Context, accountID string, rec events.SQSMessage) error {
	if message.SchemaOf(rec.Body) == message.SourceSchema {
		return h.processSource(ctx, accountID, rec)
	}
	v, err := message.Parse(rec.Body)
	if err != nil {
		return fmt.Errorf("message %s: %w", rec.MessageId, err)
	}
	now := h.Now().UTC()
	ref := refOf(v)
	h, foreign := h.in(accountID, v.AccountID, v.Region)
	in := policy.RecheckInput{Queued: policy.QueuedVerdict{
		Foreign: foreign,
		Action:  v.Action, Reasons: v.Reasons, CreatedAt: v.CreatedAt, Seen: v.Seen(),
	}}
	if last := v.Evidence.LastDatapoint; last != nil {
		in.Queued.UsageFrom = *last
	}
	claim, err := h.claim(ctx, v.DecisionID, ref, rec.Body, in.Queued.Foreign, now)
	if err != nil || claim.done {
		return err
	}
	in.Queued.Authenticity = claim.authenticity
	outcome, err := h.recheckAndAct(ctx, v, in, now)
	return h.finish(ctx, rec, v.DecisionID, ref, claim.claimed, outcome, err, now)
}

// claimed is what the ledger said to a claim of a decision.
type claimed struct {
	authenticity policy.Authenticity
	// claimed is set when this invocation holds the decision; done when it was processed
	// already (a redelivery: nothing to do).
	claimed, done bool
}

// claim claims the decision of a message about ref. The claim authenticates the message
// too: it succeeds only for the decision detect recorded, with this very body. A foreign
// message is not claimed (it is refused).
func (h *Handler) claim(ctx context.Context, decisionID string, ref ledger.Ref, body string, foreign bool, now time.Time) (claimed, error) {
	if foreign {
		return claimed{}, nil
	}
	switch err := h.Ledger.Claim(ctx, decisionID, ref, decisionlog.Digest([]byte(body)), now, h.ClaimTTL); {
	case errors.Is(err, ledger.ErrDone):
		h.Log.InfoContext(ctx, "decision already processed; redelivery ignored", "decision_id", decisionID, "instance_id", ref.InstanceID)
		return claimed{done: true}, nil
	case errors.Is(err, ledger.ErrNotRecorded):
		return claimed{authenticity: policy.NotRecorded}, nil
	case errors.Is(err, ledger.ErrAltered):
		return claimed{authenticity: policy.Altered}, nil
	case err != nil:
		return claimed{}, err
	}
	return claimed{authenticity: policy.Recorded, claimed: true}, nil
}

// finish records the outcome of a claimed decision, or releases the claim when acting on
// it failed (actErr), so that the retry may claim it at once.
func (h *Handler) finish(ctx context.Context, rec events.SQSMessage, decisionID string, ref ledger.Ref, held bool, outcome ledger.Outcome, actErr error, now time.Time) error {
	if actErr != nil {
		var refused *RefusedError
		if errors.As(actErr, &refused) {
			refused.MessageID = rec.MessageId
		}
		if held {
			if relErr := h.Ledger.Release(ctx, decisionID); relErr != nil {
				actErr = errors.Join(actErr, relErr)
			}
		}
		return actErr
	}
	outcome.Ref, outcome.DecisionID, outcome.At, outcome.Mode = ref, decisionID, now, string(h.Settings.Mode)
	if err := h.Ledger.Record(ctx, outcome); err != nil {
		// The retry may claim at once; a Record that did succeed (its reply was lost) left
		// the decision done, and the release changes nothing then.
		if relErr := h.Ledger.Release(ctx, decisionID); relErr != nil {
			err = errors.Join(err, relErr)
		}
		return err
	}
	h.Log.InfoContext(ctx, "outcome", "decision_id", decisionID, "instance_id", ref.InstanceID, "action", outcome.Action,
		"result", outcome.Result, "mode", h.Settings.Mode, "detail", outcome.Detail)
	return nil
}

// noBackendNote is the detail of a ticket verdict where no ticket backend is set up (the
// CLI's apply): the deployed stack's next sweep opens the ticket, and closes those of
// instances that became compliant.
const noBackendNote = "no ticket backend here: the stack's next sweep opens the ticket"

// enforcedTicketNote closes the ticket of an instance on which IMDSv2 was enforced.
const enforcedTicketNote = "imdsguard enforced IMDSv2 (HttpTokens=required): IMDSv1 was no longer used."

// maxRecheckRounds bounds the gather-and-ask loop: the policy asks for the live instance
// and then, at most, for the recent usage.
const maxRecheckRounds = 4

// recheckAndAct gathers what policy.RecheckQueued asks for, then carries out its
// decision in the configured mode.
func (h *Handler) recheckAndAct(ctx context.Context, v message.Verdict, in policy.RecheckInput, now time.Time) (ledger.Outcome, error) {
	for range maxRecheckRounds {
		r := policy.RecheckQueued(in, h.Settings, h.Limits, now)
		switch r.Step {
		case policy.RecheckRefuse:
			return ledger.Outcome{}, &RefusedError{DecisionID: v.DecisionID, InstanceID: v.InstanceID, Why: r.Note}
		case policy.RecheckDescribe:
			live := h.describe(ctx, refOf(v))
			in.Live = &live
		case policy.RecheckReadRecentUsage:
			usage, err := evidence.UsageSince(ctx, h.Clients.CloudWatch, v.InstanceID, r.Since, now)
			in.Recent, in.RecentErr = &usage, err
		case policy.RecheckRejudge:
			a := guard.Judge(ctx, h.Clients, h.Region, []policy.Evidence{*in.Live}, h.Settings, now, nil)[0]
			// The ticket, if it comes to one, shows the fresh evidence under the same decision.
			fresh, err := message.New(a.Evidence, a.Verdict, v.AccountID, v.Region, now)
			if err != nil {
				return ledger.Outcome{}, err
			}
			fresh.DecisionID, fresh.CreatedAt = v.DecisionID, v.CreatedAt
			note := fmt.Sprintf("judged again (%s): %s -> %s", r.Note, v.Action, a.Verdict.Action)
			return h.carryOut(ctx, fresh, a.Verdict, in.Live.Instance, note, now)
		case policy.RecheckCarryOut:
			return h.carryOut(ctx, v, r.Verdict, in.Live.Instance, r.Note, now)
		case policy.RecheckNothing:
			out := ledger.Outcome{Action: policy.ActionSkip, Result: ledger.ResultSuperseded, Reasons: v.Reasons, Detail: r.Note}
			if live := in.Live.Instance; live != nil {
				out.Prior = &live.Options
			}
			return out, nil
		default:
			return ledger.Outcome{}, fmt.Errorf("decision %s: recheck step %d is not handled", v.DecisionID, r.Step)
		}
	}
	return ledger.Outcome{}, fmt.Errorf("decision %s: the recheck did not settle in %d rounds", v.DecisionID, maxRecheckRounds)
}

// describe reads the instance as it is now (an id EC2 does not know is Instance nil),
// with its latest rollback from the ledger, which rule 5b holds it back for.
func (h *Handler) describe(ctx context.Context, ref ledger.Ref) policy.Evidence {
	instances, _, err := evidence.Inventory(ctx, h.Clients.EC2, h.Region, []string{ref.InstanceID})
	live := policy.Evidence{InstanceID: ref.InstanceID, InventoryErr: err}
	if err == nil && len(instances) == 1 {
		live.Instance = &instances[0]
	}
	if live.InventoryErr == nil {
		rb, err := h.Ledger.GetRollback(ctx, ref)
		if err != nil {
			// Without it, rule 5b could not hold a rolled back instance back: fail safe.
			live.InventoryErr = fmt.Errorf("reading the instance's rollbacks: %w", err)
		}
		live.RolledBack = rb
	}
	return live
}

// carryOut does what the verdict asks, in the configured mode. live is nil when the
// instance is gone.
func (h *Handler) carryOut(ctx context.Context, v message.Verdict, verdict policy.Verdict, live *policy.Instance, note string, now time.Time) (ledger.Outcome, error) {
	out := ledger.Outcome{Action: verdict.Action, Reasons: verdict.Reasons}
	if live != nil {
		out.Prior = &live.Options
	}
	detail := ""
	if note != "" {
		detail = note + "; "
	}
	switch verdict.Action {
	case policy.ActionRemediate:
		if verdict.Target == nil || live == nil {
			return ledger.Outcome{}, fmt.Errorf("decision %s: a remediation without a target or a live instance", v.DecisionID)
		}
		return h.remediate(ctx, v, *live, *verdict.Target, out, detail, now)
	case policy.ActionTicket:
		if h.Settings.Mode == policy.ModeReport {
			out.Result, out.Detail = ledger.ResultReported, detail+"report mode: no ticket opened"
			return out, nil
		}
		v.Action, v.Reasons = verdict.Action, verdict.Reasons
		return h.openOrUpdateTicket(ctx, v, out, detail, now)
	case policy.ActionDefer:
		out.Result, out.Detail = ledger.ResultDeferred, detail+"waiting for evidence"
		return out, nil
	}
	switch verdict.Primary() {
	case policy.ReasonTerminated:
		out.Result, out.Detail = ledger.ResultSuperseded, detail+"the instance no longer exists"
		return h.closingTicket(ctx, v, out, "The instance no longer exists.", now)
	case policy.ReasonCompliant:
		if earlier, enforced, err := h.enforcedEarlier(ctx, v, live, out, detail, now); enforced || err != nil {
			return earlier, err
		}
		out.Result, out.Detail = ledger.ResultAlreadyCompliant, detail+"HttpTokens is already required"
		return h.closingTicket(ctx, v, out, "HttpTokens is now required on the instance: IMDSv1 is off.", now)
	}
	out.Result, out.Detail = ledger.ResultSuperseded, detail+"nothing to do"
	return out, nil
}

func (h *Handler) remediate(ctx context.Context, v message.Verdict, live policy.Instance, target policy.MetadataOptions, out ledger.Outcome, detail string, now time.Time) (ledger.Outcome, error) {
	switch h.Settings.Mode {
	case policy.ModeReport:
		out.Result, out.Detail = ledger.ResultReported, detail+"report mode: nothing changed"
		return out, nil
	case policy.ModeDryRun:
		if err := h.Enforcer.DryRun(ctx, v.InstanceID, live.Options, target); err != nil {
			return ledger.Outcome{}, err
		}
		out.Result, out.Detail = ledger.ResultDryRun, detail+"dry run allowed by EC2; nothing changed"
		return out, nil
	}
	gate, err := h.gate(ctx, v, live, now)
	if err != nil {
		return ledger.Outcome{}, err
	}
	if !gate.Allowed {
		return h.heldBack(out, gate, detail+"enforcement held back: "), nil
	}
	out.Wave = policy.WaveOf(live, h.Rollout.Waves)
	// The snapshot is written before the change, so a rollback always has the original.
	if _, err := h.Ledger.Snapshot(ctx, refOf(v), live.Options, v.DecisionID, now); err != nil {
		return ledger.Outcome{}, err
	}
	applied, err := h.Enforcer.Apply(ctx, v.InstanceID, live.Options, target)
	if err != nil {
		return ledger.Outcome{}, err
	}
	h.count("Enforcements", nil)
	// The result stays "enforced"; closing an open ticket is noted in the detail. The change
	// is made, so a ticket that cannot be closed must not fail the message: its retry would
	// find the instance compliant and record that instead of the enforcement. The ticket
	// stays open in the ledger, and the next sweep's close-out resolves it.
	note, err := h.closeTicket(ctx, v, enforcedTicketNote, now)
	if err != nil {
		h.Log.WarnContext(ctx, "enforced, but closing the instance's open ticket failed; the next sweep's close-out resolves it",
			"decision_id", v.DecisionID, "instance_id", v.InstanceID, "error", err.Error())
		note = "; closing the instance's open ticket failed (the next sweep's close-out resolves it): " + err.Error()
	}
	out.Result, out.Applied, out.Detail = ledger.ResultEnforced, &applied, detail+"IMDSv2 enforced"+note
	return out, nil
}

// gate asks the rollout whether the instance may be enforced now (the pause switch, the
// breaker, the waves) and then takes a slot of the account-region's budget. A switch that
// cannot be read counts as set.
func (h *Handler) gate(ctx context.Context, v message.Verdict, live policy.Instance, now time.Time) (policy.Gate, error) {
	if h.Rollout.MaxPerHour <= 0 {
		return policy.Gate{}, fmt.Errorf("decision %s: no hourly enforcement budget is set (IMDSGUARD_MAX_ENFORCE_PER_HOUR)", v.DecisionID)
	}
	st, err := h.rolloutState(ctx, v.AccountID, v.Region)
	if err != nil {
		return policy.Gate{}, err
	}
	if g := policy.RolloutGate(live, st, h.Rollout, now); !g.Allowed {
		return g, nil
	}
	return h.takeBudget(ctx, v.AccountID, v.Region, v.SweepID, now)
}

// heldBack is the outcome of a change the rollout's gate did not allow: deferred, for
// the gate's reason.
func (h *Handler) heldBack(out ledger.Outcome, gate policy.Gate, detail string) ledger.Outcome {
	h.count("Deferrals", map[string]string{"Reason": string(gate.Reason.Code)})
	out.Action, out.Result = policy.ActionDefer, ledger.ResultDeferred
	out.Reasons = append([]policy.Reason{gate.Reason}, out.Reasons...)
	out.Detail = detail + gate.Reason.Detail
	return out
}

// rolloutState is the account-region's rollout as the gate reads it: the ledger's state
// and the pause switch. A switch that cannot be read counts as set.
func (h *Handler) rolloutState(ctx context.Context, account, region string) (policy.RolloutState, error) {
	r, err := h.Ledger.ReadRollout(ctx, account, region)
	if err != nil {
		return policy.RolloutState{}, err
	}
	st := r.State(len(h.Rollout.Waves) + 1)
	if h.Pause != nil {
		paused, by, err := h.Pause.Paused(ctx)
		if err != nil {
			paused, by = true, err.Error()
		}
		st.Paused, st.PausedBy = paused, by
	}
	return st, nil
}

// takeBudget takes a slot of the account-region's enforcement budget, of the hour and
// of the sweep.
func (h *Handler) takeBudget(ctx context.Context, account, region, sweepID string, now time.Time) (policy.Gate, error) {
	err := h.Ledger.TakeBudget(ctx, ledger.Budget{AccountID: account, Region: region, Hour: policy.BudgetHourOf(now),
		SweepID: sweepID, MaxPerHour: h.Rollout.MaxPerHour, MaxPerSweep: h.Rollout.MaxPerSweep}, now)
	var spent *ledger.BudgetSpentError
	if errors.As(err, &spent) {
		return policy.BudgetSpent(spent.Kind, h.Rollout, now), nil
	}
	if err != nil {
		return policy.Gate{}, err
	}
	return policy.Gate{Allowed: true}, nil
}

// enforcedEarlier tells whether an earlier attempt of this very decision made the change
// and then failed before recording it (its reply was lost, a later write failed): its
// snapshot is in the ledger. The outcome is then the enforcement it was, with the options
// from before and after it, so that the history (and what watches enforced instances)
// never loses one.
func (h *Handler) enforcedEarlier(ctx context.Context, v message.Verdict, live *policy.Instance, out ledger.Outcome, detail string, now time.Time) (ledger.Outcome, bool, error) {
	if v.Action != policy.ActionRemediate || live == nil {
		return out, false, nil
	}
	snap, err := h.Ledger.GetSnapshot(ctx, refOf(v))
	if err != nil || snap == nil || snap.DecisionID != v.DecisionID {
		return out, false, err
	}
	out.Action, out.Reasons = v.Action, v.Reasons
	out.Prior, out.Applied = &snap.Options, &live.Options
	note, err := h.closeTicket(ctx, v, enforcedTicketNote, now)
	if err != nil {
		return out, false, err
	}
	out.Result, out.Detail = ledger.ResultEnforced, detail+"IMDSv2 enforced by an earlier attempt of this decision"+note
	return out, true, nil
}

// openOrUpdateTicket keeps one open ticket per instance: it opens one when there is none,
// adds the evidence when it is new, and leaves the ticket alone when it is not.
func (h *Handler) openOrUpdateTicket(ctx context.Context, v message.Verdict, out ledger.Outcome, detail string, now time.Time) (ledger.Outcome, error) {
	if h.Tickets == nil {
		out.Result, out.Detail = ledger.ResultReported, detail+noBackendNote
		return out, nil
	}
	t := ticket.NewTicket(v, ticket.ComposeOptions{ExemptTag: h.Settings.ExemptTag, DryRun: h.dryRun()})
	return h.keepTicket(ctx, refOf(v), t, out, detail, now)
}

// keepTicket keeps the one open ticket of ref, an instance or a source: it opens t when
// there is none, adds its evidence when that is new, and leaves the ticket alone when
// it is not.
func (h *Handler) keepTicket(ctx context.Context, ref ledger.Ref, t ticket.Ticket, out ledger.Outcome, detail string, now time.Time) (ledger.Outcome, error) {
	digest := t.Content.EvidenceDigest()
	rec, err := h.Ledger.GetTicket(ctx, ref)
	if err != nil {
		return ledger.Outcome{}, err
	}
	if rec != nil && rec.Status == ledger.TicketOpen && rec.Backend == h.Tickets.Name() {
		if rec.Digest == digest {
			out.Result, out.Detail = ledger.ResultTicketUnchanged, detail+"ticket "+rec.TicketRef+" already has this evidence"
			return out, nil
		}
		if err := h.Tickets.Update(ctx, rec.TicketRef, t); err != nil {
			return ledger.Outcome{}, err
		}
		rec.Digest, rec.UpdatedAt = digest, now
		if err := h.Ledger.PutTicket(ctx, *rec); err != nil {
			return ledger.Outcome{}, err
		}
		h.count("Tickets", map[string]string{"Event": "updated"})
		out.Result, out.Detail = ledger.ResultTicketUpdated, detail+"new evidence added to ticket "+rec.TicketRef
		return out, nil
	}
	tref, err := h.Tickets.Open(ctx, t)
	if err != nil {
		return ledger.Outcome{}, err
	}
	if err := h.Ledger.PutTicket(ctx, ledger.Ticket{Ref: ref, Backend: h.Tickets.Name(), TicketRef: tref, Status: ledger.TicketOpen,
		Digest: digest, Title: t.Content.Title, OpenedAt: now, UpdatedAt: now}); err != nil {
		return ledger.Outcome{}, err
	}
	h.count("Tickets", map[string]string{"Event": "opened"})
	out.Result, out.Detail = ledger.ResultTicketed, detail+"ticket "+tref+" opened in "+h.Tickets.Name()
	return out, nil
}

// closingTicket is the outcome for an instance that is compliant or gone: when it has an
// open ticket, that is resolved and the outcome says so.
func (h *Handler) closingTicket(ctx context.Context, v message.Verdict, out ledger.Outcome, why string, now time.Time) (ledger.Outcome, error) {
	note, err := h.closeTicket(ctx, v, why, now)
	if err != nil {
		return ledger.Outcome{}, err
	}
	if note != "" {
		out.Result, out.Detail = ledger.ResultTicketResolved, out.Detail+note
	}
	return out, nil
}

// closeTicket resolves the instance's open ticket, if it has one, and returns a note for
// the outcome's detail ("" when there was none). Report mode opens no tickets and closes
// none.
func (h *Handler) closeTicket(ctx context.Context, v message.Verdict, why string, now time.Time) (string, error) {
	if h.Settings.Mode == policy.ModeReport {
		return "", nil
	}
	if h.Tickets == nil {
		return "", nil
	}
	rec, err := h.Ledger.GetTicket(ctx, refOf(v))
	if err != nil || rec == nil || rec.Status != ledger.TicketOpen {
		return "", err
	}
	if rec.Backend == h.Tickets.Name() {
		if err := h.Tickets.Resolve(ctx, rec.TicketRef, ticket.Closing{
			AccountID: v.AccountID, Region: v.Region, InstanceID: v.InstanceID, Why: why,
			DecisionID: v.DecisionID, At: now, DryRun: h.dryRun(),
		}); err != nil {
			return "", err
		}
	} else {
		why += " (the ticket is in " + rec.Backend + ", no longer the configured backend: close it there by hand)"
	}
	rec.Status, rec.ResolvedAt, rec.UpdatedAt = ledger.TicketResolved, now, now
	if err := h.Ledger.PutTicket(ctx, *rec); err != nil {
		return "", err
	}
	h.count("Tickets", map[string]string{"Event": "resolved"})
	return "; ticket " + rec.TicketRef + " resolved: " + why, nil
}

func (h *Handler) dryRun() bool { return h.Settings.Mode == policy.ModeDryRun }

func refOf(v message.Verdict) ledger.Ref {
	return ledger.Ref{AccountID: v.AccountID, Region: v.Region, InstanceID: v.InstanceID}
}

func (h *Handler) count(metric string, dims map[string]string) {
	if err := h.Metrics.Count(metric, 1, dims); err != nil {
		h.Log.Error("writing a metric failed", "metric", metric, "error", err)
	}
}

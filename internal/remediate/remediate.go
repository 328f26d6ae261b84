// Package remediate is the remediate Lambda's logic: each verdict message from the queue
// is checked against the instance as it is now, then enforced, ticketed or recorded as
// deferred, and every outcome is written to the ledger exactly once.
package remediate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/report"
	"github.com/imdsguard/imdsguard/internal/ticket"
)

// Handler handles one batch of verdict messages.
type Handler struct {
	Settings policy.Settings
	// MaxVerdictAge: an older verdict is re-evaluated before anything is done.
	MaxVerdictAge time.Duration
	// ClaimTTL is how long a decision stays claimed by an invocation that may have
	// crashed: the queue's visibility timeout.
	ClaimTTL time.Duration
	Region   string
	Clients  guard.Clients
	Enforcer *enforce.Enforcer
	Ledger   *ledger.Ledger
	Tickets  ticket.Backend
	Now      func() time.Time
	Log      *slog.Logger
	Metrics  *emf.Emitter
}

// Handle processes every message of the batch and reports the ones that failed, so SQS
// retries only those (and, after the queue's receive limit, moves them to the DLQ).
// accountID is the function's own account: verdicts about any other are refused.
func (h *Handler) Handle(ctx context.Context, accountID string, batch events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	for _, rec := range batch.Records {
		if err := h.process(ctx, accountID, rec); err != nil {
			h.count("Errors", map[string]string{"Stage": "remediate"})
			h.Log.ErrorContext(ctx, "verdict message failed; SQS will retry it", "message_id", rec.MessageId, "error", err.Error())
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		}
	}
	return resp, nil
}

func (h *Handler) process(ctx context.Context, accountID string, rec events.SQSMessage) error {
	v, err := message.Parse(rec.Body)
	if err != nil {
		return fmt.Errorf("message %s: %w", rec.MessageId, err)
	}
	if v.AccountID != accountID || v.Region != h.Region {
		return fmt.Errorf("message %s is about %s in %s/%s, but this function acts only in %s/%s",
			rec.MessageId, v.InstanceID, v.AccountID, v.Region, accountID, h.Region)
	}
	ref := refOf(v)
	now := h.Now().UTC()
	switch err := h.Ledger.Claim(ctx, v.DecisionID, ref, now, h.ClaimTTL); {
	case errors.Is(err, ledger.ErrDone):
		h.Log.InfoContext(ctx, "decision already processed; redelivery ignored", "decision_id", v.DecisionID, "instance_id", v.InstanceID)
		return nil
	case err != nil:
		return err
	}
	outcome, err := h.act(ctx, v, now)
	if err != nil {
		if relErr := h.Ledger.Release(ctx, v.DecisionID); relErr != nil {
			err = errors.Join(err, relErr)
		}
		return err
	}
	outcome.Ref, outcome.DecisionID, outcome.At, outcome.Mode = ref, v.DecisionID, now, string(h.Settings.Mode)
	if err := h.Ledger.Record(ctx, outcome); err != nil {
		return err
	}
	h.Log.InfoContext(ctx, "outcome", "decision_id", v.DecisionID, "instance_id", v.InstanceID, "action", outcome.Action,
		"result", outcome.Result, "mode", h.Settings.Mode, "detail", outcome.Detail)
	return nil
}

// act re-checks the instance as it is now and does what the (possibly re-evaluated)
// verdict asks in the configured mode.
func (h *Handler) act(ctx context.Context, v message.Verdict, now time.Time) (ledger.Outcome, error) {
	instances, notFound, err := evidence.Inventory(ctx, h.Clients.EC2, h.Region, []string{v.InstanceID})
	if err != nil {
		return ledger.Outcome{}, err
	}
	if len(notFound) > 0 || len(instances) != 1 {
		out := ledger.Outcome{Action: policy.ActionSkip, Result: ledger.ResultSuperseded, Reasons: v.Reasons,
			Detail: "the instance no longer exists"}
		return h.closingTicket(ctx, v, out, "The instance no longer exists.", now)
	}
	live := instances[0]
	if live.Options.HTTPTokens == policy.TokensRequired {
		out := ledger.Outcome{Action: policy.ActionSkip, Result: ledger.ResultAlreadyCompliant, Reasons: v.Reasons,
			Prior: &live.Options, Detail: "HttpTokens is already required"}
		return h.closingTicket(ctx, v, out, "HttpTokens is now required on the instance: IMDSv1 is off.", now)
	}
	if v.Action == policy.ActionSkip {
		// A close-out request for an instance that is no longer compliant: the next sweep
		// judges it afresh.
		return ledger.Outcome{Action: policy.ActionSkip, Result: ledger.ResultSuperseded, Reasons: v.Reasons,
			Prior: &live.Options, Detail: "asked to close the ticket, but HttpTokens is " + live.Options.HTTPTokens + " again"}, nil
	}
	verdict := policy.Verdict{Action: v.Action, Reasons: v.Reasons, Target: targetOf(v.Target)}
	detail := ""
	// The rules that need no usage evidence (state, exemption, endpoint) are re-applied to
	// the live instance every time: a tag or a stop since the decision must count.
	probe := policy.Evidence{InstanceID: v.InstanceID, Instance: &live}
	age, changed := now.Sub(v.CreatedAt), !sameOptions(v.Current, live.Options)
	if policy.Next(probe, h.Settings, now) == policy.NeedNothing {
		settled := policy.Decide(probe, h.Settings, now)
		if settled.Action != v.Action || settled.Primary() != firstCode(v.Reasons) {
			detail = fmt.Sprintf("the live instance changed the verdict: %s -> %s; ", v.Action, settled.Action)
		}
		verdict = settled
	} else if age > h.MaxVerdictAge || changed {
		// The world moved on since detect decided: decide again on fresh evidence.
		verdict = guard.Judge(ctx, h.Clients, h.Region, []policy.Evidence{probe}, h.Settings, now, nil)[0].Verdict
		detail = fmt.Sprintf("re-evaluated (verdict %s old, options changed: %t): %s -> %s; ", age.Round(time.Second), changed, v.Action, verdict.Action)
	}
	out := ledger.Outcome{Action: verdict.Action, Reasons: verdict.Reasons, Prior: &live.Options}
	switch verdict.Action {
	case policy.ActionRemediate:
		return h.remediate(ctx, v, live, verdict, out, detail, now)
	case policy.ActionTicket:
		if h.Settings.Mode == policy.ModeReport {
			out.Result, out.Detail = ledger.ResultReported, detail+"report mode: no ticket opened"
			return out, nil
		}
		fresh := v
		fresh.Action, fresh.Reasons = verdict.Action, verdict.Reasons
		return h.openOrUpdateTicket(ctx, fresh, out, detail, now)
	case policy.ActionDefer:
		out.Result, out.Detail = ledger.ResultDeferred, detail+"waiting for evidence"
		return out, nil
	default:
		out.Result, out.Detail = ledger.ResultSuperseded, detail+"nothing to do"
		return out, nil
	}
}

func (h *Handler) remediate(ctx context.Context, v message.Verdict, live policy.Instance, verdict policy.Verdict, out ledger.Outcome, detail string, now time.Time) (ledger.Outcome, error) {
	target := *verdict.Target
	switch h.Settings.Mode {
	case policy.ModeReport:
		out.Result, out.Detail = ledger.ResultReported, detail+"report mode: nothing changed"
		return out, nil
	case policy.ModeDryRun:
		if err := h.Enforcer.DryRun(ctx, v.InstanceID, target); err != nil {
			return ledger.Outcome{}, err
		}
		out.Result, out.Detail = ledger.ResultDryRun, detail+"dry run allowed by EC2; nothing changed"
		return out, nil
	}
	// The snapshot is written before the change, so a rollback always has the original.
	if _, err := h.Ledger.Snapshot(ctx, refOf(v), live.Options, v.DecisionID, now); err != nil {
		return ledger.Outcome{}, err
	}
	applied, err := h.Enforcer.Apply(ctx, v.InstanceID, target)
	if err != nil {
		return ledger.Outcome{}, err
	}
	h.count("Enforcements", nil)
	// The result stays "enforced"; closing an open ticket is noted in the detail.
	note, err := h.closeTicket(ctx, v, "imdsguard enforced IMDSv2 (HttpTokens=required): IMDSv1 was no longer used.", now)
	if err != nil {
		return ledger.Outcome{}, err
	}
	out.Result, out.Applied, out.Detail = ledger.ResultEnforced, &applied, detail+"IMDSv2 enforced"+note
	return out, nil
}

// openOrUpdateTicket keeps one open ticket per instance: it opens one when there is none,
// adds the evidence when it is new, and leaves the ticket alone when it is not.
func (h *Handler) openOrUpdateTicket(ctx context.Context, v message.Verdict, out ledger.Outcome, detail string, now time.Time) (ledger.Outcome, error) {
	t := ticket.NewTicket(v, ticket.ComposeOptions{ExemptTag: h.Settings.ExemptTag, DryRun: h.dryRun()})
	digest := t.Content.EvidenceDigest()
	rec, err := h.Ledger.GetTicket(ctx, refOf(v))
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
	if err := h.Ledger.PutTicket(ctx, ledger.Ticket{Ref: refOf(v), Backend: h.Tickets.Name(), TicketRef: tref, Status: ledger.TicketOpen,
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

func firstCode(reasons []policy.Reason) policy.ReasonCode {
	if len(reasons) == 0 {
		return ""
	}
	return reasons[0].Code
}

func targetOf(t *report.Options) *policy.MetadataOptions {
	if t == nil {
		return nil
	}
	return &policy.MetadataOptions{HTTPTokens: t.HTTPTokens, HopLimit: t.HopLimit, HTTPEndpoint: t.HTTPEndpoint}
}

func sameOptions(seen *report.Options, live policy.MetadataOptions) bool {
	return seen != nil && seen.HTTPTokens == live.HTTPTokens && seen.HopLimit == live.HopLimit && seen.HTTPEndpoint == live.HTTPEndpoint
}

func (h *Handler) count(metric string, dims map[string]string) {
	if err := h.Metrics.Count(metric, 1, dims); err != nil {
		h.Log.Error("writing a metric failed", "metric", metric, "error", err)
	}
}

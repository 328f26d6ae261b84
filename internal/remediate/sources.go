package remediate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/sourcefix"
	"github.com/imdsguard/imdsguard/internal/ticket"
)

// SourceFixer changes the sources of instances (sourcefix.Fixer implements it).
type SourceFixer interface {
	Template(ctx context.Context, id string) (sourcefix.Template, error)
	FixTemplate(ctx context.Context, t sourcefix.Template, target policy.MetadataOptions, token, description string, dryRun bool) (int64, error)
	Defaults(ctx context.Context) (policy.AccountDefaults, error)
	SetDefaultTokens(ctx context.Context, httpTokens string, dryRun bool) error
}

// SourceLedger is the part of the ledger a source fix uses besides Ledger's.
type SourceLedger interface {
	SnapshotSource(ctx context.Context, s ledger.SourceSnapshot) (ledger.SourceSnapshot, error)
	GetSourceSnapshot(ctx context.Context, ref ledger.Ref) (*ledger.SourceSnapshot, error)
}

// processSource handles a verdict on a source (message.SourceSchema) as process does one
// on an instance: authenticated by its claim, checked against the source as it is now
// (policy.RecheckSource), carried out in the configured mode under the rollout's brakes,
// and recorded once.
func (h *Handler) processSource(ctx context.Context, accountID string, rec events.SQSMessage) error {
	v, err := message.ParseSource(rec.Body)
	if err != nil {
		return fmt.Errorf("message %s: %w", rec.MessageId, err)
	}
	now := h.Now().UTC()
	ref := ledger.Ref{AccountID: v.AccountID, Region: v.Region, InstanceID: v.Subject()}
	h, foreign := h.in(accountID, v.AccountID, v.Region)
	q := policy.QueuedSource{Foreign: foreign, Kind: v.Kind, Action: v.Action,
		CreatedAt: v.CreatedAt, SeenVersion: v.SeenVersion}
	claim, err := h.claim(ctx, v.DecisionID, ref, rec.Body, q.Foreign, now)
	if err != nil || claim.done {
		return err
	}
	q.Authenticity = claim.authenticity
	outcome, err := h.actOnSource(ctx, v, ref, q, now)
	return h.finish(ctx, rec, v.DecisionID, ref, claim.claimed, outcome, err, now)
}

func (h *Handler) actOnSource(ctx context.Context, v message.SourceVerdict, ref ledger.Ref, q policy.QueuedSource, now time.Time) (ledger.Outcome, error) {
	if r := policy.RecheckSource(q, policy.LiveSource{}, h.Limits, now); r.Refuse {
		return ledger.Outcome{}, &RefusedError{DecisionID: v.DecisionID, InstanceID: ref.InstanceID, Why: r.Note}
	}
	out := ledger.Outcome{Action: policy.Action(v.Action), Reasons: v.Reasons}
	if v.Action == policy.SourceTicket {
		if h.Settings.Mode == policy.ModeReport {
			out.Result, out.Detail = ledger.ResultReported, "report mode: no ticket opened"
			return out, nil
		}
		return h.openOrUpdateSourceTicket(ctx, v, ref, out, now)
	}
	if h.Sources == nil {
		return ledger.Outcome{}, fmt.Errorf("decision %s: a fix of %s %s, and no source fixer is set up", v.DecisionID, v.Kind, v.SourceID)
	}
	target := policy.MetadataOptions{HTTPTokens: v.Target.HTTPTokens, HopLimit: v.Target.HopLimit}
	if ok, why := policy.SourceTargetAllowed(v.Kind, target, h.Settings); !ok {
		return ledger.Outcome{}, &RefusedError{DecisionID: v.DecisionID, InstanceID: ref.InstanceID, Why: why}
	}
	live, tmpl, err := h.liveSource(ctx, v, ref)
	if err != nil {
		return ledger.Outcome{}, err
	}
	if earlier, done, err := h.fixedEarlier(ctx, v, ref, live, tmpl, out); done || err != nil {
		return earlier, err
	}
	if r := policy.RecheckSource(q, live, h.Limits, now); r.Nothing {
		out.Result, out.Detail = ledger.ResultSuperseded, r.Note
		return out, nil
	}
	switch h.Settings.Mode {
	case policy.ModeReport:
		out.Result, out.Detail = ledger.ResultReported, "report mode: nothing changed"
		return out, nil
	case policy.ModeDryRun:
		if _, err := h.applySource(ctx, v, tmpl, target, true); err != nil {
			return ledger.Outcome{}, err
		}
		out.Result, out.Detail = ledger.ResultDryRun, "dry run allowed by EC2; nothing changed"
		return out, nil
	}
	gate, err := h.sourceGate(ctx, v, now)
	if err != nil {
		return ledger.Outcome{}, err
	}
	if !gate.Allowed {
		return h.heldBack(out, gate, "source fix held back: "), nil
	}
	// The snapshot is written before the change, so a rollback always has the original.
	snap := ledger.SourceSnapshot{Ref: ref, DecisionID: v.DecisionID, At: now, DefaultVersion: tmpl.DefaultVersion}
	if v.Kind == policy.SourceAccountDefaults && live.Options != nil {
		snap.HTTPTokens = live.Options.HTTPTokens
	}
	if _, err := h.SourceLedger.SnapshotSource(ctx, snap); err != nil {
		return ledger.Outcome{}, err
	}
	version, err := h.applySource(ctx, v, tmpl, target, false)
	if err != nil {
		return ledger.Outcome{}, err
	}
	out.FixedVersion, out.Wave = version, v.Wave
	h.count("SourceFixes", map[string]string{"Kind": string(v.Kind)})
	out.Prior, out.Applied = live.Options, &target
	out.Result = ledger.ResultSourceFixed
	// The change is made: a ticket that cannot be closed must not fail the message (its
	// retry would find the source fixed and record that instead).
	closing := message.Verdict{AccountID: v.AccountID, Region: v.Region, InstanceID: ref.InstanceID, DecisionID: v.DecisionID}
	note, err := h.closeTicket(ctx, closing, "imdsguard fixed the source: it launches with HttpTokens required now.", now)
	if err != nil {
		h.Log.WarnContext(ctx, "fixed, but closing the source's open ticket failed", "decision_id", v.DecisionID, "subject", ref.InstanceID, "error", err.Error())
		note = "; closing the source's open ticket failed: " + err.Error()
	}
	if v.Kind == policy.SourceLaunchTemplate {
		out.Detail = fmt.Sprintf("new default version %d of %s with HttpTokens required, from version %d; verify watches the instances launched from it "+
			"(rollback: imdsguard rollback --source %s)", version, v.SourceID, tmpl.DefaultVersion, v.SourceID)
	} else {
		out.Detail = "the account's instance metadata defaults now have HttpTokens required (rollback: imdsguard rollback --source account-defaults)"
	}
	out.Detail += note
	return out, nil
}

// liveSource reads the source as it is now, with its latest rollback.
func (h *Handler) liveSource(ctx context.Context, v message.SourceVerdict, ref ledger.Ref) (policy.LiveSource, sourcefix.Template, error) {
	var live policy.LiveSource
	var tmpl sourcefix.Template
	switch v.Kind {
	case policy.SourceLaunchTemplate:
		t, err := h.Sources.Template(ctx, v.SourceID)
		if errors.Is(err, sourcefix.ErrSourceGone) {
			return policy.LiveSource{Gone: true}, tmpl, nil
		}
		if err != nil {
			return live, tmpl, err
		}
		tmpl, live.DefaultVersion, live.Options = t, t.DefaultVersion, t.Options
	case policy.SourceAccountDefaults:
		d, err := h.Sources.Defaults(ctx)
		if err != nil {
			return live, tmpl, err
		}
		live.ManagedBy = d.ManagedBy
		if d.HTTPTokens != "" {
			live.Options = &policy.MetadataOptions{HTTPTokens: d.HTTPTokens, HopLimit: d.HopLimit, HTTPEndpoint: d.HTTPEndpoint}
		}
	default:
		return live, tmpl, fmt.Errorf("decision %s: a %s cannot be fixed", v.DecisionID, v.Kind)
	}
	rb, err := h.Ledger.GetRollback(ctx, ref)
	if err != nil {
		// Without it, a rolled back fix could be made again at once: fail safe.
		return live, tmpl, fmt.Errorf("reading the rollbacks of %s: %w", ref.Name(), err)
	}
	// Held back for a lookback, as detect holds it (policy.HeldBackSource).
	if rb != nil && h.Now().Sub(rb.At) < h.Settings.Lookback {
		live.RolledBack = rb
	}
	return live, tmpl, nil
}

// fixedEarlier tells whether an earlier attempt of this very decision made the fix and
// then failed before recording it (its reply was lost, the record failed): the source's
// snapshot is this decision's, and the template's default version is one that names the
// decision (or the defaults require tokens). The outcome is then the fix it was, with
// its watch, so that verify still watches it.
func (h *Handler) fixedEarlier(ctx context.Context, v message.SourceVerdict, ref ledger.Ref, live policy.LiveSource, tmpl sourcefix.Template,
	out ledger.Outcome) (ledger.Outcome, bool, error) {
	if live.Options == nil || live.Options.HTTPTokens != policy.TokensRequired {
		return out, false, nil
	}
	snap, err := h.SourceLedger.GetSourceSnapshot(ctx, ref)
	if err != nil || snap == nil || snap.DecisionID != v.DecisionID {
		return out, false, err
	}
	switch v.Kind {
	case policy.SourceLaunchTemplate:
		if tmpl.DefaultVersion == snap.DefaultVersion || !strings.Contains(tmpl.Description, v.DecisionID) {
			return out, false, nil
		}
		out.FixedVersion, out.Wave = tmpl.DefaultVersion, v.Wave
		out.Detail = fmt.Sprintf("new default version %d of %s with HttpTokens required, made by an earlier attempt of this decision", tmpl.DefaultVersion, v.SourceID)
	default:
		out.Detail = "the account's instance metadata defaults have HttpTokens required, set by an earlier attempt of this decision"
	}
	out.Result, out.Applied = ledger.ResultSourceFixed, live.Options
	return out, true, nil
}

// applySource makes the fix; for a launch template it returns the version it made the
// default (verify watches the instances launched from it).
func (h *Handler) applySource(ctx context.Context, v message.SourceVerdict, tmpl sourcefix.Template, target policy.MetadataOptions, dryRun bool) (int64, error) {
	if v.Kind == policy.SourceAccountDefaults {
		return 0, h.Sources.SetDefaultTokens(ctx, policy.TokensRequired, dryRun)
	}
	return h.Sources.FixTemplate(ctx, tmpl, target, v.DecisionID, "imdsguard: HttpTokens required (decision "+v.DecisionID+")", dryRun)
}

// sourceGate is gate's counterpart for a source: the same switch, breaker, waves (the
// source's, from the message) and budget.
func (h *Handler) sourceGate(ctx context.Context, v message.SourceVerdict, now time.Time) (policy.Gate, error) {
	if h.Rollout.MaxPerHour <= 0 {
		return policy.Gate{}, fmt.Errorf("decision %s: no hourly enforcement budget is set (IMDSGUARD_MAX_ENFORCE_PER_HOUR)", v.DecisionID)
	}
	st, err := h.rolloutState(ctx, v.AccountID, v.Region)
	if err != nil {
		return policy.Gate{}, err
	}
	if g := policy.SourceGate(v.Wave, st, h.Rollout, now); !g.Allowed {
		return g, nil
	}
	return h.takeBudget(ctx, v.AccountID, v.Region, v.SweepID, now)
}

// openOrUpdateSourceTicket keeps one open ticket per source, as openOrUpdateTicket does
// per instance.
func (h *Handler) openOrUpdateSourceTicket(ctx context.Context, v message.SourceVerdict, ref ledger.Ref, out ledger.Outcome, now time.Time) (ledger.Outcome, error) {
	if h.Tickets == nil {
		out.Result, out.Detail = ledger.ResultReported, noBackendNote
		return out, nil
	}
	return h.keepTicket(ctx, ref, ticket.NewSourceTicket(v, ticket.ComposeOptions{ExemptTag: h.Settings.ExemptTag, DryRun: h.dryRun()}), out, "", now)
}

package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/sourcefix/launchtemplate"
	"github.com/imdsguard/imdsguard/internal/verdictqueue"
)

// SourceLedger is the part of the ledger the verification of source fixes uses
// (ledger.Ledger implements it).
type SourceLedger interface {
	WatchingSources(ctx context.Context, account, region string) ([]ledger.SourceWatch, error)
	GetSourceSnapshot(ctx context.Context, ref ledger.Ref) (*ledger.SourceSnapshot, error)
	SettleSource(ctx context.Context, s ledger.SourceSettlement) error
	RecordSourceBreakage(ctx context.Context, m ledger.ManualRollback) error
}

// Templates reads and puts back a launch template's default version
// (launchtemplate.Client implements it).
type Templates interface {
	Template(ctx context.Context, id string) (launchtemplate.Template, error)
	SetDefaultVersion(ctx context.Context, id string, version int64) error
}

// Sources are what verify needs to watch imdsguard's launch template fixes; a Handler
// without them watches instances only.
type Sources struct {
	Ledger    SourceLedger
	Templates Templates
}

// watchSources watches each launch template fix of the account-region once: the
// instances launched from the fixed version are read as enforced instances are, and the
// fix is rolled back (the template's default version from before it, HttpTokens
// optional again on the instances that broke) when any of them had IMDSv1 calls
// rejected. It reports whether it rolled one back.
func (h *Handler) watchSources(ctx context.Context, accountID string, now time.Time, sum *Summary) (rolledBack bool, failures []error) {
	watches, err := h.Sources.Ledger.WatchingSources(ctx, accountID, h.Region)
	if err != nil {
		return false, []error{err}
	}
	sum.Sources += len(watches)
	for _, w := range watches {
		broke, err := h.watchSource(ctx, w, now)
		if err != nil {
			sum.Failed++
			h.count("Errors", map[string]string{"Stage": "verify-source"})
			h.Log.ErrorContext(ctx, "verifying a source fix failed; it is watched again on the next run",
				"subject", w.InstanceID, "decision_id", w.DecisionID, "error", err.Error())
			failures = append(failures, fmt.Errorf("%s: %w", w.InstanceID, err))
		}
		rolledBack = rolledBack || broke
	}
	return rolledBack, failures
}

func (h *Handler) watchSource(ctx context.Context, w ledger.SourceWatch, now time.Time) (bool, error) {
	in := policy.SourceVerifyInput{FixedAt: w.FixedAt, FixedVersion: w.FixedVersion}
	t, err := h.Sources.Templates.Template(ctx, w.InstanceID)
	switch {
	case errors.Is(err, launchtemplate.ErrGone):
	case err != nil:
		return false, err
	default:
		in.DefaultVersion = t.DefaultVersion
	}
	// Listed whatever the template's state: an instance the fix broke is put back even
	// after the template changed.
	launched, launchedErr := evidence.LaunchedFrom(ctx, h.EC2, h.Region, w.InstanceID, w.FixedVersion)
	in.LaunchedErr = launchedErr
	windows := map[string]evidence.Window{}
	enforcedAt := map[string]time.Time{}
	for _, inst := range launched {
		at := w.FixedAt
		if inst.LaunchTime.After(at) {
			at = inst.LaunchTime
		}
		enforcedAt[inst.InstanceID] = at
		start, end := policy.RejectedWindow(at, now)
		windows[inst.InstanceID] = evidence.Window{Start: start, End: end}
	}
	rejected, rejectedErrs := evidence.RejectedUsage(ctx, h.CloudWatch, windows)
	in.Launched = map[string]policy.VerifyInput{}
	byID := map[string]policy.Instance{}
	for _, inst := range launched {
		ev := policy.Evidence{InstanceID: inst.InstanceID, Instance: &inst}
		vi := policy.VerifyInput{EnforcedAt: enforcedAt[inst.InstanceID], Live: &ev, RejectedErr: rejectedErrs[inst.InstanceID]}
		if u, ok := rejected[inst.InstanceID]; ok {
			vi.Rejected = &u
		}
		in.Launched[inst.InstanceID], byID[inst.InstanceID] = vi, inst
	}
	v := policy.VerifySource(in, h.Window, now)
	h.Log.InfoContext(ctx, "source verification", "subject", w.InstanceID, "decision_id", w.DecisionID, "fixed_version", w.FixedVersion,
		"launched", len(launched), "step", v.Step, "reasons", v.Reasons)
	settle := func(result, detail string) error {
		err := h.Sources.Ledger.SettleSource(ctx, ledger.SourceSettlement{Watch: w, Result: result, At: now, Reasons: v.Reasons,
			Detail: detail, Mode: string(h.Settings.Mode)})
		if errors.Is(err, ledger.ErrDone) {
			return nil
		}
		return err
	}
	switch v.Step {
	case policy.SourceWatching:
		return false, nil
	case policy.SourceVerified:
		h.count("Verified", map[string]string{"Kind": "source"})
		return false, settle(ledger.ResultVerified, "verified: "+v.Reasons[0].Detail)
	case policy.SourceEnded:
		return false, settle(ledger.ResultSuperseded, "verification ended: "+v.Reasons[0].Detail)
	case policy.SourceRollBack:
		if h.Settings.Mode == policy.ModeReport {
			h.Log.WarnContext(ctx, "report mode: a launch template fix broke IMDSv1 calls and is not rolled back", "subject", w.InstanceID, "reasons", v.Reasons)
			return false, nil
		}
		return true, h.rollBackSource(ctx, w, v, in.DefaultVersion, byID, now, settle)
	}
	return false, fmt.Errorf("source verification step %d is not handled", v.Step)
}

// rollBackSource puts the template's default version back to the snapshot's (when it is
// still imdsguard's fixed version), gives the instances that broke HttpTokens optional
// back, and only when all of that is done records it and queues the source's ticket. A
// step that fails leaves the fix watched: the next run finishes the rollback.
func (h *Handler) rollBackSource(ctx context.Context, w ledger.SourceWatch, v policy.SourceVerification, defaultVersion int64,
	launched map[string]policy.Instance, now time.Time, settle func(result, detail string) error) error {
	snap, err := h.Sources.Ledger.GetSourceSnapshot(ctx, w.Ref)
	if err != nil {
		return err
	}
	if snap == nil || snap.DecisionID != w.DecisionID || snap.DefaultVersion < 1 {
		return fmt.Errorf("no snapshot of %s from decision %s in the ledger: the default version from before the fix is not known, so nothing was restored",
			w.Name(), w.DecisionID)
	}
	restoredTemplate := "its default version had changed since, and was left as it is"
	if defaultVersion == w.FixedVersion {
		if err := h.Sources.Templates.SetDefaultVersion(ctx, w.InstanceID, snap.DefaultVersion); err != nil {
			return err
		}
		restoredTemplate = fmt.Sprintf("default version %d restored", snap.DefaultVersion)
	}
	var failures []error
	for _, id := range v.Broken {
		inst := launched[id]
		target, restore := policy.BreakageTarget(inst.Options)
		if !restore {
			continue
		}
		restored, err := h.Restorer.Restore(ctx, id, inst.Options, target)
		if err == nil {
			err = h.Sources.Ledger.RecordSourceBreakage(ctx, ledger.ManualRollback{
				Ref: ledger.Ref{AccountID: w.AccountID, Region: w.Region, InstanceID: id}, DecisionID: w.DecisionID, At: now,
				Restored: restored, Why: v.Reasons[0].Detail})
		}
		if err != nil {
			failures = append(failures, fmt.Errorf("putting back %s: %w", id, err))
		}
	}
	if len(failures) > 0 {
		return errors.Join(failures...)
	}
	if err := settle(ledger.ResultRolledBack, "rolled back ("+restoredTemplate+"): "+v.Reasons[0].Detail); err != nil {
		return err
	}
	h.count("RolledBack", map[string]string{"By": "imdsguard", "Kind": "source"})
	return h.sourceTicket(ctx, w, v, now)
}

// sourceTicket queues the rolled back source's ticket for remediate: what broke, and on
// which instances.
func (h *Handler) sourceTicket(ctx context.Context, w ledger.SourceWatch, v policy.SourceVerification, now time.Time) error {
	src := policy.Source{Kind: policy.SourceLaunchTemplate, ID: w.InstanceID}
	rb := policy.Rollback{At: now, Why: v.Reasons[0].Detail}
	src.RolledBack = &rb
	verdict, _ := policy.HeldBackSource(src, h.Settings, now)
	m, err := message.NewSource(w.AccountID, w.Region, src, v.Broken, verdict, 0, 0, now)
	if err != nil {
		return err
	}
	o, err := verdictqueue.NewOutgoingSource(m)
	if err != nil {
		return err
	}
	if _, err := h.Verdicts.RecordAndSend(ctx, []verdictqueue.Outgoing{o}); err != nil {
		return fmt.Errorf("queueing the ticket of the source's rollback: %w", err)
	}
	return nil
}

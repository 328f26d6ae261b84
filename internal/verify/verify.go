// Package verify is the verify Lambda's logic (DESIGN.md section 8): every enforced
// instance of the account-region is watched for a window; an IMDSv1 call that EC2
// rejected means something broke, and the instance is put back to its snapshot, its
// rollback recorded, and a ticket verdict sent to remediate that says what broke and
// when. Enough rollbacks open the account-region's circuit breaker. The handler gathers
// (the watches, the instances, their rejected calls), the policy decides (policy.Verify,
// policy.BreakerTrips), the handler writes.
package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/verdictqueue"
)

// Ledger is the part of the ledger verify uses (ledger.Ledger implements it).
type Ledger interface {
	Watching(ctx context.Context, account, region string) ([]ledger.Watch, error)
	GetSnapshot(ctx context.Context, ref ledger.Ref) (*ledger.Snapshot, error)
	Settle(ctx context.Context, s ledger.Settlement) error
	ReadRollout(ctx context.Context, account, region string) (ledger.Rollout, error)
	OpenBreaker(ctx context.Context, account, region string, at time.Time, why string) (bool, error)
}

// Restorer puts an instance's options back (enforce.Enforcer implements it).
type Restorer interface {
	Restore(ctx context.Context, instanceID string, current, target policy.MetadataOptions) (policy.MetadataOptions, error)
}

// Verdicts records and queues verdict messages for remediate (verdictqueue.Sender
// implements it).
type Verdicts interface {
	RecordAndSend(ctx context.Context, messages []verdictqueue.Outgoing) (int, error)
}

// Handler watches the enforced instances of one account-region.
type Handler struct {
	// Settings are the guard's: the mode, and the lookback rule 5b holds a rolled back
	// instance for.
	Settings policy.Settings
	// Window is how long an enforced instance is watched (IMDSGUARD_VERIFY_WINDOW).
	Window  time.Duration
	Rollout policy.RolloutSettings
	Region  string

	EC2        evidence.EC2API
	CloudWatch evidence.CloudWatchAPI
	Ledger     Ledger
	Restorer   Restorer
	Verdicts   Verdicts
	// Sources, when set, has verify watch imdsguard's launch template fixes too.
	Sources *Sources

	Now     func() time.Time
	Log     *slog.Logger
	Metrics *emf.Emitter

	// partOfOrganization is set on the handler of one member account-region.
	partOfOrganization bool
}

func (h *Handler) gaugeVerifying(sum Summary) {
	if err := h.Metrics.Count("Verifying", sum.Verifying+sum.Failed, nil); err != nil {
		h.Log.Error("writing a metric failed", "metric", "Verifying", "error", err)
	}
}

// Summary is what one run did; it is the invocation's result.
type Summary struct {
	Watched    int `json:"watched"`
	Verified   int `json:"verified"`
	RolledBack int `json:"rolled_back"`
	Verifying  int `json:"verifying"`
	Ended      int `json:"ended"`
	// Sources is how many launch template fixes were watched.
	Sources int `json:"sources,omitempty"`
	// Failed counts the instances whose rollback or record failed: they are watched
	// again on the next run, and the invocation fails so that its alarm calls for a person.
	Failed        int  `json:"failed"`
	BreakerOpened bool `json:"breaker_opened,omitempty"`
}

// Handle watches the account's instances in the handler's region once.
func (h *Handler) Handle(ctx context.Context, accountID string) (Summary, error) {
	var sum Summary
	watches, err := h.Ledger.Watching(ctx, accountID, h.Region)
	if err != nil {
		return sum, err
	}
	sum.Watched = len(watches)
	now := h.Now().UTC()
	var failures []error
	rolledBack := false
	if h.Sources != nil {
		rolledBack, failures = h.watchSources(ctx, accountID, now, &sum)
	}
	if len(watches) == 0 && sum.Sources == 0 && len(failures) == 0 {
		return sum, nil
	}
	if len(watches) > 0 {
		broke, errs := h.watchInstances(ctx, watches, now, &sum)
		rolledBack, failures = rolledBack || broke, append(failures, errs...)
	}
	if rolledBack {
		opened, err := h.checkBreaker(ctx, accountID, now)
		sum.BreakerOpened = opened
		if err != nil {
			failures = append(failures, err)
		}
	}
	// A gauge for the dashboard: how many enforcements are still being watched (over the
	// whole organization, HandleOrganization writes it once for all).
	if !h.partOfOrganization {
		h.gaugeVerifying(sum)
	}
	if len(failures) > 0 {
		return sum, fmt.Errorf("verify in %s/%s: %d of %d watched instances and source fixes failed: %w", accountID, h.Region, sum.Failed,
			sum.Watched+sum.Sources, errors.Join(failures...))
	}
	return sum, nil
}

// watchInstances watches each enforced instance once; it reports whether it rolled one
// back, and the instances whose verification failed.
func (h *Handler) watchInstances(ctx context.Context, watches []ledger.Watch, now time.Time, sum *Summary) (rolledBack bool, failures []error) {
	live := h.describe(ctx, watches)
	windows := make(map[string]evidence.Window, len(watches))
	for _, w := range watches {
		start, end := policy.RejectedWindow(w.EnforcedAt, now)
		windows[w.InstanceID] = evidence.Window{Start: start, End: end}
	}
	rejected, rejectedErrs := evidence.RejectedUsage(ctx, h.CloudWatch, windows)

	for _, w := range watches {
		in := policy.VerifyInput{EnforcedAt: w.EnforcedAt, Live: live[w.InstanceID], RejectedErr: rejectedErrs[w.InstanceID]}
		if u, ok := rejected[w.InstanceID]; ok {
			in.Rejected = &u
		}
		v := policy.Verify(in, h.Window, now)
		h.Log.InfoContext(ctx, "verification", "instance_id", w.InstanceID, "decision_id", w.DecisionID,
			"enforced_at", w.EnforcedAt, "step", stepName(v.Step), "reasons", v.Reasons)
		broke, err := h.act(ctx, w, v, in.Live, now, sum)
		if err != nil {
			sum.Failed++
			h.count("Errors", map[string]string{"Stage": "verify"})
			h.Log.ErrorContext(ctx, "verification failed; the instance is watched again on the next run",
				"instance_id", w.InstanceID, "decision_id", w.DecisionID, "error", err.Error())
			failures = append(failures, fmt.Errorf("%s: %w", w.InstanceID, err))
		}
		rolledBack = rolledBack || broke
	}
	return rolledBack, failures
}

// describe reads every watched instance; a failed read fails every instance's
// evidence, which keeps them watched.
func (h *Handler) describe(ctx context.Context, watches []ledger.Watch) map[string]*policy.Evidence {
	ids := make([]string, len(watches))
	for i, w := range watches {
		ids[i] = w.InstanceID
	}
	// An instance EC2 does not know keeps Instance nil: it is gone.
	instances, _, err := evidence.Inventory(ctx, h.EC2, h.Region, ids)
	out := make(map[string]*policy.Evidence, len(ids))
	for _, id := range ids {
		out[id] = &policy.Evidence{InstanceID: id, InventoryErr: err}
	}
	if err != nil {
		return out
	}
	for i := range instances {
		if ev, ok := out[instances[i].InstanceID]; ok {
			ev.Instance = &instances[i]
		}
	}
	return out
}

// act carries out one verification; broke reports a rollback (by imdsguard or by
// someone else).
func (h *Handler) act(ctx context.Context, w ledger.Watch, v policy.Verification, live *policy.Evidence, now time.Time, sum *Summary) (broke bool, err error) {
	settle := func(result string, restored *policy.MetadataOptions, detail string) error {
		err := h.Ledger.Settle(ctx, ledger.Settlement{Watch: w, Result: result, At: now, Reasons: v.Reasons,
			Restored: restored, Detail: detail, Mode: string(h.Settings.Mode)})
		if errors.Is(err, ledger.ErrDone) {
			// Another run settled it first.
			return nil
		}
		return err
	}
	switch v.Step {
	case policy.VerifyWatching:
		sum.Verifying++
		return false, nil
	case policy.VerifyVerified:
		if err := settle(ledger.ResultVerified, nil, "verified: "+v.Reasons[0].Detail); err != nil {
			return false, err
		}
		sum.Verified++
		h.count("Verified", nil)
		return false, nil
	case policy.VerifyEnded:
		if err := settle(ledger.ResultSuperseded, nil, "verification ended: "+v.Reasons[0].Detail); err != nil {
			return false, err
		}
		sum.Ended++
		return false, nil
	case policy.VerifyRevertedBroken:
		current := live.Instance.Options
		if err := settle(ledger.ResultRolledBack, &current, "rolled back outside imdsguard: "+v.Reasons[0].Detail); err != nil {
			return false, err
		}
		sum.RolledBack++
		h.count("RolledBack", map[string]string{"By": "outside"})
		return true, h.ticket(ctx, w, live, v, now)
	case policy.VerifyRollBack:
		if h.Settings.Mode == policy.ModeReport {
			// Report mode changes nothing, a rollback included: the instance stays watched.
			h.Log.WarnContext(ctx, "report mode: an enforcement broke IMDSv1 calls and is not rolled back",
				"instance_id", w.InstanceID, "reasons", v.Reasons)
			sum.Verifying++
			return false, nil
		}
		restored, err := h.rollBack(ctx, w, live.Instance.Options)
		if err != nil {
			return false, err
		}
		if err := settle(ledger.ResultRolledBack, &restored, "rolled back: "+v.Reasons[0].Detail); err != nil {
			return true, err
		}
		sum.RolledBack++
		h.count("RolledBack", map[string]string{"By": "imdsguard"})
		return true, h.ticket(ctx, w, live, v, now)
	}
	return false, fmt.Errorf("verification step %d is not handled", v.Step)
}

// rollBack restores the snapshot's tokens and hop limit and waits for them to apply.
func (h *Handler) rollBack(ctx context.Context, w ledger.Watch, current policy.MetadataOptions) (policy.MetadataOptions, error) {
	snap, err := h.Ledger.GetSnapshot(ctx, w.Ref)
	if err != nil {
		return policy.MetadataOptions{}, err
	}
	if snap == nil {
		return policy.MetadataOptions{}, fmt.Errorf("no snapshot of %s in the ledger: the options from before the enforcement are not known, so nothing was restored", w.Name())
	}
	return h.Restorer.Restore(ctx, w.InstanceID, current, policy.RollbackTarget(snap.Options, current))
}

// ticket sends remediate the ticket verdict of a rolled back instance (rule 5b's), which
// says what broke and when; remediate opens the ticket, or adds this to the open one.
func (h *Handler) ticket(ctx context.Context, w ledger.Watch, live *policy.Evidence, v policy.Verification, now time.Time) error {
	rb := policy.Rollback{At: now, Why: v.Reasons[0].Detail}
	ev := *live
	ev.RolledBack = &rb
	m, err := verdictqueue.NewOutgoing(ev, policy.RolledBackVerdict(rb, h.Settings), w.AccountID, w.Region, "", now)
	if err != nil {
		return err
	}
	if _, err := h.Verdicts.RecordAndSend(ctx, []verdictqueue.Outgoing{m}); err != nil {
		return fmt.Errorf("queueing the ticket of the rollback: %w", err)
	}
	return nil
}

// checkBreaker opens the breaker when the rollbacks since it was last closed are enough.
func (h *Handler) checkBreaker(ctx context.Context, accountID string, now time.Time) (bool, error) {
	r, err := h.Ledger.ReadRollout(ctx, accountID, h.Region)
	if err != nil {
		return false, err
	}
	trips, why := policy.BreakerTrips(r.RollbacksSinceReset(), h.Rollout, now)
	if !trips {
		return false, nil
	}
	opened, err := h.Ledger.OpenBreaker(ctx, accountID, h.Region, now, why)
	if err != nil {
		return false, err
	}
	if opened {
		h.count("BreakerOpened", nil)
		h.Log.ErrorContext(ctx, "circuit breaker opened: enforcement in this account-region stops until a person closes it (imdsguard status --reset-breaker)",
			"account_id", accountID, "region", h.Region, "why", why)
	}
	return opened, nil
}

func stepName(s policy.VerifyStep) string {
	switch s {
	case policy.VerifyWatching:
		return "verifying"
	case policy.VerifyVerified:
		return "verified"
	case policy.VerifyRollBack:
		return "roll-back"
	case policy.VerifyRevertedBroken:
		return "reverted-broken"
	case policy.VerifyEnded:
		return "ended"
	}
	return fmt.Sprint(int(s))
}

func (h *Handler) count(metric string, dims map[string]string) {
	if err := h.Metrics.Count(metric, 1, dims); err != nil {
		h.Log.Error("writing a metric failed", "metric", metric, "error", err)
	}
}

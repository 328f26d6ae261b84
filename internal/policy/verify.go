package policy

import (
	"fmt"
	"time"
)

// An enforced instance is watched for a window (DESIGN.md section 8): IMDSv1 calls that
// EC2 rejected (the MetadataNoTokenRejected metric) mean a workload still needed IMDSv1,
// and imdsguard puts the options back. Only observed hours count: a window closes clean
// only once enough hourly datapoints, each of them zero, were seen.

// VerifyStep is what verify does with an enforced instance.
type VerifyStep int

const (
	// VerifyWatching: keep watching; Note says what is still missing.
	VerifyWatching VerifyStep = iota
	// VerifyVerified: a full window was observed without a rejected call.
	VerifyVerified
	// VerifyRollBack: calls were rejected; restore the snapshot's options.
	VerifyRollBack
	// VerifyRevertedBroken: calls were rejected and HttpTokens is optional again, set
	// outside imdsguard: nothing to restore, but the instance counts as rolled back.
	VerifyRevertedBroken
	// VerifyEnded: the instance is gone, or its options were reverted outside imdsguard
	// without a rejected call seen: watching it has no point.
	VerifyEnded
)

// VerifyInput is what verify gathered about one enforced instance.
type VerifyInput struct {
	// EnforcedAt is when imdsguard enforced IMDSv2 on the instance.
	EnforcedAt time.Time
	// Live is the instance as EC2 describes it now: Instance nil when it was not found,
	// InventoryErr when describing it failed. Nil when it was not described.
	Live *Evidence
	// Rejected is the MetadataNoTokenRejected usage in hourly buckets from the hour of
	// the enforcement until now; nil when it was not read, RejectedErr when reading
	// failed.
	Rejected    *MetricUsage
	RejectedErr error
}

// Verification is verify's decision about one enforced instance.
type Verification struct {
	Step VerifyStep
	// Reasons say why, for the ledger and the ticket (the first is the primary one):
	// for a rollback, what was rejected and when.
	Reasons []Reason
}

// Reason codes of verification.
const (
	// ReasonRejectedCalls: IMDSv1 calls were rejected after the enforcement.
	ReasonRejectedCalls ReasonCode = "imdsv1-rejected"
	// ReasonVerified: a full window without a rejected call.
	ReasonVerified ReasonCode = "verified"
	// ReasonVerifying: still inside the window, or not enough of it observed.
	ReasonVerifying ReasonCode = "verifying"
	// ReasonRevertedOutside: HttpTokens is optional again, set outside imdsguard.
	ReasonRevertedOutside ReasonCode = "reverted-outside"
)

// VerifyWindowHours is the number of observed hours that close a verification window.
func VerifyWindowHours(window time.Duration) int {
	return int((window + time.Hour - 1) / time.Hour)
}

// RejectedWindow is the span verify reads MetadataNoTokenRejected over for an instance
// enforced at enforcedAt: from the hour of the enforcement to the end of the current,
// still filling, hour. Nothing can have been rejected before the enforcement, so the
// first hour's calls are all after it.
func RejectedWindow(enforcedAt, now time.Time) (start, end time.Time) {
	return enforcedAt.UTC().Truncate(time.Hour), now.UTC().Truncate(time.Hour).Add(time.Hour)
}

// Verify decides about one enforced instance. It never rolls back on evidence it could
// not read (missing data keeps the instance watched), never rolls back an instance it
// could not describe (the restore must start from what is there), and never calls a
// window clean before both the time and the observed hours of the window have passed.
func Verify(in VerifyInput, window time.Duration, now time.Time) Verification {
	now = now.UTC()
	watching := func(format string, args ...any) Verification {
		return Verification{Step: VerifyWatching, Reasons: []Reason{{ReasonVerifying, fmt.Sprintf(format, args...)}}}
	}
	since := in.EnforcedAt.UTC().Format(time.RFC3339)
	switch {
	case in.EnforcedAt.IsZero():
		return watching("the enforcement has no time")
	case in.Live == nil:
		return watching("the instance was not described")
	case in.Live.InventoryErr != nil:
		return watching("describing the instance failed: %v", in.Live.InventoryErr)
	}
	inst := in.Live.Instance
	if inst == nil || inst.State == StateShuttingDown || inst.State == StateTerminated {
		return Verification{Step: VerifyEnded, Reasons: []Reason{{ReasonTerminated, "the instance no longer exists"}}}
	}
	reverted := inst.Options.HTTPTokens != TokensRequired
	revertedReason := Reason{ReasonRevertedOutside, fmt.Sprintf(
		"HttpTokens is %s again: set outside imdsguard after it enforced IMDSv2 at %s", inst.Options.HTTPTokens, since)}
	r := in.Rejected
	switch {
	case in.RejectedErr != nil || r == nil || !isCount(r.Sum):
		why := "MetadataNoTokenRejected was not read"
		switch {
		case in.RejectedErr != nil:
			why = fmt.Sprintf("reading MetadataNoTokenRejected failed: %v", in.RejectedErr)
		case r != nil:
			why = fmt.Sprintf("the MetadataNoTokenRejected sum %g is not a count of calls", r.Sum)
		}
		if reverted {
			return Verification{Step: VerifyEnded, Reasons: []Reason{revertedReason, {ReasonEvidenceError, why}}}
		}
		return Verification{Step: VerifyWatching, Reasons: []Reason{{ReasonEvidenceError, why}}}
	case r.Sum > 0:
		rejected := Reason{ReasonRejectedCalls, describeRejected(r, since)}
		if reverted {
			return Verification{Step: VerifyRevertedBroken, Reasons: []Reason{rejected, revertedReason}}
		}
		return Verification{Step: VerifyRollBack, Reasons: []Reason{rejected}}
	case reverted:
		return Verification{Step: VerifyEnded, Reasons: []Reason{revertedReason}}
	}
	need := VerifyWindowHours(window)
	if end := in.EnforcedAt.Add(window); now.Before(end) || r.ObservedHours < need {
		return watching("%d of the %d hours of the window observed since the enforcement at %s, no IMDSv1 call rejected "+
			"(a missing datapoint is not a zero)", r.ObservedHours, need, since)
	}
	return Verification{Step: VerifyVerified, Reasons: []Reason{{ReasonVerified, fmt.Sprintf(
		"no IMDSv1 call rejected in %d observed hours since the enforcement at %s", r.ObservedHours, since)}}}
}

func describeRejected(r *MetricUsage, since string) string {
	detail := fmt.Sprintf("EC2 rejected %s IMDSv1 calls after IMDSv2 was enforced at %s: a workload still uses IMDSv1",
		formatCount(r.Sum), since)
	if r.LastNonZero != nil {
		detail += fmt.Sprintf("; the last in the hour from %s", r.LastNonZero.UTC().Format(time.RFC3339))
	}
	return detail
}

// RollbackTarget is what a rollback restores: the snapshot's tokens and hop limit. The
// endpoint is never touched: imdsguard never changed it, and re-enabling a disabled one
// (or disabling an enabled one) is not its to do.
func RollbackTarget(snapshot, live MetadataOptions) MetadataOptions {
	return MetadataOptions{HTTPTokens: snapshot.HTTPTokens, HopLimit: snapshot.HopLimit, HTTPEndpoint: live.HTTPEndpoint}
}

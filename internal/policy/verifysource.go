package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// A launch template imdsguard fixed is watched like an enforced instance (DESIGN.md
// sections 8 and 10): every instance launched from the fixed version is, in effect, an
// enforcement of imdsguard's, and an IMDSv1 call EC2 rejected on any of them means the
// template's workload still needs IMDSv1. The template then goes back to its default
// version from before the fix, and the instances that broke get HttpTokens optional back.

// SourceVerifyStep is what verify does with a fixed source.
type SourceVerifyStep int

const (
	// SourceWatching: keep watching; the reasons say what is still missing.
	SourceWatching SourceVerifyStep = iota
	// SourceVerified: the window passed and no instance launched from the fix broke.
	SourceVerified
	// SourceRollBack: instances launched from the fix had IMDSv1 calls rejected.
	SourceRollBack
	// SourceEnded: the fix is not in force any more (the template is gone, or its default
	// version changed outside imdsguard): watching it has no point.
	SourceEnded
)

// SourceVerifyInput is what verify gathered about one fixed launch template.
type SourceVerifyInput struct {
	FixedAt time.Time
	// FixedVersion is the version imdsguard made; DefaultVersion the template's default
	// now (0 when the template is gone).
	FixedVersion, DefaultVersion int64
	// Launched are the instances launched from the fixed version, by id, each as
	// verify reads an enforced instance (its EnforcedAt the later of the fix and its
	// launch). LaunchedErr is set when listing them failed.
	Launched    map[string]VerifyInput
	LaunchedErr error
}

// SourceVerification is verify's decision about a fixed source. Broken names the
// instances whose calls were rejected, sorted, for a rollback.
type SourceVerification struct {
	Step    SourceVerifyStep
	Reasons []Reason
	Broken  []string
}

// VerifySource decides about one fixed launch template. Like Verify, it never rolls back
// on evidence it could not read: an instance it could not judge keeps the fix watched.
// The fix is verified only once its window has passed and at least one instance launched
// from it ran a whole window of its own without a rejected call.
func VerifySource(in SourceVerifyInput, window time.Duration, now time.Time) SourceVerification {
	since := in.FixedAt.UTC().Format(time.RFC3339)
	if in.LaunchedErr != nil {
		return SourceVerification{Step: SourceWatching, Reasons: []Reason{{ReasonEvidenceError, fmt.Sprintf(
			"listing the instances launched from version %d failed: %v", in.FixedVersion, in.LaunchedErr)}}}
	}
	// The instances come first: those the fix broke are put back even when the template
	// changed since (by a person, or by a rollback that stopped half way).
	var broken, why, pending []string
	verified := 0
	for _, id := range slices.Sorted(maps.Keys(in.Launched)) {
		v := Verify(in.Launched[id], window, now)
		switch v.Step {
		case VerifyRollBack, VerifyRevertedBroken:
			broken = append(broken, id)
			why = append(why, id+": "+v.Reasons[0].Detail)
		case VerifyVerified:
			verified++
		case VerifyWatching:
			if v.Reasons[0].Code == ReasonEvidenceError {
				pending = append(pending, id)
			}
		}
	}
	switch {
	case len(broken) > 0:
		return SourceVerification{Step: SourceRollBack, Broken: broken, Reasons: []Reason{{ReasonRejectedCalls, fmt.Sprintf(
			"%d of the %d instances launched from imdsguard's version %d had IMDSv1 calls rejected: %s",
			len(broken), len(in.Launched), in.FixedVersion, strings.Join(why, "; "))}}}
	case in.DefaultVersion == 0:
		return SourceVerification{Step: SourceEnded, Reasons: []Reason{{ReasonTerminated, "the launch template no longer exists"}}}
	case in.DefaultVersion != in.FixedVersion:
		return SourceVerification{Step: SourceEnded, Reasons: []Reason{{ReasonRevertedOutside, fmt.Sprintf(
			"the default version is %d, not imdsguard's %d: changed outside imdsguard after the fix at %s", in.DefaultVersion, in.FixedVersion, since)}}}
	case len(pending) > 0:
		return SourceVerification{Step: SourceWatching, Reasons: []Reason{{ReasonEvidenceError, fmt.Sprintf(
			"the rejected calls of %s could not be read", strings.Join(pending, ", "))}}}
	case now.Before(in.FixedAt.Add(window)):
		return SourceVerification{Step: SourceWatching, Reasons: []Reason{{ReasonVerifying, fmt.Sprintf(
			"%d instances launched from version %d since the fix at %s, none with an IMDSv1 call rejected; the window ends at %s",
			len(in.Launched), in.FixedVersion, since, in.FixedAt.Add(window).UTC().Format(time.RFC3339))}}}
	case verified == 0:
		// No instance launched from the fix has run a whole window yet: nothing is proven.
		return SourceVerification{Step: SourceWatching, Reasons: []Reason{{ReasonVerifying, fmt.Sprintf(
			"none of the %d instances launched from version %d since the fix at %s has been watched a whole window yet",
			len(in.Launched), in.FixedVersion, since)}}}
	}
	return SourceVerification{Step: SourceVerified, Reasons: []Reason{{ReasonVerified, fmt.Sprintf(
		"no IMDSv1 call rejected on the %d instances launched from version %d since the fix at %s (%d watched a whole window)",
		len(in.Launched), in.FixedVersion, since, verified)}}}
}

// BreakageTarget is what an instance a source fix broke gets back: HttpTokens optional,
// with its hop limit and endpoint as they are (the fix chose neither for it alone). ok is
// false when it has HttpTokens optional already: put back by an earlier run, or by a
// person.
func BreakageTarget(live MetadataOptions) (target MetadataOptions, ok bool) {
	if live.HTTPTokens != TokensRequired {
		return MetadataOptions{}, false
	}
	return MetadataOptions{HTTPTokens: TokensOptional, HopLimit: live.HopLimit, HTTPEndpoint: live.HTTPEndpoint}, true
}

package policy

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Authenticity is what the ledger says about a queued verdict: whether detect recorded
// a decision with the message's id, instance and content. The zero value is the least
// trusted.
type Authenticity int

const (
	// NotRecorded: no decision with the message's id was recorded by detect.
	NotRecorded Authenticity = iota
	// Altered: detect recorded the id, but for other content or another instance.
	Altered
	// Recorded: detect recorded exactly this message.
	Recorded
)

// QueuedVerdict is what remediate knows about a verdict it took from the queue, before
// it looks at the instance.
type QueuedVerdict struct {
	Authenticity Authenticity
	// Foreign is set when the verdict is about another account or region than the
	// function's own.
	Foreign   bool
	Action    Action
	Reasons   []Reason
	CreatedAt time.Time
	// Seen are the metadata options the verdict was made on; nil when detect did not see
	// the instance.
	Seen *MetadataOptions
	// UsageFrom is the start of the newest MetadataNoToken bucket the verdict's evidence
	// read (the bucket may still have been filling): IMDSv1 calls from then on may not be
	// in the evidence. Zero when no metric was read.
	UsageFrom time.Time
}

// RecheckInput is everything remediate gathered about a queued verdict.
type RecheckInput struct {
	Queued QueuedVerdict
	// Live is the instance as EC2 describes it now, nil until it was described
	// (RecheckDescribe asks for it): Instance nil when it was not found, InventoryErr when
	// describing it failed.
	Live *Evidence
	// Recent is the MetadataNoToken usage from Queued.UsageFrom until now; nil until it
	// was read (RecheckReadRecentUsage asks for it). RecentErr is set when reading failed.
	Recent    *MetricUsage
	RecentErr error
}

// RecheckLimits bound how long a queued verdict may be trusted.
type RecheckLimits struct {
	// MaxAge: an older verdict is judged again on fresh evidence.
	MaxAge time.Duration
	// MaxClockSkew is how far in the future created_at may lie, for clocks that differ a
	// little between the two functions.
	MaxClockSkew time.Duration
}

// RecheckStep is what remediate does next with a queued verdict.
type RecheckStep int

const (
	// RecheckRefuse: act on nothing. The message is forged, altered, foreign or
	// future-dated; Note says why.
	RecheckRefuse RecheckStep = iota
	// RecheckDescribe: describe the instance as it is now, then recheck.
	RecheckDescribe
	// RecheckReadRecentUsage: read MetadataNoToken from Since until now, then recheck.
	RecheckReadRecentUsage
	// RecheckRejudge: the verdict no longer holds as it was made; judge the live instance
	// on fresh evidence and carry out that verdict.
	RecheckRejudge
	// RecheckCarryOut: carry out Verdict (its Target, for a remediation, is computed from
	// the live instance and the settings).
	RecheckCarryOut
	// RecheckNothing: there is nothing left to do; Note says why.
	RecheckNothing
)

// Recheck is the decision about a queued verdict.
type Recheck struct {
	Step    RecheckStep
	Verdict Verdict   // RecheckCarryOut
	Since   time.Time // RecheckReadRecentUsage
	// Note explains the step in words for the outcome's detail, or for the error when the
	// message is refused. Empty when the queued verdict is carried out unchanged.
	Note string
}

// RecheckQueued decides what remediate does with a verdict taken from the queue: refuse
// it, read more, judge again, carry it out (possibly changed by the live instance), or
// nothing. A queued verdict is never trusted for more than it proves:
//
//   - only a verdict detect recorded, with the same content, about this account and
//     region, created no later than now (give or take MaxClockSkew), is looked at;
//   - the rules that need no usage evidence (gone, compliant, exempt, endpoint disabled,
//     not running) are applied to the live instance every time;
//   - a verdict older than MaxAge, or made on other metadata options than the live ones,
//     is judged again on fresh evidence;
//   - a remediation is carried out only as "IMDSv1 unused", only after the
//     MetadataNoToken calls since its evidence were read and found to be none, and with
//     target options computed here from the live instance and the settings.
func RecheckQueued(in RecheckInput, s Settings, limits RecheckLimits, now time.Time) Recheck {
	now = now.UTC()
	q := in.Queued
	switch {
	case q.Foreign:
		return refuse("the verdict is about another account or region than this function's")
	case q.Authenticity == NotRecorded:
		return refuse("not recorded by detect: no decision with this id is in the ledger")
	case q.Authenticity != Recorded:
		return refuse("the message differs from the decision detect recorded under its id")
	case q.CreatedAt.IsZero():
		return refuse("the verdict has no creation time")
	case q.CreatedAt.After(now.Add(limits.MaxClockSkew)):
		return refuse(fmt.Sprintf("the verdict was created at %s, %s in the future",
			q.CreatedAt.UTC().Format(time.RFC3339), ShortDuration(q.CreatedAt.Sub(now))))
	}

	if in.Live == nil {
		return Recheck{Step: RecheckDescribe}
	}
	live := *in.Live
	if live.InventoryErr != nil {
		return carryOut(final(ActionDefer, ReasonEvidenceError, "describing the instance again failed: %v", live.InventoryErr),
			"the live instance could not be described")
	}
	// Rules 1 to 5 need no usage evidence: they are decided on the instance as it is now.
	if Next(live, s, now) == NeedNothing {
		settled := Decide(live, s, now)
		note := ""
		if settled.Action != q.Action || settled.Primary() != primaryOf(q.Reasons) {
			note = fmt.Sprintf("the live instance changed the verdict: %s (%s) -> %s (%s)",
				q.Action, primaryOf(q.Reasons), settled.Action, settled.Primary())
		}
		return Recheck{Step: RecheckCarryOut, Verdict: settled, Note: note}
	}
	inst := live.Instance
	if q.Action == ActionSkip {
		// A request to close a ticket for an instance that is no longer compliant or gone:
		// the next sweep judges it afresh.
		return Recheck{Step: RecheckNothing, Note: "asked to close the ticket, but HttpTokens is " + inst.Options.HTTPTokens + " again"}
	}
	age := now.Sub(q.CreatedAt)
	if age > limits.MaxAge {
		return Recheck{Step: RecheckRejudge, Note: fmt.Sprintf("the verdict is %s old (more than %s)", ShortDuration(age), ShortDuration(limits.MaxAge))}
	}
	if q.Seen == nil || !sameOptions(*q.Seen, inst.Options) {
		return Recheck{Step: RecheckRejudge, Note: "the metadata options changed since the verdict: " + describeChange(q.Seen, inst.Options)}
	}
	if q.Action != ActionRemediate {
		return Recheck{Step: RecheckCarryOut, Verdict: Verdict{Action: q.Action, Reasons: q.Reasons}}
	}

	// A remediation stands only on "IMDSv1 unused" evidence (rules 6 to 11); any other
	// remediate reason (the endpoint was disabled) was settled above if it still holds.
	if primaryOf(q.Reasons) != ReasonIMDSv1Unused || q.UsageFrom.IsZero() {
		return Recheck{Step: RecheckRejudge, Note: fmt.Sprintf("a remediation for %q is not carried out from the queue", primaryOf(q.Reasons))}
	}
	switch {
	case in.RecentErr != nil:
		return carryOut(final(ActionDefer, ReasonEvidenceError, "reading the MetadataNoToken calls since %s failed: %v",
			q.UsageFrom.UTC().Format(time.RFC3339), in.RecentErr), "")
	case in.Recent == nil:
		return Recheck{Step: RecheckReadRecentUsage, Since: q.UsageFrom}
	case !isCount(in.Recent.Sum):
		return carryOut(final(ActionDefer, ReasonEvidenceError, "the MetadataNoToken sum since %s is %g, not a count",
			q.UsageFrom.UTC().Format(time.RFC3339), in.Recent.Sum), "")
	case in.Recent.Sum > 0:
		detail := fmt.Sprintf("%s IMDSv1 calls since %s, after the evidence the verdict was made on", formatCount(in.Recent.Sum),
			q.UsageFrom.UTC().Format(time.RFC3339))
		if in.Recent.LastNonZero != nil {
			detail += fmt.Sprintf(", the last in the 5 minutes from %s", in.Recent.LastNonZero.UTC().Format(time.RFC3339))
		}
		return carryOut(final(ActionTicket, ReasonIMDSv1UsedMetric, "%s", detail), "IMDSv1 was used after the verdict")
	}
	target := TargetFor(*inst, s)
	// The queued reasons stand, but whether the instance is a container host, and so its
	// hop limit, is the live instance's: the secondary reason is made afresh.
	reasons := slices.DeleteFunc(slices.Clone(q.Reasons), func(r Reason) bool { return r.Code == ReasonContainerHost })
	if r, container := containerReason(*inst, s, target); container {
		reasons = append(reasons, r)
	}
	return Recheck{Step: RecheckCarryOut, Verdict: Verdict{Action: ActionRemediate, Reasons: reasons, Target: &target}}
}

// TargetFor returns the options a remediation of inst sets (DESIGN.md section 3, "Target
// options"): tokens required, the configured hop limit (on container hosts at least the
// container hop limit and never less than now), the endpoint left as it is.
func TargetFor(inst Instance, s Settings) MetadataOptions {
	_, container := s.containerHostTag(inst.Tags)
	return targetOptions(inst.Options, s, container)
}

func refuse(why string) Recheck { return Recheck{Step: RecheckRefuse, Note: why} }

func carryOut(v Verdict, note string) Recheck {
	return Recheck{Step: RecheckCarryOut, Verdict: v, Note: note}
}

func primaryOf(reasons []Reason) ReasonCode {
	if len(reasons) == 0 {
		return ""
	}
	return reasons[0].Code
}

func sameOptions(a, b MetadataOptions) bool {
	return a.HTTPTokens == b.HTTPTokens && a.HopLimit == b.HopLimit && a.HTTPEndpoint == b.HTTPEndpoint
}

func describeChange(seen *MetadataOptions, now MetadataOptions) string {
	if seen == nil {
		return "the verdict names no options"
	}
	return fmt.Sprintf("tokens %s, hop limit %d, endpoint %s -> tokens %s, hop limit %d, endpoint %s",
		seen.HTTPTokens, seen.HopLimit, seen.HTTPEndpoint, now.HTTPTokens, now.HopLimit, now.HTTPEndpoint)
}

// isCount reports whether f can be a number of calls: finite and not negative.
func isCount(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) && f >= 0 }

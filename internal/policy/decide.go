package policy

import (
	"fmt"
	"strings"
	"time"
)

// Need names the evidence that must be gathered before a verdict can be final.
type Need int

const (
	// NeedNothing: the verdict is final with the evidence at hand.
	NeedNothing Need = iota
	// NeedMetrics: the MetadataNoToken usage has not been gathered yet.
	NeedMetrics
	// NeedBootMetrics: the instance launched before the lookback window and the
	// MetadataNoToken usage of its boot hours (BootWindowOf) has not been gathered yet.
	NeedBootMetrics
	// NeedCloudTrail: the instance would be remediated, has an instance profile, and its
	// credential deliveries have not been looked up yet.
	NeedCloudTrail
)

// Decide applies the verdict rules of DESIGN.md section 3 (first match wins) to the
// evidence about one instance at time now. Evidence that is missing or failed never
// leads to a remediation: it defers.
func Decide(ev Evidence, s Settings, now time.Time) Verdict {
	v, _ := evaluate(ev, s, now)
	return v
}

// Next reports which evidence must be gathered before Decide is final. Gathering only
// what the rules still need keeps the API calls down: metrics only for instances that
// reach the metric rules, CloudTrail only for instances that would otherwise be
// remediated and have an instance profile.
func Next(ev Evidence, s Settings, now time.Time) Need {
	_, need := evaluate(ev, s, now)
	return need
}

func evaluate(ev Evidence, s Settings, now time.Time) (Verdict, Need) {
	now = now.UTC()
	if ev.InventoryErr != nil {
		return final(ActionDefer, ReasonEvidenceError, "describing the instance failed: %v", ev.InventoryErr), NeedNothing
	}
	inst := ev.Instance
	// Rule 1.
	if inst == nil {
		return final(ActionSkip, ReasonTerminated, "instance %s not found", ev.InstanceID), NeedNothing
	}
	if inst.State == StateShuttingDown || inst.State == StateTerminated {
		return final(ActionSkip, ReasonTerminated, "instance is %s", inst.State), NeedNothing
	}
	// Rule 2.
	if inst.Options.HTTPTokens == TokensRequired {
		return final(ActionSkip, ReasonCompliant, "HttpTokens is already required"), NeedNothing
	}

	var secondary []Reason
	// Rule 3.
	if value, tagged := inst.Tags[s.ExemptTag]; tagged {
		ex := parseExemption(s.ExemptTag, value, now)
		if !ex.expired {
			return final(ActionSkip, ReasonExempt, "%s", ex.detail), NeedNothing
		}
		secondary = append(secondary, Reason{ReasonExemptionExpired, ex.detail})
	}
	target := TargetFor(*inst, s)
	if r, container := containerReason(*inst, s, target); container {
		secondary = append(secondary, r)
	}
	with := func(v Verdict) Verdict {
		v.Reasons = append(v.Reasons, secondary...)
		return v
	}

	// Rule 4.
	if inst.Options.HTTPEndpoint == EndpointDisable {
		v := final(ActionRemediate, ReasonEndpointDisabled, "the metadata endpoint is disabled, so nothing can use IMDSv1; it stays disabled")
		v.Target = &target
		return with(v), NeedNothing
	}
	// Rule 5.
	if inst.State != StateRunning {
		return with(final(ActionDefer, ReasonNotRunning, "instance is %s: usage can only be judged while it runs", inst.State)), NeedNothing
	}

	// Rule 5b: an enforcement that broke something is not tried again until a whole
	// lookback of evidence has been gathered since it was undone. The rollback is itself
	// proof that IMDSv1 is used, which the metric may not show (rejected calls are not in
	// MetadataNoToken), so it is a ticket.
	if rb := ev.RolledBack; rb != nil && now.Before(rb.At.Add(s.Lookback)) {
		return with(RolledBackVerdict(*rb, s)), NeedNothing
	}

	// Rules 6 to 8 read the MetadataNoToken metric.
	lookbackHours := int(s.Lookback / time.Hour)
	if ev.MetricsErr != nil {
		return with(final(ActionDefer, ReasonEvidenceError, "reading the MetadataNoToken metric failed: %v", ev.MetricsErr)), NeedNothing
	}
	m := ev.Metrics
	if m == nil {
		return with(final(ActionDefer, ReasonEvidenceError, "the MetadataNoToken metric was not read")), NeedMetrics
	}
	if !isCount(m.Sum) {
		// A broken reply must never compare as "no calls" (NaN > 0 is false).
		return with(final(ActionDefer, ReasonEvidenceError, "the MetadataNoToken sum %g is not a count of calls", m.Sum)), NeedNothing
	}
	if m.Sum > 0 {
		detail := fmt.Sprintf("%s IMDSv1 calls in the last %dh", formatCount(m.Sum), lookbackHours)
		if m.LastNonZero != nil {
			detail += fmt.Sprintf(", the last in the hour from %s", m.LastNonZero.UTC().Format(time.RFC3339))
		}
		return with(final(ActionTicket, ReasonIMDSv1UsedMetric, "%s", detail)), NeedNothing
	}
	if m.ObservedHours < s.MinObservedHours {
		return with(final(ActionDefer, ReasonInsufficientMetrics,
			"only %d of the %d hours needed were observed in the last %dh (a missing datapoint is not a zero)",
			m.ObservedHours, s.MinObservedHours, lookbackHours)), NeedNothing
	}
	if m.LastDatapoint == nil {
		return with(final(ActionDefer, ReasonStaleMetrics, "no MetadataNoToken datapoint in the last %dh", lookbackHours)), NeedNothing
	}
	if age := now.Sub(*m.LastDatapoint); age > s.MaxMetricStaleness {
		return with(final(ActionDefer, ReasonStaleMetrics,
			"the last MetadataNoToken datapoint is from %s, %s ago (more than %s)",
			m.LastDatapoint.UTC().Format(time.RFC3339), ShortDuration(age), ShortDuration(s.MaxMetricStaleness))), NeedNothing
	}
	// Rule 8b.
	if v, r, need, decided := bootRule(ev, s, now); decided {
		return with(v), need
	} else if r.Code != "" {
		secondary = append(secondary, r)
	}
	unused := fmt.Sprintf("0 IMDSv1 calls in %d observed hours", m.ObservedHours)

	// Rules 9 and 10 read CloudTrail, which only knows about role credentials.
	if inst.InstanceProfileARN == "" {
		secondary = append(secondary, Reason{ReasonNoInstanceProfile,
			"no instance profile: there are no role credentials to fetch, so CloudTrail has nothing to add"})
		v := final(ActionRemediate, ReasonIMDSv1Unused, "%s", unused)
		v.Target = &target
		return with(v), NeedNothing
	}
	if ev.CloudTrailErr != nil {
		return with(final(ActionDefer, ReasonCloudTrailUnavailable, "CloudTrail could not be read: %v", ev.CloudTrailErr)), NeedNothing
	}
	ct := ev.CloudTrail
	if ct == nil {
		return with(final(ActionDefer, ReasonCloudTrailUnavailable, "the instance role's credential deliveries were not looked up in CloudTrail")), NeedCloudTrail
	}
	if ct.V1Deliveries > 0 {
		v := final(ActionTicket, ReasonIMDSv1UsedCloudTrail, "%s", describeV1Deliveries(ct))
		if len(ct.ForeignSourceIPs) > 0 {
			secondary = append(secondary, Reason{ReasonPossibleCredentialTheft, fmt.Sprintf(
				"credentials fetched over IMDSv1 were used from %s, which is not an address of this instance: "+
					"they may have been stolen (or the instance reaches AWS through a NAT or proxy)",
				strings.Join(ct.ForeignSourceIPs, ", "))})
		}
		return with(v), NeedNothing
	}
	// Rule 11.
	v := final(ActionRemediate, ReasonIMDSv1Unused, "%s; CloudTrail shows %d IMDSv2 and no IMDSv1 credential deliveries",
		unused, ct.V2Deliveries)
	v.Target = &target
	return with(v), NeedNothing
}

// RolledBackVerdict is the ticket of an instance whose enforcement imdsguard rolled
// back (rule 5b): what broke, when it was undone, and until when it is not enforced again.
func RolledBackVerdict(rb Rollback, s Settings) Verdict {
	return final(ActionTicket, ReasonRolledBack,
		"imdsguard rolled back its enforcement at %s (%s); it is not enforced again before %s, a full lookback later",
		rb.At.UTC().Format(time.RFC3339), rb.Why, rb.At.Add(s.Lookback).UTC().Format(time.RFC3339))
}

func final(action Action, code ReasonCode, format string, args ...any) Verdict {
	return Verdict{Action: action, Reasons: []Reason{{Code: code, Detail: fmt.Sprintf(format, args...)}}}
}

// containerReason is the secondary reason of a container host, naming the tag that marks
// it and the hop limit its target gets; false when inst is not one.
func containerReason(inst Instance, s Settings, target MetadataOptions) (Reason, bool) {
	tag, container := s.containerHostTag(inst.Tags)
	if !container {
		return Reason{}, false
	}
	return Reason{ReasonContainerHost, fmt.Sprintf(
		"tag %s marks a container host: containers are one more network hop, so the hop limit becomes %d", tag, target.HopLimit)}, true
}

// targetOptions are the options a remediation sets: tokens required, the configured hop
// limit (at least the container hop limit on container hosts, and never lower than the
// current one there), and the endpoint left exactly as it is: never re-enabled.
func targetOptions(current MetadataOptions, s Settings, container bool) MetadataOptions {
	hop := s.HopLimit
	if container {
		hop = max(current.HopLimit, s.ContainerHopLimit)
	}
	return MetadataOptions{HTTPTokens: TokensRequired, HopLimit: hop, HTTPEndpoint: current.HTTPEndpoint}
}

type exemption struct {
	expired bool
	detail  string
}

// parseExemption reads the exemption tag. An unreadable value still exempts: the tag
// shows someone meant to exempt the instance, and guessing otherwise could break it.
func parseExemption(key, value string, now time.Time) exemption {
	v := strings.TrimSpace(value)
	if strings.EqualFold(v, "true") {
		return exemption{detail: fmt.Sprintf("tag %s=%s", key, value)}
	}
	if day, err := time.Parse(time.DateOnly, v); err == nil {
		end := day.Add(24 * time.Hour)
		if now.Before(end) {
			return exemption{detail: fmt.Sprintf("tag %s=%s exempts the instance until the end of %s UTC", key, value, v)}
		}
		return exemption{expired: true, detail: fmt.Sprintf("the exemption %s=%s ended at %s", key, value, end.Format(time.RFC3339))}
	}
	return exemption{detail: fmt.Sprintf(
		"tag %s=%q is neither \"true\" nor a YYYY-MM-DD date; the value was not understood, so the instance is treated as exempt", key, value)}
}

func describeV1Deliveries(ct *CloudTrailUsage) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CloudTrail shows role credentials fetched over IMDSv1 (ec2RoleDelivery 1.0) %d time(s)", ct.V1Deliveries)
	if ct.LastV1Delivery != nil {
		fmt.Fprintf(&b, ", the last used at %s", ct.LastV1Delivery.UTC().Format(time.RFC3339))
	}
	if len(ct.EventNames) > 0 {
		fmt.Fprintf(&b, "; calls: %s", strings.Join(ct.EventNames, ", "))
	}
	if len(ct.UserAgents) > 0 {
		fmt.Fprintf(&b, "; user agents: %s", strings.Join(ct.UserAgents, ", "))
	}
	return b.String()
}

func formatCount(f float64) string {
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d", int64(f))
	}
	return fmt.Sprintf("%.2f", f)
}

// ShortDuration writes a duration to the minute, as people do: "6h39m", "3h", "45m".
func ShortDuration(d time.Duration) string {
	out := d.Round(time.Minute).String()
	out = strings.TrimSuffix(out, "0s")
	if strings.HasSuffix(out, "h0m") {
		out = strings.TrimSuffix(out, "0m")
	}
	return out
}

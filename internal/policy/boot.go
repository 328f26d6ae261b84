package policy

import (
	"fmt"
	"time"
)

// MetricRetention is how long CloudWatch keeps hourly datapoints: 455 days. A boot
// older than that can no longer be read.
const MetricRetention = 455 * 24 * time.Hour

// LookbackWindow is the window the MetadataNoToken metric is read over at now: whole
// hours, ending with the current, still filling, hour.
func LookbackWindow(now time.Time, lookback time.Duration) (start, end time.Time) {
	end = now.UTC().Truncate(time.Hour).Add(time.Hour)
	return end.Add(-lookback), end
}

// bootKind says what rule 8b can know about an instance's boot.
type bootKind int

const (
	// bootSeen: the rule is off, or the boot lies inside the lookback window, whose
	// metric the earlier rules have read already.
	bootSeen bootKind = iota
	// bootToRead: the boot hours must be read (NeedBootMetrics).
	bootToRead
	// bootUnknownLaunch: EC2 gave no launch time.
	bootUnknownLaunch
	// bootExpired: the boot is older than CloudWatch's retention.
	bootExpired
)

// BootWindowOf returns the hourly buckets that cover an instance's first BootWindow
// after launch, from the hour it launched in to the hour the window ends in, and whether
// rule 8b reads them: only for an instance launched before the lookback window (whose
// boot the lookback cannot see) and within CloudWatch's retention.
func BootWindowOf(inst Instance, s Settings, now time.Time) (start, end time.Time, read bool) {
	start, end, kind := bootWindow(inst, s, now)
	return start, end, kind == bootToRead
}

func bootWindow(inst Instance, s Settings, now time.Time) (start, end time.Time, kind bootKind) {
	if s.BootWindow <= 0 {
		return time.Time{}, time.Time{}, bootSeen
	}
	if inst.LaunchTime.IsZero() {
		return time.Time{}, time.Time{}, bootUnknownLaunch
	}
	launch := inst.LaunchTime.UTC()
	start = launch.Truncate(time.Hour)
	end = launch.Add(s.BootWindow).Truncate(time.Hour).Add(time.Hour)
	lookbackStart, _ := LookbackWindow(now, s.Lookback)
	switch {
	case !start.Before(lookbackStart):
		return start, end, bootSeen
	case now.UTC().Sub(start) > MetricRetention:
		return start, end, bootExpired
	}
	return start, end, bootToRead
}

// bootRule is rule 8b: IMDSv1 calls in the boot hours are a ticket, since a reboot (or
// the next instance from the same launch template) makes them again; boot hours without a
// datapoint add boot-unobserved and do not block. It returns the verdict when the rule
// decides (ok), else the secondary reason to add (Code empty for none).
func bootRule(ev Evidence, s Settings, now time.Time) (v Verdict, secondary Reason, need Need, ok bool) {
	inst := ev.Instance
	start, end, kind := bootWindow(*inst, s, now)
	switch kind {
	case bootSeen:
		return Verdict{}, Reason{}, NeedNothing, false
	case bootUnknownLaunch:
		return Verdict{}, Reason{ReasonBootUnobserved, "EC2 gave no launch time, so the boot hours could not be read"}, NeedNothing, false
	case bootExpired:
		return Verdict{}, Reason{ReasonBootUnobserved, fmt.Sprintf(
			"launched at %s, more than 455 days ago: CloudWatch no longer keeps the hours after its boot",
			inst.LaunchTime.UTC().Format(time.RFC3339))}, NeedNothing, false
	}
	window := fmt.Sprintf("the first %s after launch at %s (%s to %s)", ShortDuration(s.BootWindow),
		inst.LaunchTime.UTC().Format(time.RFC3339), start.Format(time.RFC3339), end.Format(time.RFC3339))
	switch b := ev.Boot; {
	case ev.BootErr != nil:
		return final(ActionDefer, ReasonEvidenceError, "reading the MetadataNoToken metric of %s failed: %v", window, ev.BootErr), Reason{}, NeedNothing, true
	case b == nil:
		return final(ActionDefer, ReasonEvidenceError, "the MetadataNoToken metric of %s was not read", window), Reason{}, NeedBootMetrics, true
	case !isCount(b.Sum):
		return final(ActionDefer, ReasonEvidenceError, "the MetadataNoToken sum %g of %s is not a count of calls", b.Sum, window), Reason{}, NeedNothing, true
	case b.Sum > 0:
		return final(ActionTicket, ReasonIMDSv1UsedAtBoot,
			"%s IMDSv1 calls in %s: a reboot, or the next instance from the same launch template, makes them again",
			formatCount(b.Sum), window), Reason{}, NeedNothing, true
	case b.ObservedHours == 0:
		return Verdict{}, Reason{ReasonBootUnobserved, fmt.Sprintf(
			"no MetadataNoToken datapoint in %s: what the instance does at boot was not observed", window)}, NeedNothing, false
	}
	return Verdict{}, Reason{}, NeedNothing, false
}

package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Sources are where instances come from (DESIGN.md section 10): launch templates, Auto
// Scaling groups, launch configurations, the account's instance metadata defaults. A
// source is judged from the verdicts of the instances it launched: fixed only when every
// one of them proves IMDSv1 unused, ticketed when any of them uses it, deferred without
// evidence. Fixing a source blindly would break every instance launched from it from then
// on, so the bar is higher than for one instance: boot-time evidence must be clean too,
// since every launch is a boot.

// SourceKind is the kind of a source.
type SourceKind string

// The kinds of source.
const (
	SourceLaunchTemplate      SourceKind = "launch-template"
	SourceLaunchConfiguration SourceKind = "launch-configuration"
	SourceAccountDefaults     SourceKind = "account-defaults"
	SourceAMI                 SourceKind = "ami"
)

// SourceSubject is what the ledger keys a source's decisions, history, snapshot, ticket
// and rollback by, in the place of an instance id: the launch template id, the kind and
// the name of a launch configuration ("launch-configuration:web-lc"), or
// "account-defaults".
func SourceSubject(kind SourceKind, id string) string {
	switch kind {
	case SourceLaunchTemplate:
		return id
	case SourceAccountDefaults:
		return string(SourceAccountDefaults)
	}
	return string(kind) + ":" + id
}

// SourceAction is what the guard decides to do with a source.
type SourceAction string

// The actions on a source.
const (
	SourceFix    SourceAction = "fix"
	SourceTicket SourceAction = "ticket"
	SourceDefer  SourceAction = "defer"
	SourceSkip   SourceAction = "skip"
)

// Reason codes of source verdicts.
const (
	ReasonSourceCompliant       ReasonCode = "source-compliant"
	ReasonSourceExempt          ReasonCode = "source-exempt"
	ReasonSourceIMDSv1Used      ReasonCode = "source-imdsv1-used"
	ReasonSourceNoInstances     ReasonCode = "source-no-instances"
	ReasonSourceEvidencePending ReasonCode = "source-evidence-pending"
	ReasonSourceIMDSv1Unused    ReasonCode = "source-imdsv1-unused"
	ReasonSourcePinnedVersion   ReasonCode = "source-pinned-version"
	ReasonSourceLaunchConfig    ReasonCode = "source-launch-configuration"
	ReasonSourceManaged         ReasonCode = "source-managed-by-policy"
	ReasonSourceAMIOptional     ReasonCode = "source-ami-optional"
)

// ImdsSupportV2 is the ImdsSupport of an AMI whose instances launch with HttpTokens
// required.
const ImdsSupportV2 = "v2.0"

// Source is one source as the inventory read it.
type Source struct {
	Kind SourceKind
	// ID names it: the launch template id, the launch configuration's name, or
	// "<account>/<region>" for the account defaults.
	ID   string
	Name string
	// Options are the metadata options it launches with; nil when it sets none (the
	// instances then get the account defaults).
	Options *MetadataOptions
	// Tags are the template's tags (its exemption tag counts as on an instance).
	Tags map[string]string
	// PinnedBy names the Auto Scaling groups that launch a fixed version of the template
	// rather than $Default or $Latest: a new default version would not reach them.
	PinnedBy []string
	// Groups names the Auto Scaling groups that launch from it.
	Groups []string
	// RolledBack is the latest rollback of imdsguard's fix of it, nil for none.
	RolledBack *Rollback
}

// SourceMember is one running instance a source launched, with its verdict.
type SourceMember struct {
	InstanceID string
	Verdict    Verdict
	// Verified is set when imdsguard enforced IMDSv2 on it and the verification window
	// ended clean; Verifying while that window is still open.
	Verified, Verifying bool
	// ContainerHost is set when the instance is a container host (it needs hop limit 2).
	ContainerHost bool
}

// SourceVerdict is the guard's decision about a source. Target is set for a fix.
type SourceVerdict struct {
	Action  SourceAction
	Reasons []Reason
	Target  *MetadataOptions
}

// DecideSource judges a source from its running instances, first match wins:
//
//  1. it launches with HttpTokens required already: skip, source-compliant;
//  2. the exemption tag is on it (and not expired): skip, source-exempt;
//     2b. imdsguard's fix of it was rolled back within a lookback: ticket, rolled-back;
//  3. any instance uses IMDSv1 (a ticket verdict for IMDSv1 use, or a rollback): ticket,
//     source-imdsv1-used, naming them;
//  4. no running instance: defer, source-no-instances (no evidence);
//  5. any instance without final evidence (not verified, not remediate with IMDSv1
//     unused and its boot observed clean, or still being verified), or none that proves
//     IMDSv1 unused: defer, source-evidence-pending;
//  6. a launch configuration cannot get a new version: ticket,
//     source-launch-configuration, naming the groups to move to a launch template;
//  7. a version pinned by a group would not get the fix: ticket, source-pinned-version;
//  8. otherwise: fix, source-imdsv1-unused, with the target options.
func DecideSource(src Source, members []SourceMember, s Settings, now time.Time) SourceVerdict {
	if src.Options != nil && src.Options.HTTPTokens == TokensRequired {
		return sourceVerdict(SourceSkip, ReasonSourceCompliant, "%s launches with HttpTokens required", src.label())
	}
	if value, tagged := src.Tags[s.ExemptTag]; tagged {
		if ex := parseExemption(s.ExemptTag, value, now.UTC()); !ex.expired {
			return sourceVerdict(SourceSkip, ReasonSourceExempt, "%s", ex.detail)
		}
	}
	if v, held := HeldBackSource(src, s, now); held {
		return v
	}
	var users, pending []string
	proven := 0
	container := false
	for _, m := range members {
		container = container || m.ContainerHost
		switch {
		case usesIMDSv1(m.Verdict):
			users = append(users, fmt.Sprintf("%s (%s)", m.InstanceID, m.Verdict.Primary()))
		case m.Verified && m.Verdict.Action == ActionSkip && m.Verdict.Primary() == ReasonCompliant:
			// Enforced, verified, and still compliant: it ran on IMDSv2 alone for a whole
			// window. (A verified instance set back to IMDSv1 since is judged by its verdict.)
			proven++
		case m.Verifying:
			pending = append(pending, m.InstanceID+" (enforced, still being verified)")
		case m.Verdict.Action == ActionRemediate && m.Verdict.Primary() == ReasonIMDSv1Unused && !hasCode(m.Verdict, ReasonBootUnobserved):
			proven++
		case m.Verdict.Action == ActionSkip && m.Verdict.Primary() == ReasonCompliant:
			// Compliant on its own (launched so, or set by hand): it cannot use IMDSv1, but
			// proves nothing about what the source's launches need.
		default:
			pending = append(pending, fmt.Sprintf("%s (%s %s)", m.InstanceID, m.Verdict.Action, m.Verdict.Primary()))
		}
	}
	slices.Sort(users)
	slices.Sort(pending)
	switch {
	case len(users) > 0:
		return sourceVerdict(SourceTicket, ReasonSourceIMDSv1Used, "%d of the %d running instances %s launched still use IMDSv1: %s",
			len(users), len(members), src.label(), strings.Join(users, ", "))
	case len(members) == 0:
		return sourceVerdict(SourceDefer, ReasonSourceNoInstances, "%s has no running instance to judge it by", src.label())
	case len(pending) > 0:
		return sourceVerdict(SourceDefer, ReasonSourceEvidencePending, "%d of the %d running instances %s launched have no final evidence yet: %s",
			len(pending), len(members), src.label(), strings.Join(pending, ", "))
	case proven == 0:
		return sourceVerdict(SourceDefer, ReasonSourceEvidencePending, "none of the %d running instances %s launched proves IMDSv1 unused: "+
			"they are compliant on their own", len(members), src.label())
	case src.Kind == SourceLaunchConfiguration:
		return sourceVerdict(SourceTicket, ReasonSourceLaunchConfig, "%s is a launch configuration, which cannot get a new version: "+
			"move %s to a launch template with HttpTokens required", src.label(), joinOr(src.Groups, "its groups"))
	case len(src.PinnedBy) > 0:
		return sourceVerdict(SourceTicket, ReasonSourcePinnedVersion, "%s is launched at a fixed version by %s: a new default version "+
			"would not reach them; point them at $Default", src.label(), strings.Join(src.PinnedBy, ", "))
	}
	hop := s.HopLimit
	if container {
		hop = max(hop, s.ContainerHopLimit)
	}
	v := sourceVerdict(SourceFix, ReasonSourceIMDSv1Unused, "none of the %d running instances %s launched uses IMDSv1, at boot or since", len(members), src.label())
	v.Target = &MetadataOptions{HTTPTokens: TokensRequired, HopLimit: hop}
	return v
}

// HeldBackSource is the ticket of a source whose fix imdsguard rolled back less than a
// lookback ago: as for an instance (rule 5b), the evidence that led to the fix is not
// trusted to fix it again.
func HeldBackSource(src Source, s Settings, now time.Time) (SourceVerdict, bool) {
	rb := src.RolledBack
	if rb == nil || now.Sub(rb.At) >= s.Lookback {
		return SourceVerdict{}, false
	}
	return sourceVerdict(SourceTicket, ReasonRolledBack, "imdsguard's fix of %s was rolled back at %s (%s): it is not fixed again "+
		"before %s, a full lookback later", src.label(), rb.At.UTC().Format(time.RFC3339), rb.Why, rb.At.Add(s.Lookback).UTC().Format(time.RFC3339)), true
}

// Label names the source for people: "launch-template lt-0abc (web)".
func (s Source) Label() string { return s.label() }

func (s Source) label() string {
	if s.Name != "" && s.Name != s.ID {
		return fmt.Sprintf("%s %s (%s)", s.Kind, s.ID, s.Name)
	}
	return fmt.Sprintf("%s %s", s.Kind, s.ID)
}

// usesIMDSv1 reports whether a verdict says the instance uses IMDSv1.
func usesIMDSv1(v Verdict) bool {
	if v.Action != ActionTicket {
		return false
	}
	switch v.Primary() {
	case ReasonIMDSv1UsedMetric, ReasonIMDSv1UsedCloudTrail, ReasonIMDSv1UsedAtBoot, ReasonRolledBack:
		return true
	}
	return false
}

func hasCode(v Verdict, code ReasonCode) bool {
	return slices.ContainsFunc(v.Reasons, func(r Reason) bool { return r.Code == code })
}

func sourceVerdict(action SourceAction, code ReasonCode, format string, args ...any) SourceVerdict {
	return SourceVerdict{Action: action, Reasons: []Reason{{Code: code, Detail: fmt.Sprintf(format, args...)}}}
}

func joinOr(names []string, none string) string {
	if len(names) == 0 {
		return none
	}
	return strings.Join(names, ", ")
}

// DecideAccountDefaults judges the account-region's instance metadata defaults, which
// every launch that sets no option of its own gets, first match wins:
//
//  1. HttpTokens required already: skip, source-compliant;
//  2. an organization's declarative policy sets them: skip, source-managed-by-policy (the
//     account cannot change them; the policy is where to);
//  3. no instance at all: defer, source-no-instances (no evidence is no proof);
//  4. any instance of the account-region not compliant, or still being verified: defer,
//     source-evidence-pending, naming how many and the first ten (a launch that gets the
//     defaults may need IMDSv1 as long as one of them might);
//  5. any launch template or configuration in judged that sets no HttpTokens (and so
//     launches with the defaults) and is not compliant: defer, source-evidence-pending;
//  6. otherwise: fix, source-imdsv1-unused, to HttpTokens required.
func DecideAccountDefaults(account, region string, d AccountDefaults, instances []SourceMember, judged []JudgedSource) SourceVerdict {
	label := fmt.Sprintf("the instance metadata defaults of %s/%s", account, region)
	if d.HTTPTokens == TokensRequired {
		return sourceVerdict(SourceSkip, ReasonSourceCompliant, "%s already have HttpTokens required", label)
	}
	if d.ManagedBy == ManagedByDeclarativePolicy {
		return sourceVerdict(SourceSkip, ReasonSourceManaged, "%s are set by the organization's EC2 declarative policy: change them there (%s)",
			label, cmp.Or(d.ManagedMessage, "no message"))
	}
	if len(instances) == 0 {
		return sourceVerdict(SourceDefer, ReasonSourceNoInstances, "%s/%s has no instance to judge its defaults by", account, region)
	}
	var open []string
	for _, m := range instances {
		compliant := m.Verdict.Action == ActionSkip && (m.Verdict.Primary() == ReasonCompliant || m.Verdict.Primary() == ReasonTerminated)
		if compliant && !m.Verifying {
			continue
		}
		open = append(open, m.InstanceID)
	}
	// A launch template or configuration that sets no HttpTokens launches with the
	// defaults: until it is judged clean, its next launch may need IMDSv1.
	var inherit []string
	for _, j := range judged {
		if inheritsDefaults(j) {
			inherit = append(inherit, j.Source.label())
		}
	}
	if len(inherit) > 0 && len(open) == 0 {
		slices.Sort(inherit)
		return sourceVerdict(SourceDefer, ReasonSourceEvidencePending, "%s/%s has sources that set no HttpTokens and launch with the defaults, not judged clean yet: %s",
			account, region, strings.Join(inherit, ", "))
	}
	if len(open) > 0 {
		slices.Sort(open)
		shown := open
		if len(shown) > 10 {
			shown = shown[:10]
		}
		more := ""
		if len(open) > len(shown) {
			more = fmt.Sprintf(" and %d more", len(open)-len(shown))
		}
		return sourceVerdict(SourceDefer, ReasonSourceEvidencePending, "%d of the %d instances of %s/%s are not compliant or verified yet: %s%s",
			len(open), len(instances), account, region, strings.Join(shown, ", "), more)
	}
	v := sourceVerdict(SourceFix, ReasonSourceIMDSv1Unused, "every one of the %d instances of %s/%s is compliant or verified", len(instances), account, region)
	v.Target = &MetadataOptions{HTTPTokens: TokensRequired}
	return v
}

// JudgedSource is a source with its verdict.
type JudgedSource struct {
	Source  Source
	Verdict SourceVerdict
}

// inheritsDefaults reports whether a judged launch template or launch configuration
// launches with the account defaults (it sets no HttpTokens of its own) and is not
// compliant: until it is, a launch from it may need IMDSv1 from the defaults.
func inheritsDefaults(j JudgedSource) bool {
	if j.Source.Kind != SourceLaunchTemplate && j.Source.Kind != SourceLaunchConfiguration {
		return false
	}
	if j.Source.Options != nil && j.Source.Options.HTTPTokens != "" {
		return false
	}
	return j.Verdict.Action != SourceSkip || len(j.Verdict.Reasons) == 0 || j.Verdict.Reasons[0].Code != ReasonSourceCompliant
}

// SourceWave is the rollout wave a source fix counts in: a launch template's is the
// latest wave of the instances it launched, so that it waits for every environment its
// launches reach; the account defaults reach every launch, so they count in the last.
func SourceWave(kind SourceKind, instanceWaves []int, waves []Wave) int {
	if kind != SourceLaunchTemplate {
		return len(waves)
	}
	latest := 0
	for _, w := range instanceWaves {
		latest = max(latest, w)
	}
	return latest
}

// ManagedByDeclarativePolicy is the ManagedBy of account defaults an organization's
// declarative policy sets.
const ManagedByDeclarativePolicy = "declarative-policy"

// AccountDefaults are an account-region's instance metadata defaults as the inventory
// read them; an empty field is "no preference".
type AccountDefaults struct {
	HTTPTokens, HTTPEndpoint string
	HopLimit                 int32
	// HTTPTokensEnforced is "enabled" when the account refuses launches without IMDSv2.
	HTTPTokensEnforced string
	// ManagedBy is "account", or ManagedByDeclarativePolicy; ManagedMessage says more.
	ManagedBy, ManagedMessage string
}

// DecideImage reports what an AMI in use does to the instances launched from it: an AMI
// registered with ImdsSupport v2.0 launches them with HttpTokens required; any other
// leaves them to the launch's own options or the account defaults. imdsguard never
// changes an AMI (ImdsSupport v2.0 cannot be unset, so the change could not be rolled
// back): the verdict is a skip that says so, for the report.
func DecideImage(imageID, imdsSupport string, instances int) SourceVerdict {
	if imdsSupport == ImdsSupportV2 {
		return sourceVerdict(SourceSkip, ReasonSourceCompliant, "ami %s has ImdsSupport v2.0: its %d running instances launched with HttpTokens required unless their launch said otherwise",
			imageID, instances)
	}
	return sourceVerdict(SourceSkip, ReasonSourceAMIOptional, "ami %s sets no ImdsSupport: its %d running instances get their launch's options or the account defaults; "+
		"imdsguard does not change AMIs (ImdsSupport v2.0 cannot be unset)", imageID, instances)
}

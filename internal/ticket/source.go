package ticket

import (
	"fmt"
	"strings"

	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// NewSourceTicket composes the ticket for a verdict on a source of instances (DESIGN.md
// section 10): a launch template or launch configuration whose instances still use
// IMDSv1, one that a fix cannot reach (a pinned version, a launch configuration), or one
// whose fix was rolled back. The ticket is keyed, like an instance's, by the source's
// ledger subject in the place of the instance id, so each source has one open ticket in
// every backend.
func NewSourceTicket(v message.SourceVerdict, opts ComposeOptions) Ticket {
	subject := v.Subject()
	verdict := message.Verdict{
		Schema: message.Schema, DecisionID: v.DecisionID, CreatedAt: v.CreatedAt, AccountID: v.AccountID, Region: v.Region,
		InstanceID: subject, Name: v.Name, SweepID: v.SweepID, Action: policy.ActionTicket, Reasons: v.Reasons,
	}
	label := fmt.Sprintf("%s %s", v.Kind, clean(v.SourceID, maxTextRunes))
	if name := clean(v.Name, maxNameRunes); name != "" && name != v.SourceID {
		label += " (" + name + ")"
	}
	c := Content{DryRun: opts.DryRun, evidence: newEvidenceKey(verdict)}
	c.evidence.Instances = sortedSet(v.Instances)
	c.Title = fmt.Sprintf("IMDSv1 kept alive by %s in %s/%s", label, clean(v.AccountID, maxTextRunes), clean(v.Region, maxTextRunes))
	if opts.DryRun {
		c.Title = dryRunPrefix + c.Title
	}
	why := Section{Heading: "Why"}
	for i, r := range v.Reasons {
		if i == 0 {
			why.Blocks = append(why.Blocks, Block{Spans: reasonSpans(r)})
		} else {
			why.Blocks = append(why.Blocks, Block{Items: []Item{{Spans: reasonSpans(r)}}})
		}
	}
	why.Blocks = append(why.Blocks, Block{Spans: []Span{{"Every instance launched from it gets HttpTokens optional: IMDSv1 stays open to any SSRF on them. " +
		"imdsguard does not change it while it cannot prove that nothing it launches needs IMDSv1.", Plain}}})
	c.Sections = append(c.Sections, why)

	if len(v.Instances) > 0 || len(v.Groups) > 0 {
		s := Section{Heading: headingEvidence}
		if len(v.Instances) > 0 {
			shown := v.Instances[:min(len(v.Instances), maxListed)]
			spans := codeList(fmt.Sprintf("Running instances it launched (%d): ", max(v.InstanceCount, len(v.Instances))), shown)
			s.Blocks = append(s.Blocks, Block{Spans: spans})
		}
		if len(v.Groups) > 0 {
			s.Blocks = append(s.Blocks, Block{Spans: codeList("Auto Scaling groups that launch from it: ", v.Groups)})
		}
		c.Sections = append(c.Sections, s)
	}
	c.Sections = append(c.Sections, sourceNextSteps(v))
	c.Footer = footer(v.DecisionID, v.CreatedAt, opts.DryRun, c.EvidenceDigest())
	return Ticket{Verdict: verdict, Content: c}
}

// sourceNextSteps says what a person does about the source, by why it is ticketed.
func sourceNextSteps(v message.SourceVerdict) Section {
	s := Section{Heading: "Next steps"}
	item := func(text string) Item { return Item{Spans: []Span{{text, Plain}}} }
	var items []Item
	primary := policy.ReasonCode("")
	if len(v.Reasons) > 0 {
		primary = v.Reasons[0].Code
	}
	switch primary {
	case policy.ReasonSourceIMDSv1Used:
		items = append(items,
			item("Move the software on the instances named in Why to IMDSv2 (each instance's own ticket names its user agents)."),
			item("Once they stop using IMDSv1, imdsguard fixes this source by itself: a new default version with HttpTokens required."))
	case policy.ReasonSourcePinnedVersion:
		items = append(items, item("Point the groups named in Why at the $Default (or $Latest) version of the template, "+
			"so that imdsguard's new default version reaches them: "+
			shellCommand("aws autoscaling update-auto-scaling-group --auto-scaling-group-name %s --launch-template LaunchTemplateId=%s,Version='$Default'",
				firstOr(v.Groups, "GROUP"), v.SourceID)))
	case policy.ReasonSourceLaunchConfig:
		items = append(items, item("Launch configurations cannot get a new version, and AWS retires them: move "+
			strings.Join(v.Groups, ", ")+" to a launch template with HttpTokens required "+
			"(aws autoscaling create-launch-template from the configuration, or the console's Copy to launch template)."))
	case policy.ReasonRolledBack:
		items = append(items, item("imdsguard undid its own fix of this source: find what broke on the instances launched from its fixed version before fixing it again by hand."))
	default:
		items = append(items, item("Read Why, and fix the source by hand when it is safe."))
	}
	s.Blocks = append(s.Blocks, Block{Items: items})
	return s
}

func firstOr(list []string, fallback string) string {
	if len(list) == 0 {
		return fallback
	}
	return list[0]
}

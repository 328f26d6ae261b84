package sources

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// TestJudge links instances to their sources by their tags and the groups' instance
// lists, and judges each source from them: a clean group's template is fixed, a group
// with one IMDSv1 user gets a ticket naming it, a pinned version and a launch
// configuration get tickets, a template without running instances waits.
func TestJudge(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	s := policy.DefaultSettings()
	optional := &policy.MetadataOptions{HTTPTokens: policy.TokensOptional, HopLimit: 2}
	templates := []LaunchTemplate{
		{ID: "lt-clean", Name: "clean", Default: optional},
		{ID: "lt-user", Name: "user", Default: optional},
		{ID: "lt-pinned", Name: "pinned", Default: optional},
		{ID: "lt-idle", Name: "idle", Default: optional},
	}
	groups := []Group{
		{Name: "clean-asg", LaunchTemplateID: "lt-clean", LaunchTemplateVersion: "$Default"},
		{Name: "user-asg", LaunchTemplateID: "lt-user", LaunchTemplateVersion: "$Latest"},
		{Name: "pinned-asg", LaunchTemplateID: "lt-pinned", LaunchTemplateVersion: "3"},
		{Name: "legacy-asg", LaunchConfiguration: "legacy-lc", Instances: []string{"i-0000000b"}},
	}
	unused := policy.Verdict{Action: policy.ActionRemediate, Reasons: []policy.Reason{{Code: policy.ReasonIMDSv1Unused, Detail: "0"}}}
	used := policy.Verdict{Action: policy.ActionTicket, Reasons: []policy.Reason{{Code: policy.ReasonIMDSv1UsedMetric, Detail: "4"}}}
	inst := func(id, template string, v policy.Verdict, tags ...string) guard.Assessment {
		i := &policy.Instance{InstanceID: id, State: policy.StateRunning, Tags: map[string]string{}}
		if template != "" {
			i.Tags[TagLaunchTemplateID] = template
		}
		for k := 0; k+1 < len(tags); k += 2 {
			i.Tags[tags[k]] = tags[k+1]
		}
		return guard.Assessment{Evidence: policy.Evidence{InstanceID: id, Instance: i}, Verdict: v}
	}
	assessments := []guard.Assessment{
		inst("i-00000001", "lt-clean", unused),
		inst("i-00000002", "lt-clean", unused, "eks:cluster-name", "prod"),
		inst("i-00000003", "lt-user", unused),
		inst("i-00000004", "lt-user", used),
		inst("i-00000005", "lt-pinned", unused),
		inst("i-0000000b", "", unused),
	}
	got := map[string]Assessment{}
	judged := Judge(Inventory{Templates: templates, Groups: groups}, "123456789012", "us-east-1", assessments, nil, s, now)
	for _, a := range judged.Sources {
		got[a.Source.ID] = a
	}
	if len(got) != 6 {
		t.Fatalf("%d sources %v, want the 4 templates, the launch configuration and the account defaults", len(got), got)
	}
	want := map[string]struct {
		action policy.SourceAction
		code   policy.ReasonCode
		n      int
	}{
		"lt-clean":  {policy.SourceFix, policy.ReasonSourceIMDSv1Unused, 2},
		"lt-user":   {policy.SourceTicket, policy.ReasonSourceIMDSv1Used, 2},
		"lt-pinned": {policy.SourceTicket, policy.ReasonSourcePinnedVersion, 1},
		"lt-idle":   {policy.SourceDefer, policy.ReasonSourceNoInstances, 0},
		"legacy-lc": {policy.SourceTicket, policy.ReasonSourceLaunchConfig, 1},
		// Every instance counts for the account defaults, and i-00000004 uses IMDSv1.
		"123456789012/us-east-1": {policy.SourceDefer, policy.ReasonSourceEvidencePending, 6},
	}
	for id, w := range want {
		a := got[id]
		if a.Verdict.Action != w.action || a.Verdict.Reasons[0].Code != w.code || len(a.Instances) != w.n {
			t.Errorf("%s: %s %s with %d instances (%+v), want %s %s with %d", id, a.Verdict.Action, a.Verdict.Reasons[0].Code,
				len(a.Instances), a.Verdict.Reasons, w.action, w.code, w.n)
		}
	}
	if target := got["lt-clean"].Verdict.Target; target == nil || target.HopLimit != 2 {
		t.Errorf("the clean template's target %+v: a container host among its instances needs hop limit 2", target)
	}
	if groups := got["lt-user"].Source.Groups; len(groups) != 1 || groups[0] != "user-asg" {
		t.Errorf("lt-user's groups %v", groups)
	}
	// An instance its group lists and the inventory did not describe keeps the source
	// waiting.
	unseen := append(slices.Clone(groups), Group{Name: "clean-asg-2", LaunchTemplateID: "lt-clean", Instances: []string{"i-000000ff"}})
	for _, a := range Judge(Inventory{Templates: templates[:1], Groups: unseen}, "123456789012", "us-east-1", assessments, nil, s, now).Sources {
		if a.Source.ID == "lt-clean" && (a.Verdict.Action != policy.SourceDefer || !strings.Contains(a.Verdict.Reasons[0].Detail, "i-000000ff")) {
			t.Errorf("a template with an undescribed instance: %s %+v, want it to wait for i-000000ff", a.Verdict.Action, a.Verdict.Reasons)
		}
	}
	// An instance launched from another template than its group's (an override, or the
	// group's template before it moved) is evidence for the template it ran, while its row
	// names what its group launches now.
	moved := []Group{{Name: "clean-asg", LaunchTemplateID: "lt-clean", LaunchTemplateVersion: "$Default", Instances: []string{"i-00000003"}}}
	j := Judge(Inventory{Templates: templates[:2], Groups: moved}, "123456789012", "us-east-1", assessments[2:4], nil, s, now)
	if o := j.Origins["i-00000003"]; o.ID != "lt-clean" || o.Group != "clean-asg" {
		t.Errorf("the row of an instance its group launches again: %+v, want the group's template", o)
	}
	for _, a := range j.Sources {
		if a.Source.ID == "lt-user" && len(a.Instances) != 2 {
			t.Errorf("lt-user is judged by %v, want the two instances launched from it", a.Instances)
		}
		if a.Source.ID == "lt-clean" && len(a.Instances) != 0 {
			t.Errorf("lt-clean is judged by %v, which were launched from lt-user", a.Instances)
		}
	}
	// An exemption tag on a group exempts the template it launches from.
	exemptGroups := append(slices.Clone(groups[:1]), Group{Name: "clean-asg-2", LaunchTemplateID: "lt-clean", Tags: map[string]string{s.ExemptTag: "true"}})
	for _, a := range Judge(Inventory{Templates: templates[:1], Groups: exemptGroups}, "123456789012", "us-east-1", assessments, nil, s, now).Sources {
		if a.Source.ID == "lt-clean" && (a.Verdict.Action != policy.SourceSkip || a.Verdict.Reasons[0].Code != policy.ReasonSourceExempt) {
			t.Errorf("a template launched by an exempt group: %s %+v, want a skip source-exempt", a.Verdict.Action, a.Verdict.Reasons)
		}
	}
	// The instance rows name what launches them again: the group's source first.
	for id, want := range map[string]Origin{
		"i-00000001": {Kind: policy.SourceLaunchTemplate, ID: "lt-clean"},
		"i-0000000b": {Kind: policy.SourceLaunchConfiguration, ID: "legacy-lc", Group: "legacy-asg"},
	} {
		if got := judged.Origins[id]; got != want {
			t.Errorf("origin of %s = %+v, want %+v", id, got, want)
		}
	}
	// A verified enforcement counts as proof; one still being verified does not.
	compliant := policy.Verdict{Action: policy.ActionSkip, Reasons: []policy.Reason{{Code: policy.ReasonCompliant, Detail: "x"}}}
	watched := []guard.Assessment{inst("i-00000001", "lt-clean", compliant), inst("i-00000002", "lt-clean", compliant)}
	for name, watches := range map[string]map[string]Watch{
		"verified":  {"i-00000001": {Verified: true}, "i-00000002": {Verified: true}},
		"verifying": {"i-00000001": {Verified: true}, "i-00000002": {Verifying: true}},
	} {
		var a Assessment
		for _, x := range Judge(Inventory{Templates: templates[:1], Groups: groups}, "123456789012", "us-east-1", watched, watches, s, now).Sources {
			if x.Source.ID == "lt-clean" {
				a = x
			}
		}
		if wantFix := name == "verified"; (a.Verdict.Action == policy.SourceFix) != wantFix {
			t.Errorf("%s: %s %+v", name, a.Verdict.Action, a.Verdict.Reasons)
		}
	}
}

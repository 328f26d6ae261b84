package policy

import (
	"strings"
	"testing"
)

func TestDecideSource(t *testing.T) {
	s := DefaultSettings()
	template := Source{Kind: SourceLaunchTemplate, ID: "lt-0123456789abcdef0", Name: "web",
		Options: &MetadataOptions{HTTPTokens: TokensOptional, HopLimit: 2}, Groups: []string{"web-asg"}}
	unused := Verdict{Action: ActionRemediate, Reasons: []Reason{{ReasonIMDSv1Unused, "0 calls"}}}
	member := func(id string, v Verdict) SourceMember { return SourceMember{InstanceID: id, Verdict: v} }
	with := func(src Source, change func(*Source)) Source { change(&src); return src }
	tests := []struct {
		name    string
		src     Source
		members []SourceMember
		action  SourceAction
		code    ReasonCode
		detail  string
		hop     int32 // of the target, for a fix
	}{
		{"every instance proves IMDSv1 unused: fix", template,
			[]SourceMember{member("i-00000001", unused), {InstanceID: "i-00000002", Verdict: Verdict{Action: ActionSkip, Reasons: []Reason{{ReasonCompliant, "x"}}}, Verified: true}},
			SourceFix, ReasonSourceIMDSv1Unused, "none of the 2 running instances", 1},
		{"a container host among them: hop limit 2", template,
			[]SourceMember{{InstanceID: "i-00000001", Verdict: unused, ContainerHost: true}},
			SourceFix, ReasonSourceIMDSv1Unused, "", 2},
		{"one instance uses IMDSv1: a ticket naming it, before anything else", with(template, func(s *Source) { s.PinnedBy = []string{"old-asg"} }),
			[]SourceMember{member("i-00000001", unused), member("i-00000002", Verdict{Action: ActionTicket, Reasons: []Reason{{ReasonIMDSv1UsedMetric, "4 calls"}}}),
				member("i-00000003", Verdict{Action: ActionDefer, Reasons: []Reason{{ReasonInsufficientMetrics, "x"}}})},
			SourceTicket, ReasonSourceIMDSv1Used, "i-00000002 (imdsv1-used-metric)", 0},
		{"IMDSv1 at boot counts as use", template,
			[]SourceMember{member("i-00000001", Verdict{Action: ActionTicket, Reasons: []Reason{{ReasonIMDSv1UsedAtBoot, "x"}}})},
			SourceTicket, ReasonSourceIMDSv1Used, "imdsv1-used-at-boot", 0},
		{"a rolled back instance counts as use", template,
			[]SourceMember{member("i-00000001", Verdict{Action: ActionTicket, Reasons: []Reason{{ReasonRolledBack, "x"}}})},
			SourceTicket, ReasonSourceIMDSv1Used, "rolled-back", 0},
		{"no running instance: defer", template, nil, SourceDefer, ReasonSourceNoInstances, "no running instance", 0},
		{"an instance still waiting for evidence: defer", template,
			[]SourceMember{member("i-00000001", unused), member("i-00000002", Verdict{Action: ActionDefer, Reasons: []Reason{{ReasonInsufficientMetrics, "x"}}})},
			SourceDefer, ReasonSourceEvidencePending, "i-00000002 (defer insufficient-metrics)", 0},
		{"boot unobserved is not proof for a source: every launch is a boot", template,
			[]SourceMember{member("i-00000001", Verdict{Action: ActionRemediate, Reasons: []Reason{{ReasonIMDSv1Unused, "x"}, {ReasonBootUnobserved, "y"}}})},
			SourceDefer, ReasonSourceEvidencePending, "i-00000001", 0},
		{"an enforcement still being verified: defer", template,
			[]SourceMember{{InstanceID: "i-00000001", Verdict: Verdict{Action: ActionSkip, Reasons: []Reason{{ReasonCompliant, "x"}}}, Verifying: true}},
			SourceDefer, ReasonSourceEvidencePending, "still being verified", 0},
		{"instances compliant on their own prove nothing: defer", template,
			[]SourceMember{member("i-00000001", Verdict{Action: ActionSkip, Reasons: []Reason{{ReasonCompliant, "x"}}})},
			SourceDefer, ReasonSourceEvidencePending, "compliant on their own", 0},
		{"a pinned version: a ticket naming the group", with(template, func(s *Source) { s.PinnedBy = []string{"batch-asg"} }),
			[]SourceMember{member("i-00000001", unused)},
			SourceTicket, ReasonSourcePinnedVersion, "batch-asg", 0},
		{"a launch configuration: a ticket to move the group to a template",
			Source{Kind: SourceLaunchConfiguration, ID: "legacy-lc", Groups: []string{"legacy-asg"}},
			[]SourceMember{member("i-00000001", unused)},
			SourceTicket, ReasonSourceLaunchConfig, "move legacy-asg to a launch template", 0},
		{"already required: skip", with(template, func(s *Source) { s.Options = &MetadataOptions{HTTPTokens: TokensRequired, HopLimit: 1} }),
			[]SourceMember{member("i-00000001", Verdict{Action: ActionTicket, Reasons: []Reason{{ReasonIMDSv1UsedMetric, "x"}}})},
			SourceSkip, ReasonSourceCompliant, "", 0},
		{"the exemption tag on the template: skip", with(template, func(s *Source) { s.Tags = map[string]string{"imdsguard:exempt": "true"} }),
			[]SourceMember{member("i-00000001", unused)},
			SourceSkip, ReasonSourceExempt, "imdsguard:exempt", 0},
		{"an expired exemption no longer holds", with(template, func(s *Source) { s.Tags = map[string]string{"imdsguard:exempt": "2020-01-01"} }),
			[]SourceMember{member("i-00000001", unused)},
			SourceFix, ReasonSourceIMDSv1Unused, "", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := DecideSource(tc.src, tc.members, s, now)
			if v.Action != tc.action || len(v.Reasons) == 0 || v.Reasons[0].Code != tc.code {
				t.Fatalf("DecideSource = %+v, want %s %s", v, tc.action, tc.code)
			}
			if !strings.Contains(v.Reasons[0].Detail, tc.detail) {
				t.Errorf("detail %q does not say %q", v.Reasons[0].Detail, tc.detail)
			}
			if (v.Target != nil) != (tc.action == SourceFix) {
				t.Fatalf("target %+v for a %s", v.Target, v.Action)
			}
			if v.Target != nil && (v.Target.HTTPTokens != TokensRequired || v.Target.HopLimit != tc.hop) {
				t.Errorf("target %+v, want required, hop %d", *v.Target, tc.hop)
			}
		})
	}
}

func TestDecideAccountDefaults(t *testing.T) {
	compliant := SourceMember{InstanceID: "i-00000001", Verdict: Verdict{Action: ActionSkip, Reasons: []Reason{{ReasonCompliant, "x"}}}}
	verified := SourceMember{InstanceID: "i-00000002", Verdict: compliant.Verdict, Verified: true}
	verifying := SourceMember{InstanceID: "i-00000003", Verdict: compliant.Verdict, Verifying: true}
	optional := SourceMember{InstanceID: "i-00000004", Verdict: Verdict{Action: ActionRemediate, Reasons: []Reason{{ReasonIMDSv1Unused, "x"}}}}
	tests := []struct {
		name    string
		d       AccountDefaults
		members []SourceMember
		action  SourceAction
		detail  string
	}{
		{"every instance compliant or verified: required", AccountDefaults{HTTPTokens: "optional", ManagedBy: "account"}, []SourceMember{compliant, verified}, SourceFix, "every one of the 2"},
		{"no instance at all: no evidence, wait", AccountDefaults{}, nil, SourceDefer, "no instance"},
		{"one still optional: defer, naming it", AccountDefaults{HTTPTokens: "optional"}, []SourceMember{compliant, optional}, SourceDefer, "i-00000004"},
		{"one still being verified: defer", AccountDefaults{HTTPTokens: "optional"}, []SourceMember{verifying}, SourceDefer, "i-00000003"},
		{"already required: skip", AccountDefaults{HTTPTokens: "required"}, []SourceMember{optional}, SourceSkip, "already"},
		{"set by a declarative policy: skip, naming it", AccountDefaults{ManagedBy: ManagedByDeclarativePolicy, ManagedMessage: "ask the platform team"},
			[]SourceMember{compliant}, SourceSkip, "ask the platform team"},
	}
	if v := DecideAccountDefaults("123456789012", "us-east-1", AccountDefaults{}, []SourceMember{compliant}, []JudgedSource{
		{Source: Source{Kind: SourceLaunchTemplate, ID: "lt-1", Name: "batch"}, Verdict: SourceVerdict{Action: SourceDefer, Reasons: []Reason{{ReasonSourceNoInstances, "x"}}}},
		{Source: Source{Kind: SourceLaunchTemplate, ID: "lt-2", Options: &MetadataOptions{HTTPTokens: TokensOptional}}, Verdict: SourceVerdict{Action: SourceTicket, Reasons: []Reason{{ReasonSourceIMDSv1Used, "x"}}}},
	}); v.Action != SourceDefer || strings.Contains(v.Reasons[0].Detail, "lt-2") ||
		!strings.Contains(v.Reasons[0].Detail, "lt-1") {
		t.Errorf("a template that inherits the defaults and is not clean: %+v, want a defer naming it", v)
	}
	if v := DecideAccountDefaults("123456789012", "us-east-1", AccountDefaults{}, []SourceMember{verified}, nil); v.Action != SourceFix {
		t.Errorf("a verified, compliant instance: %+v, want a fix", v)
	}
	reverted := SourceMember{InstanceID: "i-00000005", Verdict: optional.Verdict, Verified: true}
	if v := DecideAccountDefaults("123456789012", "us-east-1", AccountDefaults{}, []SourceMember{reverted}, nil); v.Action != SourceDefer {
		t.Errorf("verified once, optional again: %+v, want a defer", v)
	}
	if w := SourceWave(SourceLaunchTemplate, []int{0, 2, 1}, make([]Wave, 3)); w != 2 {
		t.Errorf("a template's wave %d, want the latest of its instances', 2", w)
	}
	if w := SourceWave(SourceAccountDefaults, []int{0}, make([]Wave, 3)); w != 3 {
		t.Errorf("the defaults' wave %d, want the last, 3", w)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := DecideAccountDefaults("123456789012", "us-east-1", tc.d, tc.members, nil)
			if v.Action != tc.action || !strings.Contains(v.Reasons[0].Detail, tc.detail) {
				t.Errorf("DecideAccountDefaults = %+v, want %s saying %q", v, tc.action, tc.detail)
			}
			if (v.Target != nil) != (tc.action == SourceFix) {
				t.Errorf("target %+v", v.Target)
			}
		})
	}
}

func TestDecideImage(t *testing.T) {
	for _, tc := range []struct {
		support string
		code    ReasonCode
	}{{"v2.0", ReasonSourceCompliant}, {"", ReasonSourceAMIOptional}} {
		v := DecideImage("ami-12345678", tc.support, 3)
		if v.Action != SourceSkip || v.Reasons[0].Code != tc.code || !strings.Contains(v.Reasons[0].Detail, "ami-12345678") || v.Target != nil {
			t.Errorf("DecideImage(%q) = %+v, want a skip with %s", tc.support, v, tc.code)
		}
	}
}

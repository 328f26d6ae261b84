package sources

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// The tags EC2 and Auto Scaling put on the instances they launch, which link an instance
// to its sources.
const (
	TagLaunchTemplateID      = "aws:ec2launchtemplate:id"
	TagLaunchTemplateVersion = "aws:ec2launchtemplate:version"
	TagGroupName             = "aws:autoscaling:groupName"
)

// Assessment is one source, the running instances it launched, and its verdict.
type Assessment struct {
	Source    policy.Source
	Instances []string
	Verdict   policy.SourceVerdict
}

// Watch says what imdsguard knows of an enforcement: being verified, or verified.
type Watch struct{ Verifying, Verified bool }

// Judge links the judged instances to the launch templates and groups that launched
// them (by their tags, and by the groups' instance lists) and judges each source from
// them: every launch template, and every launch configuration a group launches from.
// watches are the enforcements imdsguard knows of, by instance id.
func Judge(templates []LaunchTemplate, groups []Group, assessments []guard.Assessment, watches map[string]Watch, s policy.Settings, now time.Time) []Assessment {
	byInstance := map[string]guard.Assessment{}
	for _, a := range assessments {
		byInstance[a.Evidence.InstanceID] = a
	}
	member := func(id string) (policy.SourceMember, bool) {
		a, ok := byInstance[id]
		if !ok || a.Evidence.Instance == nil || a.Evidence.Instance.State != policy.StateRunning {
			return policy.SourceMember{}, false
		}
		w := watches[id]
		return policy.SourceMember{InstanceID: id, Verdict: a.Verdict, Verified: w.Verified, Verifying: w.Verifying,
			ContainerHost: s.IsContainerHost(*a.Evidence.Instance)}, true
	}
	var out []Assessment
	for _, lt := range templates {
		src := policy.Source{Kind: policy.SourceLaunchTemplate, ID: lt.ID, Name: lt.Name, Options: lt.Default, Tags: lt.Tags}
		for _, g := range groups {
			if g.LaunchTemplateID == lt.ID || (g.LaunchTemplateID == "" && g.LaunchTemplateName != "" && g.LaunchTemplateName == lt.Name) {
				src.Groups = append(src.Groups, g.Name)
				if g.Pinned() {
					src.PinnedBy = append(src.PinnedBy, g.Name)
				}
			}
		}
		var members []policy.SourceMember
		var ids []string
		for _, a := range assessments {
			inst := a.Evidence.Instance
			if inst == nil || inst.Tags[TagLaunchTemplateID] != lt.ID {
				continue
			}
			if m, ok := member(inst.InstanceID); ok {
				members = append(members, m)
				ids = append(ids, m.InstanceID)
			}
		}
		out = append(out, Assessment{Source: src, Instances: ids, Verdict: policy.DecideSource(src, members, s, now)})
	}
	// Launch configurations, by the groups that launch from them.
	configs := map[string][]Group{}
	for _, g := range groups {
		if g.LaunchConfiguration != "" {
			configs[g.LaunchConfiguration] = append(configs[g.LaunchConfiguration], g)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(configs)) {
		src := policy.Source{Kind: policy.SourceLaunchConfiguration, ID: name}
		var members []policy.SourceMember
		var ids []string
		for _, g := range configs[name] {
			src.Groups = append(src.Groups, g.Name)
			for _, id := range g.Instances {
				if m, ok := member(id); ok {
					members = append(members, m)
					ids = append(ids, id)
				}
			}
		}
		out = append(out, Assessment{Source: src, Instances: ids, Verdict: policy.DecideSource(src, members, s, now)})
	}
	slices.SortFunc(out, func(a, b Assessment) int {
		if c := strings.Compare(string(a.Source.Kind), string(b.Source.Kind)); c != 0 {
			return c
		}
		return strings.Compare(a.Source.ID, b.Source.ID)
	})
	return out
}

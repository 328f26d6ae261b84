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

// Watch says what imdsguard knows of its own changes to an instance (being verified, or
// verified) or, keyed by its subject (policy.SourceSubject), to a source: its latest
// rollback.
type Watch struct {
	Verifying, Verified bool
	RolledBack          *policy.Rollback
}

// Origin is the source that launched an instance, and launches its replacement when
// its group replaces it.
type Origin struct {
	Kind policy.SourceKind
	ID   string
	// Group is the Auto Scaling group that launched it; empty for a launch outside any.
	Group string
}

// Judgement is the verdicts of an account-region's sources, and the origin of each
// instance that has one, by instance id.
type Judgement struct {
	Sources []Assessment
	Origins map[string]Origin
}

// Judge links the judged instances of one account-region to the sources that launched
// them and judges every source from them: each launch template and each launch
// configuration a group launches from (by the instances they launched), the account's
// instance metadata defaults (by every instance), and each AMI in use. An instance links
// to a launch template by its aws:ec2launchtemplate:id tag, and to a group by its
// aws:autoscaling:groupName tag or the group's instance list. watches are the
// enforcements imdsguard knows of, by instance id.
func Judge(inv Inventory, account, region string, assessments []guard.Assessment, watches map[string]Watch, s policy.Settings, now time.Time) Judgement {
	byInstance := map[string]guard.Assessment{}
	for _, a := range assessments {
		byInstance[a.Evidence.InstanceID] = a
	}
	groupOf := map[string]string{}
	groups := map[string]Group{}
	for _, g := range inv.Groups {
		groups[g.Name] = g
		for _, id := range g.Instances {
			groupOf[id] = g.Name
		}
	}
	for _, a := range assessments {
		if inst := a.Evidence.Instance; inst != nil && inst.Tags[TagGroupName] != "" && groupOf[inst.InstanceID] == "" {
			if _, known := groups[inst.Tags[TagGroupName]]; known {
				groupOf[inst.InstanceID] = inst.Tags[TagGroupName]
			}
		}
	}
	templateByName := map[string]string{}
	for _, lt := range inv.Templates {
		templateByName[lt.Name] = lt.ID
	}
	origins, launchedFrom := map[string]Origin{}, map[string]Origin{}
	for _, a := range assessments {
		inst := a.Evidence.Instance
		if inst == nil {
			continue
		}
		o := Origin{Group: groupOf[inst.InstanceID]}
		if g, ok := groups[o.Group]; ok {
			switch {
			case g.LaunchConfiguration != "":
				o.Kind, o.ID = policy.SourceLaunchConfiguration, g.LaunchConfiguration
			case g.LaunchTemplateID != "":
				o.Kind, o.ID = policy.SourceLaunchTemplate, g.LaunchTemplateID
			case templateByName[g.LaunchTemplateName] != "":
				o.Kind, o.ID = policy.SourceLaunchTemplate, templateByName[g.LaunchTemplateName]
			}
		}
		if o.ID == "" && inst.Tags[TagLaunchTemplateID] != "" {
			o.Kind, o.ID = policy.SourceLaunchTemplate, inst.Tags[TagLaunchTemplateID]
		}
		if o.ID != "" {
			origins[inst.InstanceID] = o
		}
		// As evidence, an instance counts for the template it was launched from (its own
		// tag): a mixed instances policy's override, or the group's template before the
		// group moved to another, is not the one the group names now.
		e := o
		if id := inst.Tags[TagLaunchTemplateID]; id != "" {
			e.Kind, e.ID = policy.SourceLaunchTemplate, id
		}
		if e.ID != "" {
			launchedFrom[inst.InstanceID] = e
		}
	}
	member := func(a guard.Assessment) policy.SourceMember {
		id := a.Evidence.InstanceID
		w := watches[id]
		m := policy.SourceMember{InstanceID: id, Verdict: a.Verdict, Verified: w.Verified, Verifying: w.Verifying}
		if a.Evidence.Instance != nil {
			m.ContainerHost = s.IsContainerHost(*a.Evidence.Instance)
		}
		return m
	}
	running := func(kind policy.SourceKind, id string) ([]policy.SourceMember, []string) {
		var members []policy.SourceMember
		var ids []string
		for _, a := range assessments {
			inst := a.Evidence.Instance
			if inst == nil || inst.State != policy.StateRunning {
				continue
			}
			if o := launchedFrom[inst.InstanceID]; o.Kind == kind && o.ID == id {
				members = append(members, member(a))
				ids = append(ids, inst.InstanceID)
			}
		}
		return members, ids
	}

	var out []Assessment
	for _, lt := range inv.Templates {
		src := policy.Source{Kind: policy.SourceLaunchTemplate, ID: lt.ID, Name: lt.Name, Options: lt.Default, Tags: lt.Tags,
			RolledBack: watches[policy.SourceSubject(policy.SourceLaunchTemplate, lt.ID)].RolledBack}
		for _, g := range inv.Groups {
			if g.LaunchConfiguration == "" && (g.LaunchTemplateID == lt.ID || (g.LaunchTemplateID == "" && g.LaunchTemplateName != "" && g.LaunchTemplateName == lt.Name)) {
				src.Groups = append(src.Groups, g.Name)
				if g.Pinned() {
					src.PinnedBy = append(src.PinnedBy, g.Name)
				}
				src.Tags = withExemption(src.Tags, g, s.ExemptTag)
			}
		}
		members, ids := running(policy.SourceLaunchTemplate, lt.ID)
		members, ids = withUndescribed(members, ids, src.Groups, groups, byInstance)
		out = append(out, Assessment{Source: src, Instances: ids, Verdict: policy.DecideSource(src, members, s, now)})
	}
	configs := map[string][]string{}
	configTags := map[string]map[string]string{}
	for _, g := range inv.Groups {
		if g.LaunchConfiguration != "" {
			configs[g.LaunchConfiguration] = append(configs[g.LaunchConfiguration], g.Name)
			configTags[g.LaunchConfiguration] = withExemption(configTags[g.LaunchConfiguration], g, s.ExemptTag)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(configs)) {
		src := policy.Source{Kind: policy.SourceLaunchConfiguration, ID: name, Groups: configs[name], Tags: configTags[name]}
		members, ids := running(policy.SourceLaunchConfiguration, name)
		members, ids = withUndescribed(members, ids, src.Groups, groups, byInstance)
		out = append(out, Assessment{Source: src, Instances: ids, Verdict: policy.DecideSource(src, members, s, now)})
	}

	// The account defaults, by every instance of the account-region.
	defaults := policy.Source{Kind: policy.SourceAccountDefaults, ID: account + "/" + region,
		RolledBack: watches[policy.SourceSubject(policy.SourceAccountDefaults, "")].RolledBack}
	if inv.Defaults.HTTPTokens != "" {
		defaults.Options = &policy.MetadataOptions{HTTPTokens: inv.Defaults.HTTPTokens, HopLimit: inv.Defaults.HopLimit, HTTPEndpoint: inv.Defaults.HTTPEndpoint}
	}
	var everyone []policy.SourceMember
	var everyID []string
	for _, a := range assessments {
		everyone = append(everyone, member(a))
		everyID = append(everyID, a.Evidence.InstanceID)
	}
	judged := make([]policy.JudgedSource, len(out))
	for i, a := range out {
		judged[i] = policy.JudgedSource{Source: a.Source, Verdict: a.Verdict}
	}
	verdict, held := policy.HeldBackSource(defaults, s, now)
	if !held || inv.Defaults.HTTPTokens == policy.TokensRequired {
		verdict = policy.DecideAccountDefaults(account, region, inv.Defaults, everyone, judged)
	}
	out = append(out, Assessment{Source: defaults, Instances: everyID, Verdict: verdict})

	// The AMIs in use, for the report.
	byImage := map[string][]string{}
	for _, a := range assessments {
		if inst := a.Evidence.Instance; inst != nil && inst.ImageID != "" && inst.State == policy.StateRunning {
			byImage[inst.ImageID] = append(byImage[inst.ImageID], inst.InstanceID)
		}
	}
	for _, image := range slices.Sorted(maps.Keys(byImage)) {
		support, known := inv.Images[image]
		src := policy.Source{Kind: policy.SourceAMI, ID: image}
		if support == policy.ImdsSupportV2 {
			src.Options = &policy.MetadataOptions{HTTPTokens: policy.TokensRequired}
		}
		v := policy.DecideImage(image, support, len(byImage[image]))
		if !known {
			v.Reasons[0].Detail += " (the AMI is deregistered or no longer shared)"
		}
		out = append(out, Assessment{Source: src, Instances: byImage[image], Verdict: v})
	}

	slices.SortFunc(out, func(a, b Assessment) int {
		if c := strings.Compare(string(a.Source.Kind), string(b.Source.Kind)); c != 0 {
			return c
		}
		return strings.Compare(a.Source.ID, b.Source.ID)
	})
	return Judgement{Sources: out, Origins: origins}
}

// withExemption is tags with the exemption tag of group g added, when g has it and tags
// do not: an exemption on a group counts for the source it launches from, as one on an
// instance counts for the instance (its instances may need IMDSv1, and the source's
// next launch would break them).
func withExemption(tags map[string]string, g Group, exemptTag string) map[string]string {
	value, tagged := g.Tags[exemptTag]
	if !tagged {
		return tags
	}
	if _, has := tags[exemptTag]; has {
		return tags
	}
	out := maps.Clone(tags)
	if out == nil {
		out = map[string]string{}
	}
	out[exemptTag] = value
	return out
}

// withUndescribed adds the instances the groups list that the inventory did not describe
// (launched since it was read, or not visible yet): nothing is known of them, so the
// source waits for them rather than being judged on the others.
func withUndescribed(members []policy.SourceMember, ids, groupNames []string, groups map[string]Group, byInstance map[string]guard.Assessment) ([]policy.SourceMember, []string) {
	for _, name := range groupNames {
		for _, id := range groups[name].Instances {
			if _, described := byInstance[id]; described {
				continue
			}
			members = append(members, policy.SourceMember{InstanceID: id, Verdict: policy.Verdict{Action: policy.ActionDefer,
				Reasons: []policy.Reason{{Code: policy.ReasonEvidenceError, Detail: "listed by group " + name + " but not described"}}}})
			ids = append(ids, id)
		}
	}
	return members, ids
}

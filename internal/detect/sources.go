package detect

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/sources"
	"github.com/imdsguard/imdsguard/internal/trigger"
	"github.com/imdsguard/imdsguard/internal/verdictqueue"
)

// Sources are the clients the sources of instances are read with (DESIGN.md section
// 10); a Handler without them judges instances only.
type Sources struct {
	EC2         sources.API
	AutoScaling sources.AutoScalingAPI
	// Enforcements, when set, tell which enforced instances imdsguard verified: the
	// proof a source is fixed on.
	Enforcements sources.Enforcements
}

// sourceScope is what a request asks of the sources: every one (a sweep, or a change to
// the account defaults) or the named ones, by ledger subject.
type sourceScope struct {
	all   bool
	named map[string]bool
}

// judgeSources judges the sources in scope from the assessments of their instances and
// returns the messages of the fixes and tickets. inv is the source inventory already
// read, or nil.
func (h *Handler) judgeSources(ctx context.Context, ar accountRegion, inv *sources.Inventory, scope sourceScope,
	assessments []guard.Assessment, sweepID string, now time.Time) ([]verdictqueue.Outgoing, map[string]int, error) {
	for _, a := range assessments {
		// A source is judged by every instance it launched: with one of them not even
		// described, it could be judged clean on the others.
		if err := a.Evidence.InventoryErr; err != nil {
			return nil, nil, fmt.Errorf("the sources of %s/%s are not judged: describing %s failed: %w", ar.account, ar.region, a.Evidence.InstanceID, err)
		}
	}
	if inv == nil {
		var images []string
		for _, a := range assessments {
			if inst := a.Evidence.Instance; inst != nil {
				images = append(images, inst.ImageID)
			}
		}
		read, err := sources.Read(ctx, ar.sources.EC2, ar.sources.AutoScaling, images)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the sources of %s/%s: %w", ar.account, ar.region, err)
		}
		inv = &read
	}
	watches, err := sources.ReadWatches(ctx, ar.sources.Enforcements, ar.account, ar.region)
	if err != nil {
		return nil, nil, err
	}
	judged := sources.Judge(*inv, ar.account, ar.region, assessments, watches, h.Settings, now)
	wavesOf := map[string]int{}
	for _, a := range assessments {
		if inst := a.Evidence.Instance; inst != nil {
			wavesOf[inst.InstanceID] = policy.WaveOf(*inst, h.Waves)
		}
	}
	counts := map[string]int{}
	var out []verdictqueue.Outgoing
	for _, a := range judged.Sources {
		subject := policy.SourceSubject(a.Source.Kind, a.Source.ID)
		if !scope.all && !scope.named[subject] {
			continue
		}
		counts[string(a.Verdict.Action)]++
		h.Log.InfoContext(ctx, "source verdict", "account_id", ar.account, "region", ar.region, "kind", a.Source.Kind, "source_id", a.Source.ID,
			"name", a.Source.Name, "action", a.Verdict.Action, "reasons", a.Verdict.Reasons, "instances", len(a.Instances))
		if a.Verdict.Action != policy.SourceFix && a.Verdict.Action != policy.SourceTicket {
			continue
		}
		var instanceWaves []int
		for _, id := range a.Instances {
			instanceWaves = append(instanceWaves, wavesOf[id])
		}
		wave := policy.SourceWave(a.Source.Kind, instanceWaves, h.Waves)
		var seen int64
		if a.Source.Kind == policy.SourceLaunchTemplate {
			for _, lt := range inv.Templates {
				if lt.ID == a.Source.ID {
					seen = lt.DefaultVersion
				}
			}
		}
		instances := a.Instances
		if a.Source.Kind == policy.SourceAccountDefaults {
			instances = nil // every instance of the region: the verdict says how many
		}
		m, err := message.NewSource(ar.account, ar.region, a.Source, instances, a.Verdict, seen, wave, now)
		if err != nil {
			return nil, nil, err
		}
		m.SweepID = sweepID
		o, err := verdictqueue.NewOutgoingSource(m)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, o)
	}
	return out, counts, nil
}

// sourceRequest works out which instances a request that names sources must judge: the
// instances those sources launched (by their tags and their groups). A change to the
// account defaults concerns every instance: all is set and ids is nil.
func (h *Handler) sourceRequest(ctx context.Context, ar accountRegion, refs []trigger.SourceRef) (ids []string, scope sourceScope, inv *sources.Inventory, err error) {
	scope.named = map[string]bool{}
	for _, r := range refs {
		if r.Kind == trigger.SourceRefAccountDefaults {
			return nil, sourceScope{all: true}, nil, nil
		}
	}
	read, err := sources.Read(ctx, ar.sources.EC2, ar.sources.AutoScaling, nil)
	if err != nil {
		return nil, scope, nil, fmt.Errorf("reading the sources of %s: %w", ar.region, err)
	}
	byName := map[string]string{}
	for _, lt := range read.Templates {
		byName[lt.Name] = lt.ID
	}
	templates, configs, groups := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, r := range refs {
		switch r.Kind {
		case trigger.SourceRefLaunchTemplate:
			id := r.ID
			if id == "" {
				id = byName[r.Name]
			}
			if id != "" {
				templates[id] = true
			}
		case trigger.SourceRefAutoScalingGroup:
			for _, g := range read.Groups {
				if g.Name != r.Name {
					continue
				}
				groups[g.Name] = true
				switch {
				case g.LaunchConfiguration != "":
					configs[g.LaunchConfiguration] = true
				case g.LaunchTemplateID != "":
					templates[g.LaunchTemplateID] = true
				case byName[g.LaunchTemplateName] != "":
					templates[byName[g.LaunchTemplateName]] = true
				}
			}
		}
	}
	for id := range templates {
		scope.named[policy.SourceSubject(policy.SourceLaunchTemplate, id)] = true
	}
	for name := range configs {
		scope.named[policy.SourceSubject(policy.SourceLaunchConfiguration, name)] = true
	}
	if len(scope.named) == 0 {
		return nil, scope, &read, nil
	}
	// The instances those sources launched, and those of every group that launches
	// from them, from one inventory of the region.
	for _, g := range read.Groups {
		if templates[g.LaunchTemplateID] || templates[byName[g.LaunchTemplateName]] || configs[g.LaunchConfiguration] {
			groups[g.Name] = true
			ids = append(ids, g.Instances...)
		}
	}
	instances, _, err := evidence.Inventory(ctx, ar.clients.EC2, ar.region, nil)
	if err != nil {
		return nil, scope, nil, fmt.Errorf("listing the instances of %s: %w", ar.region, err)
	}
	for _, inst := range instances {
		if templates[inst.Tags[sources.TagLaunchTemplateID]] || groups[inst.Tags[sources.TagGroupName]] {
			ids = append(ids, inst.InstanceID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), scope, &read, nil
}

package report

import (
	"cmp"
	"slices"
	"time"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// New starts an empty plan made by imdsguard version at generatedAt (kept in UTC, to
// the second) under the settings s. Scopes, Instances and APICalls are empty, never nil,
// so that they marshal as [] and {}.
func New(version string, generatedAt time.Time, s policy.Settings) *Plan {
	return &Plan{
		Schema:      Schema,
		Version:     version,
		GeneratedAt: utcSecond(generatedAt),
		Settings:    Settings(s),
		Scopes:      []Scope{},
		Instances:   []Instance{},
		Sources:     []Source{},
		APICalls:    map[string]int{},
	}
}

// Add appends one instance and counts it in the summary. It does not de-duplicate: give
// each instance once. The renderers list instances sorted by account, region and
// instance id whatever the order they were added in.
func (p *Plan) Add(in Instance) {
	p.Instances = append(p.Instances, in)
	p.Summary.count(in.Action, 1)
}

// Sort orders the instances by account, region and instance id (stable for equal keys).
func (p *Plan) Sort() {
	slices.SortStableFunc(p.Instances, compareInstances)
}

// Recount recomputes the summary from the instances, for callers that changed
// p.Instances directly.
func (p *Plan) Recount() {
	p.Summary = Summary{}
	for _, in := range p.Instances {
		p.Summary.count(in.Action, 1)
	}
}

// Total is the number of instances the summary counts.
func (s Summary) Total() int {
	return s.Remediate + s.Ticket + s.Defer + s.Skip
}

// Count returns the number of instances with action a.
func (s Summary) Count(a policy.Action) int {
	switch a {
	case policy.ActionRemediate:
		return s.Remediate
	case policy.ActionTicket:
		return s.Ticket
	case policy.ActionDefer:
		return s.Defer
	case policy.ActionSkip:
		return s.Skip
	}
	return 0
}

func (s *Summary) count(a policy.Action, n int) {
	switch a {
	case policy.ActionRemediate:
		s.Remediate += n
	case policy.ActionTicket:
		s.Ticket += n
	case policy.ActionDefer:
		s.Defer += n
	case policy.ActionSkip:
		s.Skip += n
	}
}

func compareInstances(a, b Instance) int {
	return cmp.Or(
		cmp.Compare(a.AccountID, b.AccountID),
		cmp.Compare(a.Region, b.Region),
		cmp.Compare(a.InstanceID, b.InstanceID),
	)
}

// normalized returns a copy of p ready to render: instances sorted, summary recounted,
// and no nil slice or map where the schema has an array or object. p is not changed.
func normalized(p *Plan) *Plan {
	q := *p
	q.Instances = make([]Instance, len(p.Instances))
	for i, in := range p.Instances {
		if in.Reasons == nil {
			in.Reasons = []policy.Reason{}
		}
		if in.Evidence.CloudTrail.UserAgents == nil {
			in.Evidence.CloudTrail.UserAgents = []string{}
		}
		if in.Evidence.CloudTrail.SourceIPs == nil {
			in.Evidence.CloudTrail.SourceIPs = []string{}
		}
		if in.Action != policy.ActionRemediate {
			in.Target = nil
		}
		q.Instances[i] = in
	}
	slices.SortStableFunc(q.Instances, compareInstances)
	q.Recount()
	q.Sources, q.SourceSummary = normalizedSources(p)
	q.Scopes = append([]Scope{}, p.Scopes...)
	if q.APICalls == nil {
		q.APICalls = map[string]int{}
	}
	if q.Schema == "" {
		q.Schema = Schema
	}
	q.GeneratedAt = utcSecond(q.GeneratedAt)
	return &q
}

// NewInstance builds the plan entry for one instance from the evidence the guard read
// and its verdict. accountID and region are used when the evidence does not carry them,
// as when the instance was not found or describing it failed; the state is then empty
// and Current nil.
//
// Evidence that was not gathered, or whose gathering failed, is null in the plan: the
// metric fields are set only when the metric was read without error, and CloudTrail
// counts as checked (an object rather than null) only when it was looked up without
// error. Null never means zero.
func NewInstance(ev policy.Evidence, v policy.Verdict, accountID, region string) Instance {
	in := Instance{
		AccountID:  accountID,
		Region:     region,
		InstanceID: ev.InstanceID,
		Action:     v.Action,
		Reasons:    append([]policy.Reason{}, v.Reasons...),
	}
	if inst := ev.Instance; inst != nil {
		in.AccountID = cmp.Or(inst.AccountID, accountID)
		in.Region = cmp.Or(inst.Region, region)
		in.InstanceID = cmp.Or(inst.InstanceID, ev.InstanceID)
		in.Name = inst.Name
		in.State = inst.State
		in.Current = options(inst.Options)
	}
	if v.Action == policy.ActionRemediate && v.Target != nil {
		in.Target = options(*v.Target)
	}

	var lastNonZero, lastDelivery *time.Time
	if m := ev.Metrics; m != nil && ev.MetricsErr == nil {
		sum, hours := m.Sum, m.ObservedHours
		in.Evidence.MetadataNoTokenSum = &sum
		in.Evidence.ObservedHours = &hours
		in.Evidence.LastDatapoint = utcSecondPtr(m.LastDatapoint)
		lastNonZero = utcSecondPtr(m.LastNonZero)
	}
	ct := CloudTrail{UserAgents: []string{}, SourceIPs: []string{}}
	if c := ev.CloudTrail; c != nil && ev.CloudTrailErr == nil {
		ct.Checked = true
		ct.V1Deliveries = c.V1Deliveries
		ct.V2Deliveries = c.V2Deliveries
		ct.UserAgents = append(ct.UserAgents, c.UserAgents...)
		ct.SourceIPs = append(ct.SourceIPs, c.SourceIPs...)
		lastDelivery = utcSecondPtr(c.LastV1Delivery)
	}
	in.Evidence.CloudTrail = ct
	in.Evidence.LastV1Use = later(lastNonZero, lastDelivery)
	return in
}

func options(o policy.MetadataOptions) *Options {
	return &Options{HTTPTokens: o.HTTPTokens, HopLimit: o.HopLimit, HTTPEndpoint: o.HTTPEndpoint}
}

func later(a, b *time.Time) *time.Time {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case b.After(*a):
		return b
	}
	return a
}

func utcSecond(t time.Time) time.Time {
	return t.UTC().Truncate(time.Second)
}

func utcSecondPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := utcSecond(*t)
	return &u
}

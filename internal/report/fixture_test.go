package report

import (
	"errors"
	"time"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// Shared fixtures: plain values run through the real guard, no AWS.

var now = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func at(s string) *time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return &t
}

func running(id, name string) *policy.Instance {
	return &policy.Instance{
		AccountID: "123456789012", Region: "us-east-1", InstanceID: id, Name: name,
		State: policy.StateRunning,
		// Inside the lookback, so that rule 8b has nothing to add.
		LaunchTime: *at("2026-11-20T08:00:00Z"),
		Options:    policy.MetadataOptions{HTTPTokens: policy.TokensOptional, HopLimit: 1, HTTPEndpoint: policy.EndpointEnabled, State: "applied"},
		Tags:       map[string]string{"Name": name},
		// A role, so CloudTrail is read.
		InstanceProfileARN: "arn:aws:iam::123456789012:instance-profile/app",
		Addresses:          []string{"10.0.0.5"},
	}
}

func quiet() *policy.MetricUsage {
	return &policy.MetricUsage{Sum: 0, ObservedHours: 336, LastDatapoint: at("2026-11-22T09:00:00Z")}
}

type fixture struct {
	name string
	ev   policy.Evidence
}

// fixtures covers every action and the kinds of evidence.
func fixtures() []fixture {
	unused := running("i-00000000000000001", "web-1")
	unused.Options.HopLimit = 2

	container := running("i-00000000000000002", "eks-node")
	container.Tags["eks:cluster-name"] = "prod"
	container.InstanceProfileARN = ""

	v1Trail := running("i-00000000000000003", "batch|legacy")

	v1Metric := running("i-00000000000000004", "reports")

	young := running("i-00000000000000005", "")

	compliant := running("i-00000000000000006", "api")
	compliant.Options.HTTPTokens = policy.TokensRequired

	metricErr := running("i-00000000000000007", "=HYPERLINK(\"x\")")

	return []fixture{
		{"remediate unused", policy.Evidence{InstanceID: unused.InstanceID, Instance: unused, Metrics: quiet(),
			CloudTrail: &policy.CloudTrailUsage{V2Deliveries: 12}}},
		{"remediate container host", policy.Evidence{InstanceID: container.InstanceID, Instance: container, Metrics: quiet()}},
		{"ticket cloudtrail", policy.Evidence{InstanceID: v1Trail.InstanceID, Instance: v1Trail, Metrics: quiet(),
			CloudTrail: &policy.CloudTrailUsage{V1Deliveries: 3, V2Deliveries: 1,
				EventNames: []string{"GetObject"}, UserAgents: []string{"aws-cli/1.16.0 Python/2.7.5"},
				SourceIPs: []string{"10.0.0.5", "203.0.113.9"}, ForeignSourceIPs: []string{"203.0.113.9"},
				LastV1Delivery: at("2026-11-21T08:30:00Z")}}},
		{"ticket metric", policy.Evidence{InstanceID: v1Metric.InstanceID, Instance: v1Metric,
			Metrics: &policy.MetricUsage{Sum: 42, ObservedHours: 336, LastDatapoint: at("2026-11-22T09:00:00Z"), LastNonZero: at("2026-11-20T14:00:00Z")}}},
		{"defer insufficient", policy.Evidence{InstanceID: young.InstanceID, Instance: young,
			Metrics: &policy.MetricUsage{ObservedHours: 12, LastDatapoint: at("2026-11-22T09:00:00Z")}}},
		{"defer metric error", policy.Evidence{InstanceID: metricErr.InstanceID, Instance: metricErr,
			MetricsErr: errors.New("throttled")}},
		{"skip compliant", policy.Evidence{InstanceID: compliant.InstanceID, Instance: compliant}},
		{"skip not found", policy.Evidence{InstanceID: "i-00000000000000008"}},
	}
}

// fixturePlan holds every fixture, added in reverse order to exercise the sorting.
func fixturePlan() *Plan {
	s := policy.DefaultSettings()
	s.Mode = policy.ModeReport
	p := New("test", now, s)
	fs := fixtures()
	for i := len(fs) - 1; i >= 0; i-- {
		ev := fs[i].ev
		p.Add(NewInstance(ev, policy.Decide(ev, s, now), "123456789012", "us-east-1"))
	}
	account := "123456789012"
	p.Scopes = []Scope{{AccountID: &account, Region: "us-east-1", Status: ScopeOK}}
	p.APICalls["ec2:DescribeInstances"] = 1
	p.APICalls["cloudwatch:GetMetricData"] = 1
	p.APICalls["cloudtrail:LookupEvents"] = 2
	return p
}

var errDenied = errors.New("AccessDeniedException: not authorized to perform: cloudtrail:LookupEvents")

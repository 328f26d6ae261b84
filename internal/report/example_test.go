package report_test

import (
	"os"
	"time"

	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/report"
)

func ExampleWrite() {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	hour := func(h int) *time.Time { t := now.Add(time.Duration(h) * time.Hour); return &t }
	s := policy.DefaultSettings()
	s.Mode = policy.ModeReport
	inst := func(id, name string, hop int32) *policy.Instance {
		return &policy.Instance{AccountID: "123456789012", Region: "us-east-1", InstanceID: id, Name: name,
			State: policy.StateRunning, LaunchTime: now.Add(-72 * time.Hour),
			Options:            policy.MetadataOptions{HTTPTokens: policy.TokensOptional, HopLimit: hop, HTTPEndpoint: policy.EndpointEnabled},
			Tags:               map[string]string{},
			InstanceProfileARN: "arn:aws:iam::123456789012:instance-profile/app",
			Addresses:          []string{"10.0.1.7"},
		}
	}
	quiet := &policy.MetricUsage{ObservedHours: 336, LastDatapoint: hour(-1)}
	evidence := []policy.Evidence{
		{InstanceID: "i-0a1b2c3d4e5f60001", Instance: inst("i-0a1b2c3d4e5f60001", "web-1", 2), Metrics: quiet,
			CloudTrail: &policy.CloudTrailUsage{V2Deliveries: 12}},
		{InstanceID: "i-0a1b2c3d4e5f60002", Instance: inst("i-0a1b2c3d4e5f60002", "legacy-batch", 1), Metrics: quiet,
			CloudTrail: &policy.CloudTrailUsage{V1Deliveries: 3, UserAgents: []string{"aws-cli/1.16.0"},
				SourceIPs: []string{"10.0.1.7"}, LastV1Delivery: hour(-20)}},
		{InstanceID: "i-0a1b2c3d4e5f60003", Instance: inst("i-0a1b2c3d4e5f60003", "reports", 1),
			Metrics: &policy.MetricUsage{ObservedHours: 300, LastDatapoint: hour(-7)}},
		{InstanceID: "i-0a1b2c3d4e5f60004"},
	}
	p := report.New("v1.0.0", now, s)
	for _, ev := range evidence {
		p.Add(report.NewInstance(ev, policy.Decide(ev, s, now), "123456789012", "us-east-1"))
	}
	p.APICalls["ec2:DescribeInstances"] = 1
	p.APICalls["cloudwatch:GetMetricData"] = 1
	p.APICalls["cloudtrail:LookupEvents"] = 2
	if err := report.Write(os.Stdout, p, report.FormatTable); err != nil {
		panic(err)
	}
	// Output:
	// imdsguard plan generated 2026-11-22T10:00:00Z (lookback 336h, min observed 168h, mode report)
	// account 123456789012, region us-east-1
	//
	// INSTANCE             NAME          STATE    ACTION     REASON                  EVIDENCE
	// i-0a1b2c3d4e5f60001  web-1         running  remediate  imdsv1-unused           v1 calls 0 in 336h obs, last dp 09:00Z, hop 2->1
	// i-0a1b2c3d4e5f60002  legacy-batch  running  ticket     imdsv1-used-cloudtrail  CloudTrail v1 x3 (aws-cli/1.16.0)
	// i-0a1b2c3d4e5f60003  reports       running  defer      stale-metrics           last dp 03:00Z
	// i-0a1b2c3d4e5f60004  -             -        skip       terminated              not found
	//
	// 1 remediate, 1 ticket, 1 defer, 1 skip (4 instances)
	// API calls: cloudtrail:LookupEvents 2, cloudwatch:GetMetricData 1, ec2:DescribeInstances 1
	//
	// Why:
	//   i-0a1b2c3d4e5f60002 (legacy-batch) ticket: imdsv1-used-cloudtrail: CloudTrail shows role credentials fetched over IMDSv1 (ec2RoleDelivery 1.0) 3 time(s), the last used at 2026-11-21T14:00:00Z; user agents: aws-cli/1.16.0
	//   i-0a1b2c3d4e5f60003 (reports) defer: stale-metrics: the last MetadataNoToken datapoint is from 2026-11-22T03:00:00Z, 7h ago (more than 3h)
}

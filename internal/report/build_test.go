package report

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// sameJSON fails unless got marshals to the same JSON value as want.
func sameJSON(t *testing.T, got any, want string) {
	t.Helper()
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expected JSON: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

func TestNewInstance(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	inst := running("i-1", "web-1")
	noRegion := running("i-2", "web-2")
	noRegion.AccountID, noRegion.Region = "", ""
	skip := policy.Verdict{Action: policy.ActionSkip, Reasons: []policy.Reason{{Code: policy.ReasonTerminated, Detail: "instance i-gone not found"}}}
	deferV := policy.Verdict{Action: policy.ActionDefer, Reasons: []policy.Reason{{Code: policy.ReasonEvidenceError, Detail: "x"}}}
	target := &policy.MetadataOptions{HTTPTokens: policy.TokensRequired, HopLimit: 1, HTTPEndpoint: policy.EndpointEnabled}
	const noEvidence = `{"metadata_no_token_sum": null, "observed_hours": null, "last_datapoint": null, "last_v1_use": null,
		"cloudtrail": null}`
	const current = `{"http_tokens": "optional", "hop_limit": 1, "http_endpoint": "enabled"}`

	tests := []struct {
		name string
		ev   policy.Evidence
		v    policy.Verdict
		want string
	}{
		{
			name: "not found: ids from the arguments, no state, no current, null evidence",
			ev:   policy.Evidence{InstanceID: "i-gone"},
			v:    skip,
			want: `{"account_id": "111122223333", "region": "eu-west-1", "instance_id": "i-gone", "name": "", "state": "",
				"current": null, "action": "skip",
				"reasons": [{"code": "terminated", "detail": "instance i-gone not found"}],
				"evidence": ` + noEvidence + `, "source": null}`,
		},
		{
			name: "inventory failed: no reasons given still marshals as []",
			ev:   policy.Evidence{InstanceID: "i-err", InventoryErr: errors.New("boom")},
			v:    policy.Verdict{Action: policy.ActionDefer},
			want: `{"account_id": "111122223333", "region": "eu-west-1", "instance_id": "i-err", "name": "", "state": "",
				"current": null, "action": "defer", "reasons": [], "evidence": ` + noEvidence + `, "source": null}`,
		},
		{
			name: "metrics not gathered: nulls, and the arguments fill a missing account and region",
			ev:   policy.Evidence{InstanceID: "i-2", Instance: noRegion},
			v:    deferV,
			want: `{"account_id": "111122223333", "region": "eu-west-1", "instance_id": "i-2", "name": "web-2", "state": "running",
				"current": ` + current + `, "action": "defer",
				"reasons": [{"code": "evidence-error", "detail": "x"}], "evidence": ` + noEvidence + `, "source": null}`,
		},
		{
			name: "metric error: partial metrics are not shown",
			ev: policy.Evidence{InstanceID: "i-1", Instance: inst, MetricsErr: errors.New("throttled"),
				Metrics: &policy.MetricUsage{Sum: 0, ObservedHours: 3}},
			v: deferV,
			want: `{"account_id": "123456789012", "region": "us-east-1", "instance_id": "i-1", "name": "web-1", "state": "running",
				"current": ` + current + `, "action": "defer",
				"reasons": [{"code": "evidence-error", "detail": "x"}], "evidence": ` + noEvidence + `, "source": null}`,
		},
		{
			name: "CloudTrail failed: null even with partial counts",
			ev: policy.Evidence{InstanceID: "i-1", Instance: inst, Metrics: quiet(), CloudTrailErr: errors.New("denied"),
				CloudTrail: &policy.CloudTrailUsage{V2Deliveries: 4, UserAgents: []string{"x"}}},
			v: deferV,
			want: `{"account_id": "123456789012", "region": "us-east-1", "instance_id": "i-1", "name": "web-1", "state": "running",
				"current": ` + current + `, "action": "defer",
				"reasons": [{"code": "evidence-error", "detail": "x"}],
				"evidence": {"metadata_no_token_sum": 0, "observed_hours": 336, "last_datapoint": "2026-11-22T09:00:00Z", "last_v1_use": null,
					"cloudtrail": null}, "source": null}`,
		},
		{
			name: "CloudTrail v1 delivery later than the metric: last use from CloudTrail, UTC, whole seconds",
			ev: policy.Evidence{InstanceID: "i-1", Instance: inst,
				Metrics: &policy.MetricUsage{Sum: 2.5, ObservedHours: 300,
					LastDatapoint: ptr(time.Date(2026, 11, 22, 10, 0, 0, 999, paris)),
					LastNonZero:   ptr(time.Date(2026, 11, 20, 14, 0, 0, 0, paris))},
				CloudTrail: &policy.CloudTrailUsage{V1Deliveries: 3, V2Deliveries: 1,
					UserAgents: []string{"aws-cli/1.16.0"}, SourceIPs: []string{"203.0.113.9"},
					LastV1Delivery: ptr(time.Date(2026, 11, 21, 8, 30, 15, 500_000_000, time.UTC))}},
			v: policy.Verdict{Action: policy.ActionTicket, Reasons: []policy.Reason{{Code: policy.ReasonIMDSv1UsedMetric, Detail: "d"}}},
			want: `{"account_id": "123456789012", "region": "us-east-1", "instance_id": "i-1", "name": "web-1", "state": "running",
				"current": ` + current + `, "action": "ticket",
				"reasons": [{"code": "imdsv1-used-metric", "detail": "d"}],
				"evidence": {"metadata_no_token_sum": 2.5, "observed_hours": 300,
					"last_datapoint": "2026-11-22T09:00:00Z", "last_v1_use": "2026-11-21T08:30:15Z",
					"cloudtrail": {"checked": true, "v1_deliveries": 3, "v2_deliveries": 1,
						"user_agents": ["aws-cli/1.16.0"], "source_ips": ["203.0.113.9"]}}, "source": null}`,
		},
		{
			name: "metric use later than CloudTrail: last use from the metric",
			ev: policy.Evidence{InstanceID: "i-1", Instance: inst,
				Metrics:    &policy.MetricUsage{Sum: 1, ObservedHours: 300, LastDatapoint: at("2026-11-22T09:00:00Z"), LastNonZero: at("2026-11-22T08:00:00Z")},
				CloudTrail: &policy.CloudTrailUsage{V1Deliveries: 1, LastV1Delivery: at("2026-11-01T00:00:00Z")}},
			v: policy.Verdict{Action: policy.ActionTicket, Reasons: []policy.Reason{{Code: policy.ReasonIMDSv1UsedMetric, Detail: "d"}}},
			want: `{"account_id": "123456789012", "region": "us-east-1", "instance_id": "i-1", "name": "web-1", "state": "running",
				"current": ` + current + `, "action": "ticket",
				"reasons": [{"code": "imdsv1-used-metric", "detail": "d"}],
				"evidence": {"metadata_no_token_sum": 1, "observed_hours": 300,
					"last_datapoint": "2026-11-22T09:00:00Z", "last_v1_use": "2026-11-22T08:00:00Z",
					"cloudtrail": {"checked": true, "v1_deliveries": 1, "v2_deliveries": 0, "user_agents": [], "source_ips": []}}, "source": null}`,
		},
		{
			name: "remediate: target present",
			ev: policy.Evidence{InstanceID: "i-1", Instance: inst, Metrics: quiet(),
				CloudTrail: &policy.CloudTrailUsage{V2Deliveries: 12}},
			v: policy.Verdict{Action: policy.ActionRemediate, Reasons: []policy.Reason{{Code: policy.ReasonIMDSv1Unused, Detail: "u"}}, Target: target},
			want: `{"account_id": "123456789012", "region": "us-east-1", "instance_id": "i-1", "name": "web-1", "state": "running",
				"current": ` + current + `, "action": "remediate",
				"reasons": [{"code": "imdsv1-unused", "detail": "u"}],
				"target": {"http_tokens": "required", "hop_limit": 1, "http_endpoint": "enabled"},
				"evidence": {"metadata_no_token_sum": 0, "observed_hours": 336, "last_datapoint": "2026-11-22T09:00:00Z", "last_v1_use": null,
					"cloudtrail": {"checked": true, "v1_deliveries": 0, "v2_deliveries": 12, "user_agents": [], "source_ips": []}}, "source": null}`,
		},
		{
			name: "target dropped when the action is not remediate",
			ev:   policy.Evidence{InstanceID: "i-1", Instance: inst},
			v:    policy.Verdict{Action: policy.ActionDefer, Reasons: []policy.Reason{{Code: policy.ReasonEvidenceError, Detail: "x"}}, Target: target},
			want: `{"account_id": "123456789012", "region": "us-east-1", "instance_id": "i-1", "name": "web-1", "state": "running",
				"current": ` + current + `, "action": "defer",
				"reasons": [{"code": "evidence-error", "detail": "x"}], "evidence": ` + noEvidence + `, "source": null}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NewInstance(tt.ev, tt.v, "111122223333", "eu-west-1")
			sameJSON(t, got, tt.want)
		})
	}
}

func TestNewInstanceDoesNotAlias(t *testing.T) {
	ct := &policy.CloudTrailUsage{V1Deliveries: 1, UserAgents: []string{"a"}, SourceIPs: []string{"1.2.3.4"}}
	v := policy.Verdict{Action: policy.ActionTicket, Reasons: []policy.Reason{{Code: policy.ReasonIMDSv1UsedCloudTrail, Detail: "d"}}}
	in := NewInstance(policy.Evidence{InstanceID: "i-1", Instance: running("i-1", ""), Metrics: quiet(), CloudTrail: ct}, v, "", "")
	ct.UserAgents[0], ct.SourceIPs[0], v.Reasons[0].Detail = "changed", "changed", "changed"
	if in.Evidence.CloudTrail.UserAgents[0] != "a" || in.Evidence.CloudTrail.SourceIPs[0] != "1.2.3.4" || in.Reasons[0].Detail != "d" {
		t.Errorf("instance shares memory with the evidence or verdict: %+v", in)
	}
}

func TestNewPlan(t *testing.T) {
	s := policy.DefaultSettings()
	p := New("v1.2.3", time.Date(2026, 11, 22, 11, 0, 0, 123, time.FixedZone("CET", 3600)), s)
	sameJSON(t, p, `{"schema": "imdsguard.plan/v1", "version": "v1.2.3", "generated_at": "2026-11-22T10:00:00Z",
		"settings": {"lookback_hours": 336, "min_observed_hours": 168, "max_metric_staleness": "3h", "hop_limit": 1,
			"container_hop_limit": 2, "exempt_tag": "imdsguard:exempt", "mode": "dry-run",
			"container_tags": ["eks:cluster-name", "aws:eks:cluster-name", "kubernetes.io/cluster/*", "aws:ecs:clusterName"],
			"call_timeout": "30s", "boot_window": "2h"},
		"scopes": [], "instances": [], "summary": {"remediate": 0, "ticket": 0, "defer": 0, "skip": 0},
		"sources": [], "source_summary": {"fix": 0, "ticket": 0, "defer": 0, "skip": 0}, "api_calls": {}}`)
}

func TestAddCountsAndSortOrders(t *testing.T) {
	p := New("test", now, policy.DefaultSettings())
	adds := []Instance{
		{AccountID: "2", Region: "us-east-1", InstanceID: "i-a", Action: policy.ActionSkip},
		{AccountID: "1", Region: "us-west-2", InstanceID: "i-a", Action: policy.ActionRemediate},
		{AccountID: "1", Region: "us-east-1", InstanceID: "i-b", Action: policy.ActionTicket},
		{AccountID: "1", Region: "us-east-1", InstanceID: "i-a", Action: policy.ActionRemediate},
		{AccountID: "1", Region: "eu-west-1", InstanceID: "i-z", Action: policy.ActionDefer},
	}
	for _, in := range adds {
		p.Add(in)
	}
	want := Summary{Remediate: 2, Ticket: 1, Defer: 1, Skip: 1}
	if p.Summary != want || p.Summary.Total() != 5 {
		t.Errorf("summary %+v, want %+v", p.Summary, want)
	}
	p.Sort()
	var order []string
	for _, in := range p.Instances {
		order = append(order, in.AccountID+"/"+in.Region+"/"+in.InstanceID)
	}
	wantOrder := []string{"1/eu-west-1/i-z", "1/us-east-1/i-a", "1/us-east-1/i-b", "1/us-west-2/i-a", "2/us-east-1/i-a"}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("order %v, want %v", order, wantOrder)
	}

	p.Instances = p.Instances[:2]
	p.Recount()
	if want := (Summary{Remediate: 1, Defer: 1}); p.Summary != want {
		t.Errorf("after Recount: %+v, want %+v", p.Summary, want)
	}
}

func ptr[T any](v T) *T { return &v }

package guard_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport/fakeapi"
)

// heldMetrics is an in-process GetMetricData that answers every query with a full
// series of zeros over the window. It answers its first call at once and holds every
// later one until trail reports a LookupEvents call: a guard that waited for every
// metric batch before looking anything up in CloudTrail would never get them.
type heldMetrics struct {
	trail *countingTrail

	mu    sync.Mutex
	calls int
}

func (m *heldMetrics) GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	m.mu.Lock()
	m.calls++
	first := m.calls == 1
	m.mu.Unlock()
	if !first {
		select {
		case <-m.trail.started:
		case <-ctx.Done():
			return nil, fmt.Errorf("held until a CloudTrail lookup started, which none did: %w", ctx.Err())
		}
	}
	var stamps []time.Time
	for ts := aws.ToTime(in.StartTime); ts.Before(aws.ToTime(in.EndTime)); ts = ts.Add(time.Hour) {
		stamps = append(stamps, ts)
	}
	out := &cloudwatch.GetMetricDataOutput{MetricDataResults: []cwtypes.MetricDataResult{}}
	for _, q := range in.MetricDataQueries {
		out.MetricDataResults = append(out.MetricDataResults, cwtypes.MetricDataResult{
			Id: q.Id, StatusCode: cwtypes.StatusCodeComplete, Timestamps: stamps, Values: make([]float64, len(stamps)),
		})
	}
	return out, nil
}

func (m *heldMetrics) callCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls
}

// countingTrail is an in-process LookupEvents that finds no event, counts the lookups
// of each user name, and closes started at the first.
type countingTrail struct {
	started chan struct{}

	mu     sync.Mutex
	lookUp map[string]int
}

func (c *countingTrail) LookupEvents(_ context.Context, in *cloudtrail.LookupEventsInput, _ ...func(*cloudtrail.Options)) (*cloudtrail.LookupEventsOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.lookUp) == 0 {
		close(c.started)
	}
	c.lookUp[aws.ToString(in.LookupAttributes[0].AttributeValue)]++
	return &cloudtrail.LookupEventsOutput{Events: []cttypes.Event{}}, nil
}

// TestJudgeLooksUpWhileMetricsAreRead: the CloudTrail lookups of a metric batch's
// candidates start while the other batches are still being read, and every instance
// still ends with exactly its own evidence and one verdict: metrics only for those the
// rules need them for, one lookup for each candidate with an instance profile, and the
// progress never going backwards. Run it with -race.
func TestJudgeLooksUpWhileMetricsAreRead(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	s := settings() // 24 hours: 500 instances per GetMetricData call
	trail := &countingTrail{started: make(chan struct{}), lookUp: map[string]int{}}
	metrics := &heldMetrics{trail: trail}
	c := guard.Clients{CloudWatch: metrics, CloudTrail: trail, LookupLimiter: evidence.NewLookupLimiter(1e6)}

	// 1,200 candidates with a profile (three batches), 300 without (metrics, no lookup),
	// and 100 compliant instances that need nothing.
	var evs []policy.Evidence
	kinds := map[string]string{}
	add := func(kind string, count int, tokens, profile string) {
		for range count {
			id := fmt.Sprintf("i-%017x", 0xa11000+len(evs))
			kinds[id] = kind
			evs = append(evs, policy.Evidence{InstanceID: id, Instance: &policy.Instance{
				AccountID: motoAccount, Region: region, InstanceID: id, State: policy.StateRunning,
				// Inside the one-day lookback: no boot hours to read (TestJudgeReadsBootHours).
				LaunchTime: now.Add(-12 * time.Hour), InstanceProfileARN: profile,
				Options: policy.MetadataOptions{HTTPTokens: tokens, HopLimit: 2, HTTPEndpoint: policy.EndpointEnabled},
			}})
		}
	}
	add("candidate", 1200, policy.TokensOptional, "arn:aws:iam::123456789012:instance-profile/app")
	add("no-profile", 300, policy.TokensOptional, "")
	add("compliant", 100, policy.TokensRequired, "arn:aws:iam::123456789012:instance-profile/app")

	var progress progressLog
	got := guard.Judge(testContext(t), c, region, evs, s, now, progress.report)

	if len(got) != len(evs) {
		t.Fatalf("%d assessments for %d instances", len(got), len(evs))
	}
	if calls := metrics.callCount(); calls != 3 {
		t.Errorf("%d GetMetricData calls, want 3 batches of at most 500", calls)
	}
	for i, a := range got {
		ev := a.Evidence
		if ev.InstanceID != evs[i].InstanceID {
			t.Fatalf("assessment %d is of %s, want %s", i, ev.InstanceID, evs[i].InstanceID)
		}
		kind := kinds[ev.InstanceID]
		if ev.MetricsErr != nil || ev.CloudTrailErr != nil {
			t.Fatalf("%s (%s): metrics error %v, CloudTrail error %v", ev.InstanceID, kind, ev.MetricsErr, ev.CloudTrailErr)
		}
		wantMetrics, wantLookups, want := true, 0, policy.ReasonIMDSv1Unused
		switch kind {
		case "candidate":
			wantLookups = 1
		case "compliant":
			wantMetrics, want = false, policy.ReasonCompliant
		}
		if (ev.Metrics != nil) != wantMetrics || (ev.CloudTrail != nil) != (wantLookups == 1) {
			t.Errorf("%s (%s): metrics %v, CloudTrail %v", ev.InstanceID, kind, ev.Metrics != nil, ev.CloudTrail != nil)
		}
		if n := trail.lookUp[ev.InstanceID]; n != wantLookups {
			t.Errorf("%s (%s): looked up %d times, want %d", ev.InstanceID, kind, n, wantLookups)
		}
		if a.Verdict.Primary() != want {
			t.Errorf("%s (%s): verdict %s %s, want %s", ev.InstanceID, kind, a.Verdict.Action, a.Verdict.Primary(), want)
		}
	}
	progress.check(t, len(evs))
}

// bootMetrics is an in-process GetMetricData that answers every query with a zero for
// each hour of the call's window, except that the instance named user made 3 IMDSv1
// calls in the hour it launched in, and the instance named silent has no datapoint
// before the lookback. It keeps the window of every call.
type bootMetrics struct {
	lookbackStart  time.Time
	user, silent   string
	userLaunchHour time.Time

	mu      sync.Mutex
	windows [][2]time.Time
	queries []int
}

func (m *bootMetrics) GetMetricData(_ context.Context, in *cloudwatch.GetMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	start, end := aws.ToTime(in.StartTime), aws.ToTime(in.EndTime)
	m.mu.Lock()
	m.windows = append(m.windows, [2]time.Time{start, end})
	m.queries = append(m.queries, len(in.MetricDataQueries))
	m.mu.Unlock()
	out := &cloudwatch.GetMetricDataOutput{MetricDataResults: []cwtypes.MetricDataResult{}}
	for _, q := range in.MetricDataQueries {
		id := aws.ToString(q.MetricStat.Metric.Dimensions[0].Value)
		r := cwtypes.MetricDataResult{Id: q.Id, StatusCode: cwtypes.StatusCodeComplete, Timestamps: []time.Time{}, Values: []float64{}}
		for ts := start; ts.Before(end); ts = ts.Add(time.Hour) {
			if id == m.silent && ts.Before(m.lookbackStart) {
				continue
			}
			value := 0.0
			if id == m.user && ts.Equal(m.userLaunchHour) {
				value = 3
			}
			r.Timestamps, r.Values = append(r.Timestamps, ts), append(r.Values, value)
		}
		out.MetricDataResults = append(out.MetricDataResults, r)
	}
	return out, nil
}

// TestJudgeReadsBootHours: candidates launched before the lookback have their boot hours
// read (rule 8b) in launch-time cohorts, one GetMetricData call per cohort that fits the
// call's datapoint limit; IMDSv1 calls at boot make a ticket without a CloudTrail lookup,
// boot hours without a datapoint add boot-unobserved, and the others go on to CloudTrail.
func TestJudgeReadsBootHours(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	s := settings()
	lookbackStart, _ := policy.LookbackWindow(now, s.Lookback)
	trail := &countingTrail{started: make(chan struct{}), lookUp: map[string]int{}}

	// 20 instances launched 400 days ago and 20 launched 30 days ago: together they span
	// 370 days, which 40 queries cannot cover in one call (40 x 8,883 hours is more than
	// 100,800 datapoints), so they are two cohorts.
	var evs []policy.Evidence
	launches := map[string]time.Time{}
	for i := range 40 {
		id := fmt.Sprintf("i-%017x", 0xb00700+i)
		days := 400
		if i >= 20 {
			days = 30
		}
		launch := now.Add(-time.Duration(days)*24*time.Hour - time.Duration(i)*time.Minute)
		launches[id] = launch
		evs = append(evs, policy.Evidence{InstanceID: id, Instance: &policy.Instance{
			AccountID: motoAccount, Region: region, InstanceID: id, State: policy.StateRunning, LaunchTime: launch,
			InstanceProfileARN: "arn:aws:iam::123456789012:instance-profile/app",
			Options:            policy.MetadataOptions{HTTPTokens: policy.TokensOptional, HopLimit: 2, HTTPEndpoint: policy.EndpointEnabled},
		}})
	}
	user, silent := evs[25].InstanceID, evs[3].InstanceID
	metrics := &bootMetrics{lookbackStart: lookbackStart, user: user, silent: silent, userLaunchHour: launches[user].Truncate(time.Hour)}
	c := guard.Clients{CloudWatch: metrics, CloudTrail: trail, LookupLimiter: evidence.NewLookupLimiter(1e6)}

	var progress progressLog
	got := guard.Judge(testContext(t), c, region, evs, s, now, progress.report)

	metrics.mu.Lock()
	windows, queries := metrics.windows, metrics.queries
	metrics.mu.Unlock()
	if len(windows) != 3 {
		t.Fatalf("%d GetMetricData calls %v, want the lookback's and two boot cohorts'", len(windows), windows)
	}
	bootQueries := 0
	for i, w := range windows {
		if !w[0].Before(lookbackStart) {
			continue
		}
		bootQueries += queries[i]
		if hours := int(w[1].Sub(w[0]) / time.Hour); queries[i]*hours > 100800 {
			t.Errorf("boot call %v asks %d queries x %d hours, more than a call answers", w, queries[i], hours)
		}
	}
	if bootQueries != 40 {
		t.Errorf("%d boot queries, want one for each of the 40 candidates", bootQueries)
	}
	for _, a := range got {
		id := a.Evidence.InstanceID
		if a.Evidence.Boot == nil || a.Evidence.BootErr != nil {
			t.Fatalf("%s: boot usage %+v, error %v", id, a.Evidence.Boot, a.Evidence.BootErr)
		}
		wantAction, wantCodes, wantLookups := policy.ActionRemediate, "imdsv1-unused", 1
		switch id {
		case user:
			wantAction, wantCodes, wantLookups = policy.ActionTicket, "imdsv1-used-at-boot", 0
			if a.Evidence.Boot.Sum != 3 {
				t.Errorf("%s: boot sum %g, want 3", id, a.Evidence.Boot.Sum)
			}
		case silent:
			wantCodes = "imdsv1-unused,boot-unobserved"
		}
		var codes []string
		for _, r := range a.Verdict.Reasons {
			codes = append(codes, string(r.Code))
		}
		if a.Verdict.Action != wantAction || strings.Join(codes, ",") != wantCodes {
			t.Errorf("%s: %s %v, want %s %s", id, a.Verdict.Action, codes, wantAction, wantCodes)
		}
		if n := trail.lookUp[id]; n != wantLookups {
			t.Errorf("%s: looked up %d times, want %d", id, n, wantLookups)
		}
		// Only the instance's own boot hours count: 3 of them for a launch in mid-hour.
		if id != silent && a.Evidence.Boot.ObservedHours != 3 {
			t.Errorf("%s: %d boot hours observed, want its own 3", id, a.Evidence.Boot.ObservedHours)
		}
	}
	progress.check(t, len(evs))
}

// TestAssessKnowingRollbacks: an instance the ledger says was rolled back is judged by
// rule 5b before any evidence is read for it: no metric query and no lookup names it,
// while the instance beside it is judged as usual.
func TestAssessKnowingRollbacks(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	journal := &fakeapi.Journal{}
	ec2 := fakeapi.NewEC2(motoAccount, journal)
	for _, id := range []string{"i-0000000000000f001", "i-0000000000000f002"} {
		ec2.Put(fakeapi.NewInstance(id, now.Add(-12*time.Hour)))
	}
	spy := &metricQuerySpy{}
	metrics := &bootMetrics{lookbackStart: now.Add(-48 * time.Hour)}
	trail := &countingTrail{started: make(chan struct{}), lookUp: map[string]int{}}
	c := guard.Clients{EC2: ec2, CloudWatch: spiedMetrics{metrics, spy}, CloudTrail: trail, LookupLimiter: evidence.NewLookupLimiter(1e6)}
	rolledBack := map[string]policy.Rollback{"i-0000000000000f001": {At: now.Add(-time.Hour), Why: "EC2 rejected 2 IMDSv1 calls"}}
	got, err := guard.AssessKnowing(testContext(t), c, region, nil, settings(), now, nil, rolledBack)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range got {
		switch a.Evidence.InstanceID {
		case "i-0000000000000f001":
			if a.Verdict.Action != policy.ActionTicket || a.Verdict.Primary() != policy.ReasonRolledBack || a.Evidence.Metrics != nil {
				t.Errorf("the rolled back instance: %s %s, metrics %v", a.Verdict.Action, a.Verdict.Primary(), a.Evidence.Metrics)
			}
		default:
			if a.Evidence.Metrics == nil {
				t.Errorf("%s: its metrics were not read", a.Evidence.InstanceID)
			}
		}
	}
	for _, id := range spy.queried() {
		if id == "i-0000000000000f001" {
			t.Error("a metric query names the rolled back instance")
		}
	}
	if trail.lookUp["i-0000000000000f001"] != 0 {
		t.Error("CloudTrail was looked up for the rolled back instance")
	}
}

// spiedMetrics records the instance of every query before answering.
type spiedMetrics struct {
	inner *bootMetrics
	spy   *metricQuerySpy
}

func (s spiedMetrics) GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	s.spy.mu.Lock()
	for _, q := range in.MetricDataQueries {
		s.spy.instances = append(s.spy.instances, aws.ToString(q.MetricStat.Metric.Dimensions[0].Value))
	}
	s.spy.mu.Unlock()
	return s.inner.GetMetricData(ctx, in, opts...)
}

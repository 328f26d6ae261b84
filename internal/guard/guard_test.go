package guard_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go/middleware"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport"
)

func TestMain(m *testing.M) { os.Exit(testsupport.RunWithMoto(m)) }

const (
	region      = "us-east-1"
	motoAccount = "123456789012"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// settings are the defaults with a one-day lookback, so that each instance needs only
// 24 hourly datapoints.
func settings() policy.Settings {
	s := policy.DefaultSettings()
	s.Lookback = 24 * time.Hour
	s.MinObservedHours = 12
	s.MaxMetricStaleness = 3 * time.Hour
	return s
}

// metricQuerySpy records the instance of every GetMetricData query the client sends.
type metricQuerySpy struct {
	mu        sync.Mutex
	instances []string
}

func (s *metricQuerySpy) addTo(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("testMetricQuerySpy",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if p, ok := in.Parameters.(*cloudwatch.GetMetricDataInput); ok {
				s.mu.Lock()
				for _, q := range p.MetricDataQueries {
					for _, d := range q.MetricStat.Metric.Dimensions {
						s.instances = append(s.instances, aws.ToString(d.Value))
					}
				}
				s.mu.Unlock()
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
}

func (s *metricQuerySpy) queried() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(slices.Values(s.instances))
}

// progressLog records the progress callbacks.
type progressLog struct {
	mu    sync.Mutex
	calls [][2]int
}

func (p *progressLog) report(done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, [2]int{done, total})
}

// check fails t unless the progress ended at (total, total), kept one total, and never
// went backwards.
func (p *progressLog) check(t *testing.T, total int) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.calls) == 0 || p.calls[len(p.calls)-1] != [2]int{total, total} {
		t.Errorf("progress %v, want it to end at (%d, %d)", p.calls, total, total)
	}
	for i, c := range p.calls {
		if c[1] != total || c[0] < 0 || c[0] > total || (i > 0 && c[0] < p.calls[i-1][0]) {
			t.Errorf("progress %v goes backwards or out of 0..%d at call %d", p.calls, total, i+1)
			break
		}
	}
}

type world struct {
	clients guard.Clients
	counter *awsapi.CallCounter
	metrics *metricQuerySpy
	trail   *fakeaws.CloudTrail
}

// newWorld points the real clients at EC2 in ec2URL, CloudWatch in cloudWatchURL (moto,
// or a closed port or stand-in) and at a CloudTrail stand-in, counting their calls.
func newWorld(t *testing.T, ec2URL, cloudWatchURL string) *world {
	t.Helper()
	w := &world{counter: awsapi.NewCallCounter(), metrics: &metricQuerySpy{}, trail: fakeaws.NewCloudTrail()}
	t.Cleanup(w.trail.Close)
	cfg := fakeaws.AWSConfig(region)
	cfg.APIOptions = append(cfg.APIOptions, w.counter.AddTo)
	w.clients = guard.Clients{
		EC2: ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(ec2URL) }),
		CloudWatch: cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
			o.BaseEndpoint = aws.String(cloudWatchURL)
			o.APIOptions = append(o.APIOptions, w.metrics.addTo)
		}),
		CloudTrail:    cloudtrail.NewFromConfig(cfg, func(o *cloudtrail.Options) { o.BaseEndpoint = aws.String(w.trail.URL) }),
		LookupLimiter: evidence.NewLookupLimiter(1000),
	}
	return w
}

// kind is one instance of the test fleet and what the guard must make of it.
type kind struct {
	name    string
	spec    fakeaws.InstanceSpec
	metrics func(i int) (float64, bool) // hourly MetadataNoToken over the lookback; nil for none
	trail   []string                    // ec2RoleDelivery of the role's CloudTrail events
	// want
	action     policy.Action
	code       policy.ReasonCode
	getMetrics bool // its metric is queried
	lookUp     bool // its role's deliveries are looked up in CloudTrail
}

func zeros(int) (float64, bool) { return 0, true }

var fleetKinds = []kind{
	{name: "compliant", spec: fakeaws.InstanceSpec{HttpTokens: "required", InstanceProfileName: "app"}, metrics: zeros, trail: []string{"1.0"},
		action: policy.ActionSkip, code: policy.ReasonCompliant},
	{name: "gone", spec: fakeaws.InstanceSpec{State: "terminated", InstanceProfileName: "app"}, metrics: zeros,
		action: policy.ActionSkip, code: policy.ReasonTerminated},
	{name: "exempt", spec: fakeaws.InstanceSpec{Tags: map[string]string{"imdsguard:exempt": "true"}, InstanceProfileName: "app"}, metrics: zeros,
		action: policy.ActionSkip, code: policy.ReasonExempt},
	{name: "stopped", spec: fakeaws.InstanceSpec{State: "stopped", InstanceProfileName: "app"}, metrics: zeros,
		action: policy.ActionDefer, code: policy.ReasonNotRunning},
	{name: "dark", spec: fakeaws.InstanceSpec{HttpEndpoint: "disabled", InstanceProfileName: "app"}, metrics: zeros,
		action: policy.ActionRemediate, code: policy.ReasonEndpointDisabled},
	{name: "legacy", spec: fakeaws.InstanceSpec{InstanceProfileName: "app"}, metrics: func(i int) (float64, bool) { return float64(i % 2), true },
		action: policy.ActionTicket, code: policy.ReasonIMDSv1UsedMetric, getMetrics: true},
	{name: "no-profile", spec: fakeaws.InstanceSpec{}, metrics: zeros,
		action: policy.ActionRemediate, code: policy.ReasonIMDSv1Unused, getMetrics: true},
	{name: "sparse", spec: fakeaws.InstanceSpec{InstanceProfileName: "app"}, metrics: func(i int) (float64, bool) { return 0, i%5 == 0 }, trail: []string{"2.0"},
		action: policy.ActionDefer, code: policy.ReasonInsufficientMetrics, getMetrics: true},
	{name: "silent", spec: fakeaws.InstanceSpec{InstanceProfileName: "app"},
		action: policy.ActionDefer, code: policy.ReasonInsufficientMetrics, getMetrics: true},
	{name: "sdk-v1", spec: fakeaws.InstanceSpec{InstanceProfileName: "app"}, metrics: zeros, trail: []string{"2.0", "1.0"},
		action: policy.ActionTicket, code: policy.ReasonIMDSv1UsedCloudTrail, getMetrics: true, lookUp: true},
}

func init() {
	// More lookups than the guard has workers (16).
	for i := range 17 {
		fleetKinds = append(fleetKinds, kind{
			name: fmt.Sprintf("clean-%d", i+1), spec: fakeaws.InstanceSpec{InstanceProfileName: "app"}, metrics: zeros, trail: []string{"2.0", "2.0"},
			action: policy.ActionRemediate, code: policy.ReasonIMDSv1Unused, getMetrics: true, lookUp: true,
		})
	}
}

type seededKind struct {
	kind
	id string
}

// seedFleet launches one instance per kind in moto and puts its metric and CloudTrail
// history.
func seedFleet(t *testing.T, motoURL string, ct *fakeaws.CloudTrail, now time.Time) []seededKind {
	t.Helper()
	ctx := testContext(t)
	cfg := fakeaws.AWSConfig(region)
	ec2c := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(motoURL) })
	cwc := cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(motoURL) })
	hour := now.Truncate(time.Hour)
	var out []seededKind
	for _, k := range fleetKinds {
		s, err := fakeaws.SeedInstances(ctx, ec2c, k.spec)
		if err != nil {
			t.Fatal(err)
		}
		id := s[0].ID
		if k.metrics != nil {
			// 24 hours ending with the current one.
			if err := fakeaws.PutMetadataNoToken(ctx, cwc, id, fakeaws.HourlyPoints(hour.Add(time.Hour), 24, k.metrics)); err != nil {
				t.Fatal(err)
			}
		}
		for i, d := range k.trail {
			ct.AddEvent(fakeaws.RoleDeliveryEvent(fakeaws.RoleDelivery{
				InstanceID: id, Delivery: d, SourceIP: s[0].PrivateIP, Time: now.Add(-time.Duration(i+1) * time.Hour),
			}))
		}
		out = append(out, seededKind{k, id})
	}
	return out
}

// TestAssessGathersOnlyWhatTheRulesNeed sweeps a fleet with one instance per rule and
// checks each verdict and which evidence was gathered: metrics only for the instances
// that reach the metric rules, in one call; CloudTrail only for would-be remediations
// with an instance profile.
func TestAssessGathersOnlyWhatTheRulesNeed(t *testing.T) {
	m := testsupport.Moto(t)
	now := time.Now().UTC()
	w := newWorld(t, m.URL, m.URL)
	fleet := seedFleet(t, m.URL, w.trail, now)

	var progress progressLog
	got, err := guard.Assess(testContext(t), w.clients, region, nil, settings(), now, progress.report)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]guard.Assessment{}
	for _, a := range got {
		if _, dup := byID[a.Evidence.InstanceID]; dup {
			t.Errorf("%s assessed twice", a.Evidence.InstanceID)
		}
		byID[a.Evidence.InstanceID] = a
	}
	if len(got) != len(fleet) {
		t.Errorf("%d assessments, want %d", len(got), len(fleet))
	}
	var wantMetrics, wantLookups []string
	for _, k := range fleet {
		if k.getMetrics {
			wantMetrics = append(wantMetrics, k.id)
		}
		if k.lookUp {
			wantLookups = append(wantLookups, k.id)
		}
		a, ok := byID[k.id]
		if !ok {
			t.Errorf("%s (%s) not assessed", k.name, k.id)
			continue
		}
		if a.Verdict.Action != k.action || a.Verdict.Primary() != k.code {
			t.Errorf("%s: %s %s (%+v), want %s %s", k.name, a.Verdict.Action, a.Verdict.Primary(), a.Verdict.Reasons, k.action, k.code)
		}
		if a.AccountID != motoAccount || a.Region != region || a.Evidence.Instance == nil {
			t.Errorf("%s: account %q, region %q, instance %v", k.name, a.AccountID, a.Region, a.Evidence.Instance)
		}
		ev := a.Evidence
		if (ev.Metrics != nil) != k.getMetrics || ev.MetricsErr != nil {
			t.Errorf("%s: metrics %+v (err %v), want gathered: %v", k.name, ev.Metrics, ev.MetricsErr, k.getMetrics)
		}
		if (ev.CloudTrail != nil) != k.lookUp || ev.CloudTrailErr != nil {
			t.Errorf("%s: CloudTrail %+v (err %v), want looked up: %v", k.name, ev.CloudTrail, ev.CloudTrailErr, k.lookUp)
		}
	}
	slices.Sort(wantMetrics)
	slices.Sort(wantLookups)
	if q := w.metrics.queried(); !slices.Equal(q, wantMetrics) {
		t.Errorf("metric queried for %v, want %v", q, wantMetrics)
	}
	// As a set: the SDK may, rarely, send a request twice (see the evidence tests); the
	// call counts below are exact.
	if u := slices.Compact(slices.Sorted(slices.Values(w.trail.Usernames()))); !slices.Equal(u, wantLookups) {
		t.Errorf("CloudTrail looked up %v, want %v", u, wantLookups)
	}
	calls := w.counter.Counts()
	if calls["ec2:DescribeInstances"] != 1 || calls["cloudwatch:GetMetricData"] != 1 || calls["cloudtrail:LookupEvents"] != len(wantLookups) {
		t.Errorf("calls %v, want 1 DescribeInstances, 1 GetMetricData, %d LookupEvents", calls, len(wantLookups))
	}
	progress.check(t, len(fleet))
}

// closedPort returns the URL of a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return url
}

// TestAssessInventoryFailure: when EC2 cannot be read, a sweep fails (there is nothing
// to report on), while every id of an explicit list is deferred with the error, once.
// Neither gathers any other evidence.
func TestAssessInventoryFailure(t *testing.T) {
	t.Parallel()
	const a, b = "i-0123456789abcdef0", "i-0fedcba9876543210"
	tests := []struct {
		name       string
		ids        []string
		wantErr    bool
		wantIDs    []string
		wantDetail string
	}{
		{name: "sweep", wantErr: true},
		{name: "explicit ids", ids: []string{a, b, a}, wantIDs: []string{a, b}, wantDetail: "ec2:DescribeInstances"},
		{name: "malformed id", ids: []string{a, "web-1"}, wantIDs: []string{a, "web-1"}, wantDetail: `"web-1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cw := fakeaws.NewCloudWatch()
			t.Cleanup(cw.Close)
			w := newWorld(t, closedPort(t), cw.URL)
			var progress progressLog
			got, err := guard.Assess(testContext(t), w.clients, region, tc.ids, settings(), time.Now(), progress.report)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "ec2:DescribeInstances") || !strings.Contains(err.Error(), region) || got != nil {
					t.Errorf("Assess = %d assessments, err %v; want an error naming ec2:DescribeInstances and %s", len(got), err, region)
				}
			} else {
				if err != nil {
					t.Fatalf("Assess: %v", err)
				}
				var ids []string
				for _, as := range got {
					ids = append(ids, as.Evidence.InstanceID)
					if as.Verdict.Action != policy.ActionDefer || as.Verdict.Primary() != policy.ReasonEvidenceError ||
						!strings.Contains(as.Verdict.Reasons[0].Detail, tc.wantDetail) || as.Evidence.InventoryErr == nil {
						t.Errorf("%s: %s %+v, want defer evidence-error naming %s", as.Evidence.InstanceID, as.Verdict.Action, as.Verdict.Reasons, tc.wantDetail)
					}
					if as.Region != region {
						t.Errorf("%s: region %q", as.Evidence.InstanceID, as.Region)
					}
				}
				if !slices.Equal(ids, tc.wantIDs) {
					t.Errorf("assessed %v, want %v (each id once, in the order given)", ids, tc.wantIDs)
				}
				progress.check(t, len(tc.wantIDs))
			}
			if n := cw.Requests("GetMetricData") + w.trail.Requests(); n != 0 {
				t.Errorf("%d metric or CloudTrail requests after the inventory failed", n)
			}
		})
	}
}

// TestAssessNotFound: an id EC2 does not know is skipped as terminated and named with the
// account of the instances that were found; an empty region is no error.
func TestAssessNotFound(t *testing.T) {
	m := testsupport.Moto(t)
	ctx := testContext(t)
	w := newWorld(t, m.URL, m.URL)
	const unknown = "i-0000000000000dead"

	t.Run("empty region", func(t *testing.T) {
		var progress progressLog
		got, err := guard.Assess(ctx, w.clients, region, nil, settings(), time.Now(), progress.report)
		if err != nil || len(got) != 0 {
			t.Fatalf("Assess = %+v, %v; want nothing", got, err)
		}
		progress.check(t, 0)
	})

	seeded, err := fakeaws.SeedInstances(ctx, ec2.NewFromConfig(fakeaws.AWSConfig(region), func(o *ec2.Options) {
		o.BaseEndpoint = aws.String(m.URL)
	}), fakeaws.InstanceSpec{HttpTokens: "required"})
	if err != nil {
		t.Fatal(err)
	}
	// No progress callback: nil is allowed.
	got, err := guard.Assess(ctx, w.clients, region, []string{unknown, seeded[0].ID}, settings(), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d assessments, want 2", len(got))
	}
	for _, a := range got {
		want := policy.ReasonCompliant
		if a.Evidence.InstanceID == unknown {
			want = policy.ReasonTerminated
			if a.Evidence.Instance != nil || !strings.Contains(a.Verdict.Reasons[0].Detail, unknown) {
				t.Errorf("unknown id: %+v", a)
			}
		}
		if a.Verdict.Action != policy.ActionSkip || a.Verdict.Primary() != want || a.AccountID != motoAccount || a.Region != region {
			t.Errorf("%s: %s %s, account %q, region %q; want skip %s in %s/%s",
				a.Evidence.InstanceID, a.Verdict.Action, a.Verdict.Primary(), a.AccountID, a.Region, want, motoAccount, region)
		}
	}
	if calls := w.counter.Counts(); calls["cloudwatch:GetMetricData"]+calls["cloudtrail:LookupEvents"] != 0 {
		t.Errorf("calls %v: nothing here needs metrics or CloudTrail", calls)
	}
}

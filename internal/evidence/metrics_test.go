package evidence_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/smithy-go"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport"
)

const getMetricDataOp = "cloudwatch:GetMetricData"

func newCloudWatch(t *testing.T) *fakeaws.CloudWatch {
	t.Helper()
	cw := fakeaws.NewCloudWatch()
	t.Cleanup(cw.Close)
	return cw
}

// putSeries stores an instance's MetadataNoToken points in the stand-in directly.
func putSeries(cw *fakeaws.CloudWatch, id string, pts []fakeaws.Point) {
	cw.PutPoints(fakeaws.MetadataNoTokenNamespace, fakeaws.MetadataNoTokenMetric,
		map[string]string{fakeaws.MetadataNoTokenDimension: id}, pts)
}

func at(t time.Time) *time.Time { return &t }

func timeString(t *time.Time) string {
	if t == nil {
		return "<nil>"
	}
	return t.UTC().Format(time.RFC3339)
}

func sameTime(a, b *time.Time) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && a.Equal(*b))
}

func sameUsage(a, b policy.MetricUsage) bool {
	return a.Sum == b.Sum && a.ObservedHours == b.ObservedHours &&
		sameTime(a.LastDatapoint, b.LastDatapoint) && sameTime(a.LastNonZero, b.LastNonZero)
}

func usageString(u policy.MetricUsage) string {
	return fmt.Sprintf("{Sum %g, ObservedHours %d, LastDatapoint %s, LastNonZero %s}",
		u.Sum, u.ObservedHours, timeString(u.LastDatapoint), timeString(u.LastNonZero))
}

// metricCase is one instance's series and the usage MetricUsage must make of it, for a
// 24h lookback at now. Times are offsets from the start of the current hour.
type metricCase struct {
	name string
	pts  func(hour time.Time) []fakeaws.Point
	want func(hour time.Time) policy.MetricUsage
}

// hourlyWindow is HourlyPoints over the 24 hours that end with the current hour.
func hourlyWindow(hour time.Time, value func(i int) (float64, bool)) []fakeaws.Point {
	return fakeaws.HourlyPoints(hour.Add(time.Hour), 24, value)
}

var metricCases = []metricCase{
	{
		name: "a zero every hour is 24 observed hours and no use",
		pts: func(h time.Time) []fakeaws.Point {
			return hourlyWindow(h, func(int) (float64, bool) { return 0, true })
		},
		want: func(h time.Time) policy.MetricUsage {
			return policy.MetricUsage{Sum: 0, ObservedHours: 24, LastDatapoint: at(h)}
		},
	},
	{
		name: "gaps are not zeros: only the hours present are observed",
		pts: func(h time.Time) []fakeaws.Point {
			// Hours 0, 3, 6, ... 21 are present (8 of 24); the last present is 3h ago.
			return hourlyWindow(h, func(i int) (float64, bool) { return 0, i%3 == 0 })
		},
		want: func(h time.Time) policy.MetricUsage {
			return policy.MetricUsage{ObservedHours: 8, LastDatapoint: at(h.Add(-2 * time.Hour))}
		},
	},
	{
		name: "use: sum, last datapoint and the last non-zero bucket",
		pts: func(h time.Time) []fakeaws.Point {
			// 2 calls 20h ago and 5 calls 4h ago; zeros in the 12 even hours.
			return hourlyWindow(h, func(i int) (float64, bool) {
				switch i {
				case 3:
					return 2, true
				case 19:
					return 5, true
				}
				return 0, i%2 == 0
			})
		},
		want: func(h time.Time) policy.MetricUsage {
			return policy.MetricUsage{Sum: 7, ObservedHours: 14, LastDatapoint: at(h.Add(-time.Hour)), LastNonZero: at(h.Add(-4 * time.Hour))}
		},
	},
	{
		name: "no datapoints: nothing observed, no times",
		pts:  func(time.Time) []fakeaws.Point { return nil },
		want: func(time.Time) policy.MetricUsage { return policy.MetricUsage{} },
	},
	{
		name: "several points in one hour are one bucket",
		pts: func(h time.Time) []fakeaws.Point {
			b := h.Add(-5 * time.Hour)
			return []fakeaws.Point{{Time: b, Value: 1}, {Time: b.Add(10 * time.Minute), Value: 0}, {Time: b.Add(59 * time.Minute), Value: 2}}
		},
		want: func(h time.Time) policy.MetricUsage {
			return policy.MetricUsage{Sum: 3, ObservedHours: 1, LastDatapoint: at(h.Add(-5 * time.Hour)), LastNonZero: at(h.Add(-5 * time.Hour))}
		},
	},
	{
		name: "the window is the lookback ending with the current hour",
		pts: func(h time.Time) []fakeaws.Point {
			start := h.Add(-23 * time.Hour)
			return []fakeaws.Point{
				{Time: start.Add(-time.Minute), Value: 100}, // just before the window
				{Time: start, Value: 0},                     // the first bucket
				{Time: h.Add(-time.Hour), Value: 0},
				{Time: h.Add(59 * time.Minute), Value: 1}, // in the current, still filling, hour
				{Time: h.Add(time.Hour), Value: 1000},     // the next hour
			}
		},
		want: func(h time.Time) policy.MetricUsage {
			return policy.MetricUsage{Sum: 1, ObservedHours: 3, LastDatapoint: at(h), LastNonZero: at(h)}
		},
	},
	{
		name: "use only before the window is no use",
		pts: func(h time.Time) []fakeaws.Point {
			start := h.Add(-23 * time.Hour)
			return []fakeaws.Point{{Time: start.Add(-time.Hour), Value: 9}, {Time: start.Add(-time.Second), Value: 9}, {Time: h, Value: 0}}
		},
		want: func(h time.Time) policy.MetricUsage {
			return policy.MetricUsage{ObservedHours: 1, LastDatapoint: at(h)}
		},
	},
}

// TestMetricUsageSummaries reads every case's series in one MetricUsage call against
// the CloudWatch stand-in and checks each instance's summary.
func TestMetricUsageSummaries(t *testing.T) {
	t.Parallel()
	cw := newCloudWatch(t)
	// Mid-hour, so that the current hour is visibly "still filling".
	hour := time.Now().UTC().Truncate(time.Hour)
	now := hour.Add(37 * time.Minute)
	var ids []string
	for i, tc := range metricCases {
		id := fmt.Sprintf("i-%017x", i+1)
		ids = append(ids, id)
		putSeries(cw, id, tc.pts(hour))
	}
	counter := awsapi.NewCallCounter()
	usage, errs := evidence.MetricUsage(testContext(t), cloudWatchClient(cw.URL, counter), ids, 24*time.Hour, now)
	if len(errs) != 0 {
		t.Fatalf("errs = %v", errs)
	}
	if len(usage) != len(ids) {
		t.Errorf("usage for %d instances, want %d: %v", len(usage), len(ids), slices.Sorted(maps.Keys(usage)))
	}
	for i, tc := range metricCases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := usage[ids[i]]
			if want := tc.want(hour); !ok || !sameUsage(got, want) {
				t.Errorf("usage = %s (present %v), want %s", usageString(got), ok, usageString(want))
			}
		})
	}
	if n := counter.Counts()[getMetricDataOp]; n != 1 {
		t.Errorf("%d GetMetricData calls, want 1", n)
	}
}

// TestMetricUsageMotoAgrees cross-checks the gatherer on moto, the emulator, with the
// same small series put through the real client into both: the stand-in used for the
// fleet-scale tests must not hide a difference.
func TestMetricUsageMotoAgrees(t *testing.T) {
	m := testsupport.Moto(t)
	ctx := testContext(t)
	cw := newCloudWatch(t)
	now := time.Now().UTC()
	hour := now.Truncate(time.Hour)
	clients := map[string]evidence.CloudWatchAPI{"moto": cloudWatchClient(m.URL, nil), "stand-in": cloudWatchClient(cw.URL, nil)}
	var ids []string
	for i, tc := range metricCases {
		id := fmt.Sprintf("i-%017x", i+1)
		ids = append(ids, id)
		for _, url := range []string{m.URL, cw.URL} {
			if err := fakeaws.PutMetadataNoToken(ctx, cloudWatchClient(url, nil), id, tc.pts(hour)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, client := range clients {
		t.Run(name, func(t *testing.T) {
			usage, errs := evidence.MetricUsage(ctx, client, ids, 24*time.Hour, now)
			if len(errs) != 0 {
				t.Fatalf("errs = %v", errs)
			}
			for i, tc := range metricCases {
				if got, want := usage[ids[i]], tc.want(hour); !sameUsage(got, want) {
					t.Errorf("%s: usage = %s, want %s", tc.name, usageString(got), usageString(want))
				}
			}
		})
	}
}

// querySizes returns the number of queries of each GetMetricData call the spy saw.
func querySizes(spy *inputSpy[*cloudwatch.GetMetricDataInput]) []int {
	var out []int
	for _, in := range spy.all() {
		out = append(out, len(in.MetricDataQueries))
	}
	return out
}

// fleet puts into cw one datapoint for each of n instances, instance k reporting k+1
// IMDSv1 calls in the current hour, so that a mix-up between batches or query ids shows.
func fleet(cw *fakeaws.CloudWatch, n int, hour time.Time) []string {
	ids := make([]string, n)
	for k := range ids {
		ids[k] = fmt.Sprintf("i-%017x", 0xf1ee7000+k)
		putSeries(cw, ids[k], []fakeaws.Point{{Time: hour, Value: float64(k + 1)}})
	}
	return ids
}

func checkFleetUsage(t *testing.T, ids []string, usage map[string]policy.MetricUsage, hour time.Time) {
	t.Helper()
	bad := 0
	for k, id := range ids {
		u, ok := usage[id]
		if want := (policy.MetricUsage{Sum: float64(k + 1), ObservedHours: 1, LastDatapoint: &hour, LastNonZero: &hour}); !ok || !sameUsage(u, want) {
			if bad++; bad <= 3 {
				t.Errorf("instance %d (%s): usage %s (present %v), want %s", k, id, usageString(u), ok, usageString(want))
			}
		}
	}
	if bad > 3 {
		t.Errorf("... %d instances wrong in all", bad)
	}
}

// TestMetricUsageBatching: as many instances per GetMetricData call as both limits
// allow: 500 queries, and 100,800 datapoints (300 series of 336 hours).
func TestMetricUsageBatching(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lookback  time.Duration
		n         int
		wantSizes []int
	}{
		{lookback: 336 * time.Hour, n: 700, wantSizes: []int{300, 300, 100}},
		{lookback: 168 * time.Hour, n: 700, wantSizes: []int{500, 200}},
		{lookback: 24 * time.Hour, n: 500, wantSizes: []int{500}},
		{lookback: 2160 * time.Hour, n: 100, wantSizes: []int{46, 46, 8}}, // 90 days
		{lookback: 336 * time.Hour, n: 1, wantSizes: []int{1}},
		{lookback: 336 * time.Hour, n: 0, wantSizes: nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d instances over %s", tc.n, tc.lookback), func(t *testing.T) {
			t.Parallel()
			cw := newCloudWatch(t)
			now := time.Now().UTC()
			hour := now.Truncate(time.Hour)
			ids := fleet(cw, tc.n, hour)
			counter := awsapi.NewCallCounter()
			var spy inputSpy[*cloudwatch.GetMetricDataInput]
			usage, errs := evidence.MetricUsage(testContext(t), cloudWatchClient(cw.URL, counter, spy.addTo), ids, tc.lookback, now)
			if len(errs) != 0 {
				t.Fatalf("%d errors, e.g. %v", len(errs), errs[ids[0]])
			}
			// In any order: the calls are made concurrently.
			if got, want := slices.Sorted(slices.Values(querySizes(&spy))), slices.Sorted(slices.Values(tc.wantSizes)); !slices.Equal(got, want) {
				t.Errorf("queries per GetMetricData call = %v, want %v in any order", querySizes(&spy), tc.wantSizes)
			}
			if n := counter.Counts()[getMetricDataOp]; n != len(tc.wantSizes) {
				t.Errorf("%d GetMetricData calls, want %d", n, len(tc.wantSizes))
			}
			if n := cw.Requests("GetMetricData"); n < len(tc.wantSizes) {
				t.Errorf("the stand-in saw %d GetMetricData requests for %d calls", n, len(tc.wantSizes))
			}
			checkFleetUsage(t, ids, usage, hour)
			if len(usage) != tc.n {
				t.Errorf("usage for %d instances, want %d", len(usage), tc.n)
			}
		})
	}
}

// TestMetricUsagePaging: when a response holds fewer datapoints than asked for,
// GetMetricData pages with NextToken; every page's buckets are added up per instance.
func TestMetricUsagePaging(t *testing.T) {
	t.Parallel()
	cw := newCloudWatch(t)
	now := time.Now().UTC()
	hour := now.Truncate(time.Hour)
	// Five instances of 8 buckets each and one without data: 40 datapoints, 4 pages of
	// at most 10, so that page boundaries fall inside series.
	var ids []string
	want := map[string]policy.MetricUsage{}
	for k := range 6 {
		id := fmt.Sprintf("i-%017x", 0xba9e0+k)
		ids = append(ids, id)
		if k == 3 {
			want[id] = policy.MetricUsage{}
			continue
		}
		pts := fakeaws.HourlyPoints(hour.Add(time.Hour), 20, func(i int) (float64, bool) {
			return float64(k * (i % 2)), i%3 == 0 || i == 19
		})
		putSeries(cw, id, pts)
		want[id] = policy.MetricUsage{Sum: float64(k * 4), ObservedHours: 8, LastDatapoint: at(hour), LastNonZero: at(hour)}
		if k == 0 {
			want[id] = policy.MetricUsage{ObservedHours: 8, LastDatapoint: at(hour)}
		}
	}
	cw.SetMaxDatapoints(10)
	counter := awsapi.NewCallCounter()
	usage, errs := evidence.MetricUsage(testContext(t), cloudWatchClient(cw.URL, counter), ids, 24*time.Hour, now)
	if len(errs) != 0 {
		t.Fatalf("errs = %v", errs)
	}
	if n := counter.Counts()[getMetricDataOp]; n != 4 {
		t.Errorf("%d GetMetricData calls, want 4 pages of at most 10 of the 40 datapoints", n)
	}
	for _, id := range ids {
		if got, ok := usage[id]; !ok || !sameUsage(got, want[id]) {
			t.Errorf("%s: usage %s (present %v), want %s", id, usageString(got), ok, usageString(want[id]))
		}
	}
}

// TestMetricUsageFailedCall: a failed GetMetricData call fails exactly the instances of
// its batch, with an error naming the action and wrapping the service's error; the other
// batches are read.
func TestMetricUsageFailedCall(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		failed [2]int // the batch ids[failed[0]:failed[1]] is refused
		// laterPage refuses only the batch's requests after its first page; with
		// maxDatapoints set, each batch takes several pages.
		laterPage     bool
		maxDatapoints int
		wantCalls     int
	}{
		{name: "first batch", failed: [2]int{0, 300}, wantCalls: 3},
		{name: "second batch", failed: [2]int{300, 600}, wantCalls: 3},
		{name: "last batch", failed: [2]int{600, 700}, wantCalls: 3},
		// 300 datapoints per batch, 250 per page: two calls for each of the first two
		// batches, one for the last. The first page's sums must not be kept.
		{name: "second page of the second batch", failed: [2]int{300, 600}, laterPage: true, maxDatapoints: 250, wantCalls: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cw := newCloudWatch(t)
			if tc.maxDatapoints > 0 {
				cw.SetMaxDatapoints(tc.maxDatapoints)
			}
			now := time.Now().UTC()
			hour := now.Truncate(time.Hour)
			ids := fleet(cw, 700, hour)
			// The batch is recognised by its first query, not by the request's number,
			// which the SDK's rare resends (see config) would shift.
			cw.SetFault(func(r fakeaws.CloudWatchRequest) *fakeaws.APIError {
				if r.Action == "GetMetricData" &&
					r.Form.Get("MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Value") == ids[tc.failed[0]] &&
					(r.Form.Get("NextToken") != "") == tc.laterPage {
					// Not retryable. The message does not name the action, so that the
					// error must.
					return &fakeaws.APIError{Code: "AccessDenied", Message: "denied", Status: 403}
				}
				return nil
			})
			counter := awsapi.NewCallCounter()
			usage, errs := evidence.MetricUsage(testContext(t), cloudWatchClient(cw.URL, counter), ids, 336*time.Hour, now)

			failed := ids[tc.failed[0]:tc.failed[1]]
			if got := slices.Sorted(maps.Keys(errs)); !slices.Equal(got, failed) {
				t.Errorf("errors for %s, want exactly %s", brief(got), brief(failed))
			}
			for _, id := range failed {
				if _, ok := usage[id]; ok {
					t.Fatalf("%s failed but has usage %s", id, usageString(usage[id]))
				}
			}
			err := errs[failed[0]]
			var apiErr smithy.APIError
			if err == nil || !strings.Contains(err.Error(), getMetricDataOp) || !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
				t.Errorf("error %v, want one naming %s that wraps the AccessDenied API error", err, getMetricDataOp)
			}
			for k, id := range ids {
				if k >= tc.failed[0] && k < tc.failed[1] {
					continue
				}
				u, present := usage[id]
				if want := (policy.MetricUsage{Sum: float64(k + 1), ObservedHours: 1, LastDatapoint: &hour, LastNonZero: &hour}); !present || !sameUsage(u, want) {
					t.Fatalf("instance %d (%s) of a good batch: usage %s (present %v), want %s", k, id, usageString(u), present, usageString(want))
				}
			}
			if n := counter.Counts()[getMetricDataOp]; n != tc.wantCalls {
				t.Errorf("%d GetMetricData calls, want %d", n, tc.wantCalls)
			}
		})
	}
}

// TestBootUsageCountsOnlyEachInstancesOwnHours reads boot windows through the real client
// from the CloudWatch stand-in: two instances launched an hour apart share a call (one
// cohort), and each counts only the buckets of its own window, not its neighbour's nor
// the hours around it.
func TestBootUsageCountsOnlyEachInstancesOwnHours(t *testing.T) {
	t.Parallel()
	cw := newCloudWatch(t)
	boot := time.Now().UTC().Truncate(time.Hour).Add(-40 * 24 * time.Hour)
	early, late := "i-000000000000b0001", "i-000000000000b0002"
	// Every hour from 2 before the first boot to 6 after has a datapoint; the early
	// instance made 5 IMDSv1 calls in the hour before it launched (which is not its
	// boot) and 2 in its second hour; the late one made 7 calls in the early one's
	// first hour, before it launched itself.
	hourly := func(values map[int]float64) []fakeaws.Point {
		var pts []fakeaws.Point
		for h := -2; h <= 6; h++ {
			pts = append(pts, fakeaws.Point{Time: boot.Add(time.Duration(h) * time.Hour), Value: values[h]})
		}
		return pts
	}
	putSeries(cw, early, hourly(map[int]float64{-1: 5, 1: 2}))
	putSeries(cw, late, hourly(map[int]float64{0: 7}))
	windows := map[string]evidence.Window{
		early: {Start: boot, End: boot.Add(3 * time.Hour)},
		late:  {Start: boot.Add(time.Hour), End: boot.Add(4 * time.Hour)},
	}
	counter := awsapi.NewCallCounter()
	usage := map[string]policy.MetricUsage{}
	evidence.BootUsageBatches(testContext(t), cloudWatchClient(cw.URL, counter), windows, func(b evidence.MetricBatch) {
		if len(b.Errs) != 0 {
			t.Errorf("errs = %v", b.Errs)
		}
		maps.Copy(usage, b.Usage)
	})
	want := map[string]policy.MetricUsage{
		early: {Sum: 2, ObservedHours: 3, LastDatapoint: at(boot.Add(2 * time.Hour)), LastNonZero: at(boot.Add(time.Hour))},
		late:  {Sum: 0, ObservedHours: 3, LastDatapoint: at(boot.Add(3 * time.Hour))},
	}
	for id, w := range want {
		if got, ok := usage[id]; !ok || !sameUsage(got, w) {
			t.Errorf("%s: usage = %s (present %v), want %s", id, usageString(got), ok, usageString(w))
		}
	}
	if n := counter.Counts()[getMetricDataOp]; n != 1 {
		t.Errorf("%d GetMetricData calls, want 1 for the one cohort", n)
	}
}

// TestRejectedUsageReadsTheRejectedMetric: verify's read, through the real client, asks
// MetadataNoTokenRejected over each instance's own window, and not the MetadataNoToken
// series (here full of calls made before the enforcement).
func TestRejectedUsageReadsTheRejectedMetric(t *testing.T) {
	t.Parallel()
	cw := newCloudWatch(t)
	now := time.Now().UTC()
	enforced := now.Add(-10 * time.Hour)
	broke, clean := "i-000000000000c0001", "i-000000000000c0002"
	for _, id := range []string{broke, clean} {
		putSeries(cw, id, fakeaws.HourlyPoints(now, 24, func(int) (float64, bool) { return 50, true }))
		rejected := fakeaws.HourlyPoints(now, 10, func(i int) (float64, bool) {
			if id == broke && i == 3 {
				return 4, true
			}
			return 0, true
		})
		cw.PutPoints(fakeaws.MetadataNoTokenNamespace, evidence.MetadataNoTokenRejected,
			map[string]string{fakeaws.MetadataNoTokenDimension: id}, rejected)
	}
	start, end := policy.RejectedWindow(enforced, now)
	windows := map[string]evidence.Window{broke: {Start: start, End: end}, clean: {Start: start, End: end}}
	usage, errs := evidence.RejectedUsage(testContext(t), cloudWatchClient(cw.URL, nil), windows)
	if len(errs) != 0 {
		t.Fatalf("errs = %v", errs)
	}
	if u := usage[broke]; u.Sum != 4 || u.LastNonZero == nil {
		t.Errorf("%s: %s, want the 4 rejected calls", broke, usageString(u))
	}
	if u := usage[clean]; u.Sum != 0 || u.ObservedHours == 0 {
		t.Errorf("%s: %s, want observed hours and no rejected call", clean, usageString(u))
	}
}

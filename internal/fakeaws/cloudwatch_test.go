package fakeaws

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go"
)

// cwEnd is an hour-aligned "now" for series; recent enough that StartTime is rounded to
// the minute only (the real service rounds older start times more coarsely).
func cwEnd() time.Time { return time.Now().UTC().Truncate(time.Hour) }

func newTestCloudWatch(t *testing.T) (*CloudWatch, *cloudwatch.Client) {
	t.Helper()
	cw := NewCloudWatch()
	t.Cleanup(cw.Close)
	return cw, cloudWatchClient(cw.URL)
}

func noTokenQuery(id, instanceID, stat string, period int32) cwtypes.MetricDataQuery {
	return cwtypes.MetricDataQuery{
		Id:    aws.String(id),
		Label: aws.String(id),
		MetricStat: &cwtypes.MetricStat{
			Metric: &cwtypes.Metric{
				Namespace:  aws.String(MetadataNoTokenNamespace),
				MetricName: aws.String(MetadataNoTokenMetric),
				Dimensions: []cwtypes.Dimension{{Name: aws.String(MetadataNoTokenDimension), Value: aws.String(instanceID)}},
			},
			Period: aws.Int32(period),
			Stat:   aws.String(stat),
		},
	}
}

// resultSeries is one query's result accumulated over all pages.
type resultSeries struct {
	Timestamps []time.Time
	Values     []float64
	Status     cwtypes.StatusCode
}

// getAll runs GetMetricData to the last page and merges results by Id.
func getAll(t *testing.T, client *cloudwatch.Client, in *cloudwatch.GetMetricDataInput) (map[string]*resultSeries, int) {
	t.Helper()
	out := map[string]*resultSeries{}
	pages := 0
	p := cloudwatch.NewGetMetricDataPaginator(client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range page.MetricDataResults {
			s := out[aws.ToString(r.Id)]
			if s == nil {
				s = &resultSeries{}
				out[aws.ToString(r.Id)] = s
			}
			s.Timestamps = append(s.Timestamps, r.Timestamps...)
			s.Values = append(s.Values, r.Values...)
			s.Status = r.StatusCode
		}
	}
	return out, pages
}

func TestCloudWatchSumBucketsWithGaps(t *testing.T) {
	cw, client := newTestCloudWatch(t)
	ctx := testContext(t)
	end := cwEnd()
	const hours = 336
	// Every third hour has no datapoint; the others count 0, 1, 2, ... (0 is a real
	// value, distinct from "no datapoint").
	pts := HourlyPoints(end, hours, func(h int) (float64, bool) { return float64(h % 5), h%3 != 0 })
	if err := PutMetadataNoToken(ctx, client, "i-gappy", pts); err != nil {
		t.Fatal(err)
	}
	var wantTS []time.Time
	var wantV []float64
	for _, p := range pts {
		wantTS = append(wantTS, p.Time)
		wantV = append(wantV, p.Value)
	}
	for _, scan := range []cwtypes.ScanBy{"", cwtypes.ScanByTimestampAscending, cwtypes.ScanByTimestampDescending} {
		t.Run(fmt.Sprintf("ScanBy=%q", scan), func(t *testing.T) {
			got, pages := getAll(t, client, &cloudwatch.GetMetricDataInput{
				StartTime:         aws.Time(end.Add(-hours * time.Hour)),
				EndTime:           aws.Time(end),
				ScanBy:            scan,
				MetricDataQueries: []cwtypes.MetricDataQuery{noTokenQuery("m0", "i-gappy", "Sum", 3600)},
			})
			if pages != 1 {
				t.Errorf("%d pages, want 1", pages)
			}
			s := got["m0"]
			ts, vs := slices.Clone(wantTS), slices.Clone(wantV)
			if scan != cwtypes.ScanByTimestampAscending { // default is descending
				slices.Reverse(ts)
				slices.Reverse(vs)
			}
			if s == nil || s.Status != cwtypes.StatusCodeComplete || !slices.EqualFunc(s.Timestamps, ts, time.Time.Equal) || !slices.Equal(s.Values, vs) {
				t.Fatalf("result %+v, want %d hourly buckets (gaps absent): %v %v", s, len(ts), ts[:3], vs[:3])
			}
		})
	}
	if n, want := cw.Requests("PutMetricData"), (len(pts)+putBatch-1)/putBatch; n != want {
		t.Errorf("%d PutMetricData requests for %d points, want %d", n, len(pts), want)
	}
}

func TestCloudWatchStatistics(t *testing.T) {
	cw, client := newTestCloudWatch(t)
	end := cwEnd()
	start := end.Add(-4 * time.Hour)
	dims := map[string]string{MetadataNoTokenDimension: "i-stats"}
	// Hour 0: 1, 4, 7 (three points inside the bucket); hour 1: none; hour 2: 10;
	// hour 3: -2, 2.
	for _, p := range []struct {
		off time.Duration
		v   float64
	}{{0, 1}, {20 * time.Minute, 4}, {59 * time.Minute, 7}, {2 * time.Hour, 10}, {3 * time.Hour, -2}, {3*time.Hour + 30*time.Minute, 2}} {
		cw.Put(MetadataNoTokenNamespace, MetadataNoTokenMetric, dims, start.Add(p.off), p.v)
	}
	// Points outside [start, end) and of other metrics or dimension sets are not counted.
	cw.Put(MetadataNoTokenNamespace, MetadataNoTokenMetric, dims, end, 1000)
	cw.Put(MetadataNoTokenNamespace, MetadataNoTokenMetric, dims, start.Add(-time.Millisecond), 1000)
	cw.Put(MetadataNoTokenNamespace, "MetadataNoTokenRejected", dims, start, 1000)
	cw.Put("Custom", MetadataNoTokenMetric, dims, start, 1000)
	cw.Put(MetadataNoTokenNamespace, MetadataNoTokenMetric, map[string]string{MetadataNoTokenDimension: "i-stats", "Extra": "x"}, start, 1000)

	tests := []struct {
		stat   string
		period int32
		want   []float64 // ascending; hour 1 absent
	}{
		{"Sum", 3600, []float64{12, 10, 0}},
		{"Average", 3600, []float64{4, 10, 0}},
		{"Minimum", 3600, []float64{1, 10, -2}},
		{"Maximum", 3600, []float64{7, 10, 2}},
		{"SampleCount", 3600, []float64{3, 1, 2}},
		{"Sum", 7200, []float64{12, 10}},
		{"Sum", 4 * 3600, []float64{22}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%d", tc.stat, tc.period), func(t *testing.T) {
			got, _ := getAll(t, client, &cloudwatch.GetMetricDataInput{
				StartTime: aws.Time(start), EndTime: aws.Time(end), ScanBy: cwtypes.ScanByTimestampAscending,
				MetricDataQueries: []cwtypes.MetricDataQuery{noTokenQuery("q", "i-stats", tc.stat, tc.period)},
			})
			if !slices.Equal(got["q"].Values, tc.want) {
				t.Fatalf("values %v, want %v", got["q"].Values, tc.want)
			}
			for i, ts := range got["q"].Timestamps {
				if ts.Sub(start)%(time.Duration(tc.period)*time.Second) != 0 {
					t.Fatalf("timestamp %d %v not aligned to period %d from %v", i, ts, tc.period, start)
				}
			}
		})
	}
}

func TestCloudWatchValuesCountsAndStatisticSets(t *testing.T) {
	_, client := newTestCloudWatch(t)
	ctx := testContext(t)
	end := cwEnd()
	start := end.Add(-2 * time.Hour)
	metric := func(id string) []cwtypes.Dimension {
		return []cwtypes.Dimension{{Name: aws.String(MetadataNoTokenDimension), Value: aws.String(id)}}
	}
	_, err := client.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{
		Namespace: aws.String(MetadataNoTokenNamespace),
		MetricData: []cwtypes.MetricDatum{
			{MetricName: aws.String(MetadataNoTokenMetric), Dimensions: metric("i-vc"), Timestamp: aws.Time(start),
				Values: []float64{2, 5}, Counts: []float64{3, 1}},
			{MetricName: aws.String(MetadataNoTokenMetric), Dimensions: metric("i-vc"), Timestamp: aws.Time(start.Add(time.Hour)),
				StatisticValues: &cwtypes.StatisticSet{Sum: aws.Float64(30), Minimum: aws.Float64(1), Maximum: aws.Float64(9), SampleCount: aws.Float64(6)}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	queries := []cwtypes.MetricDataQuery{
		noTokenQuery("sum", "i-vc", "Sum", 3600), noTokenQuery("n", "i-vc", "SampleCount", 3600),
		noTokenQuery("avg", "i-vc", "Average", 3600), noTokenQuery("mx", "i-vc", "Maximum", 3600),
	}
	got, _ := getAll(t, client, &cloudwatch.GetMetricDataInput{StartTime: aws.Time(start), EndTime: aws.Time(end),
		ScanBy: cwtypes.ScanByTimestampAscending, MetricDataQueries: queries})
	want := map[string][]float64{"sum": {11, 30}, "n": {4, 6}, "avg": {2.75, 5}, "mx": {5, 9}}
	for id, w := range want {
		if !slices.Equal(got[id].Values, w) {
			t.Errorf("%s = %v, want %v", id, got[id].Values, w)
		}
	}
}

func TestCloudWatchQueryLimitAndValidation(t *testing.T) {
	_, client := newTestCloudWatch(t)
	end := cwEnd()
	queries := func(n int) []cwtypes.MetricDataQuery {
		qs := make([]cwtypes.MetricDataQuery, n)
		for i := range qs {
			qs[i] = noTokenQuery(fmt.Sprintf("q%d", i), fmt.Sprintf("i-%d", i), "Sum", 3600)
		}
		return qs
	}
	bad := func(mut func(*cwtypes.MetricDataQuery)) []cwtypes.MetricDataQuery {
		q := noTokenQuery("q", "i-1", "Sum", 3600)
		mut(&q)
		return []cwtypes.MetricDataQuery{q}
	}
	tests := []struct {
		name     string
		in       cloudwatch.GetMetricDataInput
		wantCode string // "" = success
	}{
		{"500 queries", cloudwatch.GetMetricDataInput{MetricDataQueries: queries(500)}, ""},
		{"501 queries", cloudwatch.GetMetricDataInput{MetricDataQueries: queries(501)}, "ValidationError"},
		{"instance ID as query Id", cloudwatch.GetMetricDataInput{MetricDataQueries: bad(func(q *cwtypes.MetricDataQuery) { q.Id = aws.String("i-0abc") })}, "ValidationError"},
		{"upper-case first letter in Id", cloudwatch.GetMetricDataInput{MetricDataQueries: bad(func(q *cwtypes.MetricDataQuery) { q.Id = aws.String("Q1") })}, "ValidationError"},
		{"duplicate Ids", cloudwatch.GetMetricDataInput{MetricDataQueries: append(queries(2), queries(1)...)}, "ValidationError"},
		{"period 90", cloudwatch.GetMetricDataInput{MetricDataQueries: bad(func(q *cwtypes.MetricDataQuery) { q.MetricStat.Period = aws.Int32(90) })}, "InvalidParameterValue"},
		{"unsupported stat", cloudwatch.GetMetricDataInput{MetricDataQueries: bad(func(q *cwtypes.MetricDataQuery) { q.MetricStat.Stat = aws.String("Total") })}, "InvalidParameterValue"},
		{"metric math", cloudwatch.GetMetricDataInput{MetricDataQueries: []cwtypes.MetricDataQuery{{Id: aws.String("e"), Expression: aws.String("SUM(METRICS())")}}}, "ValidationError"},
		{"end before start", cloudwatch.GetMetricDataInput{MetricDataQueries: queries(1), StartTime: aws.Time(end), EndTime: aws.Time(end.Add(-time.Hour))}, "ValidationError"},
		{"bad NextToken", cloudwatch.GetMetricDataInput{MetricDataQueries: queries(1), NextToken: aws.String("nope")}, "InvalidNextToken"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if in.StartTime == nil {
				in.StartTime, in.EndTime = aws.Time(end.Add(-time.Hour)), aws.Time(end)
			}
			out, err := client.GetMetricData(testContext(t), &in)
			if tc.wantCode == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(out.MetricDataResults) != len(in.MetricDataQueries) {
					t.Fatalf("%d results for %d queries", len(out.MetricDataResults), len(in.MetricDataQueries))
				}
				return
			}
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tc.wantCode {
				t.Fatalf("error %v, want %s", err, tc.wantCode)
			}
			assertHTTPStatus(t, err, 400)
			var typed *cwtypes.InvalidNextToken
			if (tc.wantCode == "InvalidNextToken") != errors.As(err, &typed) {
				t.Fatalf("error %T: typed InvalidNextToken only for that code", err)
			}
		})
	}
}

func TestCloudWatchPaging(t *testing.T) {
	cw, client := newTestCloudWatch(t)
	end := cwEnd()
	start := end.Add(-8 * time.Hour)
	// Three instances with 8, 0 and 5 hourly datapoints: 13 in all.
	counts := map[string]int{"i-a": 8, "i-b": 0, "i-c": 5}
	for id, n := range counts {
		cw.PutPoints(MetadataNoTokenNamespace, MetadataNoTokenMetric, map[string]string{MetadataNoTokenDimension: id},
			HourlyPoints(end, 8, func(h int) (float64, bool) { return float64(h + 1), h >= 8-n }))
	}
	in := func() *cloudwatch.GetMetricDataInput {
		return &cloudwatch.GetMetricDataInput{
			StartTime: aws.Time(start), EndTime: aws.Time(end),
			MetricDataQueries: []cwtypes.MetricDataQuery{
				noTokenQuery("a", "i-a", "Sum", 3600), noTokenQuery("b", "i-b", "Sum", 3600), noTokenQuery("c", "i-c", "Sum", 3600),
			},
		}
	}
	full, pages := getAll(t, client, in())
	if pages != 1 {
		t.Fatalf("unpaged: %d pages", pages)
	}

	tests := []struct {
		name          string
		serverLimit   int
		maxDatapoints *int32
		wantPages     int
	}{
		{"server limit 5", 5, nil, 3},
		{"server limit 4", 4, nil, 4},
		{"server limit 1", 1, nil, 13},
		{"limit equal to total", 13, nil, 1},
		{"request MaxDatapoints 6 below the server limit", DefaultMaxDatapoints, aws.Int32(6), 3},
		{"request MaxDatapoints cannot raise the server limit", 7, aws.Int32(100), 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cw.SetMaxDatapoints(tc.serverLimit)
			req := in()
			req.MaxDatapoints = tc.maxDatapoints
			got, pages := getAll(t, client, req)
			if pages != tc.wantPages {
				t.Errorf("%d pages, want %d", pages, tc.wantPages)
			}
			for id, f := range full {
				g := got[id]
				if g == nil || g.Status != cwtypes.StatusCodeComplete || !slices.EqualFunc(g.Timestamps, f.Timestamps, time.Time.Equal) || !slices.Equal(g.Values, f.Values) {
					t.Errorf("%s over pages = %+v, want %+v", id, g, f)
				}
			}
		})
	}

	// A page boundary inside a query: that query is PartialData, later ones not yet done.
	cw.SetMaxDatapoints(5)
	page, err := client.GetMetricData(testContext(t), in())
	if err != nil {
		t.Fatal(err)
	}
	var statuses []cwtypes.StatusCode
	var lens []int
	for _, r := range page.MetricDataResults {
		statuses = append(statuses, r.StatusCode)
		lens = append(lens, len(r.Values))
	}
	wantStatus := []cwtypes.StatusCode{cwtypes.StatusCodePartialData, cwtypes.StatusCodePartialData, cwtypes.StatusCodePartialData}
	if !slices.Equal(statuses, wantStatus) || !slices.Equal(lens, []int{5, 0, 0}) || page.NextToken == nil {
		t.Fatalf("first page statuses %v lengths %v token %v, want %v [5 0 0] and a token", statuses, lens, page.NextToken, wantStatus)
	}
	// The token belongs to this request: another query set cannot use it.
	other := in()
	other.MetricDataQueries = other.MetricDataQueries[:2]
	other.NextToken = page.NextToken
	var bad *cwtypes.InvalidNextToken
	if _, err := client.GetMetricData(testContext(t), other); !errors.As(err, &bad) {
		t.Fatalf("token replayed with other queries: %v, want InvalidNextToken", err)
	}
}

// A fleet-sized query (500 instances x 336 hours = 168,000 datapoints) pages at the
// documented 100,800 datapoints and stays fast.
func TestCloudWatchFleetBatchPagesAtDefaultLimit(t *testing.T) {
	cw, client := newTestCloudWatch(t)
	end := cwEnd()
	const n, hours = 500, 336
	queries := make([]cwtypes.MetricDataQuery, n)
	for i := range n {
		id := fmt.Sprintf("i-%017d", i)
		cw.PutPoints(MetadataNoTokenNamespace, MetadataNoTokenMetric, map[string]string{MetadataNoTokenDimension: id},
			HourlyPoints(end, hours, func(h int) (float64, bool) { return float64(i + h), true }))
		queries[i] = noTokenQuery(fmt.Sprintf("m%d", i), id, "Sum", 3600)
	}
	got, pages := getAll(t, client, &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(end.Add(-hours * time.Hour)), EndTime: aws.Time(end), MetricDataQueries: queries,
	})
	if pages != 2 {
		t.Errorf("%d pages, want 2 (168,000 datapoints, 100,800 per page)", pages)
	}
	for i := range n {
		s := got[fmt.Sprintf("m%d", i)]
		if s == nil || len(s.Values) != hours || s.Values[0] != float64(i+hours-1) || s.Status != cwtypes.StatusCodeComplete {
			t.Fatalf("m%d: %d values, want %d", i, len(s.Values), hours)
		}
	}
	if got := cw.Requests("GetMetricData"); got != 2 {
		t.Errorf("%d GetMetricData requests, want 2", got)
	}
}

func TestCloudWatchFaults(t *testing.T) {
	tests := []struct {
		name         string
		inject       func(*CloudWatch)
		wantCode     string
		wantStatus   int
		wantRequests int
	}{
		{"access denied, not retried", func(c *CloudWatch) { c.FailNext(10, CloudWatchAccessDenied) }, "AccessDenied", 403, 1},
		{"two throttles then success", func(c *CloudWatch) { c.FailNext(2, CloudWatchThrottling) }, "", 0, 3},
		{"throttled throughout", func(c *CloudWatch) {
			c.SetFault(func(CloudWatchRequest) *APIError { e := CloudWatchThrottling; return &e })
		}, "Throttling", 400, 3},
		{"only PutMetricData fails", func(c *CloudWatch) {
			c.SetFault(func(r CloudWatchRequest) *APIError {
				if r.Action == "PutMetricData" {
					e := CloudWatchAccessDenied
					return &e
				}
				return nil
			})
		}, "", 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cw, client := newTestCloudWatch(t)
			end := cwEnd()
			cw.Put(MetadataNoTokenNamespace, MetadataNoTokenMetric, map[string]string{MetadataNoTokenDimension: "i-1"}, end.Add(-time.Hour), 3)
			tc.inject(cw)
			out, err := client.GetMetricData(testContext(t), &cloudwatch.GetMetricDataInput{
				StartTime: aws.Time(end.Add(-time.Hour)), EndTime: aws.Time(end),
				MetricDataQueries: []cwtypes.MetricDataQuery{noTokenQuery("m", "i-1", "Sum", 3600)},
			})
			if tc.wantCode == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(out.MetricDataResults) != 1 || !slices.Equal(out.MetricDataResults[0].Values, []float64{3}) {
					t.Fatalf("results %+v", out.MetricDataResults)
				}
			} else {
				var apiErr smithy.APIError
				if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tc.wantCode {
					t.Fatalf("error %v, want %s", err, tc.wantCode)
				}
				assertHTTPStatus(t, err, tc.wantStatus)
			}
			if got := cw.Requests("GetMetricData"); got != tc.wantRequests {
				t.Errorf("%d GetMetricData requests, want %d", got, tc.wantRequests)
			}
		})
	}
}

func TestCloudWatchPutMetricDataValidation(t *testing.T) {
	cw, client := newTestCloudWatch(t)
	datum := func(mut func(*cwtypes.MetricDatum)) cwtypes.MetricDatum {
		d := cwtypes.MetricDatum{MetricName: aws.String("M"), Value: aws.Float64(1), Timestamp: aws.Time(cwEnd())}
		if mut != nil {
			mut(&d)
		}
		return d
	}
	tests := []struct {
		name     string
		data     []cwtypes.MetricDatum
		wantCode string
	}{
		{"1000 datums", slices.Repeat([]cwtypes.MetricDatum{datum(nil)}, 1000), ""},
		{"1001 datums", slices.Repeat([]cwtypes.MetricDatum{datum(nil)}, 1001), "ValidationError"},
		{"NaN value", []cwtypes.MetricDatum{datum(func(d *cwtypes.MetricDatum) { d.Value = aws.Float64(math.NaN()) })}, "InvalidParameterValue"},
		{"Values and Counts of different length", []cwtypes.MetricDatum{datum(func(d *cwtypes.MetricDatum) {
			d.Value, d.Values, d.Counts = nil, []float64{1, 2}, []float64{1}
		})}, "InvalidParameterValue"},
		{"duplicate dimension", []cwtypes.MetricDatum{datum(func(d *cwtypes.MetricDatum) {
			d.Dimensions = []cwtypes.Dimension{{Name: aws.String("A"), Value: aws.String("1")}, {Name: aws.String("A"), Value: aws.String("2")}}
		})}, "InvalidParameterCombination"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.PutMetricData(testContext(t), &cloudwatch.PutMetricDataInput{Namespace: aws.String("Test"), MetricData: tc.data})
			if tc.wantCode == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tc.wantCode {
				t.Fatalf("error %v, want %s", err, tc.wantCode)
			}
		})
	}
	if got := cw.Requests("PutMetricData"); got != len(tests) {
		t.Errorf("%d PutMetricData requests, want %d", got, len(tests))
	}
	if got := cw.Requests("GetMetricData"); got != 0 {
		t.Errorf("%d GetMetricData requests, want 0", got)
	}
}

// The stand-in and moto give the same answer for the same small back-dated series put
// through the same client. This also pins that moto 5.2 accepts datapoints 14 days old
// and buckets them hourly with gaps left out.
func TestCloudWatchMatchesMoto(t *testing.T) {
	m := Moto(t)
	ctx := testContext(t)
	_, standIn := newTestCloudWatch(t)
	moto := cloudWatchClient(m.URL)
	end := cwEnd()
	const hours = 14 * 24
	series := map[string][]Point{
		// Sparse, with zero values and gaps, reaching back the full 14 days.
		"i-0aaa": HourlyPoints(end, hours, func(h int) (float64, bool) { return float64(h % 4), h%7 == 0 || h == hours-1 }),
		// Two datapoints in some hours (Sum differs from Average and SampleCount).
		"i-0bbb": append(HourlyPoints(end, 48, func(h int) (float64, bool) { return 5, h%2 == 0 }),
			HourlyPoints(end.Add(30*time.Minute), 48, func(h int) (float64, bool) { return 1, h%3 == 0 })...),
		"i-0ccc": nil, // no data at all
	}
	for id, pts := range series {
		for _, c := range []*cloudwatch.Client{standIn, moto} {
			if err := PutMetadataNoToken(ctx, c, id, pts); err != nil {
				t.Fatal(err)
			}
		}
	}
	var queries []cwtypes.MetricDataQuery
	for i, id := range []string{"i-0aaa", "i-0bbb", "i-0ccc"} {
		for _, stat := range []string{"Sum", "Average", "SampleCount", "Maximum", "Minimum"} {
			queries = append(queries, noTokenQuery(fmt.Sprintf("q%d%s", i, stat), id, stat, 3600))
		}
	}
	for _, scan := range []cwtypes.ScanBy{cwtypes.ScanByTimestampDescending, cwtypes.ScanByTimestampAscending} {
		t.Run(string(scan), func(t *testing.T) {
			in := &cloudwatch.GetMetricDataInput{
				StartTime: aws.Time(end.Add(-hours * time.Hour)), EndTime: aws.Time(end),
				ScanBy: scan, MetricDataQueries: queries,
			}
			want, _ := getAll(t, moto, in)
			got, _ := getAll(t, standIn, in)
			if len(want) != len(queries) || len(got) != len(queries) {
				t.Fatalf("moto answered %d queries, stand-in %d, of %d", len(want), len(got), len(queries))
			}
			if w := want["q0Sum"]; len(w.Values) != hours/7+1 {
				t.Fatalf("moto returned %d hourly Sum buckets for i-0aaa, want %d: back-dated points lost or gaps filled", len(w.Values), hours/7+1)
			}
			for id, w := range want {
				g := got[id]
				if g == nil || g.Status != w.Status || !slices.EqualFunc(g.Timestamps, w.Timestamps, time.Time.Equal) || !slices.Equal(g.Values, w.Values) {
					t.Errorf("%s: stand-in %+v, moto %+v", id, g, w)
				}
			}
		})
	}
}

package evidence

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// CloudWatchAPI is the part of the CloudWatch client the metric reader uses.
type CloudWatchAPI interface {
	GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
}

const (
	// maxQueriesPerCall and maxDatapointsPerCall are GetMetricData's limits. Filling a
	// call with more hourly series than the datapoint limit holds only makes CloudWatch
	// page, which costs the same calls with more round trips.
	maxQueriesPerCall    = 500
	maxDatapointsPerCall = 100800
	metricPeriod         = time.Hour
)

// MetricCallsAtOnce bounds the GetMetricData calls one read has in flight. The calls
// of a read are independent, and issuing them together brings a read close to the time
// of its slowest call. The bound keeps a read within CloudWatch's GetMetricData quota of
// 396,000 datapoints per second (for windows that start more than three hours ago): four
// full calls are 403,200 datapoints, and more at once would only be throttled and
// retried.
const MetricCallsAtOnce = 4

// MetricUsage reads the hourly MetadataNoToken sums of the given instances over the
// lookback window ending now, batching as many instances per GetMetricData call as its
// limits allow, with up to MetricCallsAtOnce calls at once. Hours without a datapoint
// are not observed, never zero. A failed call fails only the instances in its batch,
// and a reply that leaves an instance's query unanswered or incomplete fails only that
// instance: their entries in errs name the error. Every instance asked for is in usage
// or in errs, never both.
func MetricUsage(ctx context.Context, api CloudWatchAPI, ids []string, lookback time.Duration, now time.Time) (usage map[string]policy.MetricUsage, errs map[string]error) {
	return collectUsage(func(each func(MetricBatch)) { MetricUsageBatches(ctx, api, ids, lookback, now, each) })
}

// MetricBatch is what one GetMetricData batch of a read found: for each of its instances
// (IDs, distinct), either its usage or the error that fails it.
type MetricBatch struct {
	IDs   []string
	Usage map[string]policy.MetricUsage
	Errs  map[string]error
}

// MetricUsageBatches is MetricUsage handing over each batch as soon as its calls are done,
// so that the caller can go on with those instances while other batches are read. each
// is called once per batch as the batches finish, never two at a time; the
// batches together cover every instance asked for once. It returns when every batch has
// been handed over.
func MetricUsageBatches(ctx context.Context, api CloudWatchAPI, ids []string, lookback time.Duration, now time.Time, each func(MetricBatch)) {
	start, end := policy.LookbackWindow(now, lookback)
	readBatches(ctx, api, ids, metricWindow{start: start, end: end, period: metricPeriod}, each)
}

// Window is a span of whole hours, from Start to End.
type Window struct{ Start, End time.Time }

// BootUsageBatches reads the MetadataNoToken usage of each instance's own window (its
// boot hours, policy.BootWindowOf) and hands the batches to each as MetricUsageBatches
// does. GetMetricData asks one window of all the queries of a call, so the instances go
// into launch-time cohorts: sorted by window, as many to a call as fit both its 500
// queries and its 100,800 datapoints over the cohort's span, so that instances launched
// close together cost one call. Only the buckets inside an instance's own window count
// for it.
func BootUsageBatches(ctx context.Context, api CloudWatchAPI, windows map[string]Window, each func(MetricBatch)) {
	readCalls(ctx, api, cohorts(MetadataNoToken, windows), each)
}

// The EC2 metrics of the instance metadata service the guard reads.
const (
	// MetadataNoToken counts the IMDSv1 calls EC2 answered.
	MetadataNoToken = "MetadataNoToken"
	// MetadataNoTokenRejected counts the IMDSv1 calls EC2 refused because HttpTokens is
	// required: what an enforcement broke.
	MetadataNoTokenRejected = "MetadataNoTokenRejected"
)

// RejectedUsage reads MetadataNoTokenRejected, in hourly buckets, over each enforced
// instance's own window (policy.RejectedWindow), in cohorts as BootUsageBatches reads boot
// hours: the instances enforced close together share a call. Every instance asked for is
// in usage or in errs, never both.
func RejectedUsage(ctx context.Context, api CloudWatchAPI, windows map[string]Window) (usage map[string]policy.MetricUsage, errs map[string]error) {
	return collectUsage(func(each func(MetricBatch)) { readCalls(ctx, api, cohorts(MetadataNoTokenRejected, windows), each) })
}

// cohorts packs the instances' windows into calls of metric: sorted by window, as many
// to a call as fit its 500 queries and 100,800 datapoints over the cohort's span.
func cohorts(metric string, windows map[string]Window) []metricCall {
	ids := slices.SortedFunc(maps.Keys(windows), func(a, b string) int {
		if c := windows[a].Start.Compare(windows[b].Start); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var calls []metricCall
	for len(ids) > 0 {
		call := metricCall{metric: metric, own: map[string]metricWindow{}}
		for _, id := range ids {
			w := windows[id]
			span := metricWindow{start: w.Start.UTC(), end: w.End.UTC(), period: metricPeriod}
			if len(call.ids) > 0 {
				span.start = call.window.start // sorted: the cohort's first start is the earliest
				span.end = latest(call.window.end, span.end)
			}
			buckets := int(span.end.Sub(span.start) / metricPeriod)
			if len(call.ids) > 0 && (len(call.ids) == maxQueriesPerCall || (len(call.ids)+1)*buckets > maxDatapointsPerCall) {
				break
			}
			call.ids = append(call.ids, id)
			call.window = span
			call.own[id] = metricWindow{start: w.Start.UTC(), end: w.End.UTC(), period: metricPeriod}
		}
		ids = ids[len(call.ids):]
		calls = append(calls, call)
	}
	return calls
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// recentPeriod is the finest period the MetadataNoToken metric has with basic monitoring.
const recentPeriod = 5 * time.Minute

// UsageSince reads an instance's MetadataNoToken calls from since until now in 5-minute
// buckets: remediate's last look before it enforces, covering the time between the
// evidence a verdict was made on and the moment of enforcement.
func UsageSince(ctx context.Context, api CloudWatchAPI, id string, since, now time.Time) (policy.MetricUsage, error) {
	end := now.UTC().Truncate(recentPeriod).Add(recentPeriod)
	start := since.UTC().Truncate(recentPeriod)
	if !start.Before(end) {
		start = end.Add(-recentPeriod)
	}
	usage, errs := collectUsage(func(each func(MetricBatch)) {
		readBatches(ctx, api, []string{id}, metricWindow{start: start, end: end, period: recentPeriod}, each)
	})
	if err := errs[id]; err != nil {
		return policy.MetricUsage{}, err
	}
	return usage[id], nil
}

// metricWindow is the time range and period of one read.
type metricWindow struct {
	start, end time.Time
	period     time.Duration
}

// collectUsage gathers the batches of a read into one usage and one error map.
func collectUsage(read func(each func(MetricBatch))) (map[string]policy.MetricUsage, map[string]error) {
	usage := make(map[string]policy.MetricUsage)
	errs := make(map[string]error)
	read(func(b MetricBatch) {
		maps.Copy(usage, b.Usage)
		maps.Copy(errs, b.Errs)
	})
	return usage, errs
}

// readBatches reads the instances' usage over w in batches of as many instances as one
// GetMetricData call answers in full, up to MetricCallsAtOnce batches at a time, and
// hands each batch to each as it finishes (see MetricUsageBatches).
func readBatches(ctx context.Context, api CloudWatchAPI, ids []string, w metricWindow, each func(MetricBatch)) {
	// One query per instance: two would add its buckets up twice.
	seen := make(map[string]bool, len(ids))
	ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { dup := seen[id]; seen[id] = true; return dup })
	buckets := int(w.end.Sub(w.start) / w.period)
	perCall := min(maxQueriesPerCall, max(1, maxDatapointsPerCall/max(1, buckets)))
	var calls []metricCall
	for batch := range slices.Chunk(ids, perCall) {
		calls = append(calls, metricCall{ids: batch, window: w})
	}
	readCalls(ctx, api, calls, each)
}

// metricCall is one GetMetricData call (with its pages): the instances it asks about,
// the window it asks for, and, when the instances' own windows differ, each one's part of
// it (only the buckets inside an instance's own window count for it).
type metricCall struct {
	// metric is the AWS/EC2 metric asked for; empty means MetadataNoToken.
	metric string
	ids    []string
	window metricWindow
	own    map[string]metricWindow
}

// readCalls makes the calls, up to MetricCallsAtOnce at a time, and hands each call's
// batch to each as it finishes, never two at a time.
func readCalls(ctx context.Context, api CloudWatchAPI, calls []metricCall, each func(MetricBatch)) {
	slots := make(chan struct{}, MetricCallsAtOnce)
	var handOver sync.Mutex // each is never called concurrently
	var wg sync.WaitGroup
	for _, call := range calls {
		slots <- struct{}{}
		wg.Go(func() {
			got, failed, err := metricBatch(ctx, api, call)
			err = TimeUp(ctx, err)
			<-slots // the call is done: the next batch may start while this one is handed over
			b := MetricBatch{IDs: call.ids, Usage: make(map[string]policy.MetricUsage, len(call.ids)), Errs: make(map[string]error)}
			for _, id := range call.ids {
				switch {
				case err != nil:
					b.Errs[id] = err
				case failed[id] != nil:
					b.Errs[id] = failed[id]
				default:
					b.Usage[id] = got[id]
				}
			}
			handOver.Lock()
			defer handOver.Unlock()
			each(b)
		})
	}
	wg.Wait()
}

const opGetMetricData = "cloudwatch:GetMetricData"

// metricBatch reads one batch, following the page chain to its end. err fails the whole
// batch (the call failed, or the reply cannot be trusted for any query: an unknown query
// id, timestamps and values that do not pair up); failed names the instances whose own
// query was not answered in full.
func metricBatch(ctx context.Context, api CloudWatchAPI, call metricCall) (usage map[string]policy.MetricUsage, failed map[string]error, err error) {
	ids, w := call.ids, call.window
	queries := make([]cwtypes.MetricDataQuery, len(ids))
	byQuery := make(map[string]string, len(ids))
	for i, id := range ids {
		qid := "q" + strconv.Itoa(i)
		byQuery[qid] = id
		queries[i] = cwtypes.MetricDataQuery{
			Id: aws.String(qid),
			MetricStat: &cwtypes.MetricStat{
				Metric: &cwtypes.Metric{
					Namespace:  aws.String("AWS/EC2"),
					MetricName: aws.String(cmp.Or(call.metric, MetadataNoToken)),
					Dimensions: []cwtypes.Dimension{{Name: aws.String("InstanceId"), Value: aws.String(id)}},
				},
				Period: aws.Int32(int32(w.period / time.Second)),
				Stat:   aws.String("Sum"),
			},
			ReturnData: aws.Bool(true),
		}
	}
	in := &cloudwatch.GetMetricDataInput{
		MetricDataQueries: queries,
		StartTime:         aws.Time(w.start),
		EndTime:           aws.Time(w.end),
		ScanBy:            cwtypes.ScanByTimestampDescending,
	}
	usage = make(map[string]policy.MetricUsage, len(ids))
	// The status of each query on the latest page that answered it: Complete only when
	// nothing of it is left for a later page.
	status := make(map[string]cwtypes.StatusCode, len(ids))
	// Each bucket is answered once. A repeat (a garbled reply, a chain that went back)
	// would count an hour twice, and the observed hours are what the guard trusts to have
	// seen enough.
	buckets := make(map[string]map[time.Time]bool, len(ids))
	repeated := make(map[string]time.Time)
	chain := NewPageChain(opGetMetricData)
	for {
		page, err := api.GetMetricData(ctx, in, func(o *cloudwatch.Options) {
			o.APIOptions = append(o.APIOptions, RequireComplete(opGetMetricData, incompleteMetricData))
		})
		if err == nil {
			if problem := incompleteMetricData(page); problem != "" {
				err = &IncompleteReplyError{Operation: opGetMetricData, Problem: problem}
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s for %d instances: %w", opGetMetricData, len(ids), err)
		}
		for _, r := range page.MetricDataResults {
			id, ok := byQuery[aws.ToString(r.Id)]
			if !ok {
				return nil, nil, fmt.Errorf("%s for %d instances: %w", opGetMetricData, len(ids),
					&IncompleteReplyError{Operation: opGetMetricData, Problem: fmt.Sprintf("an answer to the unknown query id %q", aws.ToString(r.Id))})
			}
			status[id] = r.StatusCode
			stamps, values := r.Timestamps, r.Values
			if own, ok := call.own[id]; ok {
				stamps, values = within(own, stamps, values)
			}
			usage[id] = addBuckets(usage[id], stamps, values)
			if buckets[id] == nil {
				buckets[id] = make(map[time.Time]bool, len(r.Timestamps))
			}
			for _, ts := range r.Timestamps {
				ts = ts.Round(0).UTC() // a map key: no monotonic reading, one location
				if _, ok := repeated[id]; !ok && buckets[id][ts] {
					repeated[id] = ts
				}
				buckets[id][ts] = true
			}
		}
		next, err := chain.Next(page.NextToken)
		if err != nil {
			return nil, nil, fmt.Errorf("%s for %d instances: %w", opGetMetricData, len(ids), err)
		}
		if next == nil {
			break
		}
		in.NextToken = next
	}
	failed = make(map[string]error)
	for _, id := range ids {
		if ts, ok := repeated[id]; ok {
			failed[id] = &IncompleteReplyError{Operation: opGetMetricData, Problem: fmt.Sprintf("the bucket at %s for %s is answered twice", ts.Format(time.RFC3339), id)}
			continue
		}
		switch st := status[id]; st {
		case cwtypes.StatusCodeComplete:
		case "":
			failed[id] = &IncompleteReplyError{Operation: opGetMetricData, Problem: "no answer to the query for " + id}
		case cwtypes.StatusCodePartialData:
			failed[id] = &IncompleteReplyError{Operation: opGetMetricData, Problem: "the page chain ended while the data for " + id + " was still partial"}
		default:
			failed[id] = fmt.Errorf("%s status %s for %s", opGetMetricData, st, id)
		}
	}
	return usage, failed, nil
}

// incompleteMetricData says what is wrong with a GetMetricData reply as a whole, or "":
// the results element must be there, and each result must pair every timestamp with a
// value (a body that lost or garbled some of them cannot be read for any query).
func incompleteMetricData(page *cloudwatch.GetMetricDataOutput) string {
	if page == nil || page.MetricDataResults == nil {
		return "no MetricDataResults"
	}
	for _, r := range page.MetricDataResults {
		if aws.ToString(r.Id) == "" {
			return "a result without a query id"
		}
		if len(r.Timestamps) != len(r.Values) {
			return fmt.Sprintf("%d timestamps and %d values for query %s", len(r.Timestamps), len(r.Values), aws.ToString(r.Id))
		}
		// A count of calls is a finite number of at least zero; anything else is a garbled
		// body, and a NaN would otherwise compare as "no calls".
		for _, v := range r.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return fmt.Sprintf("the value %g for query %s is not a count", v, aws.ToString(r.Id))
			}
		}
	}
	return ""
}

// within keeps the buckets that start inside w.
func within(w metricWindow, stamps []time.Time, values []float64) ([]time.Time, []float64) {
	var keptStamps []time.Time
	var keptValues []float64
	for i, ts := range stamps {
		if !ts.Before(w.start) && ts.Before(w.end) {
			keptStamps = append(keptStamps, ts)
			keptValues = append(keptValues, values[i])
		}
	}
	return keptStamps, keptValues
}

// addBuckets folds one page of buckets into the usage so far.
func addBuckets(u policy.MetricUsage, stamps []time.Time, values []float64) policy.MetricUsage {
	for i, ts := range stamps {
		ts := ts.UTC()
		u.ObservedHours++
		u.Sum += values[i]
		if u.LastDatapoint == nil || ts.After(*u.LastDatapoint) {
			u.LastDatapoint = &ts
		}
		if values[i] > 0 && (u.LastNonZero == nil || ts.After(*u.LastNonZero)) {
			u.LastNonZero = &ts
		}
	}
	return u
}

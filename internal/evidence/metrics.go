package evidence

import (
	"context"
	"fmt"
	"slices"
	"strconv"
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

// MetricUsage reads the hourly MetadataNoToken sums of the given instances over the
// lookback window ending now, batching as many instances per GetMetricData call as its
// limits allow. Hours without a datapoint are not observed, never zero. A failed call
// fails only the instances in its batch: their entries in errs name the error.
func MetricUsage(ctx context.Context, api CloudWatchAPI, ids []string, lookback time.Duration, now time.Time) (usage map[string]policy.MetricUsage, errs map[string]error) {
	usage = make(map[string]policy.MetricUsage, len(ids))
	errs = make(map[string]error)
	// The window is whole hours ending with the current, still filling, hour.
	end := now.UTC().Truncate(metricPeriod).Add(metricPeriod)
	start := end.Add(-lookback)
	hours := int(lookback / metricPeriod)
	perCall := min(maxQueriesPerCall, max(1, maxDatapointsPerCall/max(1, hours)))
	for batch := range slices.Chunk(ids, perCall) {
		got, err := metricBatch(ctx, api, batch, start, end)
		for _, id := range batch {
			if err != nil {
				errs[id] = err
				continue
			}
			usage[id] = got[id]
		}
	}
	return usage, errs
}

func metricBatch(ctx context.Context, api CloudWatchAPI, ids []string, start, end time.Time) (map[string]policy.MetricUsage, error) {
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
					MetricName: aws.String("MetadataNoToken"),
					Dimensions: []cwtypes.Dimension{{Name: aws.String("InstanceId"), Value: aws.String(id)}},
				},
				Period: aws.Int32(int32(metricPeriod / time.Second)),
				Stat:   aws.String("Sum"),
			},
			ReturnData: aws.Bool(true),
		}
	}
	usage := make(map[string]policy.MetricUsage, len(ids))
	pages := cloudwatch.NewGetMetricDataPaginator(api, &cloudwatch.GetMetricDataInput{
		MetricDataQueries: queries,
		StartTime:         aws.Time(start),
		EndTime:           aws.Time(end),
		ScanBy:            cwtypes.ScanByTimestampDescending,
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("cloudwatch:GetMetricData for %d instances: %w", len(ids), err)
		}
		for _, r := range page.MetricDataResults {
			id, ok := byQuery[aws.ToString(r.Id)]
			if !ok {
				return nil, fmt.Errorf("cloudwatch:GetMetricData returned an unknown query id %q", aws.ToString(r.Id))
			}
			if r.StatusCode == cwtypes.StatusCodeForbidden || r.StatusCode == cwtypes.StatusCodeInternalError {
				return nil, fmt.Errorf("cloudwatch:GetMetricData status %s for %s", r.StatusCode, id)
			}
			if len(r.Timestamps) != len(r.Values) {
				return nil, fmt.Errorf("cloudwatch:GetMetricData returned %d timestamps and %d values for %s", len(r.Timestamps), len(r.Values), id)
			}
			usage[id] = addBuckets(usage[id], r.Timestamps, r.Values)
		}
	}
	return usage, nil
}

// addBuckets folds one page of hourly buckets into the usage so far.
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

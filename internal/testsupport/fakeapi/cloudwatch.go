package fakeapi

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// Point is one MetadataNoToken datapoint: the calls made in the period starting at Time.
type Point struct {
	Time  time.Time
	Value float64
}

// Hourly returns n hourly points of value, the newest at last.
func Hourly(last time.Time, n int, value float64) []Point {
	out := make([]Point, n)
	for i := range n {
		out[i] = Point{Time: last.Add(-time.Duration(i) * time.Hour), Value: value}
	}
	return out
}

// CloudWatch is an in-process CloudWatch holding MetadataNoToken datapoints per
// instance. GetMetricData answers every query id: the AWS/EC2 MetadataNoToken Sum with
// the InstanceId dimension from the datapoints in [StartTime, EndTime), summed per
// period from StartTime (hours without a datapoint have none, as in CloudWatch); any
// other metric has no datapoints.
type CloudWatch struct {
	// Get records the calls and holds the replies set for the next ones.
	Get Op[cloudwatch.GetMetricDataInput, cloudwatch.GetMetricDataOutput]
	// Status, when set, is the StatusCode of every result instead of Complete (set
	// PartialData for a reply that is not the whole answer).
	Status cwtypes.StatusCode

	Journal *Journal

	mu     sync.Mutex
	points map[string][]Point
}

// NewCloudWatch returns a CloudWatch with no datapoints.
func NewCloudWatch(journal *Journal) *CloudWatch {
	return &CloudWatch{Journal: journal, points: map[string][]Point{}}
}

// Put adds MetadataNoToken datapoints for the instance.
func (c *CloudWatch) Put(instanceID string, points ...Point) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.points[instanceID] = append(c.points[instanceID], points...)
}

// GetMetricData implements evidence.CloudWatchAPI, in one page.
func (c *CloudWatch) GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	c.Journal.add("cloudwatch:GetMetricData")
	return c.Get.call(ctx, in, c.answer)
}

// maxMetricQueries is GetMetricData's limit on queries per call.
const maxMetricQueries = 500

func (c *CloudWatch) answer(in *cloudwatch.GetMetricDataInput) (*cloudwatch.GetMetricDataOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if in.StartTime == nil || in.EndTime == nil || !in.StartTime.Before(*in.EndTime) {
		return nil, APIError("InvalidParameterValue", "The parameter StartTime must be before EndTime")
	}
	if n := len(in.MetricDataQueries); n == 0 || n > maxMetricQueries {
		return nil, APIError("InvalidParameterValue", fmt.Sprintf("%d metric data queries; from 1 to %d are allowed", n, maxMetricQueries))
	}
	status := c.Status
	if status == "" {
		status = cwtypes.StatusCodeComplete
	}
	start, end := in.StartTime.UTC(), in.EndTime.UTC()
	out := &cloudwatch.GetMetricDataOutput{MetricDataResults: []cwtypes.MetricDataResult{}}
	seen := map[string]bool{}
	for _, q := range in.MetricDataQueries {
		id := aws.ToString(q.Id)
		if id == "" || seen[id] {
			return nil, APIError("InvalidParameterValue", fmt.Sprintf("the query id %q is empty or repeated", id))
		}
		seen[id] = true
		if q.MetricStat == nil || aws.ToInt32(q.MetricStat.Period) <= 0 {
			return nil, APIError("InvalidParameterValue", "fakeapi: only MetricStat queries with a period are supported")
		}
		result := cwtypes.MetricDataResult{Id: aws.String(id), StatusCode: status, Timestamps: []time.Time{}, Values: []float64{}}
		if instanceID, ok := metadataNoToken(q.MetricStat); ok {
			period := time.Duration(aws.ToInt32(q.MetricStat.Period)) * time.Second
			sums := map[time.Time]float64{}
			for _, p := range c.points[instanceID] {
				t := p.Time.UTC()
				if t.Before(start) || !t.Before(end) {
					continue
				}
				bucket := start.Add(t.Sub(start) / period * period)
				sums[bucket] += p.Value
			}
			buckets := make([]time.Time, 0, len(sums))
			for b := range sums {
				buckets = append(buckets, b)
			}
			slices.SortFunc(buckets, func(a, b time.Time) int { return a.Compare(b) })
			if in.ScanBy != cwtypes.ScanByTimestampAscending {
				slices.Reverse(buckets) // CloudWatch's default is newest first
			}
			for _, b := range buckets {
				result.Timestamps = append(result.Timestamps, b)
				result.Values = append(result.Values, sums[b])
			}
		}
		out.MetricDataResults = append(out.MetricDataResults, result)
	}
	return out, nil
}

// metadataNoToken returns the instance a query asks the MetadataNoToken Sum of.
func metadataNoToken(ms *cwtypes.MetricStat) (string, bool) {
	m := ms.Metric
	if m == nil || aws.ToString(m.Namespace) != "AWS/EC2" || aws.ToString(m.MetricName) != "MetadataNoToken" ||
		aws.ToString(ms.Stat) != "Sum" || len(m.Dimensions) != 1 || aws.ToString(m.Dimensions[0].Name) != "InstanceId" {
		return "", false
	}
	return aws.ToString(m.Dimensions[0].Value), true
}

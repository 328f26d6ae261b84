package evidence_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// metricsAPI is an in-process GetMetricData. It answers every query with one datapoint
// in the current hour, valued by the instance (see metricValue), except the queries of
// the instances in unanswered; a call whose first instance is in refused fails. Its
// first `barrier` calls wait until that many are in flight at once, so that a reader
// that does not issue them concurrently never gets an answer.
type metricsAPI struct {
	hour       time.Time
	barrier    int
	refused    map[string]bool
	unanswered map[string]bool
	values     map[string]float64

	mu          sync.Mutex
	calls       int
	inFlight    int
	maxInFlight int
	released    chan struct{}
}

var errRefused = errors.New("refused by the test")

func (m *metricsAPI) GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	m.mu.Lock()
	m.calls++
	n := m.calls
	m.inFlight++
	m.maxInFlight = max(m.maxInFlight, m.inFlight)
	if n == m.barrier {
		close(m.released)
	}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.inFlight--
		m.mu.Unlock()
	}()
	if n <= m.barrier {
		select {
		case <-m.released:
		case <-ctx.Done():
			return nil, fmt.Errorf("call %d: only %d calls were ever in flight at once: %w", n, m.maxInFlightNow(), ctx.Err())
		}
	}
	out := &cloudwatch.GetMetricDataOutput{MetricDataResults: []cwtypes.MetricDataResult{}}
	for i, q := range in.MetricDataQueries {
		id := aws.ToString(q.MetricStat.Metric.Dimensions[0].Value)
		if i == 0 && m.refused[id] {
			return nil, errRefused
		}
		if m.unanswered[id] {
			continue
		}
		out.MetricDataResults = append(out.MetricDataResults, cwtypes.MetricDataResult{
			Id: q.Id, StatusCode: cwtypes.StatusCodeComplete,
			Timestamps: []time.Time{m.hour}, Values: []float64{m.values[id]},
		})
	}
	return out, nil
}

func (m *metricsAPI) maxInFlightNow() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.maxInFlight
}

// TestMetricUsageBatchesConcurrently: the batches of a read are issued concurrently, up
// to MetricCallsAtOnce at a time and never more; each batch is handed over once, never
// two at a time, and every instance asked for gets exactly one usage or one error: the
// instances of a refused call and those whose query went unanswered an error each, the
// others their own usage. Run it with -race.
func TestMetricUsageBatchesConcurrently(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	hour := now.Truncate(time.Hour)
	// 336 hours: 300 instances per call, so 10 calls, more than MetricCallsAtOnce.
	const n = 2950
	api := &metricsAPI{
		hour: hour, barrier: evidence.MetricCallsAtOnce, released: make(chan struct{}),
		refused: map[string]bool{}, unanswered: map[string]bool{}, values: map[string]float64{},
	}
	ids := make([]string, n)
	for k := range ids {
		ids[k] = fmt.Sprintf("i-%017x", 0xc0c0000+k)
		api.values[ids[k]] = float64(k % 7)
	}
	api.refused[ids[300]] = true // the second batch's first instance
	api.unanswered[ids[5]], api.unanswered[ids[2001]] = true, true
	// Asked twice: still one query, one answer.
	asked := append(slices.Clone(ids), ids[17], ids[2500])

	var inEach atomic.Bool
	var batches []evidence.MetricBatch
	evidence.MetricUsageBatches(testContext(t), api, asked, 336*time.Hour, now, func(b evidence.MetricBatch) {
		if !inEach.CompareAndSwap(false, true) {
			t.Error("two batches handed over at once")
		}
		defer inEach.Store(false)
		batches = append(batches, b)
	})

	if got := api.maxInFlightNow(); got != evidence.MetricCallsAtOnce {
		t.Errorf("at most %d GetMetricData calls in flight at once, want %d", got, evidence.MetricCallsAtOnce)
	}
	if len(batches) != 10 {
		t.Errorf("%d batches handed over, want 10", len(batches))
	}
	seen := map[string]int{}
	for _, b := range batches {
		for _, id := range b.IDs {
			seen[id]++
			_, hasUsage := b.Usage[id]
			_, hasErr := b.Errs[id]
			if hasUsage == hasErr {
				t.Errorf("%s: usage %v and error %v in its batch, want exactly one", id, hasUsage, hasErr)
			}
		}
		if len(b.Usage)+len(b.Errs) != len(b.IDs) {
			t.Errorf("a batch of %d instances has %d usages and %d errors: some are not its own", len(b.IDs), len(b.Usage), len(b.Errs))
		}
	}
	for k, id := range ids {
		if seen[id] != 1 {
			t.Fatalf("%s is in %d batches, want 1", id, seen[id])
		}
		checkOneInstance(t, k, id, batches, api, hour)
	}
	if len(seen) != n {
		t.Errorf("%d instances in the batches, want the %d asked for", len(seen), n)
	}

	// MetricUsage gathers the same batches.
	api2 := &metricsAPI{hour: hour, released: make(chan struct{}), refused: api.refused, unanswered: api.unanswered, values: api.values}
	usage, errs := evidence.MetricUsage(testContext(t), api2, asked, 336*time.Hour, now)
	for _, id := range ids {
		_, hasUsage := usage[id]
		_, hasErr := errs[id]
		if hasUsage == hasErr {
			t.Fatalf("MetricUsage: %s has usage %v and error %v, want exactly one", id, hasUsage, hasErr)
		}
	}
	if len(usage)+len(errs) != n {
		t.Errorf("MetricUsage: %d usages and %d errors for %d instances", len(usage), len(errs), n)
	}
}

// checkOneInstance checks the evidence the batches give instance k.
func checkOneInstance(t *testing.T, k int, id string, batches []evidence.MetricBatch, api *metricsAPI, hour time.Time) {
	t.Helper()
	i := slices.IndexFunc(batches, func(b evidence.MetricBatch) bool { return slices.Contains(b.IDs, id) })
	b := batches[i]
	err := b.Errs[id]
	var incomplete *evidence.IncompleteReplyError
	switch {
	case slices.ContainsFunc(b.IDs, func(id string) bool { return api.refused[id] }):
		if !errors.Is(err, errRefused) || !strings.Contains(err.Error(), "cloudwatch:GetMetricData") {
			t.Errorf("instance %d (%s) of the refused batch: error %v, want the refusal, naming the action", k, id, err)
		}
	case api.unanswered[id]:
		if !errors.As(err, &incomplete) {
			t.Errorf("instance %d (%s), unanswered: error %v, want an incomplete reply", k, id, err)
		}
	default:
		want := policy.MetricUsage{Sum: api.values[id], ObservedHours: 1, LastDatapoint: &hour}
		if want.Sum > 0 {
			want.LastNonZero = &hour
		}
		if u, ok := b.Usage[id]; !ok || !sameUsage(u, want) {
			t.Errorf("instance %d (%s): usage %s (present %v, error %v), want %s", k, id, usageString(u), ok, err, usageString(want))
		}
	}
}

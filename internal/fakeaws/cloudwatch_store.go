package fakeaws

import (
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// metricStore holds datapoints indexed by metric identity (namespace, name, dimension
// set) and unit, each series sorted by time, so that a query costs a map lookup, a
// binary search and a walk over its own window. moto instead scans every stored
// datapoint for every query and bucket, which is unusable at 10,000 instances x 336
// hourly points (3.36 million datapoints).
type metricStore struct {
	mu      sync.RWMutex
	metrics map[string]map[string]*series // metric key -> unit -> series
}

// series is the datapoints of one metric in one unit, ascending by time. A point is
// already a statistic set so that Values/Counts and StatisticValues puts are kept
// exactly; a plain value v is {sum v, min v, max v, n 1}.
type series struct {
	pts []point
}

type point struct {
	ms            int64 // Unix milliseconds, the resolution of the wire format
	sum, min, max float64
	n             float64
}

func (p *point) merge(q point) {
	p.sum += q.sum
	p.n += q.n
	p.min = math.Min(p.min, q.min)
	p.max = math.Max(p.max, q.max)
}

type dimension struct{ Name, Value string }

// metricKey identifies a metric. CloudWatch matches dimension sets exactly and ignores
// their order, so the dimensions are sorted by name.
func metricKey(namespace, name string, dims []dimension) string {
	dims = slices.Clone(dims)
	slices.SortFunc(dims, func(a, b dimension) int { return strings.Compare(a.Name, b.Name) })
	var b strings.Builder
	b.WriteString(namespace)
	b.WriteByte(0)
	b.WriteString(name)
	for _, d := range dims {
		b.WriteByte(0)
		b.WriteString(d.Name)
		b.WriteByte(1)
		b.WriteString(d.Value)
	}
	return b.String()
}

func newMetricStore() *metricStore {
	return &metricStore{metrics: map[string]map[string]*series{}}
}

func (s *metricStore) add(key, unit string, pts ...point) {
	if unit == "" {
		unit = "None" // CloudWatch's unit for data put without one
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	units := s.metrics[key]
	if units == nil {
		units = map[string]*series{}
		s.metrics[key] = units
	}
	ser := units[unit]
	if ser == nil {
		ser = &series{pts: make([]point, 0, len(pts))}
		units[unit] = ser
	}
	for _, p := range pts {
		// Seeding is nearly always in time order, so this is an append.
		i := len(ser.pts)
		for i > 0 && ser.pts[i-1].ms > p.ms {
			i--
		}
		ser.pts = slices.Insert(ser.pts, i, p)
	}
}

func (s *metricStore) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metrics = map[string]map[string]*series{}
}

// bucket is one period of a query result: its start and the aggregate of its points.
type bucket struct {
	ms  int64
	agg point
}

// buckets aggregates the metric's points in [start, end) into periods of period
// starting at start, in ascending order. Periods without a point are absent. unit ""
// takes every unit, like a query that names none.
func (s *metricStore) buckets(key, unit string, start, end time.Time, period time.Duration) []bucket {
	s.mu.RLock()
	defer s.mu.RUnlock()
	startMS, endMS, periodMS := start.UnixMilli(), end.UnixMilli(), period.Milliseconds()
	var out []bucket
	merged := false
	for u, ser := range s.metrics[key] {
		if unit != "" && u != unit {
			continue
		}
		got := ser.buckets(startMS, endMS, periodMS)
		if out == nil {
			out = got
			continue
		}
		out, merged = append(out, got...), true
	}
	if merged { // several units: combine buckets with the same start
		sort.SliceStable(out, func(i, j int) bool { return out[i].ms < out[j].ms })
		j := 0
		for i := 1; i < len(out); i++ {
			if out[i].ms == out[j].ms {
				out[j].agg.merge(out[i].agg)
			} else {
				j++
				out[j] = out[i]
			}
		}
		out = out[:j+1]
	}
	return out
}

func (ser *series) buckets(startMS, endMS, periodMS int64) []bucket {
	i := sort.Search(len(ser.pts), func(i int) bool { return ser.pts[i].ms >= startMS })
	var out []bucket
	for ; i < len(ser.pts) && ser.pts[i].ms < endMS; i++ {
		p := ser.pts[i]
		b := startMS + (p.ms-startMS)/periodMS*periodMS
		if n := len(out); n > 0 && out[n-1].ms == b {
			out[n-1].agg.merge(p)
		} else {
			out = append(out, bucket{ms: b, agg: p})
		}
	}
	return out
}

// statistics the stand-in computes, from a bucket's aggregate.
var statistics = map[string]func(point) float64{
	"Sum":         func(p point) float64 { return p.sum },
	"Average":     func(p point) float64 { return p.sum / p.n },
	"Minimum":     func(p point) float64 { return p.min },
	"Maximum":     func(p point) float64 { return p.max },
	"SampleCount": func(p point) float64 { return p.n },
}

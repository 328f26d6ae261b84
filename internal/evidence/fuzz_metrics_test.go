package evidence_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// fuzzReader hands out the bytes of a fuzz input one at a time, then zeros.
type fuzzReader struct {
	b []byte
	i int
}

func (r *fuzzReader) next() int {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return int(r.b[r.i-1])
}

var metricNow = time.Date(2026, 11, 22, 10, 17, 0, 0, time.UTC)

// fuzzValues are the values a fuzzed datapoint may have: counts, and what a garbled body
// could make of one.
var fuzzValues = []float64{0, 1, 2.5, 3, 0, 7, 0.1, 1e15, 0, 1, -1, math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 5e-324,
	1e308, math.MaxFloat64, -5e-324, 0}

var fuzzStatuses = []cwtypes.StatusCode{cwtypes.StatusCodeComplete, cwtypes.StatusCodeComplete, cwtypes.StatusCodePartialData,
	cwtypes.StatusCodeInternalError, cwtypes.StatusCodeForbidden, "", "Unknown"}

// resultPlan is one MetricDataResult to answer with; which query it answers is resolved
// against the request.
type resultPlan struct {
	query  int // < queries: that query; then an unknown id, "", nil, the first id upper-cased
	status cwtypes.StatusCode
	stamps []time.Time
	values []float64
}

type pagePlan struct {
	err     bool // the call fails
	nilOut  bool // a nil output without an error
	nilRes  bool // MetricDataResults missing
	results []resultPlan
	token   *string
}

// planPages reads the instances to ask about and the pages of the reply from fuzz bytes.
func planPages(data []byte) (ids []string, pages []pagePlan) {
	r := &fuzzReader{b: data}
	pool := []string{"i-0a1b2c3d4e5f60718", "i-1a2b3c4d", "i-0f9e8d7c6b5a49382", "i-00000000000000001"}
	for range 1 + r.next()%5 {
		ids = append(ids, pool[r.next()%len(pool)]) // repeats allowed
	}
	hour := metricNow.Truncate(time.Hour)
	for p := range 1 + r.next()%5 {
		var pg pagePlan
		switch r.next() % 24 {
		case 21:
			pg.err = true
		case 22:
			pg.nilOut = true
		case 23:
			pg.nilRes = true
		}
		for range r.next() % 5 {
			rp := resultPlan{query: r.next() % 9, status: fuzzStatuses[r.next()%len(fuzzStatuses)]}
			n := r.next() % 6
			for range n {
				rp.stamps = append(rp.stamps, hour.Add(-time.Duration(r.next()%30)*time.Hour))
				rp.values = append(rp.values, fuzzValues[r.next()%len(fuzzValues)])
			}
			switch r.next() % 32 {
			case 30:
				rp.values = append(rp.values, 1)
			case 31:
				if n > 0 {
					rp.values = rp.values[:n-1]
				}
			}
			pg.results = append(pg.results, rp)
		}
		switch r.next() % 7 {
		case 0, 1, 2:
		case 3:
			pg.token = aws.String("")
		case 4:
			pg.token = aws.String("token-a")
		case 5:
			pg.token = aws.String("token-b")
		default:
			pg.token = aws.String(fmt.Sprintf("token-%d", p))
		}
		pages = append(pages, pg)
	}
	return ids, pages
}

// served is one call as a fake answered it: GetMetricData or DescribeInstances.
type served struct {
	out      *cloudwatch.GetMetricDataOutput
	describe *ec2.DescribeInstancesOutput
	err      error
}

// plannedCloudWatch answers GetMetricData with the planned pages, in the order their
// tokens chain them, and fails any call after the last. It ignores optFns (the SDK
// middleware MetricUsage installs).
type plannedCloudWatch struct {
	t       *testing.T
	pages   []pagePlan
	calls   []served
	queries map[string]string // query id -> instance id, from the first call
	token   *string           // the NextToken the next call must send
	after   pageCursor
}

// pageCursor serves a planned page chain as a server would: a call without a token gets
// the first page, a call with a token the page that followed that token when it was
// first served. A chain that repeats a token so loops, unless the caller stops it.
type pageCursor map[string]int

// page returns the index of the page to serve for token (len(pages) or more: none).
func (c *pageCursor) page(t *testing.T, token *string) int {
	if aws.ToString(token) == "" {
		return 0
	}
	i, ok := (*c)[*token]
	if !ok {
		t.Fatalf("NextToken %q was never served", *token)
	}
	return i
}

// served notes that the page at index i carried token.
func (c *pageCursor) served(i int, token *string) {
	if *c == nil {
		*c = pageCursor{}
	}
	if tok := aws.ToString(token); tok != "" {
		if _, ok := (*c)[tok]; !ok {
			(*c)[tok] = i + 1
		}
	}
}

func (f *plannedCloudWatch) GetMetricData(_ context.Context, in *cloudwatch.GetMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	t := f.t
	if len(f.calls) > len(f.pages)+1 {
		t.Fatalf("%d GetMetricData calls for %d pages: the page chain does not end", len(f.calls), len(f.pages))
	}
	if aws.ToString(in.NextToken) != aws.ToString(f.token) {
		t.Errorf("call %d sent NextToken %q, want %q", len(f.calls)+1, aws.ToString(in.NextToken), aws.ToString(f.token))
	}
	queries := map[string]string{}
	var ids []string
	for _, q := range in.MetricDataQueries {
		ms := q.MetricStat
		if ms == nil || ms.Metric == nil || len(ms.Metric.Dimensions) != 1 || aws.ToString(ms.Stat) != "Sum" ||
			aws.ToString(ms.Metric.MetricName) != "MetadataNoToken" || aws.ToString(ms.Metric.Namespace) != "AWS/EC2" {
			t.Fatalf("query %+v is not a MetadataNoToken Sum for one instance", q)
		}
		queries[aws.ToString(q.Id)] = aws.ToString(ms.Metric.Dimensions[0].Value)
		ids = append(ids, aws.ToString(q.Id))
	}
	if len(queries) != len(in.MetricDataQueries) {
		t.Fatalf("repeated query ids in %v", ids)
	}
	if f.queries == nil {
		f.queries = queries
	} else if fmt.Sprint(queries) != fmt.Sprint(f.queries) {
		t.Fatalf("the queries changed between pages: %v, then %v", f.queries, queries)
	}
	index := f.after.page(t, in.NextToken)
	answer := func(s served) (*cloudwatch.GetMetricDataOutput, error) {
		f.calls = append(f.calls, s)
		if s.out != nil {
			f.token = s.out.NextToken
			f.after.served(index, s.out.NextToken)
		}
		return s.out, s.err
	}
	if index >= len(f.pages) {
		return answer(served{err: errors.New("no such page")})
	}
	pg := f.pages[index]
	switch {
	case pg.err:
		return answer(served{err: errors.New("ThrottlingException: rate exceeded")})
	case pg.nilOut:
		return answer(served{})
	}
	out := &cloudwatch.GetMetricDataOutput{NextToken: pg.token}
	if !pg.nilRes {
		out.MetricDataResults = []cwtypes.MetricDataResult{}
	}
	for _, rp := range pg.results {
		var id *string
		switch n := len(ids); {
		case rp.query < n:
			id = aws.String(ids[rp.query])
		case rp.query == n:
			id = aws.String("unknown")
		case rp.query == n+1:
			id = aws.String("")
		case rp.query == n+2:
		default:
			id = aws.String(strings.ToUpper(ids[0]))
		}
		out.MetricDataResults = append(out.MetricDataResults, cwtypes.MetricDataResult{
			Id: id, StatusCode: rp.status, Timestamps: rp.stamps, Values: rp.values, Label: aws.String("MetadataNoToken")})
	}
	return answer(served{out: out})
}

// expectUsage is what the pages served say, read by the rules of DESIGN.md section 3: a
// reply is evidence only when complete; a bucket without a datapoint is not observed.
func expectUsage(ids []string, queries map[string]string, calls []served) (usage map[string]policy.MetricUsage, failed map[string]string) {
	usage, failed = map[string]policy.MetricUsage{}, map[string]string{}
	fail := func(why string) (map[string]policy.MetricUsage, map[string]string) {
		for _, id := range ids {
			failed[id] = why
		}
		return map[string]policy.MetricUsage{}, failed
	}
	status := map[string]cwtypes.StatusCode{}
	stamps := map[string]map[time.Time]bool{}
	repeated := map[string]bool{}
	tokens := map[string]bool{}
	ended := false
	for _, c := range calls {
		if c.err != nil || c.out == nil || c.out.MetricDataResults == nil {
			return fail("a call failed or its reply has no results")
		}
		for _, r := range c.out.MetricDataResults {
			if aws.ToString(r.Id) == "" || len(r.Timestamps) != len(r.Values) {
				return fail("a result without an id, or whose timestamps and values do not pair up")
			}
			for _, v := range r.Values {
				if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					return fail(fmt.Sprintf("the value %g is not a count", v))
				}
			}
		}
		for _, r := range c.out.MetricDataResults {
			id, ok := queries[aws.ToString(r.Id)]
			if !ok {
				return fail("an answer to an unknown query")
			}
			status[id] = r.StatusCode
			u := usage[id]
			if stamps[id] == nil {
				stamps[id] = map[time.Time]bool{}
			}
			for i, ts := range r.Timestamps {
				ts = ts.UTC()
				repeated[id] = repeated[id] || stamps[id][ts]
				stamps[id][ts] = true
				u.Sum += r.Values[i]
				u.ObservedHours++
				if u.LastDatapoint == nil || ts.After(*u.LastDatapoint) {
					u.LastDatapoint = &ts
				}
				if r.Values[i] > 0 && (u.LastNonZero == nil || ts.After(*u.LastNonZero)) {
					u.LastNonZero = &ts
				}
			}
			usage[id] = u
		}
		tok := aws.ToString(c.out.NextToken)
		if tok == "" {
			ended = true
			break
		}
		if tokens[tok] {
			return fail("a repeated NextToken")
		}
		tokens[tok] = true
	}
	if !ended {
		return fail("the page chain did not end")
	}
	for _, id := range ids {
		switch {
		case status[id] != cwtypes.StatusCodeComplete:
			failed[id] = fmt.Sprintf("status %q at the end of the chain", status[id])
		case repeated[id]:
			failed[id] = "a bucket answered twice"
		}
		if failed[id] != "" {
			delete(usage, id)
		}
	}
	return usage, failed
}

// FuzzMetricUsagePages answers MetricUsage's GetMetricData calls with fuzzed pages (query
// ids, statuses, timestamps, values, next tokens): it never panics or loops; every
// instance asked about gets usage or an error, never both; usage only from a complete
// answer of finite counts, and then exactly the sum and the number of the buckets
// answered.
func FuzzMetricUsagePages(f *testing.F) {
	// The bytes, zeros meaning the common case: the number of instances and which they
	// are; the number of pages; per page its kind (21 fails, 22 nil, 23 no results), its
	// results (count; per result the query, status, points (count, then hour and value of
	// each) and damage (30 one value more, 31 one less)) and its token (4 and 5 fixed, 6 a
	// fresh one).
	for _, seed := range [][]byte{
		{0, 0, 0, 0, 1, 0, 0, 3, 0, 1, 1, 2, 2, 0, 0, 0},                                                       // one instance, one complete page
		{1, 0, 1, 1, 0, 2, 0, 2, 2, 0, 1, 1, 1, 0, 1, 0, 1, 3, 5, 0, 4, 0, 2, 0, 0, 1, 5, 1, 0, 1, 0, 0, 0, 0}, // partial, then complete on page 2
		{0, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 4, 0, 1, 0, 0, 1, 1, 1, 0, 4},                                        // a repeated token
		{0, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 6, 0, 1, 0, 0, 1, 1, 1, 0, 0},                                        // two pages, fresh token
		{0, 0, 0, 0, 1, 0, 0, 1, 0, 11, 0, 0},                                                                  // NaN
		{0, 0, 0, 0, 1, 0, 0, 1, 0, 10, 0, 0},                                                                  // negative
		{0, 0, 0, 0, 1, 0, 0, 1, 0, 12, 0, 0},                                                                  // +Inf
		{0, 0, 0, 0, 1, 0, 0, 1, 0, 14, 0, 0},                                                                  // -0
		{0, 0, 0, 0, 1, 0, 0, 2, 0, 16, 1, 17, 0, 0},                                                           // finite values that sum to +Inf
		{0, 0, 0, 0, 1, 0, 0, 2, 1, 1, 1, 1, 0, 0},                                                             // one bucket twice
		{0, 0, 1, 0, 1, 0, 2, 1, 1, 1, 0, 6, 0, 1, 0, 0, 1, 1, 1, 0, 0},                                        // one bucket on two pages
		{1, 0, 0, 0, 0, 2, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0},                                              // one instance asked about twice
		{0, 0, 0, 0, 1, 1, 0, 0, 0, 0},                                                                         // an unknown query id
		{0, 0, 0, 0, 1, 2, 0, 0, 0, 0},                                                                         // an empty query id
		{0, 0, 0, 0, 1, 3, 0, 0, 0, 0},                                                                         // a nil query id
		{0, 0, 0, 0, 1, 4, 0, 0, 0, 0},                                                                         // the query id upper-cased
		{0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 30, 0},                                                                  // a value more than timestamps
		{0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 31, 0},                                                                  // a value less
		{0, 0, 0, 0, 0, 0},                                                                                     // no answer for the query
		{0, 0, 0, 0, 1, 0, 0, 0, 0, 4},                                                                         // a token, then the pages run out
		{0, 0, 0, 0, 1, 0, 0, 0, 0, 3},                                                                         // an empty token ends the chain
		{0, 0, 0, 22, 0, 0},                                                                                    // a nil output
		{0, 0, 0, 23, 0, 0},                                                                                    // no MetricDataResults
		{0, 0, 0, 21, 0, 0},                                                                                    // the call fails
		{0, 0, 0, 0, 1, 0, 3, 0, 0, 0},                                                                         // status InternalError
		{0, 0, 0, 0, 1, 0, 5, 0, 0, 0},
		{0, 0, 0, 0, 1, 0, 2, 1, 0, 0, 0, 0}, // PartialData at the end of the chain                                                                         // status ""
		{3, 0, 1, 2, 3, 0, 0, 4, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1, 1, 0, 2, 0, 1, 2, 2, 0, 3, 0, 1, 3, 3, 0, 0}, // four instances
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ids, pages := planPages(data)
		api := &plannedCloudWatch{t: t, pages: pages}
		usage, errs := evidence.MetricUsage(context.Background(), api, ids, 24*time.Hour, metricNow)
		unique := map[string]bool{}
		for _, id := range ids {
			unique[id] = true
		}
		if len(api.queries) != len(unique) {
			t.Errorf("%d queries for the %d instances %v: %v", len(api.queries), len(unique), ids, api.queries)
		}
		for _, id := range ids {
			_, hasUsage := usage[id]
			if hasUsage == (errs[id] != nil) {
				t.Fatalf("%s: usage %v and error %v, want exactly one", id, hasUsage, errs[id])
			}
		}
		if len(usage)+len(errs) != len(unique) {
			t.Fatalf("answers for %d instances, asked about %d: %v %v", len(usage)+len(errs), len(unique), usage, errs)
		}
		wantUsage, wantFailed := expectUsage(ids, api.queries, api.calls)
		for id := range unique {
			got, ok := usage[id]
			if why := wantFailed[id]; why != "" {
				if ok {
					t.Fatalf("%s has usage %s although %s", id, usageString(got), why)
				}
				if !strings.Contains(errs[id].Error(), "cloudwatch:GetMetricData") {
					t.Errorf("%s: error %q does not name the call", id, errs[id])
				}
				continue
			}
			if !ok {
				t.Fatalf("%s: error %v for a complete answer", id, errs[id])
			}
			want := wantUsage[id]
			if !sameUsage(got, want) && !(math.IsNaN(got.Sum) && math.IsNaN(want.Sum)) {
				t.Fatalf("%s: usage %s, want %s", id, usageString(got), usageString(want))
			}
			if got.Sum < 0 || got.ObservedHours < 0 || math.IsNaN(got.Sum) {
				t.Fatalf("%s: usage %s is not a count", id, usageString(got))
			}
		}
	})
}

// TestMetricUsageCountsEachBucketOnce: an hour is observed once however often a reply
// answers it. Before, MetricUsage sent one query per id it was given, so an instance
// named twice had its buckets added up twice, and it counted every datapoint of a reply
// as an observed hour, so a reply that repeated a bucket counted it twice: either way 84
// hours of data could pass for the 168 observed hours the guard wants before it enforces.
func TestMetricUsageCountsEachBucketOnce(t *testing.T) {
	hour := metricNow.Truncate(time.Hour)
	h := func(n int) time.Time { return hour.Add(-time.Duration(n) * time.Hour) }
	a, b := "i-0a1b2c3d4e5f60718", "i-1a2b3c4d"
	complete := func(query int, stamps ...time.Time) resultPlan {
		values := make([]float64, len(stamps))
		return resultPlan{query: query, status: cwtypes.StatusCodeComplete, stamps: stamps, values: values}
	}
	t.Run("an instance named twice is asked about once", func(t *testing.T) {
		api := &plannedCloudWatch{t: t, pages: []pagePlan{{results: []resultPlan{complete(0, h(0), h(1), h(2))}}}}
		usage, errs := evidence.MetricUsage(context.Background(), api, []string{a, a}, 24*time.Hour, metricNow)
		if len(api.queries) != 1 || len(errs) != 0 || usage[a].ObservedHours != 3 {
			t.Errorf("queries %v, usage %v, errors %v; want one query and 3 observed hours", api.queries, usage, errs)
		}
	})
	for _, tc := range []struct {
		name  string
		pages []pagePlan
	}{
		{"twice in one result", []pagePlan{{results: []resultPlan{complete(0, h(0), h(1), h(1)), complete(1, h(1))}}}},
		{"in two results", []pagePlan{{results: []resultPlan{complete(0, h(0)), complete(1, h(1)), complete(0, h(0))}}}},
		{"on two pages", []pagePlan{
			{results: []resultPlan{complete(0, h(0), h(1)), complete(1, h(1))}, token: aws.String("t1")},
			{results: []resultPlan{complete(0, h(1).In(time.FixedZone("X", 3600)))}}}},
	} {
		t.Run("a bucket answered "+tc.name, func(t *testing.T) {
			api := &plannedCloudWatch{t: t, pages: tc.pages}
			usage, errs := evidence.MetricUsage(context.Background(), api, []string{a, b}, 24*time.Hour, metricNow)
			if err := errs[a]; err == nil || !strings.Contains(err.Error(), "is answered twice") {
				t.Errorf("%s: usage %v, error %v; want an error saying a bucket is answered twice", a, usage[a], err)
			}
			if u, ok := usage[b]; !ok || u.ObservedHours != 1 {
				t.Errorf("%s: usage %v, error %v; want 1 observed hour", b, u, errs[b])
			}
		})
	}
}

package fakeaws

import (
	"bytes"
	"compress/gzip"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	smithytime "github.com/aws/smithy-go/time"
)

// CloudWatch is a stand-in for CloudWatch GetMetricData and PutMetricData, indexed so
// that it answers fleet-sized queries (10,000 instances x 336 hourly points) quickly,
// which moto cannot. It speaks AWSQuery exactly as the pinned cloudwatch v1.51.1 client
// sends it (form-encoded POST, Version 2010-08-01, gzip bodies for large puts) and
// answers in the XML that client deserializes.
//
// Deliberate differences from the real service: PutMetricData accepts the reserved
// "AWS/" namespaces (tests must seed AWS/EC2 MetadataNoToken) and any timestamp age;
// GetMetricData serves MetricStat queries only (no metric math or Metrics Insights)
// and the statistics Sum, Average, Minimum, Maximum and SampleCount.
//
// It is safe for concurrent use.
type CloudWatch struct {
	URL string

	server *loopbackServer
	store  *metricStore
	faults faults[CloudWatchRequest]

	mu            sync.Mutex
	requests      map[string]int
	maxDatapoints int
}

// CloudWatchRequest is a decoded CloudWatch request, as handed to a fault function.
type CloudWatchRequest struct {
	Action string     // "GetMetricData", "PutMetricData", ...
	N      int        // 1-based number of this request among those with the same Action
	Form   url.Values // the decoded form, e.g. Form.Get("NextToken")
}

// Errors a test can inject with FailNext or SetFault, as the real service sends them.
// Neither is modelled, so the SDK surfaces them as smithy.APIError with this ErrorCode().
var (
	CloudWatchThrottling   = APIError{Code: "Throttling", Message: "Rate exceeded", Status: http.StatusBadRequest}
	CloudWatchAccessDenied = APIError{Code: "AccessDenied", Message: "User is not authorized to perform: cloudwatch:GetMetricData", Status: http.StatusForbidden}
)

// Limits of GetMetricData and PutMetricData, as documented for the real service.
const (
	MaxMetricDataQueries = 500
	DefaultMaxDatapoints = 100800
	maxPutMetricData     = 1000
	maxPutValues         = 150
	maxDimensions        = 30
	maxQueryBody         = 8 << 20 // 500 queries with long dimension values fit
	cloudWatchXMLNS      = "http://monitoring.amazonaws.com/doc/2010-08-01/"
)

// NewCloudWatch starts a CloudWatch stand-in on a loopback port. Close it when done.
func NewCloudWatch() *CloudWatch {
	c := &CloudWatch{store: newMetricStore(), requests: map[string]int{}, maxDatapoints: DefaultMaxDatapoints}
	c.server = startLoopback(http.HandlerFunc(c.serveHTTP))
	c.URL = c.server.url
	return c
}

// Close stops the server.
func (c *CloudWatch) Close() { c.server.close() }

// SetMaxDatapoints changes how many datapoints one GetMetricData response may hold
// before it pages with NextToken (DefaultMaxDatapoints, as the real service), so that a
// test can exercise paging with a small series. A request's own MaxDatapoints can only
// lower it further.
func (c *CloudWatch) SetMaxDatapoints(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.maxDatapoints = n
}

// Put stores one datapoint directly, bypassing HTTP; for seeding benchmarks quickly.
func (c *CloudWatch) Put(namespace, metric string, dims map[string]string, t time.Time, v float64) {
	c.PutPoints(namespace, metric, dims, []Point{{Time: t, Value: v}})
}

// PutPoints stores a series of datapoints of one metric directly, bypassing HTTP.
func (c *CloudWatch) PutPoints(namespace, metric string, dims map[string]string, pts []Point) {
	ds := make([]dimension, 0, len(dims))
	for k, val := range dims {
		ds = append(ds, dimension{k, val})
	}
	ps := make([]point, len(pts))
	for i, p := range pts {
		ps[i] = point{ms: p.Time.UnixMilli(), sum: p.Value, min: p.Value, max: p.Value, n: 1}
	}
	c.store.add(metricKey(namespace, metric, ds), "", ps...)
}

// FailNext makes the next n requests (of any action) fail with e.
func (c *CloudWatch) FailNext(n int, e APIError) { c.faults.failNext(n, e) }

// SetFault installs fn to decide, per request, whether to fail it (non-nil) or serve it
// (nil). It runs after FailNext's queue is empty. nil removes it.
func (c *CloudWatch) SetFault(fn func(CloudWatchRequest) *APIError) { c.faults.set(fn) }

// ClearFaults removes the FailNext queue and the SetFault function.
func (c *CloudWatch) ClearFaults() { c.faults.clear() }

// Requests returns how many requests with this Action arrived, including failed ones.
func (c *CloudWatch) Requests(action string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests[action]
}

// Reset drops all datapoints, counters and faults, and restores the datapoint limit.
func (c *CloudWatch) Reset() {
	c.faults.clear()
	c.store.reset()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests, c.maxDatapoints = map[string]int{}, DefaultMaxDatapoints
}

func (c *CloudWatch) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeQueryError(w, &APIError{Code: "InvalidAction", Status: http.StatusBadRequest,
			Message: "the stand-in accepts form-encoded POST requests only"})
		return
	}
	if !signedV4(r) {
		writeQueryError(w, &APIError{Code: "MissingAuthenticationToken", Status: http.StatusForbidden,
			Message: "Request is missing Authentication Token"})
		return
	}
	form, err := readForm(r)
	if err != nil {
		writeQueryError(w, err)
		return
	}
	action := form.Get("Action")
	c.mu.Lock()
	c.requests[action]++
	n := c.requests[action]
	limit := c.maxDatapoints
	c.mu.Unlock()

	if fault := c.faults.pick(CloudWatchRequest{Action: action, N: n, Form: form}); fault != nil {
		writeQueryError(w, fault)
		return
	}
	if v := form.Get("Version"); v != "2010-08-01" {
		writeQueryError(w, &APIError{Code: "InvalidAction",
			Message: fmt.Sprintf("Could not find operation %s for version %s", action, v)})
		return
	}
	var body []byte
	var apiErr *APIError
	switch action {
	case "GetMetricData":
		body, apiErr = c.getMetricData(form, limit)
	case "PutMetricData":
		body, apiErr = c.putMetricData(form)
	default:
		apiErr = &APIError{Code: "InvalidAction", Message: fmt.Sprintf("Could not find operation %s for version 2010-08-01", action)}
	}
	if apiErr != nil {
		writeQueryError(w, apiErr)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write(body)
}

// readForm decodes the form body, gunzipping it first when the SDK compressed it
// (PutMetricData bodies over 10 KiB are sent with Content-Encoding: gzip).
func readForm(r *http.Request) (url.Values, *APIError) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return nil, &APIError{Code: "InvalidAction", Message: fmt.Sprintf("Content-Type %q is not a form", ct)}
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, &APIError{Code: "InvalidParameterValue", Message: "bad gzip body: " + err.Error()}
		}
		defer zr.Close()
		body = zr
	}
	raw, err := io.ReadAll(io.LimitReader(body, maxQueryBody+1))
	if err != nil {
		return nil, &APIError{Code: "InvalidParameterValue", Message: "cannot read body: " + err.Error()}
	}
	if len(raw) > maxQueryBody {
		return nil, &APIError{Code: "RequestEntityTooLarge", Status: http.StatusRequestEntityTooLarge, Message: "request body too large"}
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, &APIError{Code: "MalformedQueryString", Message: err.Error()}
	}
	return form, nil
}

// members splits the AWSQuery list at prefix ("MetricDataQueries." for keys such as
// "MetricDataQueries.member.3.Id") into its members ordered by index, each as a form of
// the keys below it ("Id"). A scalar list member's value is under the key "".
func members(form url.Values, prefix string) ([]url.Values, *APIError) {
	prefix += "member."
	byIndex := map[int]url.Values{}
	for k, v := range form {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		idx, sub, _ := strings.Cut(rest, ".")
		i, err := strconv.Atoi(idx)
		if err != nil || i < 1 {
			return nil, &APIError{Code: "MalformedQueryString", Message: fmt.Sprintf("bad list index in %s", k)}
		}
		if byIndex[i] == nil {
			byIndex[i] = url.Values{}
		}
		byIndex[i][sub] = v
	}
	idxs := make([]int, 0, len(byIndex))
	for i := range byIndex {
		idxs = append(idxs, i)
	}
	sort.Ints(idxs)
	out := make([]url.Values, len(idxs))
	for j, i := range idxs {
		out[j] = byIndex[i]
	}
	return out, nil
}

// subForm returns the keys of form below prefix ("MetricStat.") with the prefix removed.
func subForm(form url.Values, prefix string) url.Values {
	out := url.Values{}
	for k, v := range form {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			out[rest] = v
		}
	}
	return out
}

func parseDimensions(form url.Values, param string) ([]dimension, *APIError) {
	ms, err := members(form, "Dimensions.")
	if err != nil {
		return nil, err
	}
	if len(ms) > maxDimensions {
		return nil, invalidValue(param+".Dimensions", fmt.Sprintf("must not have more than %d members", maxDimensions))
	}
	dims := make([]dimension, 0, len(ms))
	seen := map[string]bool{}
	for i, m := range ms {
		d := dimension{m.Get("Name"), m.Get("Value")}
		p := fmt.Sprintf("%s.Dimensions.member.%d", param, i+1)
		if d.Name == "" || d.Value == "" {
			return nil, &APIError{Code: "InvalidParameterValue", Message: "The parameter " + p + " must have a Name and a Value."}
		}
		if seen[d.Name] {
			return nil, &APIError{Code: "InvalidParameterCombination", Message: "No metric may have duplicate dimension names: " + d.Name}
		}
		seen[d.Name] = true
		dims = append(dims, d)
	}
	return dims, nil
}

func invalidValue(param, why string) *APIError {
	return &APIError{Code: "InvalidParameterValue", Message: fmt.Sprintf("The parameter %s %s.", param, why)}
}

func validationError(format string, a ...any) *APIError {
	return &APIError{Code: "ValidationError", Message: fmt.Sprintf(format, a...)}
}

// ---- GetMetricData ----

// queryIDPattern is the documented form of MetricDataQuery.Id: a lower-case letter
// first, then letters, digits and underscores. Instance IDs ("i-0abc") are not valid.
var queryIDPattern = regexp.MustCompile(`^[a-z][a-zA-Z0-9_]{0,254}$`)

type metricQuery struct {
	id, label  string
	returnData bool
	key        string
	unit       string
	period     time.Duration
	stat       func(point) float64
}

func parseQueries(form url.Values) ([]metricQuery, *APIError) {
	ms, apiErr := members(form, "MetricDataQueries.")
	if apiErr != nil {
		return nil, apiErr
	}
	if len(ms) == 0 {
		return nil, &APIError{Code: "MissingParameter", Message: "The parameter MetricDataQueries is required."}
	}
	if len(ms) > MaxMetricDataQueries {
		return nil, validationError("The collection MetricDataQueries must not have a size greater than %d.", MaxMetricDataQueries)
	}
	qs := make([]metricQuery, 0, len(ms))
	ids := make(map[string]bool, len(ms))
	for i, m := range ms {
		p := fmt.Sprintf("MetricDataQueries.member.%d", i+1)
		q := metricQuery{id: m.Get("Id"), label: m.Get("Label"), returnData: m.Get("ReturnData") != "false"}
		if !queryIDPattern.MatchString(q.id) {
			return nil, validationError("The value %s for parameter %s.Id is invalid: it must start with a lowercase letter and contain only letters, numbers and underscores.", q.id, p)
		}
		if ids[q.id] {
			return nil, validationError("The value %s for parameter %s.Id is a duplicate: Ids must be unique.", q.id, p)
		}
		ids[q.id] = true
		if m.Get("Expression") != "" {
			return nil, validationError("%s.Expression: the stand-in serves MetricStat queries only", p)
		}
		stat := subForm(m, "MetricStat.")
		if len(stat) == 0 {
			return nil, validationError("The parameter %s.MetricStat is required.\n", p)
		}
		metric := subForm(stat, "Metric.")
		ns, name := metric.Get("Namespace"), metric.Get("MetricName")
		if ns == "" || name == "" {
			return nil, &APIError{Code: "MissingParameter", Message: fmt.Sprintf("The parameters %s.MetricStat.Metric.Namespace and MetricName are required.", p)}
		}
		dims, apiErr := parseDimensions(metric, p+".MetricStat.Metric")
		if apiErr != nil {
			return nil, apiErr
		}
		q.key = metricKey(ns, name, dims)
		q.unit = stat.Get("Unit")
		period, err := strconv.Atoi(stat.Get("Period"))
		if err != nil || !validPeriod(period) {
			return nil, invalidValue(p+".MetricStat.Period", "must be 1, 5, 10, 20, 30 or a multiple of 60")
		}
		q.period = time.Duration(period) * time.Second
		st := stat.Get("Stat")
		if q.stat = statistics[st]; q.stat == nil {
			return nil, invalidValue(p+".MetricStat.Stat", fmt.Sprintf("%q is not one of Sum, Average, Minimum, Maximum, SampleCount (the stand-in's set)", st))
		}
		if q.label == "" {
			q.label = name // the real service's default label is the metric name
		}
		qs = append(qs, q)
	}
	return qs, nil
}

func validPeriod(p int) bool {
	switch p {
	case 1, 5, 10, 20, 30:
		return true
	}
	return p > 0 && p%60 == 0
}

// roundStart rounds StartTime down the way CloudWatch documents: to the minute when it
// is less than 15 days ago, to 5 minutes up to 63 days ago, to the hour before that.
// Buckets then start at the rounded StartTime and are Period long.
func roundStart(t, now time.Time) time.Time {
	switch age := now.Sub(t); {
	case age < 15*24*time.Hour:
		return t.Truncate(time.Minute)
	case age < 63*24*time.Hour:
		return t.Truncate(5 * time.Minute)
	default:
		return t.Truncate(time.Hour)
	}
}

type queryResult struct {
	q       *metricQuery
	buckets []bucket
}

func (c *CloudWatch) getMetricData(form url.Values, limit int) ([]byte, *APIError) {
	qs, apiErr := parseQueries(form)
	if apiErr != nil {
		return nil, apiErr
	}
	start, err1 := smithytime.ParseDateTime(form.Get("StartTime"))
	end, err2 := smithytime.ParseDateTime(form.Get("EndTime"))
	if err1 != nil || err2 != nil {
		return nil, &APIError{Code: "MissingParameter", Message: "The parameters StartTime and EndTime are required ISO 8601 timestamps."}
	}
	if !start.Before(end) {
		return nil, validationError("The parameter StartTime must be less than the parameter EndTime.")
	}
	start = roundStart(start, time.Now())
	scanBy := form.Get("ScanBy")
	switch scanBy {
	case "":
		scanBy = "TimestampDescending"
	case "TimestampDescending", "TimestampAscending":
	default:
		return nil, validationError("The value %s for parameter ScanBy is invalid.", scanBy)
	}
	if s := form.Get("MaxDatapoints"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, invalidValue("MaxDatapoints", "must be a positive integer")
		}
		limit = min(limit, n)
	}

	// The token is bound to everything but itself and the page size.
	fpForm := url.Values{}
	for k, v := range form {
		if k != "NextToken" && k != "MaxDatapoints" {
			fpForm[k] = v
		}
	}
	fp := fingerprint(fpForm.Encode())
	offset := 0
	if tok := form.Get("NextToken"); tok != "" {
		p, err := decodePageToken(tok, fp)
		if err != nil {
			return nil, &APIError{Code: "InvalidNextToken", Message: "The service returned an invalid or expired NextToken."}
		}
		offset = p.Offset
	}

	results := make([]queryResult, 0, len(qs))
	total := 0
	for i := range qs {
		q := &qs[i]
		if !q.returnData {
			continue // without metric math, a non-returned query has no effect
		}
		bs := c.store.buckets(q.key, q.unit, start, end, q.period)
		if scanBy == "TimestampDescending" {
			slices.Reverse(bs)
		}
		results = append(results, queryResult{q, bs})
		total += len(bs)
	}
	// A page holds the datapoints [offset, offset+limit) of all results laid end to end
	// in query order. Every returned query appears on every page, with the part of its
	// values that falls in the page: PartialData while values of it remain for a later
	// page, Complete once they are all out (including on later pages, with no values).
	pageEnd := min(offset+limit, total)
	var b bytes.Buffer
	b.WriteString(`<GetMetricDataResponse xmlns="` + cloudWatchXMLNS + `"><GetMetricDataResult><MetricDataResults>`)
	pos := 0
	for _, r := range results {
		lo := min(max(offset-pos, 0), len(r.buckets))
		hi := min(max(pageEnd-pos, 0), len(r.buckets))
		status := "Complete"
		if pos+len(r.buckets) > pageEnd {
			status = "PartialData"
		}
		writeResult(&b, r.q, r.buckets[lo:hi], status)
		pos += len(r.buckets)
	}
	b.WriteString(`</MetricDataResults>`)
	if pageEnd < total {
		b.WriteString(`<NextToken>` + pageToken{Request: fp, Offset: pageEnd}.encode() + `</NextToken>`)
	}
	b.WriteString(`<Messages/></GetMetricDataResult>`)
	writeResponseMetadata(&b)
	b.WriteString(`</GetMetricDataResponse>`)
	return b.Bytes(), nil
}

func writeResult(b *bytes.Buffer, q *metricQuery, bs []bucket, status string) {
	b.WriteString(`<member><Id>`)
	xmlText(b, q.id)
	b.WriteString(`</Id><Label>`)
	xmlText(b, q.label)
	b.WriteString(`</Label><StatusCode>` + status + `</StatusCode><Timestamps>`)
	for _, bk := range bs {
		b.WriteString(`<member>`)
		b.WriteString(time.UnixMilli(bk.ms).UTC().Format("2006-01-02T15:04:05.999Z07:00"))
		b.WriteString(`</member>`)
	}
	b.WriteString(`</Timestamps><Values>`)
	for _, bk := range bs {
		b.WriteString(`<member>`)
		b.WriteString(strconv.FormatFloat(q.stat(bk.agg), 'g', -1, 64))
		b.WriteString(`</member>`)
	}
	b.WriteString(`</Values><Messages/></member>`)
}

func xmlText(b *bytes.Buffer, s string) { _ = xml.EscapeText(b, []byte(s)) }

func writeResponseMetadata(b *bytes.Buffer) {
	b.WriteString(`<ResponseMetadata><RequestId>` + newUUID() + `</RequestId></ResponseMetadata>`)
}

// writeQueryError renders e as an AWSQuery error response.
func writeQueryError(w http.ResponseWriter, e *APIError) {
	var b bytes.Buffer
	typ := "Sender"
	if e.status() >= 500 {
		typ = "Receiver"
	}
	b.WriteString(`<ErrorResponse xmlns="` + cloudWatchXMLNS + `"><Error><Type>` + typ + `</Type><Code>`)
	xmlText(&b, e.Code)
	b.WriteString(`</Code><Message>`)
	xmlText(&b, e.Message)
	b.WriteString(`</Message></Error><RequestId>` + newUUID() + `</RequestId></ErrorResponse>`)
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.status())
	_, _ = w.Write(b.Bytes())
}

// ---- PutMetricData ----

type putDatum struct {
	key, unit string
	p         []point
}

func (c *CloudWatch) putMetricData(form url.Values) ([]byte, *APIError) {
	ns := form.Get("Namespace")
	if ns == "" {
		return nil, &APIError{Code: "MissingParameter", Message: "The parameter Namespace is required."}
	}
	ms, apiErr := members(form, "MetricData.")
	if apiErr != nil {
		return nil, apiErr
	}
	if len(ms) == 0 {
		return nil, &APIError{Code: "MissingParameter", Message: "The parameter MetricData is required."}
	}
	if len(ms) > maxPutMetricData {
		return nil, validationError("The collection MetricData must not have a size greater than %d.", maxPutMetricData)
	}
	now := time.Now()
	// Validate everything before storing anything: a rejected request stores nothing.
	data := make([]putDatum, 0, len(ms))
	for i, m := range ms {
		d, apiErr := parseDatum(ns, m, fmt.Sprintf("MetricData.member.%d", i+1), now)
		if apiErr != nil {
			return nil, apiErr
		}
		data = append(data, d)
	}
	for _, d := range data {
		c.store.add(d.key, d.unit, d.p...)
	}
	var b bytes.Buffer
	b.WriteString(`<PutMetricDataResponse xmlns="` + cloudWatchXMLNS + `">`)
	writeResponseMetadata(&b)
	b.WriteString(`</PutMetricDataResponse>`)
	return b.Bytes(), nil
}

func parseDatum(ns string, m url.Values, p string, now time.Time) (putDatum, *APIError) {
	name := m.Get("MetricName")
	if name == "" {
		return putDatum{}, &APIError{Code: "MissingParameter", Message: "The parameter " + p + ".MetricName is required."}
	}
	dims, apiErr := parseDimensions(m, p)
	if apiErr != nil {
		return putDatum{}, apiErr
	}
	d := putDatum{key: metricKey(ns, name, dims), unit: m.Get("Unit")}
	ts := now
	if s := m.Get("Timestamp"); s != "" {
		t, err := smithytime.ParseDateTime(s)
		if err != nil {
			return putDatum{}, invalidValue(p+".Timestamp", "must be an ISO 8601 timestamp")
		}
		ts = t
	}
	ms := ts.UnixMilli()
	number := func(param, s string) (float64, *APIError) {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, &APIError{Code: "InvalidParameterValue", Message: fmt.Sprintf("The value %s for parameter %s is invalid.", s, param)}
		}
		return v, nil
	}
	values, _ := members(m, "Values.")
	counts, _ := members(m, "Counts.")
	stats := subForm(m, "StatisticValues.")
	switch {
	case len(values) > 0:
		if len(values) > maxPutValues {
			return putDatum{}, invalidValue(p+".Values", fmt.Sprintf("must not have more than %d members", maxPutValues))
		}
		if len(counts) > 0 && len(counts) != len(values) {
			return putDatum{}, &APIError{Code: "InvalidParameterValue", Message: "The parameters " + p + ".Values and " + p + ".Counts must be of the same size."}
		}
		for i, vm := range values {
			v, apiErr := number(fmt.Sprintf("%s.Values.member.%d", p, i+1), vm.Get(""))
			if apiErr != nil {
				return putDatum{}, apiErr
			}
			n := 1.0
			if len(counts) > 0 {
				if n, apiErr = number(fmt.Sprintf("%s.Counts.member.%d", p, i+1), counts[i].Get("")); apiErr != nil {
					return putDatum{}, apiErr
				}
			}
			d.p = append(d.p, point{ms: ms, sum: v * n, min: v, max: v, n: n})
		}
	case len(stats) > 0:
		var agg [4]float64
		for i, k := range []string{"Sum", "Minimum", "Maximum", "SampleCount"} {
			if agg[i], apiErr = number(p+".StatisticValues."+k, stats.Get(k)); apiErr != nil {
				return putDatum{}, apiErr
			}
		}
		d.p = []point{{ms: ms, sum: agg[0], min: agg[1], max: agg[2], n: agg[3]}}
	case m.Has("Value"):
		v, apiErr := number(p+".Value", m.Get("Value"))
		if apiErr != nil {
			return putDatum{}, apiErr
		}
		d.p = []point{{ms: ms, sum: v, min: v, max: v, n: 1}}
	default:
		return putDatum{}, &APIError{Code: "InvalidParameterCombination", Message: "The parameters " + p + ".Value, Values and StatisticValues are mutually exclusive and one is required."}
	}
	return d, nil
}

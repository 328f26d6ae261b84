package fakeaws

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ---- clients ----

// faultConfig is AWSConfig (standard retryer, 3 attempts, backoff capped at 200ms) with
// an HTTP client that gives Go's transport its own copy of the request body, and the
// given overall HTTP timeout (0 for none).
//
// The copy removes a race of the SDK (aws/aws-sdk-go-v2#1825, #2737): smithy-go's
// ClientHandler closes the request body as soon as Do returns, and when the transport's
// write loop has not finished with it yet, the transport closes the connection under
// the reader of a perfectly good reply, which fails with "use of closed network
// connection" (about 1 call in 150 under -race here). The SDK retries that, so with
// the default client the proxy would now and then see one request more than a test
// expects. Replies are handled exactly as with the default client.
//
// The retryer is the SDK's own standard one, without the project's RetryMalformedReplies
// (which AWSConfig adds): these tests document what the SDK itself does with each fault;
// internal/awsapi and internal/evidence test what imdsguard adds.
func faultConfig(timeout time.Duration) aws.Config {
	cfg := AWSConfig(testRegion)
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxBackoff = 200 * time.Millisecond
			o.RateLimiter = ratelimit.None
		})
	}
	cfg.HTTPClient = ownBodyClient{awshttp.NewBuildableClient().WithTimeout(timeout)}
	return cfg
}

type ownBodyClient struct{ next aws.HTTPClient }

func (c ownBodyClient) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return c.next.Do(r)
}

func faultCloudTrail(url string) *cloudtrail.Client {
	return cloudtrail.NewFromConfig(faultConfig(0), func(o *cloudtrail.Options) { o.BaseEndpoint = aws.String(url) })
}

func faultCloudWatch(url string) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(faultConfig(0), func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(url) })
}

// ---- the three protocols the guard's evidence comes through ----

// faultTarget is one operation of one protocol, behind a fault proxy.
type faultTarget struct {
	proto    string // "JSON 1.1", "EC2 query", "AWSQuery"
	op       string // the proxy's operation key
	upstream string
	// call makes the SDK call through url and summarises the answer.
	call func(ctx context.Context, cfg aws.Config, url string) (faultAnswer, error)
	// clean is the answer without faults.
	clean faultAnswer
}

// faultAnswer is what a caller gets: the data, and whether the result list was nil.
type faultAnswer struct {
	data string // the event IDs, instance IDs or datapoints, in order
	null bool   // Events / Reservations / MetricDataResults is nil
}

// faultTargets starts the upstreams with known data: moto with two instances (EC2
// DescribeInstances), the CloudTrail stand-in with five events (LookupEvents) and the
// CloudWatch stand-in with a day of hourly points (GetMetricData).
func faultTargets(t *testing.T) []faultTarget {
	t.Helper()
	m := Moto(t)
	ctx := testContext(t)
	if _, err := SeedInstances(ctx, ec2Client(m.URL), InstanceSpec{Count: 2}); err != nil {
		t.Fatal(err)
	}
	ct := NewCloudTrail()
	t.Cleanup(ct.Close)
	for i := range 5 {
		ct.AddEvent(RoleDeliveryEvent(RoleDelivery{InstanceID: "i-1", Time: ctBase.Add(time.Duration(i) * time.Minute)}))
	}
	cw := NewCloudWatch()
	t.Cleanup(cw.Close)
	end := cwEnd()
	cw.PutPoints(MetadataNoTokenNamespace, MetadataNoTokenMetric, map[string]string{MetadataNoTokenDimension: "i-1"},
		HourlyPoints(end, 24, func(h int) (float64, bool) { return float64(h), true }))

	targets := []faultTarget{
		{proto: "JSON 1.1", op: "cloudtrail:LookupEvents", upstream: ct.URL,
			call: func(ctx context.Context, cfg aws.Config, url string) (faultAnswer, error) {
				out, err := cloudtrail.NewFromConfig(cfg, func(o *cloudtrail.Options) { o.BaseEndpoint = aws.String(url) }).
					LookupEvents(ctx, &cloudtrail.LookupEventsInput{LookupAttributes: byUsername("i-1")})
				if err != nil {
					return faultAnswer{}, err
				}
				var ids []string
				for _, e := range out.Events {
					ids = append(ids, aws.ToString(e.EventId))
				}
				return faultAnswer{strings.Join(ids, ","), out.Events == nil}, nil
			}},
		{proto: "EC2 query", op: "ec2:DescribeInstances", upstream: m.URL,
			call: func(ctx context.Context, cfg aws.Config, url string) (faultAnswer, error) {
				out, err := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(url) }).
					DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
				if err != nil {
					return faultAnswer{}, err
				}
				var ids []string
				for _, r := range out.Reservations {
					for _, i := range r.Instances {
						ids = append(ids, aws.ToString(i.InstanceId)+"/"+string(i.MetadataOptions.HttpTokens))
					}
				}
				slices.Sort(ids)
				return faultAnswer{strings.Join(ids, ","), out.Reservations == nil}, nil
			}},
		{proto: "AWSQuery", op: "cloudwatch:GetMetricData", upstream: cw.URL,
			call: func(ctx context.Context, cfg aws.Config, url string) (faultAnswer, error) {
				out, err := cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(url) }).
					GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
						StartTime: aws.Time(end.Add(-24 * time.Hour)), EndTime: aws.Time(end),
						MetricDataQueries: []cwtypes.MetricDataQuery{noTokenQuery("q1", "i-1", "Sum", 3600)},
					})
				if err != nil {
					return faultAnswer{}, err
				}
				var b strings.Builder
				for _, r := range out.MetricDataResults {
					fmt.Fprintf(&b, "%s %s %v %d;", aws.ToString(r.Id), r.StatusCode, r.Values, len(r.Timestamps))
				}
				return faultAnswer{b.String(), out.MetricDataResults == nil}, nil
			}},
	}
	for i := range targets {
		tg := &targets[i]
		a, err := tg.call(ctx, faultConfig(0), tg.upstream)
		if err != nil || a.data == "" || a.null {
			t.Fatalf("%s without faults: %+v, %v", tg.op, a, err)
		}
		tg.clean = a
	}
	return targets
}

// faultCall makes target's call through p with faultConfig(0) unless cfg is given.
func (tg *faultTarget) faultCall(t *testing.T, p *FaultProxy, cfg ...aws.Config) (faultAnswer, error) {
	t.Helper()
	c := faultConfig(0)
	if len(cfg) > 0 {
		c = cfg[0]
	}
	return tg.call(testContext(t), c, p.URL)
}

// classify names the error the way a caller would tell it apart with errors.As/Is.
func classify(err error) string {
	var de *smithy.DeserializationError
	var ae smithy.APIError
	var se *smithyhttp.RequestSendError
	var ce *smithy.CanceledError
	var xe *xml.SyntaxError
	var je *json.SyntaxError
	var ne *net.OpError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &de) && errors.As(err, &ne):
		return "DeserializationError(*net.OpError)"
	case errors.As(err, &de) && errors.Is(err, io.ErrUnexpectedEOF):
		return "DeserializationError(io.ErrUnexpectedEOF)"
	case errors.As(err, &de) && errors.As(err, &xe):
		return "DeserializationError(*xml.SyntaxError)"
	case errors.As(err, &de) && errors.As(err, &je):
		return "DeserializationError(*json.SyntaxError)"
	case errors.As(err, &de):
		return "DeserializationError(other)"
	case errors.As(err, &ae):
		return "APIError(" + ae.ErrorCode() + ")"
	case errors.As(err, &ce):
		return "CanceledError"
	case errors.As(err, &se):
		return "RequestSendError"
	}
	return fmt.Sprintf("unclassified %T", err)
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return -1
}

func script(kinds ...FaultKind) FaultPlan {
	return FaultPlan{Ops: map[string]OpFaults{"*": {Script: kinds}}}
}

func always(kind FaultKind) FaultPlan {
	return FaultPlan{Ops: map[string]OpFaults{"*": {Probabilities: map[FaultKind]float64{kind: 1}}}}
}

// ---- error replies and transport faults: retried ----

// One throttling error, server error or reset, in any protocol, is retried by the
// standard retryer, and the call returns the clean answer on its second attempt.
func TestFaultProxyTransientFaultsAreRetriedThrough(t *testing.T) {
	for _, tg := range faultTargets(t) {
		for _, kind := range []FaultKind{FaultThrottle, FaultInternalError, FaultUnavailable, FaultReset, FaultResetAfterUpstream} {
			t.Run(tg.proto+"/"+string(kind), func(t *testing.T) {
				p := FaultProxyFor(t, tg.upstream, script(kind))
				got, err := tg.faultCall(t, p)
				if err != nil || got != tg.clean {
					t.Fatalf("got %+v, %v; want the clean answer %+v", got, err, tg.clean)
				}
				if p.Requests(tg.op) != 2 || p.Faults(tg.op, kind) != 1 || p.Faults("", FaultNone) != 1 {
					t.Fatalf("%d requests and %d %s faults (%d in all), want 2 and 1", p.Requests(tg.op), p.Faults(tg.op, kind), kind, p.Faults("", FaultNone))
				}
			})
		}
	}
}

// Three in a row exhaust the standard retryer's 3 attempts; the error says what the
// last attempt got, in the protocol's own codes.
func TestFaultProxyTransientFaultsExhaustRetries(t *testing.T) {
	codes := map[string]map[FaultKind]string{
		"JSON 1.1":  {FaultThrottle: "ThrottlingException", FaultInternalError: "InternalFailure", FaultUnavailable: "ServiceUnavailable"},
		"EC2 query": {FaultThrottle: "RequestLimitExceeded", FaultInternalError: "InternalError", FaultUnavailable: "Unavailable"},
		"AWSQuery":  {FaultThrottle: "Throttling", FaultInternalError: "InternalFailure", FaultUnavailable: "ServiceUnavailable"},
	}
	statuses := map[FaultKind]int{FaultThrottle: 400, FaultInternalError: 500, FaultUnavailable: 503}
	for _, tg := range faultTargets(t) {
		for _, kind := range []FaultKind{FaultThrottle, FaultInternalError, FaultUnavailable, FaultReset} {
			t.Run(tg.proto+"/"+string(kind), func(t *testing.T) {
				p := FaultProxyFor(t, tg.upstream, always(kind))
				_, err := tg.faultCall(t, p)
				var maxAttempts *retry.MaxAttemptsError
				if !errors.As(err, &maxAttempts) || maxAttempts.Attempt != 3 {
					t.Fatalf("error %v, want retry.MaxAttemptsError after 3 attempts", err)
				}
				if p.Requests(tg.op) != 3 {
					t.Fatalf("%d requests, want 3", p.Requests(tg.op))
				}
				if kind == FaultReset {
					var send *smithyhttp.RequestSendError
					var netErr *net.OpError
					if !errors.As(err, &send) || !errors.As(err, &netErr) || !strings.Contains(err.Error(), "connection reset by peer") {
						t.Fatalf("error %v (%s), want a RequestSendError from a connection reset", err, classify(err))
					}
					return
				}
				var apiErr smithy.APIError
				if !errors.As(err, &apiErr) || apiErr.ErrorCode() != codes[tg.proto][kind] || httpStatus(err) != statuses[kind] {
					t.Fatalf("error %v, want API error %s with HTTP %d", err, codes[tg.proto][kind], statuses[kind])
				}
				var generic *smithy.GenericAPIError
				if !errors.As(err, &generic) || apiErr.ErrorMessage() == "" {
					t.Fatalf("error %T %v, want an unmodelled *smithy.GenericAPIError with a message", apiErr, apiErr)
				}
			})
		}
	}
}

// ---- empty and resultless 200s: silently accepted ----

// An empty 200 or a 200 without the result parses as a successful, empty answer in every
// protocol, and is not retried; only an AWSQuery reply without even the <OpResult>
// wrapper is a DeserializationError, also not retried.
func TestFaultProxyResultlessRepliesLookSuccessful(t *testing.T) {
	want := map[string]map[FaultKind]string{
		"JSON 1.1":  {FaultEmpty200: "ok", FaultMissingResult: "ok", FaultBareResponse: "ok"},
		"EC2 query": {FaultEmpty200: "ok", FaultMissingResult: "ok", FaultBareResponse: "ok"},
		"AWSQuery":  {FaultEmpty200: "ok", FaultMissingResult: "ok", FaultBareResponse: "DeserializationError(other)"},
	}
	for _, tg := range faultTargets(t) {
		for _, kind := range []FaultKind{FaultEmpty200, FaultMissingResult, FaultBareResponse} {
			t.Run(tg.proto+"/"+string(kind), func(t *testing.T) {
				p := FaultProxyFor(t, tg.upstream, script(kind))
				got, err := tg.faultCall(t, p)
				if c := classify(err); c != want[tg.proto][kind] {
					t.Fatalf("%s: %v, want %s", c, err, want[tg.proto][kind])
				}
				if err == nil && (got != faultAnswer{null: true}) {
					t.Fatalf("answer %+v, want no data and a nil result list", got)
				}
				if err != nil && (httpStatus(err) != 200 || retry.NewStandard().IsErrorRetryable(err)) {
					t.Fatalf("error %v: HTTP %d, retryable %v; want HTTP 200, not retryable", err, httpStatus(err), retry.NewStandard().IsErrorRetryable(err))
				}
				if p.Requests(tg.op) != 1 {
					t.Fatalf("%d requests, want 1 (not retried)", p.Requests(tg.op))
				}
			})
		}
	}
}

// ---- truncated and garbled bodies ----

// For many seeded cut and garble points, each call either returns the complete clean
// answer (never partial data) or fails with a smithy.DeserializationError at HTTP 200.
// Whether the retryers retry it depends on what is inside: a *net.OpError (the
// connection was reset mid-body) is retried as a connection error; a syntax error or
// io.ErrUnexpectedEOF (the connection was closed mid-body) is not. JSON and EC2
// decoders read the whole document, so a truncated or garbled one is always an error;
// the AWSQuery decoder stops after <OpResult>, so damage in <ResponseMetadata> goes
// unnoticed.
func TestFaultProxyMalformedBodies(t *testing.T) {
	const (
		calls   = 25
		ok      = "ok"
		eof     = "DeserializationError(io.ErrUnexpectedEOF)"
		netOp   = "DeserializationError(*net.OpError)"
		xmlErr  = "DeserializationError(*xml.SyntaxError)"
		jsonErr = "DeserializationError(*json.SyntaxError)"
		other   = "DeserializationError(other)"
		send    = "RequestSendError"
	)
	// The outcomes each protocol and fault may give. ok after a truncation: the cut
	// spared everything the decoder reads (the trailing newline of JSON, the
	// <ResponseMetadata> of AWSQuery). send after truncate-reset: the RST can discard
	// the headers before the client reads them.
	outcomes := map[string]map[FaultKind][]string{
		"JSON 1.1": {
			FaultTruncate: {eof}, FaultTruncateEOF: {eof, ok}, FaultTruncateReset: {netOp, ok, send},
			FaultGarble: {jsonErr},
		},
		"EC2 query": {
			FaultTruncate: {xmlErr}, FaultTruncateEOF: {eof, ok}, FaultTruncateReset: {netOp, ok, send},
			FaultGarble: {xmlErr, other}, // other: a garbled XML declaration
		},
		"AWSQuery": {
			FaultTruncate: {xmlErr, ok}, FaultTruncateEOF: {eof, ok}, FaultTruncateReset: {netOp, ok, send},
			FaultGarble: {xmlErr, ok},
		},
	}
	adaptive := retry.NewAdaptiveMode()
	standard := retry.NewStandard()
	for _, tg := range faultTargets(t) {
		for _, kind := range []FaultKind{FaultTruncate, FaultTruncateEOF, FaultTruncateReset, FaultGarble} {
			t.Run(tg.proto+"/"+string(kind), func(t *testing.T) {
				p := FaultProxyFor(t, tg.upstream, FaultPlan{Seed: 7, Ops: map[string]OpFaults{tg.op: {Probabilities: map[FaultKind]float64{kind: 1}}}})
				seen := map[string]int{}
				for range calls {
					got, err := tg.faultCall(t, p)
					c := classify(err)
					seen[c]++
					if !slices.Contains(outcomes[tg.proto][kind], c) {
						t.Fatalf("%s: %v, want one of %v", c, err, outcomes[tg.proto][kind])
					}
					if err == nil {
						if got != tg.clean {
							t.Fatalf("partial answer %+v, want the clean %+v", got, tg.clean)
						}
						continue
					}
					retryable := c == netOp || c == send
					wantStatus := 200
					if c == send {
						wantStatus = 0 // no response was read
					}
					if httpStatus(err) != wantStatus || standard.IsErrorRetryable(err) != retryable || adaptive.IsErrorRetryable(err) != retryable {
						t.Fatalf("%v: HTTP %d, retryable by standard %v, adaptive %v; want HTTP %d, retryable %v",
							err, httpStatus(err), standard.IsErrorRetryable(err), adaptive.IsErrorRetryable(err), wantStatus, retryable)
					}
					var maxAttempts *retry.MaxAttemptsError
					if retryable != errors.As(err, &maxAttempts) {
						t.Fatalf("%v: retried to the limit %v, want %v", err, !retryable, retryable)
					}
				}
				retries := 0
				for _, e := range p.Events() {
					if e.Attempt > 1 {
						retries++
					}
				}
				switch {
				case p.Requests(tg.op) != calls+retries:
					t.Fatalf("%d requests, %d calls and %d retries", p.Requests(tg.op), calls, retries)
				case kind != FaultTruncateReset && retries != 0:
					t.Fatalf("%d retries, want none", retries)
				case kind == FaultTruncateReset && retries < (seen[netOp]+seen[send])*2:
					t.Fatalf("%d retries for %d calls failing with a reset, want 2 each", retries, seen[netOp]+seen[send])
				case seen[ok] == calls:
					t.Fatal("no call failed")
				}
				t.Logf("%d calls, %d retries: %v", calls, retries, seen)
			})
		}
	}
}

// ---- stall and delay ----

// A stalled request ends with the client's HTTP timeout, which the SDK retries as a
// connection error; it surfaces as context.DeadlineExceeded although the caller's
// context has no deadline. The caller's own deadline is a CanceledError, not retried.
func TestFaultProxyStall(t *testing.T) {
	ct := NewCloudTrail()
	t.Cleanup(ct.Close)
	ct.AddEvent(RoleDeliveryEvent(RoleDelivery{InstanceID: "i-1"}))
	const timeout = 300 * time.Millisecond
	withTimeout := faultConfig(timeout)
	lookup := func(ctx context.Context, cfg aws.Config, p *FaultProxy) (*cloudtrail.LookupEventsOutput, error) {
		return cloudtrail.NewFromConfig(cfg, func(o *cloudtrail.Options) { o.BaseEndpoint = aws.String(p.URL) }).
			LookupEvents(ctx, &cloudtrail.LookupEventsInput{})
	}

	t.Run("once, HTTP timeout: retried through", func(t *testing.T) {
		p := FaultProxyFor(t, ct.URL, script(FaultStall))
		start := time.Now()
		out, err := lookup(testContext(t), withTimeout, p)
		if err != nil || len(out.Events) != 1 {
			t.Fatalf("got %v, %v; want the event", out, err)
		}
		if time.Since(start) < timeout || p.Requests("cloudtrail:LookupEvents") != 2 {
			t.Fatalf("took %v with %d requests, want at least %v and 2", time.Since(start), p.Requests(""), timeout)
		}
	})
	t.Run("always, HTTP timeout: retries exhausted", func(t *testing.T) {
		p := FaultProxyFor(t, ct.URL, always(FaultStall))
		_, err := lookup(testContext(t), withTimeout, p)
		var maxAttempts *retry.MaxAttemptsError
		var send *smithyhttp.RequestSendError
		var netErr net.Error
		if !errors.As(err, &maxAttempts) || !errors.As(err, &send) || !errors.As(err, &netErr) || !netErr.Timeout() ||
			!errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want MaxAttemptsError > RequestSendError > timeout (context.DeadlineExceeded)", err)
		}
		if p.Requests("") != 3 {
			t.Fatalf("%d requests, want 3", p.Requests(""))
		}
	})
	t.Run("caller's deadline: not retried", func(t *testing.T) {
		p := FaultProxyFor(t, ct.URL, always(FaultStall))
		ctx, cancel := context.WithTimeout(testContext(t), timeout)
		defer cancel()
		_, err := lookup(ctx, faultConfig(0), p)
		var canceled *smithy.CanceledError
		if !errors.As(err, &canceled) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want smithy.CanceledError(context.DeadlineExceeded)", err)
		}
		if p.Requests("") != 1 {
			t.Fatalf("%d requests, want 1", p.Requests(""))
		}
	})
}

// Close ends a stalled request: the handler returns before Close does.
func TestFaultProxyCloseEndsStalledRequests(t *testing.T) {
	ct := NewCloudTrail()
	t.Cleanup(ct.Close)
	p := StartFaultProxy(ct.URL, always(FaultStall))
	arrived := make(chan struct{}, 1)
	p.OnRequest(func(FaultEvent) { arrived <- struct{}{} })
	cfg := faultConfig(0)
	cfg.RetryMaxAttempts = 1
	called := make(chan error, 1)
	go func() {
		_, err := cloudtrail.NewFromConfig(cfg, func(o *cloudtrail.Options) { o.BaseEndpoint = aws.String(p.URL) }).
			LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{})
		called <- err
	}()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	select {
	case <-arrived:
	case <-deadline.C:
		t.Fatal("the request never reached the proxy")
	}
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-deadline.C:
		t.Fatal("Close did not return while a request was stalled")
	}
	if ev := p.Events(); len(ev) != 1 || ev[0].Detail != "proxy closed" {
		t.Fatalf("events %v, want the stalled request ended by Close", ev)
	}
	select {
	case err := <-called:
		var send *smithyhttp.RequestSendError
		if !errors.As(err, &send) {
			t.Fatalf("client error %v, want a RequestSendError", err)
		}
	case <-deadline.C:
		t.Fatal("the client call still hangs after Close")
	}
	p.Close() // idempotent
}

func TestFaultProxyDelay(t *testing.T) {
	ct := NewCloudTrail()
	t.Cleanup(ct.Close)
	ct.AddEvent(RoleDeliveryEvent(RoleDelivery{InstanceID: "i-1"}))
	lookup := func(cfg aws.Config, p *FaultProxy) error {
		_, err := cloudtrail.NewFromConfig(cfg, func(o *cloudtrail.Options) { o.BaseEndpoint = aws.String(p.URL) }).
			LookupEvents(testContext(t), &cloudtrail.LookupEventsInput{})
		return err
	}
	t.Run("shorter than the timeout: served late", func(t *testing.T) {
		const delay = 150 * time.Millisecond
		p := FaultProxyFor(t, ct.URL, FaultPlan{Ops: map[string]OpFaults{"cloudtrail:LookupEvents": {Script: []FaultKind{FaultDelay}, Delay: delay}}})
		start := time.Now()
		if err := lookup(faultConfig(0), p); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < delay || p.Requests("") != 1 || p.Faults("cloudtrail:LookupEvents", FaultDelay) != 1 {
			t.Fatalf("took %v with %d requests, want at least %v and 1", el, p.Requests(""), delay)
		}
	})
	t.Run("longer than the HTTP timeout: retried", func(t *testing.T) {
		p := FaultProxyFor(t, ct.URL, FaultPlan{Ops: map[string]OpFaults{"*": {Script: []FaultKind{FaultDelay}, Delay: time.Minute}}})
		cfg := faultConfig(300 * time.Millisecond)
		if err := lookup(cfg, p); err != nil {
			t.Fatal(err)
		}
		if p.Requests("") != 2 {
			t.Fatalf("%d requests, want 2", p.Requests(""))
		}
	})
}

// ---- the adaptive retryer decides as the standard one ----

func TestFaultProxyAdaptiveRetryer(t *testing.T) {
	ct := NewCloudTrail()
	t.Cleanup(ct.Close)
	ct.AddEvent(RoleDeliveryEvent(RoleDelivery{InstanceID: "i-1"}))
	cfg := faultConfig(0)
	cfg.Retryer = func() aws.Retryer {
		return retry.NewAdaptiveMode(func(o *retry.AdaptiveModeOptions) {
			o.StandardOptions = append(o.StandardOptions, func(so *retry.StandardOptions) {
				so.MaxBackoff = 200 * time.Millisecond
				so.RateLimiter = ratelimit.None
			})
		})
	}
	tests := []struct {
		kind         FaultKind
		wantClass    string
		wantRequests int
	}{
		{FaultThrottle, "ok", 2},
		{FaultInternalError, "ok", 2},
		{FaultReset, "ok", 2},
		{FaultEmpty200, "ok", 1},
		{FaultTruncate, "DeserializationError(io.ErrUnexpectedEOF)", 1},
		{FaultGarble, "DeserializationError(*json.SyntaxError)", 1},
	}
	for _, tc := range tests {
		t.Run(string(tc.kind), func(t *testing.T) {
			p := FaultProxyFor(t, ct.URL, script(tc.kind))
			_, err := cloudtrail.NewFromConfig(cfg, func(o *cloudtrail.Options) { o.BaseEndpoint = aws.String(p.URL) }).
				LookupEvents(testContext(t), &cloudtrail.LookupEventsInput{})
			if c := classify(err); c != tc.wantClass || p.Requests("") != tc.wantRequests {
				t.Fatalf("%s (%v) after %d requests, want %s after %d", c, err, p.Requests(""), tc.wantClass, tc.wantRequests)
			}
		})
	}
}

// ---- forwarded faults: the upstream applied the call ----

// A reset after the upstream served PutMetricData makes the SDK send it again: the
// datapoint is stored twice, since PutMetricData is not idempotent.
func TestFaultProxyResetAfterUpstreamRepeatsTheCall(t *testing.T) {
	cw := NewCloudWatch()
	t.Cleanup(cw.Close)
	p := FaultProxyFor(t, cw.URL, FaultPlan{Ops: map[string]OpFaults{"cloudwatch:PutMetricData": {Script: []FaultKind{FaultResetAfterUpstream}}}})
	ctx := testContext(t)
	end := cwEnd()
	if err := PutMetadataNoToken(ctx, faultCloudWatch(p.URL), "i-1", []Point{{Time: end.Add(-time.Hour), Value: 5}}); err != nil {
		t.Fatal(err)
	}
	if cw.Requests("PutMetricData") != 2 || p.Requests("cloudwatch:PutMetricData") != 2 {
		t.Fatalf("upstream saw %d PutMetricData, proxy %d; want 2 and 2", cw.Requests("PutMetricData"), p.Requests("cloudwatch:PutMetricData"))
	}
	out, err := cloudWatchClient(cw.URL).GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(end.Add(-time.Hour)), EndTime: aws.Time(end),
		MetricDataQueries: []cwtypes.MetricDataQuery{noTokenQuery("n", "i-1", "SampleCount", 3600)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.MetricDataResults[0].Values; !slices.Equal(got, []float64{2}) {
		t.Fatalf("SampleCount %v, want [2]: the retried put stored the point again", got)
	}
}

// ---- plans ----

// With MaxConsecutive 2 the standard retryer's third attempt always gets through; with
// 3 every call fails after its 3 attempts.
func TestFaultProxyMaxConsecutive(t *testing.T) {
	ct := NewCloudTrail()
	t.Cleanup(ct.Close)
	for _, tc := range []struct {
		max          int
		wantErrs     []bool
		wantRequests int
	}{
		{2, []bool{false, false, false, false}, 12},
		{3, []bool{true, true, true, true}, 12},
	} {
		t.Run(fmt.Sprint(tc.max), func(t *testing.T) {
			plan := always(FaultThrottle)
			plan.MaxConsecutive = tc.max
			p := FaultProxyFor(t, ct.URL, plan)
			client := faultCloudTrail(p.URL)
			var errs []bool
			for range tc.wantErrs {
				_, err := client.LookupEvents(testContext(t), &cloudtrail.LookupEventsInput{})
				errs = append(errs, err != nil)
			}
			if !slices.Equal(errs, tc.wantErrs) || p.Requests("") != tc.wantRequests {
				t.Fatalf("call failed: %v with %d requests, want %v with %d\n%s", errs, p.Requests(""), tc.wantErrs, tc.wantRequests, p.Report())
			}
		})
	}
}

// faults returns the kinds the plan gives n calls of op, deciding without HTTP.
func plannedFaults(p *FaultProxy, op string, n int) []FaultKind {
	out := make([]FaultKind, n)
	for i := range out {
		out[i] = p.decide(op, "", 0).kind
	}
	return out
}

func newPlanProxy(t *testing.T, plan FaultPlan) *FaultProxy {
	t.Helper()
	p := StartFaultProxy("http://127.0.0.1:1", plan) // never forwarded to
	t.Cleanup(p.Close)
	return p
}

func TestFaultProxyPlanRules(t *testing.T) {
	const (
		T = FaultThrottle
		E = FaultEmpty200
		N = FaultNone
	)
	tests := []struct {
		name string
		plan FaultPlan
		op   string
		want []FaultKind
	}{
		{"script then pass", script(T, E), "ec2:DescribeInstances", []FaultKind{T, E, N, N}},
		{"script with a pass in it", script(N, T), "ec2:DescribeInstances", []FaultKind{N, T, N}},
		{"script then probabilities", FaultPlan{Ops: map[string]OpFaults{"*": {Script: []FaultKind{E}, Probabilities: map[FaultKind]float64{T: 1}}}},
			"ec2:DescribeInstances", []FaultKind{E, T, T}},
		{"MaxFaults", FaultPlan{Ops: map[string]OpFaults{"*": {Probabilities: map[FaultKind]float64{T: 1}, MaxFaults: 2}}},
			"ec2:DescribeInstances", []FaultKind{T, T, N, N}},
		{"FirstRequests", FaultPlan{Ops: map[string]OpFaults{"*": {Probabilities: map[FaultKind]float64{T: 1}, FirstRequests: 3}}},
			"ec2:DescribeInstances", []FaultKind{T, T, T, N, N}},
		{"MaxConsecutive", FaultPlan{MaxConsecutive: 2, Ops: map[string]OpFaults{"*": {Probabilities: map[FaultKind]float64{T: 1}}}},
			"ec2:DescribeInstances", []FaultKind{T, T, N, T, T, N}},
		{"exact key wins", FaultPlan{Ops: map[string]OpFaults{"*": {Script: []FaultKind{T}}, "ec2:*": {Script: []FaultKind{T}}, "ec2:DescribeInstances": {Script: []FaultKind{E}}}},
			"ec2:DescribeInstances", []FaultKind{E, N}},
		{"service key over *", FaultPlan{Ops: map[string]OpFaults{"*": {Script: []FaultKind{T}}, "ec2:*": {Script: []FaultKind{E}}}},
			"ec2:DescribeImages", []FaultKind{E, N}},
		{"other operations pass", FaultPlan{Ops: map[string]OpFaults{"ec2:DescribeInstances": {Script: []FaultKind{T}}}},
			"ec2:DescribeImages", []FaultKind{N, N}},
		{"zero probabilities", FaultPlan{Ops: map[string]OpFaults{"*": {Probabilities: map[FaultKind]float64{T: 0}}}},
			"ec2:DescribeInstances", []FaultKind{N, N, N}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPlanProxy(t, tc.plan)
			if got := plannedFaults(p, tc.op, len(tc.want)); !slices.Equal(got, tc.want) {
				t.Fatalf("faults %v, want %v", got, tc.want)
			}
		})
	}
}

// MaxConsecutive counts per SDK call (amz-sdk-invocation-id), so concurrent callers do
// not reset each other's runs of faults.
func TestFaultProxyMaxConsecutivePerInvocation(t *testing.T) {
	p := newPlanProxy(t, FaultPlan{MaxConsecutive: 2, Ops: map[string]OpFaults{"*": {Probabilities: map[FaultKind]float64{FaultThrottle: 1}}}})
	const op = "cloudtrail:LookupEvents"
	var got []string
	for _, inv := range []string{"a", "b", "a", "b", "a", "b", "a", "c"} {
		got = append(got, inv+"="+p.decide(op, inv, 0).kind.String())
	}
	want := []string{"a=throttle", "b=throttle", "a=throttle", "b=throttle", "a=pass", "b=pass", "a=throttle", "c=throttle"}
	if !slices.Equal(got, want) {
		t.Fatalf("faults %v, want %v", got, want)
	}
}

// The same seed gives each operation the same faults whatever the interleaving with
// other operations; another seed gives others; SetPlan restarts the streams.
func TestFaultProxyPlanIsDeterministic(t *testing.T) {
	plan := func(seed uint64) FaultPlan {
		return FaultPlan{Seed: seed, Ops: map[string]OpFaults{"*": {Probabilities: map[FaultKind]float64{
			FaultThrottle: 0.2, FaultEmpty200: 0.1, FaultTruncate: 0.1, FaultGarble: 0.1}}}}
	}
	const n = 200
	a := newPlanProxy(t, plan(42))
	aEC2 := plannedFaults(a, "ec2:DescribeInstances", n)
	aCW := plannedFaults(a, "cloudwatch:GetMetricData", n)

	b := newPlanProxy(t, plan(42))
	var bEC2, bCW []FaultKind
	for range n { // interleaved this time
		bCW = append(bCW, b.decide("cloudwatch:GetMetricData", "", 0).kind)
		bEC2 = append(bEC2, b.decide("ec2:DescribeInstances", "", 0).kind)
	}
	if !slices.Equal(aEC2, bEC2) || !slices.Equal(aCW, bCW) {
		t.Fatal("the same seed gave different faults")
	}
	if slices.Equal(aEC2, aCW) {
		t.Fatal("two operations got the same stream")
	}
	if c := newPlanProxy(t, plan(43)); slices.Equal(plannedFaults(c, "ec2:DescribeInstances", n), aEC2) {
		t.Fatal("another seed gave the same faults")
	}
	counts := map[FaultKind]int{}
	for _, k := range aEC2 {
		counts[k]++
	}
	// 200 draws: each kind within a generous band around its expectation.
	for kind, want := range map[FaultKind]int{FaultThrottle: 40, FaultEmpty200: 20, FaultTruncate: 20, FaultGarble: 20, FaultNone: 100} {
		if got := counts[kind]; got < want/2 || got > want*3/2 {
			t.Errorf("%s %d times in %d, want about %d", kind, got, n, want)
		}
	}
	a.SetPlan(plan(42))
	if !slices.Equal(plannedFaults(a, "ec2:DescribeInstances", n), aEC2) {
		t.Fatal("SetPlan did not restart the stream")
	}
	if a.Requests("ec2:DescribeInstances") != 2*n {
		t.Fatalf("SetPlan reset the counters: %d requests", a.Requests("ec2:DescribeInstances"))
	}
}

// End to end, the same seed injects the same faults at the same cut points.
func TestFaultProxySameSeedSameFaultsEndToEnd(t *testing.T) {
	ct := NewCloudTrail()
	t.Cleanup(ct.Close)
	for i := range 5 {
		// Fixed IDs and keys: the replies, hence the cut points, are the same every run.
		ev := RoleDeliveryEvent(RoleDelivery{InstanceID: "i-1", AccessKeyID: "ASIAEXAMPLE000000001", Time: ctBase.Add(time.Duration(i) * time.Minute)})
		ev.EventID = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		ct.AddEvent(ev)
	}
	run := func(seed uint64) []FaultEvent {
		p := FaultProxyFor(t, ct.URL, FaultPlan{Seed: seed, MaxConsecutive: 2, Ops: map[string]OpFaults{"cloudtrail:LookupEvents": {
			Probabilities: map[FaultKind]float64{FaultTruncate: 0.2, FaultGarble: 0.2, FaultReset: 0.1, FaultInternalError: 0.1}}}})
		client := faultCloudTrail(p.URL)
		for range 20 {
			_, _ = client.LookupEvents(testContext(t), &cloudtrail.LookupEventsInput{LookupAttributes: byUsername("i-1")})
		}
		p.Close()
		return p.Events()
	}
	first, second := run(3), run(3)
	if !slices.Equal(first, second) {
		t.Fatalf("same seed, different events:\n%v\n%v", first, second)
	}
	if other := run(4); slices.Equal(first, other) {
		t.Fatal("another seed, same events")
	}
}

func TestFaultPlanValidate(t *testing.T) {
	bad := []FaultPlan{
		{Ops: map[string]OpFaults{"*": {Probabilities: map[FaultKind]float64{FaultThrottle: 0.7, FaultReset: 0.4}}}},
		{Ops: map[string]OpFaults{"*": {Probabilities: map[FaultKind]float64{FaultThrottle: -0.1}}}},
		{Ops: map[string]OpFaults{"*": {Probabilities: map[FaultKind]float64{"explode": 0.1}}}},
		{Ops: map[string]OpFaults{"*": {Probabilities: map[FaultKind]float64{FaultNone: 0.1}}}},
		{Ops: map[string]OpFaults{"*": {Script: []FaultKind{"explode"}}}},
		{Ops: map[string]OpFaults{"DescribeInstances": {}}},
		{Ops: map[string]OpFaults{"EC2:DescribeInstances": {}}},
		{Ops: map[string]OpFaults{"*": {MaxFaults: -1}}},
		{MaxConsecutive: -1},
	}
	for i, p := range bad {
		if err := p.Validate(); err == nil {
			t.Errorf("plan %d %+v: valid, want an error", i, p)
		}
	}
	good := FaultPlan{Ops: map[string]OpFaults{
		"*": {}, "ec2:*": {}, "ec2:DescribeInstances": {Script: []FaultKind{FaultNone, FaultStall}},
		"s3:GET /bucket/key": {Probabilities: map[FaultKind]float64{FaultThrottle: 0.5, FaultReset: 0.5}},
	}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("StartFaultProxy accepted an invalid plan")
		}
	}()
	StartFaultProxy("http://127.0.0.1:1", bad[0]).Close()
}

// ---- identification of operations ----

// Through a proxy without faults every client gets the answer it gets directly, and
// the proxy names each operation with its IAM-style key.
func TestFaultProxyPassThroughAndOperationKeys(t *testing.T) {
	targets := faultTargets(t)
	ctx := testContext(t)
	for _, tg := range targets {
		p := FaultProxyFor(t, tg.upstream, FaultPlan{})
		if got, err := tg.faultCall(t, p); err != nil || got != tg.clean {
			t.Fatalf("%s through the proxy: %+v, %v; want %+v", tg.op, got, err, tg.clean)
		}
	}
	cw := NewCloudWatch()
	t.Cleanup(cw.Close)
	cwProxy := FaultProxyFor(t, cw.URL, FaultPlan{})
	// 400 points in one call: a body over 10 KiB, which the SDK gzips.
	pts := HourlyPoints(cwEnd(), 400, func(int) (float64, bool) { return 1, true })
	if err := PutMetadataNoToken(ctx, faultCloudWatch(cwProxy.URL), "i-1", pts[:putBatch]); err != nil {
		t.Fatal(err)
	}
	big := make([]cwtypes.MetricDatum, 400)
	for i, pt := range pts {
		big[i] = cwtypes.MetricDatum{MetricName: aws.String("Big"), Timestamp: aws.Time(pt.Time), Value: aws.Float64(pt.Value)}
	}
	if _, err := faultCloudWatch(cwProxy.URL).PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("Test"), MetricData: big}); err != nil {
		t.Fatal(err)
	}
	if got := cwProxy.Ops(); !slices.Equal(got, []string{"cloudwatch:PutMetricData"}) || cwProxy.Requests("cloudwatch:PutMetricData") != 2 {
		t.Fatalf("CloudWatch ops %v, %d requests; want 2 cloudwatch:PutMetricData", got, cwProxy.Requests(""))
	}

	motoProxy := FaultProxyFor(t, targets[1].upstream, FaultPlan{}) // moto
	cfg := faultConfig(0)
	cfg.BaseEndpoint = aws.String(motoProxy.URL)
	if _, err := ec2.NewFromConfig(cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
		t.Fatal(err)
	}
	if _, err := dynamodb.NewFromConfig(cfg).ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sqs.NewFromConfig(cfg).ListQueues(ctx, &sqs.ListQueuesInput{}); err != nil {
		t.Fatal(err)
	}
	if err := PutMetadataNoToken(ctx, cloudwatch.NewFromConfig(cfg), "i-1", pts[:3]); err != nil {
		t.Fatal(err)
	}
	want := []string{"cloudwatch:PutMetricData", "dynamodb:ListTables", "ec2:DescribeInstances", "sqs:ListQueues"}
	if got := motoProxy.Ops(); !slices.Equal(got, want) {
		t.Fatalf("ops %v, want %v", got, want)
	}
}

func TestFaultProxyIdentify(t *testing.T) {
	auth := func(svc string) string {
		return "AWS4-HMAC-SHA256 Credential=AKID/20261201/us-east-1/" + svc + "/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
	}
	gz := func(s string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write([]byte(s))
		_ = zw.Close()
		return b.Bytes()
	}
	tests := []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		body    []byte
		key     string
		proto   protocol
	}{
		{"JSON 1.1", "POST", "/", map[string]string{"Authorization": auth("cloudtrail"), "X-Amz-Target": "CloudTrail_20131101.LookupEvents", "Content-Type": "application/x-amz-json-1.1"},
			[]byte(`{}`), "cloudtrail:LookupEvents", protoJSON},
		{"JSON 1.0", "POST", "/", map[string]string{"Authorization": auth("dynamodb"), "X-Amz-Target": "DynamoDB_20120810.PutItem", "Content-Type": "application/x-amz-json-1.0"},
			[]byte(`{}`), "dynamodb:PutItem", protoJSON},
		{"SQS JSON", "POST", "/", map[string]string{"Authorization": auth("sqs"), "X-Amz-Target": "AmazonSQS.SendMessageBatch", "Content-Type": "application/x-amz-json-1.0"},
			[]byte(`{}`), "sqs:SendMessageBatch", protoJSON},
		{"EC2 query", "POST", "/", map[string]string{"Authorization": auth("ec2"), "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
			[]byte("Action=DescribeInstances&Version=2016-11-15"), "ec2:DescribeInstances", protoEC2Query},
		{"CloudWatch signs as monitoring", "POST", "/", map[string]string{"Authorization": auth("monitoring"), "Content-Type": "application/x-www-form-urlencoded"},
			[]byte("Action=GetMetricData&Version=2010-08-01"), "cloudwatch:GetMetricData", protoAWSQuery},
		{"gzipped form", "POST", "/", map[string]string{"Authorization": auth("monitoring"), "Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"},
			gz("Action=PutMetricData&Version=2010-08-01&Namespace=X"), "cloudwatch:PutMetricData", protoAWSQuery},
		{"query in the URL", "GET", "/?Action=GetCallerIdentity&Version=2011-06-15", map[string]string{"Authorization": auth("sts")},
			nil, "sts:GetCallerIdentity", protoAWSQuery},
		{"SigV4a scope", "POST", "/", map[string]string{"Authorization": "AWS4-ECDSA-P256-SHA256 Credential=AKID/20261201/ec2/aws4_request, SignedHeaders=host, Signature=00", "Content-Type": "application/x-www-form-urlencoded"},
			[]byte("Action=DescribeRegions"), "ec2:DescribeRegions", protoEC2Query},
		{"unsigned", "POST", "/", map[string]string{"X-Amz-Target": "CloudTrail_20131101.LookupEvents"},
			[]byte(`{}`), "unknown:LookupEvents", protoJSON},
		{"REST", "GET", "/bucket/key", map[string]string{"Authorization": auth("s3")}, nil, "s3:GET /bucket/key", protoOther},
		{"odd Action", "POST", "/", map[string]string{"Authorization": auth("ec2"), "Content-Type": "application/x-www-form-urlencoded"},
			[]byte("Action=%3Cx%3E"), "ec2:Unknown", protoEC2Query},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := http.NewRequest(tc.method, "http://127.0.0.1"+tc.path, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			got := identify(r, tc.body)
			if got.key != tc.key || got.proto != tc.proto {
				t.Fatalf("key %q protocol %d, want %q %d", got.key, got.proto, tc.key, tc.proto)
			}
		})
	}
}

// The proxy's own replies, byte for byte (request IDs aside), and well-formed.
func TestFaultProxyReplyShapes(t *testing.T) {
	upstream := startLoopback(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "upstream reply\n")
	}))
	t.Cleanup(upstream.close)
	jsonReq := map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20261201/us-east-1/cloudtrail/aws4_request, SignedHeaders=host, Signature=00",
		"X-Amz-Target": "CloudTrail_20131101.LookupEvents", "Content-Type": "application/x-amz-json-1.1"}
	ec2Req := map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20261201/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=00",
		"Content-Type": "application/x-www-form-urlencoded"}
	cwReq := map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20261201/us-east-1/monitoring/aws4_request, SignedHeaders=host, Signature=00",
		"Content-Type": "application/x-www-form-urlencoded"}
	const (
		ec2Body = "Action=DescribeInstances&Version=2016-11-15"
		cwBody  = "Action=GetMetricData&Version=2010-08-01"
	)
	tests := []struct {
		name     string
		kind     FaultKind
		headers  map[string]string
		body     string
		status   int
		ctype    string
		errType  string // X-Amzn-ErrorType
		wantBody string // RID stands for a request ID
	}{
		{"JSON throttle", FaultThrottle, jsonReq, `{}`, 400, "application/x-amz-json-1.1", "ThrottlingException",
			`{"__type":"ThrottlingException","message":"Rate exceeded"}`},
		{"JSON 503", FaultUnavailable, jsonReq, `{}`, 503, "application/x-amz-json-1.1", "ServiceUnavailable",
			`{"__type":"ServiceUnavailable","message":"The request has failed due to a temporary failure of the server."}`},
		{"JSON missing result", FaultMissingResult, jsonReq, `{}`, 200, "application/x-amz-json-1.1", "", `{}`},
		{"JSON empty 200", FaultEmpty200, jsonReq, `{}`, 200, "application/x-amz-json-1.1", "", ``},
		{"EC2 throttle", FaultThrottle, ec2Req, ec2Body, 400, "text/xml;charset=UTF-8", "",
			`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>RID</RequestID></Response>`},
		{"EC2 500", FaultInternalError, ec2Req, ec2Body, 500, "text/xml;charset=UTF-8", "",
			`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<Response><Errors><Error><Code>InternalError</Code><Message>An internal error has occurred.</Message></Error></Errors><RequestID>RID</RequestID></Response>`},
		{"EC2 missing result", FaultMissingResult, ec2Req, ec2Body, 200, "text/xml;charset=UTF-8", "",
			`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>RID</requestId></DescribeInstancesResponse>`},
		{"AWSQuery throttle", FaultThrottle, cwReq, cwBody, 400, "text/xml", "",
			`<ErrorResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>RID</RequestId></ErrorResponse>`},
		{"AWSQuery 500", FaultInternalError, cwReq, cwBody, 500, "text/xml", "",
			`<ErrorResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>The request processing has failed because of an unknown error, exception or failure.</Message></Error><RequestId>RID</RequestId></ErrorResponse>`},
		{"AWSQuery missing result", FaultMissingResult, cwReq, cwBody, 200, "text/xml", "",
			`<GetMetricDataResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><GetMetricDataResult></GetMetricDataResult><ResponseMetadata><RequestId>RID</RequestId></ResponseMetadata></GetMetricDataResponse>`},
		{"AWSQuery bare", FaultBareResponse, cwReq, cwBody, 200, "text/xml", "",
			`<GetMetricDataResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><ResponseMetadata><RequestId>RID</RequestId></ResponseMetadata></GetMetricDataResponse>`},
		{"truncated", FaultTruncate, jsonReq, `{}`, 200, "text/plain", "", "upstream re"},
		{"passed", FaultNone, jsonReq, `{}`, 200, "text/plain", "", "upstream reply\n"},
	}
	rid := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Seed 0 cuts "upstream reply" at 11 (checked here, so a change shows).
			p := FaultProxyFor(t, upstream.url, script(tc.kind))
			req, _ := http.NewRequestWithContext(testContext(t), http.MethodPost, p.URL+"/", strings.NewReader(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			got := rid.ReplaceAllString(string(b), "RID")
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != tc.ctype || resp.Header.Get("X-Amzn-ErrorType") != tc.errType || got != tc.wantBody {
				t.Fatalf("HTTP %d %q %q\n%s\nwant HTTP %d %q %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("X-Amzn-ErrorType"), got,
					tc.status, tc.ctype, tc.errType, tc.wantBody)
			}
			if resp.ContentLength != int64(len(b)) {
				t.Fatalf("Content-Length %d for %d bytes", resp.ContentLength, len(b))
			}
			if synthesized := tc.kind != FaultNone && tc.kind != FaultTruncate; synthesized && !rid.MatchString(resp.Header.Get("X-Amzn-RequestId")) {
				t.Fatalf("X-Amzn-RequestId %q, want a request ID", resp.Header.Get("X-Amzn-RequestId"))
			}
			if strings.HasPrefix(tc.ctype, "text/xml") {
				if err := xml.Unmarshal(b, new(struct{})); err != nil {
					t.Fatalf("reply is not well-formed XML: %v", err)
				}
			}
		})
	}
}

// ---- environment and concurrency ----

// A program configured from the environment (as the CLI and the Lambda bootstraps are)
// reaches the proxy through AWS_ENDPOINT_URL_<SERVICE>.
func TestFaultProxyEnvPointsTheSDKAtIt(t *testing.T) {
	ct := NewCloudTrail()
	t.Cleanup(ct.Close)
	p := FaultProxyFor(t, ct.URL, script(FaultThrottle))
	if got := p.Env(); !slices.Equal(got, []string{"AWS_ENDPOINT_URL=" + p.URL}) {
		t.Fatalf("Env() = %v", got)
	}
	env := p.Env("CloudTrail", "EC2")
	if !slices.Equal(env, []string{"AWS_ENDPOINT_URL_CLOUDTRAIL=" + p.URL, "AWS_ENDPOINT_URL_EC2=" + p.URL}) {
		t.Fatalf("Env(CloudTrail, EC2) = %v", env)
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_CA_BUNDLE", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "")
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(testContext(t), config.WithRegion(testRegion), config.WithHTTPClient(faultConfig(0).HTTPClient),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("testing", "testing", "")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cloudtrail.NewFromConfig(cfg).LookupEvents(testContext(t), &cloudtrail.LookupEventsInput{}); err != nil {
		t.Fatal(err)
	}
	if p.Requests("cloudtrail:LookupEvents") != 2 || ct.Requests() != 1 {
		t.Fatalf("proxy saw %d requests, the stand-in %d; want 2 and 1", p.Requests(""), ct.Requests())
	}
}

func TestFaultProxyConcurrentCalls(t *testing.T) {
	ct := NewCloudTrail()
	t.Cleanup(ct.Close)
	ct.AddEvent(RoleDeliveryEvent(RoleDelivery{InstanceID: "i-1"}))
	p := FaultProxyFor(t, ct.URL, FaultPlan{Seed: 1, MaxConsecutive: 2, Ops: map[string]OpFaults{"*": {Probabilities: map[FaultKind]float64{
		FaultThrottle: 0.15, FaultReset: 0.1, FaultInternalError: 0.1, FaultEmpty200: 0.05, FaultTruncate: 0.05, FaultGarble: 0.05}}}})
	const workers, calls = 8, 25
	var wg sync.WaitGroup
	results := make(chan string, workers*calls)
	for range workers {
		wg.Go(func() {
			client := faultCloudTrail(p.URL)
			for range calls {
				out, err := client.LookupEvents(testContext(t), &cloudtrail.LookupEventsInput{})
				c := classify(err)
				if err == nil && out.Events == nil {
					c = "ok, empty"
				}
				results <- c
			}
		})
	}
	wg.Wait()
	close(results)
	seen := map[string]int{}
	for c := range results {
		seen[c]++
	}
	for c := range seen {
		switch c {
		case "ok", "ok, empty", "DeserializationError(io.ErrUnexpectedEOF)", "DeserializationError(*json.SyntaxError)":
		default:
			t.Errorf("unexpected outcome %q (MaxConsecutive 2 lets every retried fault through)", c)
		}
	}
	events := p.Events()
	faulted := 0
	for i, e := range events {
		if e.Seq != i+1 {
			t.Fatalf("event %d has Seq %d", i, e.Seq)
		}
		if e.Fault != FaultNone {
			faulted++
		}
	}
	if len(events) != p.Requests("") || faulted != p.Faults("", FaultNone) || faulted == 0 || ct.Requests() == 0 {
		t.Fatalf("%d events, %d requests, %d faulted events, %d faults counted", len(events), p.Requests(""), faulted, p.Faults("", FaultNone))
	}
	t.Logf("%d calls: %v; %d requests, %d faults", workers*calls, seen, len(events), faulted)
}

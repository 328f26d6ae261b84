package evidence_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport"
)

// brokenReplies are the replies that must never count as evidence: each is either an
// error or, where the damage missed everything the client reads, the whole answer.
var brokenReplies = []fakeaws.FaultKind{
	fakeaws.FaultEmpty200, fakeaws.FaultMissingResult, fakeaws.FaultBareResponse,
	fakeaws.FaultTruncate, fakeaws.FaultTruncateEOF, fakeaws.FaultTruncateReset, fakeaws.FaultGarble,
}

// alwaysIncomplete are the broken replies that parse as an empty success to the SDK:
// only the gatherers' own checks tell them from "nothing found".
var alwaysIncomplete = []fakeaws.FaultKind{fakeaws.FaultEmpty200, fakeaws.FaultMissingResult, fakeaws.FaultBareResponse}

// integrityWorld is one instance in moto with a MetadataNoToken series in the CloudWatch
// stand-in and an IMDSv1 credential delivery in the CloudTrail stand-in, and the answer
// of each gatherer without faults.
type integrityWorld struct {
	moto, cw, ct string
	inst         policy.Instance
	now          time.Time
	wantInv      []policy.Instance
	wantUsage    policy.MetricUsage
	wantTrail    *policy.CloudTrailUsage
}

func newIntegrityWorld(t *testing.T) *integrityWorld {
	t.Helper()
	ctx := testContext(t)
	m := testsupport.Moto(t)
	cw, ct := newCloudWatch(t), newCloudTrail(t)
	_, err := fakeaws.SeedInstances(ctx, ec2Client(m.URL, "us-east-1", nil), fakeaws.InstanceSpec{Count: 2, InstanceProfileName: "app"})
	if err != nil {
		t.Fatal(err)
	}
	w := &integrityWorld{moto: m.URL, cw: cw.URL, ct: ct.URL, now: time.Now().UTC()}
	w.wantInv, _, err = evidence.Inventory(ctx, ec2Client(m.URL, "us-east-1", nil), "us-east-1", nil)
	if err != nil || len(w.wantInv) != 2 {
		t.Fatalf("fault-free inventory: %d instances, %v", len(w.wantInv), err)
	}
	w.inst = w.wantInv[0]
	putSeries(cw, w.inst.InstanceID, fakeaws.HourlyPoints(w.now.Truncate(time.Hour).Add(time.Hour), 24, func(int) (float64, bool) { return 0, true }))
	ct.AddEvent(fakeaws.RoleDeliveryEvent(fakeaws.RoleDelivery{InstanceID: w.inst.InstanceID, Delivery: "1.0", UserAgent: "aws-cli/1.16.0",
		SourceIP: w.inst.Addresses[0], Time: w.now.Add(-time.Hour)}))
	w.wantUsage = w.usage(t, w.cw)
	trail, err := w.trail(ctx, w.ct)
	if err != nil || trail.V1Deliveries != 1 {
		t.Fatalf("fault-free CloudTrail: %s, %v", usageText(trail), err)
	}
	w.wantTrail = trail
	return w
}

func (w *integrityWorld) usage(t *testing.T, url string) policy.MetricUsage {
	t.Helper()
	usage, errs := evidence.MetricUsage(testContext(t), cloudWatchClient(url, nil), []string{w.inst.InstanceID}, 24*time.Hour, w.now)
	if err := errs[w.inst.InstanceID]; err != nil {
		t.Fatalf("fault-free metrics: %v", err)
	}
	return usage[w.inst.InstanceID]
}

func (w *integrityWorld) trail(ctx context.Context, url string) (*policy.CloudTrailUsage, error) {
	return evidence.CredentialDeliveries(ctx, cloudTrailClient(url, nil), unlimited(), w.inst, 24*time.Hour, w.now)
}

// TestBrokenRepliesAreNeverEvidence: whatever is wrong with every reply of an operation,
// its gatherer answers with an error or with exactly the fault-free answer; never with an
// empty or partial one. The replies that parse as an empty success are always errors,
// after the SDK retried them.
func TestBrokenRepliesAreNeverEvidence(t *testing.T) {
	w := newIntegrityWorld(t)
	for _, kind := range brokenReplies {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("%s/seed %d", kind, seed), func(t *testing.T) {
				ctx := testContext(t)
				plan := func(op string) fakeaws.FaultPlan {
					return fakeaws.FaultPlan{Seed: seed, Ops: map[string]fakeaws.OpFaults{op: {Probabilities: map[fakeaws.FaultKind]float64{kind: 1}}}}
				}
				mustFail := slices.Contains(alwaysIncomplete, kind)

				ec2Proxy := testsupport.FaultProxyFor(t, w.moto, plan(describeOp))
				inv, _, err := evidence.Inventory(ctx, ec2Client(ec2Proxy.URL, "us-east-1", nil), "us-east-1", nil)
				checkAnswer(t, "sweep inventory", err, mustFail, func() bool { return sameInstances(inv, w.wantInv) })
				byID, notFound, err := evidence.Inventory(ctx, ec2Client(ec2Proxy.URL, "us-east-1", nil), "us-east-1", []string{w.inst.InstanceID})
				checkAnswer(t, "inventory by id", err, mustFail, func() bool { return len(notFound) == 0 && sameInstances(byID, w.wantInv[:1]) })
				if err == nil && len(notFound) > 0 {
					t.Errorf("a broken reply made %v not found", notFound)
				}

				cwProxy := testsupport.FaultProxyFor(t, w.cw, plan(getMetricDataOp))
				usage, errs := evidence.MetricUsage(ctx, cloudWatchClient(cwProxy.URL, nil), []string{w.inst.InstanceID}, 24*time.Hour, w.now)
				got, ok := usage[w.inst.InstanceID]
				if ok == (errs[w.inst.InstanceID] != nil) {
					t.Fatalf("metrics: usage %v and error %v: want exactly one", ok, errs[w.inst.InstanceID])
				}
				checkAnswer(t, "metrics", errs[w.inst.InstanceID], mustFail, func() bool { return sameUsage(got, w.wantUsage) })

				ctProxy := testsupport.FaultProxyFor(t, w.ct, plan(lookupEventsOp))
				trail, err := w.trail(ctx, ctProxy.URL)
				checkAnswer(t, "CloudTrail", err, mustFail, func() bool { return sameTrailUsage(trail, w.wantTrail) })
				if err == nil && trail.V1Deliveries == 0 {
					t.Errorf("a broken reply hid the IMDSv1 delivery: %s", usageText(trail))
				}

				if mustFail {
					// The SDK tried every attempt before giving up: a broken reply is retried.
					for _, p := range []struct {
						name  string
						proxy *fakeaws.FaultProxy
						op    string
					}{{"ec2", ec2Proxy, describeOp}, {"cloudwatch", cwProxy, getMetricDataOp}, {"cloudtrail", ctProxy, lookupEventsOp}} {
						if n := p.proxy.Requests(p.op); n < 3 {
							t.Errorf("%s: %d requests for a reply that is always broken, want the SDK's 3 attempts per call", p.name, n)
						}
					}
				}
			})
		}
	}
}

// TestBrokenRepliesAreRetried: one broken reply costs a retry, not the evidence.
func TestBrokenRepliesAreRetried(t *testing.T) {
	w := newIntegrityWorld(t)
	for _, kind := range brokenReplies {
		t.Run(string(kind), func(t *testing.T) {
			ctx := testContext(t)
			once := func(op string) fakeaws.FaultPlan {
				return fakeaws.FaultPlan{Ops: map[string]fakeaws.OpFaults{op: {Script: []fakeaws.FaultKind{kind}}}}
			}
			ec2Proxy := testsupport.FaultProxyFor(t, w.moto, once(describeOp))
			inv, _, err := evidence.Inventory(ctx, ec2Client(ec2Proxy.URL, "us-east-1", nil), "us-east-1", nil)
			if err != nil || !sameInstances(inv, w.wantInv) {
				t.Errorf("inventory after one %s: %d instances, %v", kind, len(inv), err)
			}
			cwProxy := testsupport.FaultProxyFor(t, w.cw, once(getMetricDataOp))
			usage, errs := evidence.MetricUsage(ctx, cloudWatchClient(cwProxy.URL, nil), []string{w.inst.InstanceID}, 24*time.Hour, w.now)
			if err := errs[w.inst.InstanceID]; err != nil || !sameUsage(usage[w.inst.InstanceID], w.wantUsage) {
				t.Errorf("metrics after one %s: %s, %v", kind, usageString(usage[w.inst.InstanceID]), err)
			}
			ctProxy := testsupport.FaultProxyFor(t, w.ct, once(lookupEventsOp))
			trail, err := w.trail(ctx, ctProxy.URL)
			if err != nil || !sameTrailUsage(trail, w.wantTrail) {
				t.Errorf("CloudTrail after one %s: %s, %v", kind, usageText(trail), err)
			}
		})
	}
}

// TestStalledEndpointFailsWithinItsDeadline: a reply that never comes ends the call at the
// attempt deadline, instead of hanging the gatherer.
func TestStalledEndpointFailsWithinItsDeadline(t *testing.T) {
	w := newIntegrityWorld(t)
	proxy := testsupport.FaultProxyFor(t, w.ct, fakeaws.FaultPlan{Ops: map[string]fakeaws.OpFaults{
		lookupEventsOp: {Probabilities: map[fakeaws.FaultKind]float64{fakeaws.FaultStall: 1}},
	}})
	client := cloudTrailClient(proxy.URL, nil, func(o *cloudtrail.Options) {
		o.HTTPClient = timeoutClient(200 * time.Millisecond)
	})
	ctx := testContext(t)
	trail, err := evidence.CredentialDeliveries(ctx, client, unlimited(), w.inst, 24*time.Hour, w.now)
	if err == nil {
		t.Fatalf("a stalled LookupEvents returned %s", usageText(trail))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not say the deadline passed", err)
	}
	if ctx.Err() != nil {
		t.Error("the call ran into the test's own deadline: the attempt deadline did not hold")
	}
}

// checkAnswer fails t when err is nil although the reply must fail, or when an answer
// without an error is not the fault-free one.
func checkAnswer(t *testing.T, what string, err error, mustFail bool, correct func() bool) {
	t.Helper()
	switch {
	case err == nil && mustFail:
		t.Errorf("%s: a reply without its result counted as an answer", what)
	case err == nil && !correct():
		t.Errorf("%s: a broken reply gave a wrong answer instead of an error", what)
	}
}

func sameInstances(a, b []policy.Instance) bool {
	key := func(in []policy.Instance) []string {
		var out []string
		for _, i := range in {
			out = append(out, fmt.Sprintf("%s %s %s %d %s %v", i.InstanceID, i.State, i.Options.HTTPTokens, i.Options.HopLimit, i.InstanceProfileARN, i.Addresses))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

// fakePages answers each call of one operation with the next page it holds.
type fakePages[In, Out any] struct {
	pages []*Out
	calls int
}

func (f *fakePages[In, Out]) next() (*Out, error) {
	if f.calls >= len(f.pages) {
		return nil, fmt.Errorf("no page %d", f.calls+1)
	}
	f.calls++
	return f.pages[f.calls-1], nil
}

type fakeEC2 struct {
	fakePages[ec2.DescribeInstancesInput, ec2.DescribeInstancesOutput]
}

func (f *fakeEC2) DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	return f.next()
}

type fakeCloudWatch struct {
	fakePages[cloudwatch.GetMetricDataInput, cloudwatch.GetMetricDataOutput]
}

func (f *fakeCloudWatch) GetMetricData(context.Context, *cloudwatch.GetMetricDataInput, ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	return f.next()
}

type fakeCloudTrail struct {
	fakePages[cloudtrail.LookupEventsInput, cloudtrail.LookupEventsOutput]
}

func (f *fakeCloudTrail) LookupEvents(context.Context, *cloudtrail.LookupEventsInput, ...func(*cloudtrail.Options)) (*cloudtrail.LookupEventsOutput, error) {
	return f.next()
}

// TestPageChainsThatRepeatAreErrors: a NextToken that comes back would page for ever;
// each gatherer stops with an error instead of looping or reading it as the end.
func TestPageChainsThatRepeatAreErrors(t *testing.T) {
	ctx := testContext(t)
	loop := aws.String("same-token")
	inst := ec2types.Instance{InstanceId: aws.String("i-0123456789abcdef0"), State: &ec2types.InstanceState{Name: ec2types.InstanceStateNameRunning},
		MetadataOptions: &ec2types.InstanceMetadataOptionsResponse{HttpTokens: ec2types.HttpTokensStateOptional}}
	page := &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{{OwnerId: aws.String(motoAccount), Instances: []ec2types.Instance{inst}}}, NextToken: loop}
	fe := &fakeEC2{fakePages[ec2.DescribeInstancesInput, ec2.DescribeInstancesOutput]{pages: []*ec2.DescribeInstancesOutput{page, page, page}}}
	if got, _, err := evidence.Inventory(ctx, fe, "us-east-1", nil); !isIncomplete(err) {
		t.Errorf("inventory with a repeating token: %d instances, %v; want an incomplete reply", len(got), err)
	}

	partial := &cloudwatch.GetMetricDataOutput{MetricDataResults: []cwtypes.MetricDataResult{{Id: aws.String("q0"), StatusCode: cwtypes.StatusCodePartialData}}, NextToken: loop}
	fc := &fakeCloudWatch{fakePages[cloudwatch.GetMetricDataInput, cloudwatch.GetMetricDataOutput]{pages: []*cloudwatch.GetMetricDataOutput{partial, partial, partial}}}
	if _, errs := evidence.MetricUsage(ctx, fc, []string{"i-0123456789abcdef0"}, 24*time.Hour, time.Now()); !isIncomplete(errs["i-0123456789abcdef0"]) {
		t.Errorf("metrics with a repeating token: %v; want an incomplete reply", errs["i-0123456789abcdef0"])
	}

	events := &cloudtrail.LookupEventsOutput{Events: nil, NextToken: loop}
	events.Events = append(events.Events, trailEvent(`{"userIdentity":{"sessionContext":{"ec2RoleDelivery":"2.0"}}}`))
	ft := &fakeCloudTrail{fakePages[cloudtrail.LookupEventsInput, cloudtrail.LookupEventsOutput]{pages: []*cloudtrail.LookupEventsOutput{events, events, events}}}
	if got, err := evidence.CredentialDeliveries(ctx, ft, unlimited(), trailInstance, 24*time.Hour, time.Now()); !isIncomplete(err) {
		t.Errorf("CloudTrail with a repeating token: %s, %v; want an incomplete reply", usageText(got), err)
	}
}

// TestMetricAnswersCountPerQuery: a reply that answers one query in full and leaves the
// other unanswered, or partial at the end of the chain, or with a value that is not a
// count, fails only the instance whose query it is.
func TestMetricAnswersCountPerQuery(t *testing.T) {
	ctx := testContext(t)
	now := time.Date(2026, 11, 22, 10, 20, 0, 0, time.UTC)
	hour := now.Truncate(time.Hour)
	complete := cwtypes.MetricDataResult{Id: aws.String("q0"), StatusCode: cwtypes.StatusCodeComplete,
		Timestamps: []time.Time{hour}, Values: []float64{0}}
	ids := []string{"i-0000000000000000a", "i-0000000000000000b"}
	cases := []struct {
		name  string
		other *cwtypes.MetricDataResult // the answer to q1, nil for none
		whole bool                      // the whole batch fails
	}{
		{name: "unanswered"},
		{name: "partial at the end", other: &cwtypes.MetricDataResult{Id: aws.String("q1"), StatusCode: cwtypes.StatusCodePartialData, Timestamps: []time.Time{hour}, Values: []float64{0}}},
		{name: "internal error", other: &cwtypes.MetricDataResult{Id: aws.String("q1"), StatusCode: cwtypes.StatusCodeInternalError}},
		{name: "NaN is not a count", whole: true, other: &cwtypes.MetricDataResult{Id: aws.String("q1"), StatusCode: cwtypes.StatusCodeComplete, Timestamps: []time.Time{hour}, Values: []float64{nan()}}},
		{name: "timestamps without values", whole: true, other: &cwtypes.MetricDataResult{Id: aws.String("q1"), StatusCode: cwtypes.StatusCodeComplete, Timestamps: []time.Time{hour}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			results := []cwtypes.MetricDataResult{complete}
			if tc.other != nil {
				results = append(results, *tc.other)
			}
			fc := &fakeCloudWatch{fakePages[cloudwatch.GetMetricDataInput, cloudwatch.GetMetricDataOutput]{
				pages: []*cloudwatch.GetMetricDataOutput{{MetricDataResults: results}}}}
			usage, errs := evidence.MetricUsage(ctx, fc, ids, 24*time.Hour, now)
			if errs[ids[1]] == nil {
				t.Errorf("the instance whose query was not answered in full has usage %s", usageString(usage[ids[1]]))
			}
			if _, ok := usage[ids[1]]; ok {
				t.Errorf("the instance whose query was not answered in full has usage as well as an error")
			}
			if tc.whole != (errs[ids[0]] != nil) {
				t.Errorf("the instance answered in full: error %v (the batch fails as a whole: %t)", errs[ids[0]], tc.whole)
			}
		})
	}
}

func isIncomplete(err error) bool {
	var ie *evidence.IncompleteReplyError
	return errors.As(err, &ie)
}

func trailEvent(record string) cttypes.Event {
	return cttypes.Event{EventId: aws.String("e1"), EventName: aws.String("GetCallerIdentity"), CloudTrailEvent: aws.String(record)}
}

func nan() float64 { return math.NaN() }

// timeoutClient is an HTTP client whose attempts end after d, as awsapi.Load's do.
func timeoutClient(d time.Duration) *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithTimeout(d)
}

package evidence_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/smithy-go"
	"golang.org/x/time/rate"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/policy"
)

const lookupEventsOp = "cloudtrail:LookupEvents"

// trailInstance is the instance the CloudTrail tests look up, with a private and a
// public address of its own.
var trailInstance = policy.Instance{
	InstanceID:         "i-0123456789abcdef0",
	InstanceProfileARN: "arn:aws:iam::123456789012:instance-profile/app",
	Addresses:          []string{"10.0.0.5", "203.0.113.7"},
}

func newCloudTrail(t *testing.T) *fakeaws.CloudTrail {
	t.Helper()
	ct := fakeaws.NewCloudTrail()
	t.Cleanup(ct.Close)
	return ct
}

// unlimited is a limiter that never delays, for tests not about pacing.
func unlimited() *rate.Limiter { return rate.NewLimiter(rate.Inf, 0) }

// delivery adds one event of the instance's role to ct, made at now-ago.
func delivery(ct *fakeaws.CloudTrail, now time.Time, ago time.Duration, d fakeaws.RoleDelivery) fakeaws.Event {
	if d.InstanceID == "" {
		d.InstanceID = trailInstance.InstanceID
	}
	d.Time = now.Add(-ago)
	return ct.AddEvent(fakeaws.RoleDeliveryEvent(d))
}

func usageText(u *policy.CloudTrailUsage) string {
	if u == nil {
		return "<nil>"
	}
	return fmt.Sprintf("{V1 %d, V2 %d, EventNames %q, UserAgents %q, SourceIPs %q, Foreign %q, LastV1 %s}",
		u.V1Deliveries, u.V2Deliveries, u.EventNames, u.UserAgents, u.SourceIPs, u.ForeignSourceIPs, timeString(u.LastV1Delivery))
}

func sameTrailUsage(a, b *policy.CloudTrailUsage) bool {
	return a != nil && b != nil && a.V1Deliveries == b.V1Deliveries && a.V2Deliveries == b.V2Deliveries &&
		slices.Equal(a.EventNames, b.EventNames) && slices.Equal(a.UserAgents, b.UserAgents) &&
		slices.Equal(a.SourceIPs, b.SourceIPs) && slices.Equal(a.ForeignSourceIPs, b.ForeignSourceIPs) &&
		sameTime(a.LastV1Delivery, b.LastV1Delivery)
}

// TestCredentialDeliveriesTally checks what is counted and collected from the events of
// one page, for a 336h lookback.
func TestCredentialDeliveriesTally(t *testing.T) {
	t.Parallel()
	const lookback = 336 * time.Hour
	const (
		uaJava = "aws-sdk-java/1.11.1000 Linux/5.10 OpenJDK_64-Bit_Server_VM/25.0 java/1.8.0"
		uaBoto = "Boto3/1.9.0 Python/2.7.18 Linux/5.10 Botocore/1.12.0"
	)
	now := time.Now().UTC().Truncate(time.Second)
	tests := []struct {
		name   string
		events func(ct *fakeaws.CloudTrail)
		want   policy.CloudTrailUsage
	}{
		{
			name:   "no events",
			events: func(*fakeaws.CloudTrail) {},
			want:   policy.CloudTrailUsage{},
		},
		{
			name: "IMDSv2 deliveries only",
			events: func(ct *fakeaws.CloudTrail) {
				for i := range 3 {
					delivery(ct, now, time.Duration(i+1)*time.Hour, fakeaws.RoleDelivery{Delivery: "2.0"})
				}
			},
			want: policy.CloudTrailUsage{V2Deliveries: 3},
		},
		{
			name: "1.0 and 2.0 are counted apart",
			events: func(ct *fakeaws.CloudTrail) {
				for i := range 5 {
					delivery(ct, now, time.Duration(i+1)*time.Hour, fakeaws.RoleDelivery{Delivery: "2.0"})
				}
				delivery(ct, now, 2*time.Hour+30*time.Minute, fakeaws.RoleDelivery{Delivery: "1.0", SourceIP: "10.0.0.5"})
				delivery(ct, now, 9*time.Hour, fakeaws.RoleDelivery{Delivery: "1.0", SourceIP: "10.0.0.5"})
			},
			want: policy.CloudTrailUsage{
				V1Deliveries: 2, V2Deliveries: 5,
				EventNames: []string{"DescribeInstances"}, SourceIPs: []string{"10.0.0.5"},
				UserAgents:     []string{"aws-cli/2.15.0 md/Botocore#1.34.0 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.11.6"},
				LastV1Delivery: at(now.Add(-2*time.Hour - 30*time.Minute)),
			},
		},
		{
			name: "events without ec2RoleDelivery are not deliveries",
			events: func(ct *fakeaws.CloudTrail) {
				delivery(ct, now, time.Hour, fakeaws.RoleDelivery{Delivery: ""})
				delivery(ct, now, 2*time.Hour, fakeaws.RoleDelivery{Delivery: "2.0"})
				delivery(ct, now, 3*time.Hour, fakeaws.RoleDelivery{Delivery: ""})
			},
			want: policy.CloudTrailUsage{V2Deliveries: 1},
		},
		{
			name: "event names, user agents and source addresses are sorted and de-duplicated",
			events: func(ct *fakeaws.CloudTrail) {
				for i, d := range []fakeaws.RoleDelivery{
					{EventName: "RunInstances", UserAgent: uaJava, SourceIP: "10.0.0.5"},
					{EventName: "DescribeInstances", UserAgent: uaBoto, SourceIP: "203.0.113.7"},
					{EventName: "RunInstances", UserAgent: uaJava, SourceIP: "10.0.0.5"},
					{EventName: "GetObject", EventSource: "s3.amazonaws.com", UserAgent: uaJava, SourceIP: "203.0.113.7"},
				} {
					d.Delivery = "1.0"
					delivery(ct, now, time.Duration(i+1)*time.Hour, d)
				}
				// IMDSv2 deliveries say nothing about software still using IMDSv1.
				delivery(ct, now, 30*time.Minute, fakeaws.RoleDelivery{Delivery: "2.0", EventName: "PutObject", UserAgent: "aws-sdk-go-v2/1.30", SourceIP: "10.0.0.99"})
			},
			want: policy.CloudTrailUsage{
				V1Deliveries: 4, V2Deliveries: 1,
				EventNames:     []string{"DescribeInstances", "GetObject", "RunInstances"},
				UserAgents:     []string{uaBoto, uaJava},
				SourceIPs:      []string{"10.0.0.5", "203.0.113.7"},
				LastV1Delivery: at(now.Add(-time.Hour)),
			},
		},
		{
			name: "an IMDSv1 delivery used from another address is foreign; the instance's own and service names are not",
			events: func(ct *fakeaws.CloudTrail) {
				for i, ip := range []string{
					"10.0.0.5",          // own private
					"203.0.113.7",       // own public
					"::ffff:10.0.0.5",   // own private, IPv4-mapped
					"ec2.amazonaws.com", // an AWS service acting with the credentials
					"198.51.100.23",     // somebody else
					"2001:db8::1",       // somebody else, IPv6
					"198.51.100.23",
				} {
					delivery(ct, now, time.Duration(i+1)*time.Hour, fakeaws.RoleDelivery{Delivery: "1.0", SourceIP: ip})
				}
			},
			want: policy.CloudTrailUsage{
				V1Deliveries:     7,
				EventNames:       []string{"DescribeInstances"},
				UserAgents:       []string{"aws-cli/2.15.0 md/Botocore#1.34.0 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.11.6"},
				SourceIPs:        []string{"10.0.0.5", "198.51.100.23", "2001:db8::1", "203.0.113.7", "::ffff:10.0.0.5", "ec2.amazonaws.com"},
				ForeignSourceIPs: []string{"198.51.100.23", "2001:db8::1"},
				LastV1Delivery:   at(now.Add(-time.Hour)),
			},
		},
		{
			name: "the last IMDSv1 delivery is the newest, whatever its position",
			events: func(ct *fakeaws.CloudTrail) {
				delivery(ct, now, 5*time.Hour, fakeaws.RoleDelivery{Delivery: "1.0", SourceIP: "10.0.0.5"})
				delivery(ct, now, 30*time.Hour, fakeaws.RoleDelivery{Delivery: "1.0", SourceIP: "10.0.0.5"})
				delivery(ct, now, 2*time.Hour+17*time.Second, fakeaws.RoleDelivery{Delivery: "1.0", SourceIP: "10.0.0.5"})
				delivery(ct, now, time.Minute, fakeaws.RoleDelivery{Delivery: "2.0"})
			},
			want: policy.CloudTrailUsage{
				V1Deliveries: 3, V2Deliveries: 1,
				EventNames: []string{"DescribeInstances"}, SourceIPs: []string{"10.0.0.5"},
				UserAgents:     []string{"aws-cli/2.15.0 md/Botocore#1.34.0 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.11.6"},
				LastV1Delivery: at(now.Add(-2*time.Hour - 17*time.Second)),
			},
		},
		{
			name: "events older than the lookback are not counted",
			events: func(ct *fakeaws.CloudTrail) {
				delivery(ct, now, lookback+time.Second, fakeaws.RoleDelivery{Delivery: "1.0"})
				delivery(ct, now, lookback+48*time.Hour, fakeaws.RoleDelivery{Delivery: "1.0"})
				delivery(ct, now, lookback+time.Hour, fakeaws.RoleDelivery{Delivery: "2.0"})
				delivery(ct, now, lookback-time.Hour, fakeaws.RoleDelivery{Delivery: "2.0"})
			},
			want: policy.CloudTrailUsage{V2Deliveries: 1},
		},
		{
			name: "other instances' events are not counted",
			events: func(ct *fakeaws.CloudTrail) {
				delivery(ct, now, time.Hour, fakeaws.RoleDelivery{Delivery: "1.0", InstanceID: "i-0fedcba9876543210"})
				delivery(ct, now, time.Hour, fakeaws.RoleDelivery{Delivery: "2.0"})
			},
			want: policy.CloudTrailUsage{V2Deliveries: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ct := newCloudTrail(t)
			tc.events(ct)
			counter := awsapi.NewCallCounter()
			got, err := evidence.CredentialDeliveries(testContext(t), cloudTrailClient(ct.URL, counter), unlimited(), trailInstance, lookback, now)
			if err != nil {
				t.Fatal(err)
			}
			if !sameTrailUsage(got, &tc.want) {
				t.Errorf("usage\n got %s\nwant %s", usageText(got), usageText(&tc.want))
			}
			if n := counter.Counts()[lookupEventsOp]; n != 1 {
				t.Errorf("%d LookupEvents calls, want 1", n)
			}
		})
	}
}

// TestCredentialDeliveriesPaging: pages of 50 are read until the first IMDSv1 delivery,
// which settles the verdict, or the end.
func TestCredentialDeliveriesPaging(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC().Truncate(time.Second)
	tests := []struct {
		name      string
		v2Newer   int // IMDSv2 deliveries newer than the IMDSv1 one
		v1        bool
		v2Older   int
		wantCalls int
		wantV2    int
	}{
		{name: "1.0 on the first page: one call", v1: true, v2Older: 200, wantCalls: 1, wantV2: 49},
		{name: "1.0 on the second page: two calls", v2Newer: 60, v1: true, v2Older: 100, wantCalls: 2, wantV2: 99},
		{name: "1.0 last of a full page: that page only", v2Newer: 49, v1: true, v2Older: 100, wantCalls: 1, wantV2: 49},
		{name: "120 events of 2.0: three pages", v2Newer: 120, wantCalls: 3, wantV2: 120},
		{name: "50 events of 2.0: one page", v2Newer: 50, wantCalls: 1, wantV2: 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ct := newCloudTrail(t)
			ago := time.Minute
			for range tc.v2Older {
				delivery(ct, now, 300*time.Hour-ago, fakeaws.RoleDelivery{Delivery: "2.0"})
				ago += time.Minute
			}
			if tc.v1 {
				delivery(ct, now, 100*time.Hour, fakeaws.RoleDelivery{Delivery: "1.0", SourceIP: "10.0.0.5"})
			}
			for i := range tc.v2Newer {
				delivery(ct, now, time.Duration(i+1)*time.Minute, fakeaws.RoleDelivery{Delivery: "2.0"})
			}
			counter := awsapi.NewCallCounter()
			got, err := evidence.CredentialDeliveries(testContext(t), cloudTrailClient(ct.URL, counter), unlimited(), trailInstance, 336*time.Hour, now)
			if err != nil {
				t.Fatal(err)
			}
			wantV1 := 0
			if tc.v1 {
				wantV1 = 1
			}
			if got.V1Deliveries != wantV1 || got.V2Deliveries != tc.wantV2 {
				t.Errorf("usage %s, want %d IMDSv1 and %d IMDSv2 deliveries", usageText(got), wantV1, tc.wantV2)
			}
			if n := counter.Counts()[lookupEventsOp]; n != tc.wantCalls {
				t.Errorf("%d LookupEvents calls, want %d", n, tc.wantCalls)
			}
		})
	}
}

// TestCredentialDeliveriesMalformedEvent: a CloudTrailEvent that is not JSON is an error
// naming the event, not a silent "no delivery".
func TestCredentialDeliveriesMalformedEvent(t *testing.T) {
	t.Parallel()
	ct := newCloudTrail(t)
	now := time.Now().UTC().Truncate(time.Second)
	delivery(ct, now, time.Hour, fakeaws.RoleDelivery{Delivery: "2.0"})
	bad := ct.AddEvent(fakeaws.Event{
		EventID: "0b4c5e1a-bad0-4c2e-9f3e-3c6a4f1d2e01", EventName: "DescribeInstances", EventTime: now.Add(-2 * time.Hour),
		Username: trailInstance.InstanceID, CloudTrailEvent: `{"userIdentity": {"sessionContext": {"ec2RoleDelivery": "1.0"`,
	})
	got, err := evidence.CredentialDeliveries(testContext(t), cloudTrailClient(ct.URL, nil), unlimited(), trailInstance, 336*time.Hour, now)
	if err == nil || !strings.Contains(err.Error(), bad.EventID) || !strings.Contains(err.Error(), trailInstance.InstanceID) {
		t.Errorf("err = %v, want an error naming event %s and the instance", err, bad.EventID)
	}
	if got != nil {
		t.Errorf("usage %s returned with the error", usageText(got))
	}
}

// TestCredentialDeliveriesAPIErrors: the SDK retries throttling; other errors are
// returned naming the action and the instance, wrapping the API error.
func TestCredentialDeliveriesAPIErrors(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC().Truncate(time.Second)
	// The messages do not name the action, so that the error must.
	denied := fakeaws.APIError{Code: "AccessDeniedException", Message: "denied"}
	throttled := fakeaws.APIError{Code: "ThrottlingException", Message: "Rate exceeded"}
	tests := []struct {
		name        string
		failFirst   int  // the first requests fail with fault
		always      bool // every request fails with fault
		fault       fakeaws.APIError
		wantCode    string // "" when the call succeeds
		minRequests int    // the requests the stand-in must have seen
		attempts    int    // the client's RetryMaxAttempts; 0 for the default, 3
	}{
		{name: "access denied", always: true, fault: denied, wantCode: "AccessDeniedException", minRequests: 1},
		// Two attempts more than needed, so that the rare resend described at config
		// cannot use up the retries.
		{name: "throttled twice, then served", failFirst: 2, fault: throttled, attempts: 5, minRequests: 3},
		{name: "throttled on every attempt", always: true, fault: throttled, wantCode: "ThrottlingException", minRequests: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ct := newCloudTrail(t)
			delivery(ct, now, time.Hour, fakeaws.RoleDelivery{Delivery: "2.0"})
			ct.FailNext(tc.failFirst, tc.fault)
			if tc.always {
				ct.SetFault(func(fakeaws.LookupRequest) *fakeaws.APIError { return &tc.fault })
			}
			counter := awsapi.NewCallCounter()
			client := cloudTrailClient(ct.URL, counter, func(o *cloudtrail.Options) {
				if tc.attempts > 0 {
					o.RetryMaxAttempts = tc.attempts
				}
			})
			got, err := evidence.CredentialDeliveries(testContext(t), client, unlimited(), trailInstance, 336*time.Hour, now)
			if n := ct.Requests(); n < tc.minRequests {
				t.Errorf("%d LookupEvents requests, want at least %d", n, tc.minRequests)
			}
			if n := counter.Counts()[lookupEventsOp]; n != 1 {
				t.Errorf("%d LookupEvents calls, want 1 (retries are the SDK's, within the call)", n)
			}
			if tc.wantCode == "" {
				if err != nil || got == nil || got.V2Deliveries != 1 {
					t.Errorf("usage %s, err %v; want the one IMDSv2 delivery", usageText(got), err)
				}
				return
			}
			var apiErr smithy.APIError
			if err == nil || !errors.As(err, &apiErr) || apiErr.ErrorCode() != tc.wantCode {
				t.Fatalf("err = %v, want the API error %s", err, tc.wantCode)
			}
			if msg := err.Error(); !strings.Contains(msg, lookupEventsOp) || !strings.Contains(msg, trailInstance.InstanceID) {
				t.Errorf("err = %q, want it to name %s and %s", msg, lookupEventsOp, trailInstance.InstanceID)
			}
			if got != nil {
				t.Errorf("usage %s returned with the error", usageText(got))
			}
		})
	}
}

// TestCredentialDeliveriesLimiter: the limiter is consulted before every request; when
// it does not grant one, the lookup fails and the request is not sent.
func TestCredentialDeliveriesLimiter(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC().Truncate(time.Second)
	tests := []struct {
		name      string
		limiter   *rate.Limiter
		wantCalls int
		wantErr   bool
		// wantOutOfTime: the error says the time ran out (evidence.ErrOutOfTime), which
		// a unit of work continues rather than defers.
		wantOutOfTime bool
	}{
		{name: "never grants", limiter: rate.NewLimiter(0, 0), wantCalls: 0, wantErr: true},
		// No refill and a burst of 2: the third page's Wait cannot be granted before the
		// test context's deadline, so it fails at once.
		{name: "grants two calls only", limiter: rate.NewLimiter(0, 2), wantCalls: 2, wantErr: true, wantOutOfTime: true},
		{name: "grants three", limiter: rate.NewLimiter(0, 3), wantCalls: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ct := newCloudTrail(t)
			for i := range 120 { // three pages
				delivery(ct, now, time.Duration(i+1)*time.Minute, fakeaws.RoleDelivery{Delivery: "2.0"})
			}
			counter := awsapi.NewCallCounter()
			got, err := evidence.CredentialDeliveries(testContext(t), cloudTrailClient(ct.URL, counter), tc.limiter, trailInstance, 336*time.Hour, now)
			if n := counter.Counts()[lookupEventsOp]; n != tc.wantCalls {
				t.Errorf("%d LookupEvents calls, want %d", n, tc.wantCalls)
			}
			if n := ct.Requests(); (n == 0) != (tc.wantCalls == 0) {
				t.Errorf("%d LookupEvents requests reached the stand-in for %d calls", n, tc.wantCalls)
			}
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), lookupEventsOp) || !strings.Contains(err.Error(), trailInstance.InstanceID) || got != nil {
					t.Errorf("usage %s, err %v; want an error naming %s and the instance", usageText(got), err, lookupEventsOp)
				}
				if errors.Is(err, evidence.ErrOutOfTime) != tc.wantOutOfTime {
					t.Errorf("err %v: out of time %v, want %v", err, errors.Is(err, evidence.ErrOutOfTime), tc.wantOutOfTime)
				}
			} else if err != nil || got.V2Deliveries != 120 {
				t.Errorf("usage %s, err %v; want 120 IMDSv2 deliveries", usageText(got), err)
			}
		})
	}
}

// TestCredentialDeliveriesRequest: every request looks up Username = the instance id
// (the role session name) over the lookback ending now, capped at CloudTrail's 90 days.
func TestCredentialDeliveriesRequest(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC().Truncate(time.Second)
	tests := []struct {
		lookback  time.Duration
		wantStart time.Time
	}{
		{lookback: 336 * time.Hour, wantStart: now.Add(-336 * time.Hour)},
		{lookback: 24 * time.Hour, wantStart: now.Add(-24 * time.Hour)},
		{lookback: 2160 * time.Hour, wantStart: now.Add(-2160 * time.Hour)},
		{lookback: 200 * 24 * time.Hour, wantStart: now.Add(-90 * 24 * time.Hour)}, // beyond CloudTrail's history
	}
	for _, tc := range tests {
		t.Run(tc.lookback.String(), func(t *testing.T) {
			t.Parallel()
			ct := newCloudTrail(t)
			for i := range 60 { // two pages
				delivery(ct, now, time.Duration(i+1)*time.Minute, fakeaws.RoleDelivery{Delivery: "2.0"})
			}
			var mu sync.Mutex
			var reqs []fakeaws.LookupRequest
			ct.SetFault(func(r fakeaws.LookupRequest) *fakeaws.APIError {
				mu.Lock()
				defer mu.Unlock()
				reqs = append(reqs, r)
				return nil
			})
			counter := awsapi.NewCallCounter()
			if _, err := evidence.CredentialDeliveries(testContext(t), cloudTrailClient(ct.URL, counter), unlimited(), trailInstance, tc.lookback, now); err != nil {
				t.Fatal(err)
			}
			if n := counter.Counts()[lookupEventsOp]; n != 2 {
				t.Errorf("%d LookupEvents calls, want 2 pages", n)
			}
			users := ct.Usernames()
			if len(users) < 2 || slices.ContainsFunc(users, func(u string) bool { return u != trailInstance.InstanceID }) {
				t.Errorf("Usernames() = %v, want only %s", users, trailInstance.InstanceID)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(reqs) < 2 || reqs[0].NextToken != "" || reqs[len(reqs)-1].NextToken == "" {
				t.Fatalf("requests %+v, want a first page and a second one with its NextToken", reqs)
			}
			for i, r := range reqs {
				if r.AttributeKey != "Username" || r.AttributeValue != trailInstance.InstanceID || r.MaxResults != 50 {
					t.Errorf("request %d looks up %s=%q, MaxResults %d; want Username=%s, 50", i+1, r.AttributeKey, r.AttributeValue, r.MaxResults, trailInstance.InstanceID)
				}
				if r.StartTime == nil || r.EndTime == nil || !r.StartTime.Equal(tc.wantStart) || !r.EndTime.Equal(now) {
					t.Errorf("request %d window %s to %s, want %s to %s", i+1, timeString(r.StartTime), timeString(r.EndTime),
						tc.wantStart.Format(time.RFC3339), now.Format(time.RFC3339))
				}
			}
		})
	}
}

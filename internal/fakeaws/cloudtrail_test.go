package fakeaws

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/smithy-go"
)

var ctBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestCloudTrail(t *testing.T) (*CloudTrail, *cloudtrail.Client) {
	t.Helper()
	ct := NewCloudTrail()
	t.Cleanup(ct.Close)
	return ct, cloudTrailClient(ct.URL)
}

func byUsername(user string) []cttypes.LookupAttribute {
	return []cttypes.LookupAttribute{{AttributeKey: cttypes.LookupAttributeKeyUsername, AttributeValue: aws.String(user)}}
}

// lookupAll follows NextToken to the end, returning the events and the page sizes.
func lookupAll(t *testing.T, client *cloudtrail.Client, in *cloudtrail.LookupEventsInput) ([]cttypes.Event, []int) {
	t.Helper()
	var events []cttypes.Event
	var sizes []int
	p := cloudtrail.NewLookupEventsPaginator(client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, page.Events...)
		sizes = append(sizes, len(page.Events))
	}
	return events, sizes
}

func TestCloudTrailPagesNewestFirst(t *testing.T) {
	ct, client := newTestCloudTrail(t)
	var want []string // newest first
	for i := range 120 {
		ev := ct.AddEvent(RoleDeliveryEvent(RoleDelivery{InstanceID: "i-1", Delivery: "1.0", Time: ctBase.Add(time.Duration(i) * time.Minute)}))
		want = append([]string{ev.EventID}, want...)
		ct.AddEvent(RoleDeliveryEvent(RoleDelivery{InstanceID: "i-2", Delivery: "2.0", Time: ctBase.Add(time.Duration(i) * time.Minute)}))
	}
	tests := []struct {
		name       string
		maxResults *int32
		wantSizes  []int
	}{
		{"default page size is 50", nil, []int{50, 50, 20}},
		{"MaxResults 50", aws.Int32(50), []int{50, 50, 20}},
		{"MaxResults 7", aws.Int32(7), append(slices.Repeat([]int{7}, 17), 1)},
		{"MaxResults 1", aws.Int32(1), slices.Repeat([]int{1}, 120)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			events, sizes := lookupAll(t, client, &cloudtrail.LookupEventsInput{LookupAttributes: byUsername("i-1"), MaxResults: tc.maxResults})
			if !slices.Equal(sizes, tc.wantSizes) {
				t.Errorf("page sizes %v, want %v", sizes, tc.wantSizes)
			}
			var got []string
			for _, e := range events {
				got = append(got, aws.ToString(e.EventId))
				if aws.ToString(e.Username) != "i-1" {
					t.Fatalf("event of %q in a lookup of i-1", aws.ToString(e.Username))
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("events not the 120 of i-1 newest first")
			}
		})
	}
}

// Paging stays consistent when events arrive between pages: nothing is repeated and
// nothing older is skipped.
func TestCloudTrailPagingStableUnderInserts(t *testing.T) {
	ct, client := newTestCloudTrail(t)
	for i := range 10 {
		ct.AddEvent(RoleDeliveryEvent(RoleDelivery{InstanceID: "i-1", Time: ctBase.Add(time.Duration(i) * time.Second)}))
	}
	ctx := testContext(t)
	page1, err := client.LookupEvents(ctx, &cloudtrail.LookupEventsInput{LookupAttributes: byUsername("i-1"), MaxResults: aws.Int32(4)})
	if err != nil {
		t.Fatal(err)
	}
	ct.AddEvent(RoleDeliveryEvent(RoleDelivery{InstanceID: "i-1", Time: ctBase.Add(time.Hour)})) // newer than all
	seen := map[string]bool{}
	for _, e := range page1.Events {
		seen[aws.ToString(e.EventId)] = true
	}
	token := page1.NextToken
	for token != nil {
		page, err := client.LookupEvents(ctx, &cloudtrail.LookupEventsInput{LookupAttributes: byUsername("i-1"), MaxResults: aws.Int32(4), NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			if seen[aws.ToString(e.EventId)] {
				t.Fatalf("event %s returned twice", aws.ToString(e.EventId))
			}
			seen[aws.ToString(e.EventId)] = true
		}
		token = page.NextToken
	}
	if len(seen) != 10 {
		t.Fatalf("saw %d events over the pages, want the 10 that existed at the first page", len(seen))
	}
}

func TestCloudTrailTimeWindow(t *testing.T) {
	ct, client := newTestCloudTrail(t)
	for i := range 10 { // events at base+0h .. base+9h
		ct.AddEvent(RoleDeliveryEvent(RoleDelivery{InstanceID: "i-1", Time: ctBase.Add(time.Duration(i) * time.Hour)}))
	}
	at := func(h int) *time.Time { v := ctBase.Add(time.Duration(h) * time.Hour); return &v }
	tests := []struct {
		name       string
		start, end *time.Time
		wantHours  []int // newest first
	}{
		{"no window", nil, nil, []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{"start and end inclusive", at(2), at(5), []int{5, 4, 3, 2}},
		{"start only", at(7), nil, []int{9, 8, 7}},
		{"end only", nil, at(1), []int{1, 0}},
		{"equal start and end", at(4), at(4), []int{4}},
		{"window between events", ptr(ctBase.Add(90 * time.Minute)), ptr(ctBase.Add(110 * time.Minute)), nil},
		{"sub-second bounds", ptr(ctBase.Add(3*time.Hour - 500*time.Millisecond)), ptr(ctBase.Add(3*time.Hour + 500*time.Millisecond)), []int{3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			events, _ := lookupAll(t, client, &cloudtrail.LookupEventsInput{LookupAttributes: byUsername("i-1"), StartTime: tc.start, EndTime: tc.end})
			var got []int
			for _, e := range events {
				got = append(got, int(aws.ToTime(e.EventTime).Sub(ctBase)/time.Hour))
			}
			if !slices.Equal(got, tc.wantHours) {
				t.Fatalf("event hours %v, want %v", got, tc.wantHours)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestCloudTrailAttributeFilters(t *testing.T) {
	ct, client := newTestCloudTrail(t)
	a := ct.AddEvent(Event{EventName: "RunInstances", EventSource: "ec2.amazonaws.com", EventTime: ctBase, Username: "alice",
		ReadOnly: "false", AccessKeyID: "AKIAALICE", Resources: []Resource{{Type: "AWS::EC2::Instance", Name: "i-aaa"}}, CloudTrailEvent: "{}"})
	b := ct.AddEvent(Event{EventName: "DescribeInstances", EventSource: "ec2.amazonaws.com", EventTime: ctBase.Add(time.Minute), Username: "i-bbb",
		ReadOnly: "true", AccessKeyID: "ASIABBB", CloudTrailEvent: "{}"})
	c := ct.AddEvent(Event{EventName: "GetObject", EventSource: "s3.amazonaws.com", EventTime: ctBase.Add(2 * time.Minute), Username: "i-bbb",
		ReadOnly: "true", AccessKeyID: "ASIABBB", Resources: []Resource{{Type: "AWS::S3::Object", Name: "bucket/key"}, {Type: "AWS::S3::Bucket", Name: "bucket"}}, CloudTrailEvent: "{}"})
	tests := []struct {
		key   cttypes.LookupAttributeKey
		value string
		want  []Event // newest first
	}{
		{cttypes.LookupAttributeKeyUsername, "i-bbb", []Event{c, b}},
		{cttypes.LookupAttributeKeyUsername, "nobody", nil},
		{cttypes.LookupAttributeKeyEventName, "RunInstances", []Event{a}},
		{cttypes.LookupAttributeKeyEventId, b.EventID, []Event{b}},
		{cttypes.LookupAttributeKeyEventSource, "ec2.amazonaws.com", []Event{b, a}},
		{cttypes.LookupAttributeKeyResourceName, "bucket", []Event{c}},
		{cttypes.LookupAttributeKeyResourceType, "AWS::EC2::Instance", []Event{a}},
		{cttypes.LookupAttributeKeyReadOnly, "true", []Event{c, b}},
		{cttypes.LookupAttributeKeyReadOnly, "false", []Event{a}},
		{cttypes.LookupAttributeKeyAccessKeyId, "ASIABBB", []Event{c, b}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s=%s", tc.key, tc.value), func(t *testing.T) {
			events, _ := lookupAll(t, client, &cloudtrail.LookupEventsInput{
				LookupAttributes: []cttypes.LookupAttribute{{AttributeKey: tc.key, AttributeValue: aws.String(tc.value)}},
			})
			if len(events) != len(tc.want) {
				t.Fatalf("%d events, want %d", len(events), len(tc.want))
			}
			for i, e := range events {
				w := tc.want[i]
				if aws.ToString(e.EventId) != w.EventID || aws.ToString(e.EventName) != w.EventName ||
					aws.ToString(e.EventSource) != w.EventSource || aws.ToString(e.Username) != w.Username ||
					aws.ToString(e.ReadOnly) != w.ReadOnly || aws.ToString(e.AccessKeyId) != w.AccessKeyID ||
					!aws.ToTime(e.EventTime).Equal(w.EventTime) || len(e.Resources) != len(w.Resources) {
					t.Errorf("event %d = %+v, want %+v", i, e, w)
				}
				for j, r := range e.Resources {
					if aws.ToString(r.ResourceType) != w.Resources[j].Type || aws.ToString(r.ResourceName) != w.Resources[j].Name {
						t.Errorf("event %d resource %d = %s/%s, want %+v", i, j, aws.ToString(r.ResourceType), aws.ToString(r.ResourceName), w.Resources[j])
					}
				}
			}
		})
	}
}

func TestCloudTrailInvalidInput(t *testing.T) {
	ct, client := newTestCloudTrail(t)
	for i := range 3 {
		ct.AddEvent(RoleDeliveryEvent(RoleDelivery{InstanceID: "i-1", Time: ctBase.Add(time.Duration(i) * time.Minute)}))
	}
	first, err := client.LookupEvents(testContext(t), &cloudtrail.LookupEventsInput{LookupAttributes: byUsername("i-1"), MaxResults: aws.Int32(1)})
	if err != nil || first.NextToken == nil {
		t.Fatalf("first page: %v, token %v", err, first)
	}
	later, early := ctBase.Add(time.Hour), ctBase
	tests := []struct {
		name   string
		in     cloudtrail.LookupEventsInput
		target any // pointer to the typed error the SDK must return
	}{
		{"two lookup attributes", cloudtrail.LookupEventsInput{LookupAttributes: append(byUsername("i-1"), byUsername("i-2")...)},
			new(*cttypes.InvalidLookupAttributesException)},
		{"unknown attribute key", cloudtrail.LookupEventsInput{LookupAttributes: []cttypes.LookupAttribute{{AttributeKey: "InstanceId", AttributeValue: aws.String("i-1")}}},
			new(*cttypes.InvalidLookupAttributesException)},
		{"start after end", cloudtrail.LookupEventsInput{StartTime: &later, EndTime: &early},
			new(*cttypes.InvalidTimeRangeException)},
		{"MaxResults 0", cloudtrail.LookupEventsInput{MaxResults: aws.Int32(0)}, new(*cttypes.InvalidMaxResultsException)},
		{"MaxResults 51", cloudtrail.LookupEventsInput{MaxResults: aws.Int32(51)}, new(*cttypes.InvalidMaxResultsException)},
		{"garbage NextToken", cloudtrail.LookupEventsInput{NextToken: aws.String("garbage")}, new(*cttypes.InvalidNextTokenException)},
		{"NextToken of another lookup", cloudtrail.LookupEventsInput{LookupAttributes: byUsername("i-2"), NextToken: first.NextToken},
			new(*cttypes.InvalidNextTokenException)},
		{"NextToken with another time window", cloudtrail.LookupEventsInput{LookupAttributes: byUsername("i-1"), StartTime: &early, NextToken: first.NextToken},
			new(*cttypes.InvalidNextTokenException)},
		{"unknown event category", cloudtrail.LookupEventsInput{EventCategory: "data"}, new(*cttypes.InvalidEventCategoryException)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.LookupEvents(testContext(t), &tc.in)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.As(err, tc.target) {
				t.Fatalf("error %v (%T), want %T", err, errors.Unwrap(err), tc.target)
			}
			assertHTTPStatus(t, err, http.StatusBadRequest)
		})
	}
	// The token still works with the parameters it was issued for.
	if _, err := client.LookupEvents(testContext(t), &cloudtrail.LookupEventsInput{LookupAttributes: byUsername("i-1"), MaxResults: aws.Int32(1), NextToken: first.NextToken}); err != nil {
		t.Fatalf("valid token rejected: %v", err)
	}
}

func assertHTTPStatus(t *testing.T, err error, want int) {
	t.Helper()
	var re *awshttp.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v carries no HTTP response", err)
	}
	if got := re.HTTPStatusCode(); got != want {
		t.Fatalf("HTTP status %d, want %d", got, want)
	}
}

func TestCloudTrailEventCategoryInsightIsEmpty(t *testing.T) {
	ct, client := newTestCloudTrail(t)
	ct.AddEvent(RoleDeliveryEvent(RoleDelivery{InstanceID: "i-1"}))
	out, err := client.LookupEvents(testContext(t), &cloudtrail.LookupEventsInput{EventCategory: cttypes.EventCategoryInsight})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Events) != 0 {
		t.Fatalf("%d insight events, want 0", len(out.Events))
	}
}

func TestCloudTrailFaults(t *testing.T) {
	tests := []struct {
		name         string
		inject       func(*CloudTrail)
		wantCode     string // "" = the call succeeds
		wantStatus   int
		wantRequests int
	}{
		{
			name: "every call AccessDenied, not retried",
			inject: func(c *CloudTrail) {
				c.SetFault(func(LookupRequest) *APIError { e := CloudTrailAccessDenied; return &e })
			},
			wantCode: "AccessDeniedException", wantStatus: 400, wantRequests: 1,
		},
		{
			name:         "first two calls throttled, SDK retries through",
			inject:       func(c *CloudTrail) { c.FailNext(2, CloudTrailThrottling) },
			wantRequests: 3,
		},
		{
			name:     "throttled beyond the retry budget",
			inject:   func(c *CloudTrail) { c.FailNext(3, CloudTrailThrottling) },
			wantCode: "ThrottlingException", wantStatus: 400, wantRequests: 3,
		},
		{
			name: "fault chosen per request: only i-2 denied",
			inject: func(c *CloudTrail) {
				c.SetFault(func(r LookupRequest) *APIError {
					if r.AttributeValue == "i-1" {
						return nil
					}
					e := CloudTrailAccessDenied
					return &e
				})
			},
			wantRequests: 1,
		},
		{
			name:     "server error is retried as a 5xx",
			inject:   func(c *CloudTrail) { c.FailNext(5, APIError{Code: "InternalFailure", Status: 500}) },
			wantCode: "InternalFailure", wantStatus: 500, wantRequests: 3,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct, client := newTestCloudTrail(t)
			ct.AddEvent(RoleDeliveryEvent(RoleDelivery{InstanceID: "i-1"}))
			tc.inject(ct)
			out, err := client.LookupEvents(testContext(t), &cloudtrail.LookupEventsInput{LookupAttributes: byUsername("i-1")})
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if len(out.Events) != 1 {
					t.Fatalf("%d events, want 1", len(out.Events))
				}
			} else {
				var apiErr smithy.APIError
				if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tc.wantCode {
					t.Fatalf("error %v, want API error %s", err, tc.wantCode)
				}
				assertHTTPStatus(t, err, tc.wantStatus)
			}
			if got := ct.Requests(); got != tc.wantRequests {
				t.Errorf("%d requests, want %d", got, tc.wantRequests)
			}
		})
	}
}

func TestCloudTrailRecordsRequests(t *testing.T) {
	ct, client := newTestCloudTrail(t)
	ctx := testContext(t)
	for _, in := range []*cloudtrail.LookupEventsInput{
		{LookupAttributes: byUsername("i-1")},
		{},
		{LookupAttributes: []cttypes.LookupAttribute{{AttributeKey: cttypes.LookupAttributeKeyEventName, AttributeValue: aws.String("X")}}},
		{LookupAttributes: byUsername("i-2")},
	} {
		if _, err := client.LookupEvents(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := ct.Usernames(), []string{"i-1", "", "", "i-2"}; !slices.Equal(got, want) {
		t.Fatalf("Usernames() = %q, want %q", got, want)
	}
	if ct.Requests() != 4 {
		t.Fatalf("Requests() = %d, want 4", ct.Requests())
	}
	ct.Reset()
	if ct.Requests() != 0 || len(ct.Usernames()) != 0 {
		t.Fatal("Reset kept counters")
	}
}

func TestCloudTrailUnknownOperation(t *testing.T) {
	_, client := newTestCloudTrail(t)
	_, err := client.DescribeTrails(testContext(t), &cloudtrail.DescribeTrailsInput{})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "UnknownOperationException" {
		t.Fatalf("DescribeTrails: %v, want UnknownOperationException", err)
	}
}

// The stand-in insists on the JSON 1.1 wire format and a signature, like the service.
func TestCloudTrailProtocolChecks(t *testing.T) {
	ct, _ := newTestCloudTrail(t)
	tests := []struct {
		name       string
		target, ct string
		signed     bool
		wantStatus int
		wantType   string
	}{
		{"well-formed", lookupEventsTarget, amzJSON11, true, 200, ""},
		{"JSON 1.0 content type", lookupEventsTarget, "application/x-amz-json-1.0", true, 400, "SerializationException"},
		{"other target", "CloudTrail_20131101.DescribeTrails", amzJSON11, true, 400, "UnknownOperationException"},
		{"unsigned", lookupEventsTarget, amzJSON11, false, 403, "MissingAuthenticationTokenException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, ct.URL+"/", strings.NewReader(`{}`))
			req.Header.Set("X-Amz-Target", tc.target)
			req.Header.Set("Content-Type", tc.ct)
			if tc.signed {
				req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260301/us-east-1/cloudtrail/aws4_request, SignedHeaders=host, Signature=00")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("X-Amzn-ErrorType") != tc.wantType {
				t.Fatalf("status %d type %q body %v, want %d %q", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body, tc.wantStatus, tc.wantType)
			}
			if tc.wantType != "" && body["__type"] != tc.wantType {
				t.Fatalf("__type %v, want %s", body["__type"], tc.wantType)
			}
		})
	}
}

func TestRoleDeliveryEventRecord(t *testing.T) {
	ct, client := newTestCloudTrail(t)
	at := time.Date(2026, 2, 20, 8, 30, 15, 0, time.UTC)
	want := ct.AddEvent(RoleDeliveryEvent(RoleDelivery{
		AccountID: "111122223333", Region: "eu-west-1", InstanceID: "i-0abc", RoleName: "web",
		Delivery: "1.0", EventName: "GetObject", EventSource: "s3.amazonaws.com", UserAgent: "curl/8", SourceIP: "198.51.100.7", Time: at,
	}))
	noDelivery := ct.AddEvent(RoleDeliveryEvent(RoleDelivery{InstanceID: "i-0def", Time: at}))
	bad := ct.AddEvent(Event{Username: "i-0abc", EventName: "DescribeInstances", EventTime: at.Add(-time.Hour), CloudTrailEvent: `{"eventVersion": "1.08", truncated`})

	events, _ := lookupAll(t, client, &cloudtrail.LookupEventsInput{LookupAttributes: byUsername("i-0abc")})
	if len(events) != 2 {
		t.Fatalf("%d events, want 2", len(events))
	}
	got := events[0]
	if aws.ToString(got.CloudTrailEvent) != want.CloudTrailEvent || aws.ToString(got.EventId) != want.EventID ||
		!aws.ToTime(got.EventTime).Equal(at) || aws.ToString(got.ReadOnly) != "true" || aws.ToString(got.AccessKeyId) != want.AccessKeyID {
		t.Fatalf("returned event %+v does not match the stored %+v", got, want)
	}
	if aws.ToString(events[1].CloudTrailEvent) != bad.CloudTrailEvent {
		t.Fatalf("malformed record not returned verbatim: %q", aws.ToString(events[1].CloudTrailEvent))
	}

	var rec struct {
		EventVersion string `json:"eventVersion"`
		UserIdentity struct {
			Type, PrincipalID, ARN, AccountID, AccessKeyID string
			SessionContext                                 struct {
				SessionIssuer   struct{ Type, ARN, UserName string }
				Attributes      struct{ CreationDate, MFAAuthenticated string }
				EC2RoleDelivery *string `json:"ec2RoleDelivery"`
			}
		}
		EventTime, EventSource, EventName, AWSRegion, SourceIPAddress, UserAgent, RequestID, EventID, EventType, RecipientAccountID string
		ReadOnly                                                                                                                    bool
	}
	if err := json.Unmarshal([]byte(want.CloudTrailEvent), &rec); err != nil {
		t.Fatal(err)
	}
	u := rec.UserIdentity
	checks := []struct{ field, got, want string }{
		{"eventVersion", rec.EventVersion, "1.08"},
		{"userIdentity.type", u.Type, "AssumedRole"},
		{"userIdentity.arn", u.ARN, "arn:aws:sts::111122223333:assumed-role/web/i-0abc"},
		{"userIdentity.accountId", u.AccountID, "111122223333"},
		{"userIdentity.accessKeyId", u.AccessKeyID, want.AccessKeyID},
		{"sessionIssuer.arn", u.SessionContext.SessionIssuer.ARN, "arn:aws:iam::111122223333:role/web"},
		{"sessionIssuer.userName", u.SessionContext.SessionIssuer.UserName, "web"},
		{"attributes.mfaAuthenticated", u.SessionContext.Attributes.MFAAuthenticated, "false"},
		{"ec2RoleDelivery", aws.ToString(u.SessionContext.EC2RoleDelivery), "1.0"},
		{"eventTime", rec.EventTime, "2026-02-20T08:30:15Z"},
		{"eventSource", rec.EventSource, "s3.amazonaws.com"},
		{"eventName", rec.EventName, "GetObject"},
		{"awsRegion", rec.AWSRegion, "eu-west-1"},
		{"sourceIPAddress", rec.SourceIPAddress, "198.51.100.7"},
		{"userAgent", rec.UserAgent, "curl/8"},
		{"eventID", rec.EventID, want.EventID},
		{"eventType", rec.EventType, "AwsApiCall"},
		{"recipientAccountId", rec.RecipientAccountID, "111122223333"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if !strings.HasPrefix(u.AccessKeyID, "ASIA") || len(u.AccessKeyID) != 20 {
		t.Errorf("accessKeyId %q is not a temporary (ASIA...) key", u.AccessKeyID)
	}
	if !strings.HasSuffix(u.PrincipalID, ":i-0abc") || !strings.HasPrefix(u.PrincipalID, "AROA") {
		t.Errorf("principalId %q, want AROA...:i-0abc", u.PrincipalID)
	}
	if !rec.ReadOnly || rec.RequestID == "" || u.SessionContext.Attributes.CreationDate == "" {
		t.Errorf("readOnly/requestID/creationDate missing: %+v", rec)
	}
	if strings.Contains(noDelivery.CloudTrailEvent, "ec2RoleDelivery") {
		t.Errorf("Delivery \"\" must omit ec2RoleDelivery: %s", noDelivery.CloudTrailEvent)
	}
}

// Concurrent seeding and lookups are safe (run with -race to check).
func TestCloudTrailConcurrentUse(t *testing.T) {
	ct, client := newTestCloudTrail(t)
	ctx := testContext(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			id := fmt.Sprintf("i-%d", w%2)
			for i := range 25 {
				ct.AddEvent(RoleDeliveryEvent(RoleDelivery{InstanceID: id, Time: ctBase.Add(time.Duration(i) * time.Second)}))
				if _, err := client.LookupEvents(ctx, &cloudtrail.LookupEventsInput{LookupAttributes: byUsername(id)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, id := range []string{"i-0", "i-1"} {
		if events, _ := lookupAll(t, client, &cloudtrail.LookupEventsInput{LookupAttributes: byUsername(id)}); len(events) != 100 {
			t.Fatalf("%s: %d events, want 100", id, len(events))
		}
	}
	// The SDK resends a request whose connection it saw closed while it was reading the
	// reply (aws-sdk-go-v2 retries net.ErrClosed), which can happen under load: the count
	// is a lower bound.
	if got := ct.Requests(); got < 200+4 {
		t.Fatalf("%d requests, want at least 204", got)
	}
}

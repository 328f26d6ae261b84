package fakeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
)

// CloudTrail is an in-process CloudTrail event history. LookupEvents answers with the
// events whose user name matches the Username lookup attribute (every event when there
// is none), within [StartTime, EndTime], newest first, MaxResults (default 50) a page.
// Events is never nil, as in a real reply.
type CloudTrail struct {
	// Lookup records the calls and holds the replies set for the next ones.
	Lookup Op[cloudtrail.LookupEventsInput, cloudtrail.LookupEventsOutput]

	Journal *Journal

	mu     sync.Mutex
	events []cttypes.Event
}

// NewCloudTrail returns a CloudTrail with no events.
func NewCloudTrail(journal *Journal) *CloudTrail {
	return &CloudTrail{Journal: journal}
}

// Add adds events to the history.
func (c *CloudTrail) Add(events ...cttypes.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, events...)
}

// RoleDelivery is an event made with an instance role's credentials (whose session
// name, and so the event's user name, is the instance id) that were delivered over
// IMDSv1 (delivery "1.0") or IMDSv2 ("2.0").
func RoleDelivery(instanceID, delivery, userAgent, sourceIP string, at time.Time) cttypes.Event {
	record := map[string]any{
		"eventVersion":    "1.08",
		"eventTime":       at.UTC().Format(time.RFC3339),
		"eventSource":     "s3.amazonaws.com",
		"eventName":       "ListBuckets",
		"sourceIPAddress": sourceIP,
		"userAgent":       userAgent,
		"userIdentity": map[string]any{
			"type": "AssumedRole",
			"sessionContext": map[string]any{
				"ec2RoleDelivery": delivery,
			},
		},
	}
	body, err := json.Marshal(record)
	if err != nil {
		panic(fmt.Sprintf("fakeapi: encoding a CloudTrail record: %v", err))
	}
	return cttypes.Event{
		EventId:         aws.String(fmt.Sprintf("ev-%s-%s-%d", instanceID, delivery, at.UnixNano())),
		EventName:       aws.String("ListBuckets"),
		EventSource:     aws.String("s3.amazonaws.com"),
		EventTime:       aws.Time(at.UTC()),
		Username:        aws.String(instanceID),
		CloudTrailEvent: aws.String(string(body)),
	}
}

// LookupEvents implements evidence.CloudTrailAPI.
func (c *CloudTrail) LookupEvents(ctx context.Context, in *cloudtrail.LookupEventsInput, _ ...func(*cloudtrail.Options)) (*cloudtrail.LookupEventsOutput, error) {
	c.Journal.add("cloudtrail:LookupEvents")
	return c.Lookup.call(ctx, in, c.answer)
}

func (c *CloudTrail) answer(in *cloudtrail.LookupEventsInput) (*cloudtrail.LookupEventsOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(in.LookupAttributes) > 1 {
		return nil, APIError("InvalidLookupAttributesException", "You cannot specify more than one lookup attribute")
	}
	username, byUser := "", false
	if len(in.LookupAttributes) == 1 {
		a := in.LookupAttributes[0]
		if a.AttributeKey != cttypes.LookupAttributeKeyUsername {
			return nil, APIError("InvalidLookupAttributesException", fmt.Sprintf("fakeapi: the lookup attribute %s is not supported", a.AttributeKey))
		}
		username, byUser = aws.ToString(a.AttributeValue), true
	}
	size := int(aws.ToInt32(in.MaxResults))
	if size == 0 {
		size = 50
	}
	if size < 1 || size > 50 {
		return nil, APIError("InvalidMaxResultsException", fmt.Sprintf("MaxResults %d is not from 1 to 50", size))
	}
	var matched []cttypes.Event
	for _, ev := range c.events {
		at := aws.ToTime(ev.EventTime)
		switch {
		case byUser && aws.ToString(ev.Username) != username:
		case in.StartTime != nil && at.Before(*in.StartTime):
		case in.EndTime != nil && at.After(*in.EndTime):
		default:
			matched = append(matched, ev)
		}
	}
	slices.SortStableFunc(matched, func(a, b cttypes.Event) int { return aws.ToTime(b.EventTime).Compare(aws.ToTime(a.EventTime)) })
	from := 0
	if tok := aws.ToString(in.NextToken); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || n > len(matched) {
			return nil, APIError("InvalidNextTokenException", "the next token is not one this fake handed out")
		}
		from = n
	}
	to := min(from+size, len(matched))
	out := &cloudtrail.LookupEventsOutput{Events: append([]cttypes.Event{}, matched[from:to]...)}
	if to < len(matched) {
		out.NextToken = aws.String(strconv.Itoa(to))
	}
	return out, nil
}

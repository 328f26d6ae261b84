package evidence

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"golang.org/x/time/rate"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// CloudTrailAPI is the part of the CloudTrail client the delivery reader uses.
type CloudTrailAPI interface {
	LookupEvents(ctx context.Context, in *cloudtrail.LookupEventsInput, optFns ...func(*cloudtrail.Options)) (*cloudtrail.LookupEventsOutput, error)
}

// LookupEventsPerSecond is CloudTrail's LookupEvents quota per account and region.
const LookupEventsPerSecond = 2

// MemberLookupsPerSecond is the pace of the hub's LookupEvents in each member
// account-region, a tenth below the quota: CloudTrail counts the calls as they arrive,
// and the network can bring two calls sent half a second apart closer than that (make
// bench-org measured three in one second at exactly 2 a second).
const MemberLookupsPerSecond = 0.9 * LookupEventsPerSecond

// maxTrailLookback is CloudTrail's event history.
const maxTrailLookback = 90 * 24 * time.Hour

// NewLookupLimiter returns a limiter for one account-region's LookupEvents calls.
func NewLookupLimiter(perSecond float64) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(perSecond), 1)
}

// CredentialDeliveries looks up the events made with the instance role's credentials
// (their session name, and so the CloudTrail user name, is the instance id) and counts
// how the credentials were delivered: ec2RoleDelivery "1.0" over IMDSv1, "2.0" over
// IMDSv2. It stops at the first page with an IMDSv1 delivery, because one settles the
// verdict; the counts are then lower bounds. Every call waits for the limiter, which
// must be shared by all lookups in the same account and region.
func CredentialDeliveries(ctx context.Context, api CloudTrailAPI, limiter *rate.Limiter, inst policy.Instance, lookback time.Duration, now time.Time) (*policy.CloudTrailUsage, error) {
	end := now.UTC()
	start := end.Add(-min(lookback, maxTrailLookback))
	in := &cloudtrail.LookupEventsInput{
		LookupAttributes: []cttypes.LookupAttribute{{
			AttributeKey:   cttypes.LookupAttributeKeyUsername,
			AttributeValue: aws.String(inst.InstanceID),
		}},
		StartTime:  aws.Time(start),
		EndTime:    aws.Time(end),
		MaxResults: aws.Int32(50),
	}
	fail := func(err error) (*policy.CloudTrailUsage, error) {
		return nil, fmt.Errorf("%s for %s: %w", opLookupEvents, inst.InstanceID, TimeUp(ctx, err))
	}
	acc := newDeliveryTally(inst.Addresses)
	chain := NewPageChain(opLookupEvents)
	for {
		if err := limiter.Wait(ctx); err != nil {
			if _, deadline := ctx.Deadline(); limiter.Burst() > 0 && (deadline || ctx.Err() != nil) {
				// Cancelled, past its deadline, or too close to it for the next call's turn;
				// with a burst of 0 no call is ever allowed, which is no question of time.
				err = fmt.Errorf("%w: %w", ErrOutOfTime, err)
			}
			return fail(err)
		}
		page, err := api.LookupEvents(ctx, in, func(o *cloudtrail.Options) {
			o.APIOptions = append(o.APIOptions, RequireComplete(opLookupEvents, incompleteEvents))
		})
		if err == nil {
			if problem := incompleteEvents(page); problem != "" {
				err = &IncompleteReplyError{Operation: opLookupEvents, Problem: problem}
			}
		}
		if err != nil {
			return fail(err)
		}
		for _, ev := range page.Events {
			if err := acc.add(ev); err != nil {
				return fail(err)
			}
		}
		if acc.usage.V1Deliveries > 0 {
			// One IMDSv1 delivery settles the verdict: the counts are lower bounds.
			return acc.result(), nil
		}
		next, err := chain.Next(page.NextToken)
		if err != nil {
			return fail(err)
		}
		if next == nil {
			return acc.result(), nil
		}
		in.NextToken = next
	}
}

const opLookupEvents = "cloudtrail:LookupEvents"

// incompleteEvents says what is missing from a LookupEvents reply, or "". The Events
// element is always there in a real reply, empty when nothing matched: without it the
// reply says nothing, least of all "no IMDSv1 deliveries".
func incompleteEvents(page *cloudtrail.LookupEventsOutput) string {
	if page == nil || page.Events == nil {
		return "no Events"
	}
	return ""
}

// trailRecord is the part of a CloudTrail record that tells how credentials were delivered.
type trailRecord struct {
	EventName       string    `json:"eventName"`
	EventTime       time.Time `json:"eventTime"`
	SourceIPAddress string    `json:"sourceIPAddress"`
	UserAgent       string    `json:"userAgent"`
	UserIdentity    struct {
		SessionContext struct {
			EC2RoleDelivery string `json:"ec2RoleDelivery"`
		} `json:"sessionContext"`
	} `json:"userIdentity"`
}

type deliveryTally struct {
	usage   policy.CloudTrailUsage
	own     map[netip.Addr]bool
	foreign []string
}

func newDeliveryTally(addresses []string) *deliveryTally {
	own := make(map[netip.Addr]bool, len(addresses))
	for _, a := range addresses {
		if ip, err := netip.ParseAddr(a); err == nil {
			own[ip.Unmap()] = true
		}
	}
	return &deliveryTally{own: own}
}

func (t *deliveryTally) add(ev cttypes.Event) error {
	raw := []byte(aws.ToString(ev.CloudTrailEvent))
	var rec trailRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return fmt.Errorf("event %s (%s) has a malformed CloudTrailEvent: %w", aws.ToString(ev.EventId), aws.ToString(ev.EventName), err)
	}
	// json.Unmarshal takes null for a record without fields, matches names regardless of
	// case and keeps the last of repeated ones: a record that is not an object, or that
	// gives ec2RoleDelivery other than once as CloudTrail spells it, cannot be read as "not
	// IMDSv1".
	if text := bytes.TrimSpace(raw); len(text) == 0 || text[0] != '{' {
		return fmt.Errorf("event %s (%s) has a CloudTrailEvent that is not a JSON object", aws.ToString(ev.EventId), aws.ToString(ev.EventName))
	}
	if got := spellings(raw, deliveryPath, ""); len(got) > 1 || len(got) == 1 && got[0] != strings.Join(deliveryPath, ".") {
		return fmt.Errorf("event %s (%s) has a CloudTrailEvent that gives ec2RoleDelivery as %s, not once as %s",
			aws.ToString(ev.EventId), aws.ToString(ev.EventName), strings.Join(got, " and "), strings.Join(deliveryPath, "."))
	}
	name := rec.EventName
	if name == "" {
		name = aws.ToString(ev.EventName)
	}
	when := rec.EventTime
	if when.IsZero() {
		when = aws.ToTime(ev.EventTime)
	}
	d := Delivery{Kind: rec.UserIdentity.SessionContext.EC2RoleDelivery, EventName: name, UserAgent: rec.UserAgent,
		SourceIP: rec.SourceIPAddress, Count: 1, Last: when}
	if err := t.addDelivery(d); err != nil {
		return fmt.Errorf("event %s (%s) has %w", aws.ToString(ev.EventId), aws.ToString(ev.EventName), err)
	}
	return nil
}

// Delivery is one or more uses of an instance role's credentials delivered the same way,
// as the organization trail's query counts them (package trailquery).
type Delivery struct {
	// Kind is the ec2RoleDelivery: "1.0", "2.0", or "" (not instance role credentials).
	Kind                           string
	EventName, UserAgent, SourceIP string
	Count                          int
	Last                           time.Time
}

// TallyDeliveries is the CloudTrail evidence of an instance (with addresses, its own)
// from its deliveries, as CredentialDeliveries makes it from LookupEvents.
func TallyDeliveries(addresses []string, ds []Delivery) (*policy.CloudTrailUsage, error) {
	t := newDeliveryTally(addresses)
	for _, d := range ds {
		if err := t.addDelivery(d); err != nil {
			return nil, err
		}
	}
	return t.result(), nil
}

func (t *deliveryTally) addDelivery(d Delivery) error {
	switch d.Kind {
	case "2.0":
		t.usage.V2Deliveries += d.Count
	case "1.0":
		t.usage.V1Deliveries += d.Count
		t.usage.EventNames = append(t.usage.EventNames, d.EventName)
		t.usage.UserAgents = append(t.usage.UserAgents, d.UserAgent)
		t.usage.SourceIPs = append(t.usage.SourceIPs, d.SourceIP)
		// sourceIPAddress may be a service name ("ec2.amazonaws.com"): only an address
		// can be compared with the instance's own.
		if ip, err := netip.ParseAddr(d.SourceIP); err == nil && !t.own[ip.Unmap()] {
			t.foreign = append(t.foreign, d.SourceIP)
		}
		if when := d.Last.UTC(); t.usage.LastV1Delivery == nil || when.After(*t.usage.LastV1Delivery) {
			t.usage.LastV1Delivery = &when
		}
	case "":
		// Events without ec2RoleDelivery were not made with instance role credentials.
	default:
		// A value this code does not know cannot be read as "not IMDSv1".
		return fmt.Errorf("the unknown ec2RoleDelivery %q", d.Kind)
	}
	return nil
}

// deliveryPath is where a record says how the credentials were delivered.
var deliveryPath = []string{"userIdentity", "sessionContext", "ec2RoleDelivery"}

// spellings returns the members of the JSON object raw, and of the objects in it, that
// encoding/json would decode into path (names matched regardless of case), each as the
// record spells it, repeats included, after prefix.
func spellings(raw []byte, path []string, prefix string) []string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	var out []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return out
		}
		key, _ := tok.(string)
		switch {
		case !strings.EqualFold(key, path[0]):
		case len(path) == 1:
			out = append(out, prefix+key)
		default:
			out = append(out, spellings(value, path[1:], prefix+key+".")...)
		}
	}
	return out
}

func (t *deliveryTally) result() *policy.CloudTrailUsage {
	u := t.usage
	u.EventNames = sortedUnique(u.EventNames)
	u.UserAgents = sortedUnique(u.UserAgents)
	u.SourceIPs = sortedUnique(u.SourceIPs)
	u.ForeignSourceIPs = sortedUnique(t.foreign)
	return &u
}

package evidence_test

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// fuzzAddresses are the own addresses of the instance the fuzzed records are about.
var fuzzAddresses = []string{"10.0.0.1", "54.1.2.3", "2600:1f18::1", "not-an-address"}

var recordTime = time.Date(2026, 11, 21, 8, 30, 2, 0, time.UTC)

// exactDelivery reads userIdentity.sessionContext.ec2RoleDelivery of a record by its
// names exactly as CloudTrail spells them: its raw JSON value, and whether the record is
// a JSON object at all.
func exactDelivery(record string) (value json.RawMessage, isObject bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal([]byte(record), &top) != nil || top == nil {
		return nil, false
	}
	raw := json.RawMessage(record)
	for _, key := range []string{"userIdentity", "sessionContext", "ec2RoleDelivery"} {
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil || m == nil {
			return nil, true
		}
		raw = m[key]
	}
	return raw, true
}

// deliveryKeys returns every member name path of a record, as spelt, that names
// userIdentity.sessionContext.ec2RoleDelivery when names are compared regardless of case
// (as encoding/json compares them), repeats included. It walks the record's tokens.
func deliveryKeys(record string) []string {
	type frame struct {
		object, wantKey bool
		key             string
	}
	var stack []*frame
	var out []string
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	dec := json.NewDecoder(strings.NewReader(record))
	for {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
			if tok == json.Delim('}') {
				stack = stack[:n-1]
				valueDone()
				continue
			}
			stack[n-1].key, stack[n-1].wantKey = tok.(string), false
			if n == 3 {
				path, match := make([]string, 3), true
				for i, f := range stack {
					path[i] = f.key
					match = match && f.object && strings.EqualFold(f.key, []string{"userIdentity", "sessionContext", "ec2RoleDelivery"}[i])
				}
				if match {
					out = append(out, strings.Join(path, "."))
				}
			}
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}

// checkDelivery asserts what the tally must make of one record.
func checkDelivery(t *testing.T, record string, ev cttypes.Event, u *policy.CloudTrailUsage, err error) {
	t.Helper()
	if (u == nil) == (err == nil) {
		t.Fatalf("want exactly one of usage and error: %+v, %v", u, err)
	}
	value, isObject := exactDelivery(record)
	if !isObject {
		if err == nil {
			t.Fatalf("record %.200q is not a JSON object, yet it was read as %+v", record, u)
		}
		return
	}
	if keys := deliveryKeys(record); len(keys) > 1 || len(keys) == 1 && keys[0] != "userIdentity.sessionContext.ec2RoleDelivery" {
		if err == nil {
			t.Fatalf("record gives ec2RoleDelivery as %q, yet it was read as %+v", keys, u)
		}
		return
	}
	var delivery string
	isString := len(value) == 0 || string(value) == "null" || json.Unmarshal(value, &delivery) == nil
	switch {
	case !isString:
		if err == nil {
			t.Fatalf("ec2RoleDelivery %s is not a string, yet the record was read as %+v", value, u)
		}
	case delivery != "" && delivery != "1.0" && delivery != "2.0":
		if err == nil {
			t.Fatalf("ec2RoleDelivery %q is unknown, yet the record was read as %+v", delivery, u)
		}
	}
	if err != nil {
		if !strings.Contains(err.Error(), aws.ToString(ev.EventId)) {
			t.Errorf("error %q does not name the event %s", err, aws.ToString(ev.EventId))
		}
		return
	}
	if u.V1Deliveries < 0 || u.V2Deliveries < 0 {
		t.Fatalf("negative counts %+v", u)
	}
	want := [2]int{}
	switch delivery {
	case "1.0":
		want[0] = 1
	case "2.0":
		want[1] = 1
	}
	if got := [2]int{u.V1Deliveries, u.V2Deliveries}; got != want {
		t.Fatalf("ec2RoleDelivery %q read as %d IMDSv1 and %d IMDSv2 deliveries, want %v: %.300q", delivery, got[0], got[1], want, record)
	}
	if delivery != "1.0" {
		if len(u.EventNames)+len(u.UserAgents)+len(u.SourceIPs)+len(u.ForeignSourceIPs) > 0 || u.LastV1Delivery != nil {
			t.Fatalf("not an IMDSv1 delivery, yet it is described as one: %+v", u)
		}
		return
	}
	// An IMDSv1 delivery: its time, and whether it came from somewhere else.
	if u.LastV1Delivery == nil {
		t.Fatalf("an IMDSv1 delivery without a time: %+v", u)
	}
	var rec struct {
		SourceIPAddress string `json:"sourceIPAddress"`
	}
	_ = json.Unmarshal([]byte(record), &rec)
	ip, perr := netip.ParseAddr(rec.SourceIPAddress)
	own := false
	for _, a := range fuzzAddresses {
		if o, err := netip.ParseAddr(a); err == nil && perr == nil && o.Unmap() == ip.Unmap() {
			own = true
		}
	}
	foreign := perr == nil && !own
	if foreign != slices.Contains(u.ForeignSourceIPs, rec.SourceIPAddress) || !foreign && len(u.ForeignSourceIPs) > 0 {
		t.Fatalf("source %q (an address: %v, the instance's: %v): ForeignSourceIPs %q", rec.SourceIPAddress, perr == nil, own, u.ForeignSourceIPs)
	}
	if rec.SourceIPAddress != "" && !slices.Contains(u.SourceIPs, rec.SourceIPAddress) {
		t.Fatalf("source %q not among SourceIPs %q", rec.SourceIPAddress, u.SourceIPs)
	}
}

func deliveryEvent(record string) cttypes.Event {
	return cttypes.Event{EventId: aws.String("ev-7f3a"), EventName: aws.String("DescribeInstances"),
		EventTime: aws.Time(recordTime), Username: aws.String("i-0a1b2c3d4e5f60718"), CloudTrailEvent: aws.String(record)}
}

// FuzzDeliveryRecord reads any text as a record's CloudTrailEvent: the tally never
// panics; a record that is not a JSON object, or whose ec2RoleDelivery is not "1.0",
// "2.0" or absent, is an error; "1.0" is always an IMDSv1 delivery and "2.0" an IMDSv2
// one, and an IMDSv1 delivery from an address that is not the instance's is foreign.
func FuzzDeliveryRecord(f *testing.F) {
	for _, d := range []fakeaws.RoleDelivery{
		{Delivery: "1.0"}, {Delivery: "2.0"}, {Delivery: ""}, {Delivery: "1.1"}, {Delivery: "1.0", SourceIP: "198.51.100.7"},
		{Delivery: "1.0", SourceIP: "::ffff:10.0.0.1"}, {Delivery: "1.0", SourceIP: "ec2.amazonaws.com"},
		{Delivery: "1.0", SourceIP: "2600:1f18::1"}, {Delivery: "1.0", SourceIP: "fe80::1%eth0"},
		{Delivery: "1.0", SourceIP: "10.0.0.1 "}, {Delivery: "1.0", UserAgent: "aws-sdk-go/1.44.0 (go1.20; linux; amd64)"},
	} {
		d.InstanceID, d.Time, d.AccessKeyID = "i-0a1b2c3d4e5f60718", recordTime, "ASIAEXAMPLE0000000000"
		f.Add(fakeaws.RoleDeliveryEvent(d).CloudTrailEvent)
	}
	for _, s := range []string{
		``, ` `, `null`, `{}`, `[]`, `"1.0"`, `1`, `{"userIdentity": null}`, `{"userIdentity": {"sessionContext": null}}`,
		`{"userIdentity": {"sessionContext": {"ec2RoleDelivery": null}}}`,
		`{"userIdentity": {"sessionContext": {"ec2RoleDelivery": 1.0}}}`,
		`{"userIdentity": {"sessionContext": {"ec2RoleDelivery": ["1.0"]}}}`,
		`{"userIdentity": {"sessionContext": {"ec2RoleDelivery": "1.0"}}}`,
		`{"userIdentity": {"sessionContext": {"ec2RoleDelivery": "1.0"}}} trailing`,
		`{"userIdentity": {"sessionContext": {"ec2RoleDelivery": "1.0 "}}}`,
		`{"userIdentity": {"sessionContext": {"ec2RoleDelivery": "\u0031.0"}}}`,
		`{"userIdentity": {"sessionContext": {"ec2RoleDelivery": "1.0", "EC2RoleDelivery": "2.0"}}}`,
		`{"userIdentity": {"sessionContext": {"ec2RoleDelivery": "1.0", "ec2roledelivery": ""}}}`,
		`{"userIdentity": {"sessionContext": {"ec2RoleDelivery": "1.0"}}, "UserIdentity": {"sessionContext": {"ec2RoleDelivery": "2.0"}}}`,
		`{"userIdentity": {"sessionContext": {"Ec2RoleDelivery": "2.0"}}}`,
		`{"userIdentity": {"sessionContext": {"ec2RoleDelivery": "1.0"}}, "eventTime": "yesterday"}`,
		`{"userIdentity": {"sessionContext": {"ec2RoleDelivery": "1.0"}}, "eventTime": null, "sourceIPAddress": 7}`,
		`{"userIdentity": {"sessionContext": {"ec2RoleDelivery": "1.0"}}, "sourceIPAddress": "203.0.113.9"}`,
		"{\"userIdentity\": {\"sessionContext\": {\"ec2RoleDelivery\": \"1.0\"}}, \"userAgent\": \"\xff\"}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, record string) {
		ev := deliveryEvent(record)
		u, err := evidence.ParseDelivery(ev, fuzzAddresses)
		checkDelivery(t, record, ev, u, err)
	})
}

// FuzzDeliveryFields builds well-formed records from fuzzed field values: the delivery
// is counted by its ec2RoleDelivery alone, and an IMDSv1 delivery keeps its event name,
// user agent, source and time.
func FuzzDeliveryFields(f *testing.F) {
	f.Add("1.0", "GetObject", "aws-sdk-java/1.12.0", "198.51.100.7", int64(0))
	f.Add("2.0", "GetObject", "aws-sdk-java/2.20.0", "10.0.0.1", int64(3600))
	f.Add("", "AssumeRole", "", "sts.amazonaws.com", int64(-1))
	f.Add("1.0", "", "", "", int64(1<<40))
	f.Add("1.0", "x", "y", "::ffff:54.1.2.3", int64(-62135596800))
	f.Add("v1", "x", "y", "10.0.0.2", int64(0))
	f.Fuzz(func(t *testing.T, delivery, name, agent, source string, offset int64) {
		rec := map[string]any{
			"eventName": name, "userAgent": agent, "sourceIPAddress": source,
			"userIdentity": map[string]any{"type": "AssumedRole", "sessionContext": map[string]any{"ec2RoleDelivery": delivery}},
		}
		at := recordTime.Add(time.Duration(offset%(1<<40)) * time.Second)
		if offset%7 != 0 {
			rec["eventTime"] = at.Format(time.RFC3339)
		}
		raw, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		record := string(raw)
		ev := deliveryEvent(record)
		u, err := evidence.ParseDelivery(ev, fuzzAddresses)
		checkDelivery(t, record, ev, u, err)
		if known := delivery == "" || delivery == "1.0" || delivery == "2.0"; (err == nil) != known {
			t.Fatalf("ec2RoleDelivery %q: error %v", delivery, err)
		}
		if err != nil || delivery != "1.0" {
			return
		}
		wantName := name
		if wantName == "" {
			wantName = aws.ToString(ev.EventName)
		}
		// Strings go through JSON: what the record holds is what decoding it gives.
		var back struct{ EventName, UserAgent string }
		_ = json.Unmarshal(raw, &back)
		if back.EventName != "" {
			wantName = back.EventName
		}
		if !slices.Equal(u.EventNames, []string{wantName}) {
			t.Errorf("EventNames %q, want [%q]", u.EventNames, wantName)
		}
		if (back.UserAgent == "") != (len(u.UserAgents) == 0) || back.UserAgent != "" && u.UserAgents[0] != back.UserAgent {
			t.Errorf("UserAgents %q, want %q", u.UserAgents, back.UserAgent)
		}
		wantAt := recordTime
		if offset%7 != 0 {
			wantAt, _ = time.Parse(time.RFC3339, at.Format(time.RFC3339))
		}
		if !u.LastV1Delivery.Equal(wantAt) || u.LastV1Delivery.Location() != time.UTC {
			t.Errorf("LastV1Delivery %v, want %v in UTC", u.LastV1Delivery, wantAt)
		}
	})
}

// TestDeliveryRecordReadOneWayOnly: json.Unmarshal reads null as a record without fields,
// matches names regardless of case and keeps the last of repeated ones. Without checks
// of their own, the tally read each of these records as "not IMDSv1" (no delivery, or an
// IMDSv2 one) although the record's own ec2RoleDelivery says "1.0".
func TestDeliveryRecordReadOneWayOnly(t *testing.T) {
	for _, tt := range []struct{ name, record, want string }{
		{"null", `null`, "not a JSON object"},
		{"null with spaces", " \n null ", "not a JSON object"},
		{"1.0 then 2.0 in another case", `{"userIdentity": {"sessionContext": {"ec2RoleDelivery": "1.0", "EC2RoleDelivery": "2.0"}}}`,
			"gives ec2RoleDelivery as userIdentity.sessionContext.ec2RoleDelivery and userIdentity.sessionContext.EC2RoleDelivery"},
		{"1.0 then empty", `{"userIdentity": {"sessionContext": {"ec2RoleDelivery": "1.0", "ec2roledelivery": ""}}}`, "gives ec2RoleDelivery as"},
		{"1.0 then 2.0 under another userIdentity", `{"userIdentity": {"sessionContext": {"ec2RoleDelivery": "1.0"}}, "UserIdentity": {"sessionContext": {"ec2RoleDelivery": "2.0"}}}`,
			"and UserIdentity.sessionContext.ec2RoleDelivery"},
		{"1.0 twice", `{"userIdentity": {"sessionContext": {"ec2RoleDelivery": "1.0", "ec2RoleDelivery": "2.0"}}}`, "gives ec2RoleDelivery as"},
		{"only in another case", `{"userIdentity": {"sessionContext": {"Ec2RoleDelivery": "2.0"}}}`, "not once as userIdentity.sessionContext.ec2RoleDelivery"},
		{"long s for s", `{"userIdentity": {"sessionContext": {"ec2RoleDelivery": "1.0"}}, "u\u017ferIdentity": {"sessionContext": {"ec2RoleDelivery": "2.0"}}}`, "gives ec2RoleDelivery as"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, err := evidence.ParseDelivery(deliveryEvent(tt.record), fuzzAddresses)
			if err == nil {
				t.Fatalf("read %s as %+v, want an error", tt.record, u)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "ev-7f3a") {
				t.Errorf("error %q, want it to name the event and contain %q", err, tt.want)
			}
		})
	}
	// What CloudTrail writes is read as before.
	for delivery, want := range map[string][2]int{"1.0": {1, 0}, "2.0": {0, 1}, "": {0, 0}} {
		ev := fakeaws.RoleDeliveryEvent(fakeaws.RoleDelivery{InstanceID: "i-0a1b2c3d4e5f60718", Delivery: delivery, Time: recordTime})
		u, err := evidence.ParseDelivery(deliveryEvent(ev.CloudTrailEvent), fuzzAddresses)
		if err != nil || [2]int{u.V1Deliveries, u.V2Deliveries} != want {
			t.Errorf("ec2RoleDelivery %q: %+v, %v; want %v", delivery, u, err, want)
		}
	}
}

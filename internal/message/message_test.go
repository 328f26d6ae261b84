package message_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
)

var (
	now      = time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	lastHour = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	v1At     = time.Date(2026, 11, 20, 3, 0, 0, 0, time.FixedZone("CET", 3600))
)

func instance() *policy.Instance {
	return &policy.Instance{
		AccountID: "123456789012", Region: "us-east-1", InstanceID: "i-0a1b2c3d4e5f60718", Name: `web <1> & "prod"`,
		State:   policy.StateRunning,
		Options: policy.MetadataOptions{HTTPTokens: policy.TokensOptional, HopLimit: 2, HTTPEndpoint: policy.EndpointEnabled, State: "applied"},
	}
}

func metrics(sum float64, hours int) *policy.MetricUsage {
	return &policy.MetricUsage{Sum: sum, ObservedHours: hours, LastDatapoint: &lastHour, LastNonZero: &v1At}
}

// verdictCase is one judged instance for New.
type verdictCase struct {
	name string
	ev   policy.Evidence
	v    policy.Verdict
}

func verdictCases() []verdictCase {
	r := func(code policy.ReasonCode, detail string) policy.Reason {
		return policy.Reason{Code: code, Detail: detail}
	}
	return []verdictCase{
		{"remediate", policy.Evidence{InstanceID: "i-0a1b2c3d4e5f60718", Instance: instance(), Metrics: metrics(0, 336),
			CloudTrail: &policy.CloudTrailUsage{V2Deliveries: 12}},
			policy.Verdict{Action: policy.ActionRemediate, Reasons: []policy.Reason{r(policy.ReasonIMDSv1Unused, "no IMDSv1 use in 336 observed hours")},
				Target: &policy.MetadataOptions{HTTPTokens: policy.TokensRequired, HopLimit: 1}}},
		{"remediate endpoint disabled, no profile", policy.Evidence{InstanceID: "i-1a2b3c4d", Instance: &policy.Instance{
			AccountID: "210987654321", Region: "eu-west-1", InstanceID: "i-1a2b3c4d", State: policy.StateStopped,
			Options: policy.MetadataOptions{HTTPTokens: policy.TokensOptional, HTTPEndpoint: policy.EndpointDisable}}},
			policy.Verdict{Action: policy.ActionRemediate, Reasons: []policy.Reason{r(policy.ReasonEndpointDisabled, "endpoint disabled"),
				r(policy.ReasonNoInstanceProfile, "")}}},
		{"ticket from the metric", policy.Evidence{InstanceID: "i-0a1b2c3d4e5f60718", Instance: instance(), Metrics: metrics(17.5, 200)},
			policy.Verdict{Action: policy.ActionTicket, Reasons: []policy.Reason{r(policy.ReasonIMDSv1UsedMetric, "17.5 calls")}}},
		{"ticket from CloudTrail, possible theft", policy.Evidence{InstanceID: "i-0a1b2c3d4e5f60718", Instance: instance(), Metrics: metrics(0, 200),
			CloudTrail: &policy.CloudTrailUsage{V1Deliveries: 1, V2Deliveries: 3, UserAgents: []string{"aws-sdk-java/1.11.0 \x00\u2028"},
				SourceIPs: []string{"198.51.100.7", "10.0.0.5"}, ForeignSourceIPs: []string{"198.51.100.7"}, LastV1Delivery: &now}},
			policy.Verdict{Action: policy.ActionTicket, Reasons: []policy.Reason{r(policy.ReasonIMDSv1UsedCloudTrail, "1 delivery"),
				r(policy.ReasonPossibleCredentialTheft, "198.51.100.7")}}},
		{"defer: evidence error, metrics and CloudTrail failed", policy.Evidence{InstanceID: "i-0a1b2c3d4e5f60718", Instance: instance(),
			Metrics: metrics(3, 3), MetricsErr: errors.New("throttled"), CloudTrail: &policy.CloudTrailUsage{}, CloudTrailErr: errors.New("denied")},
			policy.Verdict{Action: policy.ActionDefer, Reasons: []policy.Reason{r(policy.ReasonEvidenceError, "throttled")}}},
		{"defer: inventory failed, no instance", policy.Evidence{InstanceID: "i-0f9e8d7c6b5a49382", InventoryErr: errors.New("timeout")},
			policy.Verdict{Action: policy.ActionDefer, Reasons: []policy.Reason{r(policy.ReasonEvidenceError, "timeout")}}},
		{"skip: compliant, ticket to close", policy.Evidence{InstanceID: "i-0a1b2c3d4e5f60718", Instance: instance()},
			policy.Verdict{Action: policy.ActionSkip, Reasons: []policy.Reason{r(policy.ReasonCompliant, "HttpTokens required")}}},
		{"skip: not found", policy.Evidence{InstanceID: "i-0f9e8d7c6b5a49382"},
			policy.Verdict{Action: policy.ActionSkip, Reasons: []policy.Reason{r(policy.ReasonTerminated, "not found")}}},
	}
}

// canonical is v with every time in UTC, for comparing two Verdicts whose times are equal
// but carry different *time.Location values.
func canonical(v message.Verdict) message.Verdict {
	utc := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		u := t.UTC()
		return &u
	}
	v.CreatedAt = v.CreatedAt.UTC()
	v.Evidence.LastDatapoint, v.Evidence.LastV1Use = utc(v.Evidence.LastDatapoint), utc(v.Evidence.LastV1Use)
	return v
}

// sameVerdict reports whether a and b are the same message: equal field by field (times
// by instant) and encoded byte for byte the same (so zone offsets agree too).
func sameVerdict(t *testing.T, a, b message.Verdict) bool {
	t.Helper()
	ea, errA := a.Encode()
	eb, errB := b.Encode()
	if errA != nil || errB != nil {
		t.Fatalf("Encode: %v, %v", errA, errB)
	}
	return reflect.DeepEqual(canonical(a), canonical(b)) && bytes.Equal(ea, eb)
}

func TestNewEncodeParseRoundTrip(t *testing.T) {
	actions := map[policy.Action]bool{}
	for _, tc := range verdictCases() {
		t.Run(tc.name, func(t *testing.T) {
			m, err := message.New(tc.ev, tc.v, "123456789012", "us-east-1", now)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Validate(); err != nil {
				t.Fatalf("New made an invalid message: %v", err)
			}
			body, err := m.Encode()
			if err != nil {
				t.Fatal(err)
			}
			got, err := message.Parse(string(body))
			if err != nil {
				t.Fatalf("Parse(%s): %v", body, err)
			}
			if !sameVerdict(t, got, m) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
			}
			again, err := got.Encode()
			if err != nil || !bytes.Equal(again, body) {
				t.Errorf("re-encoded:\n%s\nwant\n%s (%v)", again, body, err)
			}
			// What New promises about the content.
			if got.Action != tc.v.Action || !reflect.DeepEqual(got.Reasons, tc.v.Reasons) {
				t.Errorf("action %s %v, want %s %v", got.Action, got.Reasons, tc.v.Action, tc.v.Reasons)
			}
			if (tc.ev.Instance == nil) != (got.Current == nil) {
				t.Errorf("Current = %+v for instance %+v", got.Current, tc.ev.Instance)
			}
			if tc.ev.MetricsErr != nil && (got.Evidence.MetadataNoTokenSum != nil || got.Evidence.ObservedHours != nil) {
				t.Errorf("failed metrics became evidence: %+v", got.Evidence)
			}
			if tc.ev.CloudTrailErr != nil && got.Evidence.CloudTrail != nil {
				t.Errorf("failed CloudTrail became evidence: %+v", got.Evidence.CloudTrail)
			}
			actions[got.Action] = true
		})
	}
	for _, a := range policy.Actions {
		if !actions[a] {
			t.Errorf("no round trip for action %s", a)
		}
	}
}

// validBody is a valid message for action, encoded.
func validBody(t testing.TB, action policy.Action) string {
	t.Helper()
	for _, tc := range verdictCases() {
		if tc.v.Action != action {
			continue
		}
		m, err := message.New(tc.ev, tc.v, "123456789012", "us-east-1", now)
		if err != nil {
			t.Fatal(err)
		}
		body, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return string(body)
	}
	t.Fatalf("no case for action %s", action)
	return ""
}

// edited is a valid body with the fields at the dotted paths set (nil deletes one).
func edited(t testing.TB, action policy.Action, set map[string]any) string {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(validBody(t, action)), &doc); err != nil {
		t.Fatal(err)
	}
	for path, value := range set {
		keys := strings.Split(path, ".")
		m := doc
		for _, k := range keys[:len(keys)-1] {
			m = m[k].(map[string]any)
		}
		if value == nil {
			delete(m, keys[len(keys)-1])
		} else {
			m[keys[len(keys)-1]] = value
		}
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestParseRefuses(t *testing.T) {
	ticket := validBody(t, policy.ActionTicket)
	tests := []struct {
		name, body, want string
	}{
		{"empty", ``, "not valid"},
		{"null", `null`, "invalid verdict message"},
		{"a list", `[` + ticket + `]`, "not valid"},
		{"trailing object", ticket + ticket, "more after its JSON object"},
		{"trailing garbage", ticket + ` x`, "more after its JSON object"},
		{"truncated", ticket[:len(ticket)-1], "not valid"},
		{"unknown field", edited(t, policy.ActionTicket, map[string]any{"target": map[string]any{"http_tokens": "required"}}), `unknown field "target"`},
		{"unknown nested field", edited(t, policy.ActionTicket, map[string]any{"evidence.cloudtrail": map[string]any{"v1": 1}}), `unknown field "v1"`},
		{"v1 schema", edited(t, policy.ActionTicket, map[string]any{"schema": "imdsguard.verdict/v1"}), `schema is "imdsguard.verdict/v1"`},
		{"no schema", edited(t, policy.ActionTicket, map[string]any{"schema": nil}), `schema is ""`},
		{"oversize", ticket[:len(ticket)-1] + strings.Repeat(" ", message.MaxBodyBytes) + "}", "longer than"},
		{"skip for a ticket reason", edited(t, policy.ActionTicket, map[string]any{"action": "skip"}), "a skip verdict is only sent to close a ticket"},
		{"skip without reasons", edited(t, policy.ActionSkip, map[string]any{"reasons": []any{}}), "a skip verdict is only sent to close a ticket"},
		{"unknown action", edited(t, policy.ActionTicket, map[string]any{"action": "enforce"}), `action "enforce"`},
		{"reasons missing", edited(t, policy.ActionTicket, map[string]any{"reasons": nil}), "reasons are missing"},
		{"empty primary code", edited(t, policy.ActionTicket, map[string]any{"reasons": []any{map[string]any{"code": ""}}}), "reasons are missing"},
		{"bad decision id", edited(t, policy.ActionTicket, map[string]any{"decision_id": "x"}), "decision_id"},
		{"no created_at", edited(t, policy.ActionTicket, map[string]any{"created_at": nil}), "created_at is missing"},
		{"bad account", edited(t, policy.ActionTicket, map[string]any{"account_id": "1234"}), "account_id"},
		{"bad region", edited(t, policy.ActionTicket, map[string]any{"region": "US-EAST-1"}), "region"},
		{"bad instance id", edited(t, policy.ActionTicket, map[string]any{"instance_id": "i-1"}), "instance_id"},
		{"hop limit too big", edited(t, policy.ActionTicket, map[string]any{"current.hop_limit": 65}), "hop_limit 65"},
		{"hop limit negative", edited(t, policy.ActionTicket, map[string]any{"current.hop_limit": -1}), "hop_limit -1"},
		{"hop limit not an int32", edited(t, policy.ActionTicket, map[string]any{"current.hop_limit": 1 << 40}), "not valid"},
		{"sum not a number", edited(t, policy.ActionTicket, map[string]any{"evidence.metadata_no_token_sum": "1"}), "not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := message.Parse(tt.body)
			if err == nil {
				t.Fatalf("Parse accepted %.200s: %+v", tt.body, got)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if !reflect.DeepEqual(got, message.Verdict{}) {
				t.Errorf("Parse returned %+v with its error", got)
			}
		})
	}
}

// TestParseRefusesAmbiguousFields: encoding/json matches field names regardless of case
// and lets a repeated field overwrite the first, so without a check of its own Parse
// would read `"action":"ticket","Action":"remediate"` as a remediate verdict, although
// the schema's "action" says ticket (and DisallowUnknownFields says nothing).
func TestParseRefusesAmbiguousFields(t *testing.T) {
	ticket := validBody(t, policy.ActionTicket)
	skip := validBody(t, policy.ActionSkip)
	for _, tt := range []struct{ name, body, want string }{
		{"field in another case", strings.Replace(ticket, `"schema"`, `"Schema"`, 1), `field "Schema" is not spelt as the schema spells it`},
		{"second action in another case", strings.Replace(ticket, `"action":"ticket"`, `"action":"ticket","Action":"remediate"`, 1), `field "Action"`},
		{"action twice", strings.Replace(ticket, `"action":"ticket"`, `"action":"ticket","action":"remediate"`, 1), `field "action" appears twice`},
		{"skip turned defer", strings.Replace(skip, `"action":"skip"`, `"action":"skip","ACTION":"defer"`, 1), `field "ACTION"`},
		{"decision_id twice", strings.Replace(ticket, `"decision_id"`, `"decision_id":"x","decision_id"`, 1), `field "decision_id" appears twice`},
		{"Kelvin sign folds to k", strings.Replace(ticket, `"http_tokens"`, `"http_to\u212aens"`, 1), "is not spelt as the schema spells it"},
		{"long s folds to s", strings.Replace(ticket, `"schema"`, `"\u017fchema"`, 1), "is not spelt as the schema spells it"},
		{"nested field in another case", strings.Replace(ticket, `"http_tokens"`, `"HTTP_TOKENS"`, 1), `field "current.HTTP_TOKENS"`},
		{"nested field twice", strings.Replace(ticket, `"hop_limit":2`, `"hop_limit":2,"hop_limit":64`, 1), `field "current.hop_limit" appears twice`},
		{"reason code in another case", strings.Replace(ticket, `"code"`, `"Code"`, 1), `field "reasons[0].Code"`},
		{"evidence twice", strings.Replace(ticket, `"evidence":{`, `"evidence":null,"evidence":{`, 1), `field "evidence" appears twice`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := message.Parse(tt.body)
			if err == nil {
				t.Fatalf("Parse accepted %s as %s %v", tt.body, got.Action, got.Reasons)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestInvalidUTF8IsReplacedOnce: a string that is not UTF-8 (EC2, CloudTrail and the SDK
// never hand one over) cannot round-trip: Encode writes each bad byte as \ufffd. What
// Parse then reads does round-trip, so a body detect sent always parses to a message that
// encodes back to it.
func TestInvalidUTF8IsReplacedOnce(t *testing.T) {
	tc := verdictCases()[0]
	inst := *tc.ev.Instance
	inst.Name = "db-\xff\xfe\u2028"
	tc.ev.Instance = &inst
	m, err := message.New(tc.ev, tc.v, "123456789012", "us-east-1", now)
	if err != nil {
		t.Fatal(err)
	}
	body, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := message.Parse(string(body))
	if err != nil {
		t.Fatal(err)
	}
	if want := "db-\ufffd\ufffd\u2028"; got.Name != want {
		t.Errorf("Name %q, want %q", got.Name, want)
	}
	enc, err := got.Encode()
	if err != nil {
		t.Fatal(err)
	}
	again, err := message.Parse(string(enc))
	if err != nil || !sameVerdict(t, got, again) {
		t.Errorf("second round trip: %v\n%+v\n%+v", err, got, again)
	}
}

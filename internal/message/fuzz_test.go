package message_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// schemaKeys are the field names of imdsguard.verdict/v2, exactly as spelt, for each kind
// of object in a message.
var schemaKeys = map[string][]string{
	"verdict":    {"schema", "decision_id", "created_at", "account_id", "region", "instance_id", "name", "action", "reasons", "current", "evidence"},
	"reason":     {"code", "detail"},
	"current":    {"http_tokens", "hop_limit", "http_endpoint"},
	"evidence":   {"metadata_no_token_sum", "observed_hours", "last_datapoint", "last_v1_use", "cloudtrail"},
	"cloudtrail": {"v1_deliveries", "v2_deliveries", "user_agents", "source_ips"},
}

// members reads a JSON object's members in order, duplicates included; ok is false when
// raw is not an object.
func members(raw []byte) (keys []string, values map[string]json.RawMessage, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, false
	}
	values = map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, false
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, false
		}
		keys = append(keys, key)
		values[key] = v
	}
	return keys, values, true
}

// strangeKey returns the first member of the object raw (of the given kind) and of the
// objects inside it that is not a field of the schema, spelt exactly, or that repeats;
// "" when there is none or raw is not an object.
func strangeKey(raw []byte, kind string) string {
	keys, values, ok := members(raw)
	if !ok {
		return ""
	}
	seen := map[string]bool{}
	for _, k := range keys {
		known := false
		for _, want := range schemaKeys[kind] {
			known = known || k == want
		}
		if !known || seen[k] {
			return fmt.Sprintf("%s.%s", kind, k)
		}
		seen[k] = true
	}
	for key, child := range map[string]string{"current": "current", "evidence": "evidence", "cloudtrail": "cloudtrail"} {
		if v, ok := values[key]; ok {
			if s := strangeKey(v, child); s != "" {
				return s
			}
		}
	}
	if kind == "verdict" {
		var reasons []json.RawMessage
		if json.Unmarshal(values["reasons"], &reasons) == nil {
			for _, r := range reasons {
				if s := strangeKey(r, "reason"); s != "" {
					return s
				}
			}
		}
	}
	return ""
}

// mustRefuse says why Parse has to refuse body, judged without Parse; "" when nothing
// obliges it to.
func mustRefuse(body string) string {
	if len(body) > message.MaxBodyBytes {
		return "oversize"
	}
	if !json.Valid([]byte(body)) {
		return "not exactly one JSON value"
	}
	_, values, ok := members([]byte(body))
	if !ok {
		return "not a JSON object"
	}
	if s := strangeKey([]byte(body), "verdict"); s != "" {
		return "unknown or repeated field " + s
	}
	var schema, action string
	if json.Unmarshal(values["schema"], &schema) != nil || schema != message.Schema {
		return "wrong schema"
	}
	if json.Unmarshal(values["action"], &action) != nil {
		return "action not a string"
	}
	switch policy.Action(action) {
	case policy.ActionRemediate, policy.ActionTicket, policy.ActionDefer:
	case policy.ActionSkip:
		var reasons []policy.Reason
		if json.Unmarshal(values["reasons"], &reasons) != nil || len(reasons) == 0 ||
			reasons[0].Code != policy.ReasonCompliant && reasons[0].Code != policy.ReasonTerminated {
			return "skip without a compliant or terminated primary reason"
		}
	default:
		return "unknown action"
	}
	return ""
}

// FuzzParse: Parse never panics; it refuses what the schema does not allow; whatever it
// accepts is valid, and encodes to a body that parses to the same message, which
// encodes to the very same body.
func FuzzParse(f *testing.F) {
	for _, a := range policy.Actions {
		f.Add(validBody(f, a))
	}
	ticket := validBody(f, policy.ActionTicket)
	skip := validBody(f, policy.ActionSkip)
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"schema":"imdsguard.verdict/v2"}`,
		ticket + ticket, ticket + "\n", " \t" + ticket, ticket + "x", ticket + "{",
		strings.Replace(ticket, `"schema"`, `"SCHEMA"`, 1),
		strings.Replace(ticket, `"action":"ticket"`, `"action":"ticket","Action":"remediate"`, 1),
		strings.Replace(ticket, `"action":"ticket"`, `"action":"ticket","action":"remediate"`, 1),
		strings.Replace(skip, `"action":"skip"`, `"action":"skip","ACTION":"defer"`, 1),
		strings.Replace(ticket, `"http_tokens"`, `"HTTP_Tokens"`, 1),
		strings.Replace(ticket, `"code"`, `"Code"`, 1),
		strings.Replace(ticket, `"action":"ticket"`, `"action":"\u0074icket"`, 1),
		strings.Replace(ticket, `"action":"ticket"`, `"action":"skip"`, 1),
		strings.Replace(ticket, `"action":"ticket"`, `"action":null`, 1),
		strings.Replace(ticket, `"current":{`, `"current":null,"x":{`, 1),
		strings.Replace(ticket, `"current":{`, `"target":{"http_tokens":"required"},"current":{`, 1),
		strings.Replace(ticket, `"hop_limit":2`, `"hop_limit":2.0`, 1),
		strings.Replace(ticket, `"hop_limit":2`, `"hop_limit":64`, 1),
		strings.Replace(ticket, `"hop_limit":2`, `"hop_limit":-2147483648`, 1),
		strings.Replace(ticket, `"metadata_no_token_sum":17.5`, `"metadata_no_token_sum":-1e308`, 1),
		strings.Replace(ticket, `"metadata_no_token_sum":17.5`, `"metadata_no_token_sum":1e999`, 1),
		strings.Replace(ticket, `"metadata_no_token_sum":17.5`, `"metadata_no_token_sum":0.1e1`, 1),
		strings.Replace(ticket, `"observed_hours":200`, `"observed_hours":-5`, 1),
		strings.Replace(ticket, `"created_at":"2026-11-22T10:00:00.123Z"`, `"created_at":"2026-11-22T15:30:00.123456789123+05:30"`, 1),
		strings.Replace(ticket, `"created_at":"2026-11-22T10:00:00.123Z"`, `"created_at":"0001-01-01T00:00:00Z"`, 1),
		strings.Replace(ticket, `"created_at":"2026-11-22T10:00:00.123Z"`, `"created_at":"0000-01-01T00:00:00+01:00"`, 1),
		strings.Replace(ticket, `"created_at":"2026-11-22T10:00:00.123Z"`, `"created_at":"9999-12-31T23:59:59-23:59"`, 1),
		strings.Replace(ticket, `"name":"web`, `"name":"\ud800\udfff\u0000<`, 1),
		strings.Replace(ticket, `"name":"web`, "\"name\":\"\xff\xfe", 1),
		strings.Replace(ticket, `"reasons":[`, `"reasons":[null,`, 1),
		strings.Replace(skip, `"code":"compliant"`, `"code":"Compliant"`, 1),
		strings.Replace(skip, `"code":"compliant"`, `"code":"exempt"`, 1),
		strings.Replace(ticket, `"evidence":{`, `"evidence":null,"evidence":{`, 1),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		v, err := message.Parse(body)
		why := mustRefuse(body)
		if err != nil {
			if err.Error() == "" {
				t.Errorf("empty error")
			}
			return
		}
		if why != "" {
			t.Fatalf("Parse accepted a body that is %s: %.300q\n%+v", why, body, v)
		}
		if err := v.Validate(); err != nil {
			t.Fatalf("Parse returned an invalid message: %v", err)
		}
		enc, err := v.Encode()
		if err != nil {
			// Only a body that was longer when written canonically ("<" is escaped as
			// \u003c) may fail to encode, and only for its size.
			if !strings.Contains(err.Error(), "more than the") || 6*len(body) < message.MaxBodyBytes {
				t.Fatalf("Encode of a parsed message: %v", err)
			}
			return
		}
		again, err := message.Parse(string(enc))
		if err != nil {
			t.Fatalf("Parse(Encode(Parse(body))): %v\nbody %.300q\nencoded %.300q", err, body, enc)
		}
		if !sameVerdict(t, v, again) {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", v, again)
		}
		enc2, err := again.Encode()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: %v\n%s\n%s", err, enc, enc2)
		}
	})
}

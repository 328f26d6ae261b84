// Package message is the verdict message (schema imdsguard.verdict/v2) that detect sends
// to the remediation queue and remediate consumes: one message per non-skip verdict, and
// one per compliant or terminated instance whose ticket is still open, to close it.
//
// The package owns the schema: its own types for options and evidence, built from the
// policy's values, so that neither the plan's format nor the gatherers shape what is on
// the queue. A message proves nothing by itself: detect records each message's digest
// in the ledger before sending it, and remediate acts only on a message whose digest
// matches that record (DESIGN.md section 7).
package message

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// Schema identifies the message format. A consumer refuses any other. v2 replaced v1
// when messages became authenticated by the ledger and lost their target options.
const Schema = "imdsguard.verdict/v2"

// MaxBodyBytes bounds a message body; SQS allows 256 KiB.
const MaxBodyBytes = 256 * 1024

// Verdict is one decision about one instance.
type Verdict struct {
	Schema     string    `json:"schema"`
	DecisionID string    `json:"decision_id"`
	CreatedAt  time.Time `json:"created_at"`
	AccountID  string    `json:"account_id"`
	Region     string    `json:"region"`
	InstanceID string    `json:"instance_id"`
	Name       string    `json:"name,omitempty"`
	// SweepID names the sweep the verdict came from (the enforcement budget per sweep
	// counts against it); absent for an event's verdict.
	SweepID string          `json:"sweep_id,omitempty"`
	Action  policy.Action   `json:"action"`
	Reasons []policy.Reason `json:"reasons"`
	// Current are the metadata options the decision saw, nil when the instance was not
	// found; remediate judges again when the live ones differ.
	Current  *Options `json:"current"`
	Evidence Evidence `json:"evidence"`
}

// Options are an instance's metadata options as the verdict saw them.
type Options struct {
	HTTPTokens   string `json:"http_tokens"`
	HopLimit     int32  `json:"hop_limit"`
	HTTPEndpoint string `json:"http_endpoint"`
}

// Evidence is what the verdict was made on. A nil field was not gathered (or gathering
// it failed): never zero.
type Evidence struct {
	MetadataNoTokenSum *float64 `json:"metadata_no_token_sum"`
	ObservedHours      *int     `json:"observed_hours"`
	// LastDatapoint is the start of the newest hourly MetadataNoToken bucket read.
	LastDatapoint *time.Time `json:"last_datapoint"`
	// LastV1Use is the latest IMDSv1 use seen, by the metric or by CloudTrail.
	LastV1Use  *time.Time  `json:"last_v1_use"`
	CloudTrail *CloudTrail `json:"cloudtrail"`
}

// CloudTrail summarises the instance role's credential deliveries; nil when CloudTrail
// was not read.
type CloudTrail struct {
	V1Deliveries int      `json:"v1_deliveries"`
	V2Deliveries int      `json:"v2_deliveries"`
	UserAgents   []string `json:"user_agents"`
	SourceIPs    []string `json:"source_ips"`
}

// Trail is the CloudTrail summary, the zero summary when CloudTrail was not read.
func (e Evidence) Trail() CloudTrail {
	if e.CloudTrail == nil {
		return CloudTrail{}
	}
	return *e.CloudTrail
}

// New builds the message for one judged instance, with a fresh decision id. accountID
// and region name the instance when the evidence does not (not found, or describing it
// failed).
func New(ev policy.Evidence, v policy.Verdict, accountID, region string, createdAt time.Time) (Verdict, error) {
	id, err := NewDecisionID(createdAt)
	if err != nil {
		return Verdict{}, err
	}
	m := Verdict{
		Schema: Schema, DecisionID: id, CreatedAt: createdAt.UTC().Truncate(time.Millisecond),
		AccountID: accountID, Region: region, InstanceID: ev.InstanceID,
		Action: v.Action, Reasons: append([]policy.Reason{}, v.Reasons...),
	}
	if inst := ev.Instance; inst != nil {
		m.AccountID, m.Region, m.InstanceID, m.Name = inst.AccountID, inst.Region, inst.InstanceID, inst.Name
		m.Current = &Options{HTTPTokens: inst.Options.HTTPTokens, HopLimit: inst.Options.HopLimit, HTTPEndpoint: inst.Options.HTTPEndpoint}
	}
	var lastNonZero, lastDelivery *time.Time
	if u := ev.Metrics; u != nil && ev.MetricsErr == nil {
		sum, hours := u.Sum, u.ObservedHours
		m.Evidence.MetadataNoTokenSum, m.Evidence.ObservedHours = &sum, &hours
		m.Evidence.LastDatapoint, lastNonZero = utc(u.LastDatapoint), utc(u.LastNonZero)
	}
	if c := ev.CloudTrail; c != nil && ev.CloudTrailErr == nil {
		m.Evidence.CloudTrail = &CloudTrail{
			V1Deliveries: c.V1Deliveries, V2Deliveries: c.V2Deliveries,
			UserAgents: append([]string{}, c.UserAgents...), SourceIPs: append([]string{}, c.SourceIPs...),
		}
		lastDelivery = utc(c.LastV1Delivery)
	}
	m.Evidence.LastV1Use = lastNonZero
	if lastDelivery != nil && (lastNonZero == nil || lastDelivery.After(*lastNonZero)) {
		m.Evidence.LastV1Use = lastDelivery
	}
	return m, nil
}

// Encode returns the message body exactly as it is sent; detect records its digest
// (decisionlog.Digest). The body is ASCII: every other character is a \u escape, so
// that no tag value can make SQS refuse the message (it refuses some code points, such
// as U+FFFE) and the bytes remediate receives are the bytes detect recorded.
func (v Verdict) Encode() ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding the verdict for %s: %w", v.InstanceID, err)
	}
	body := asciiJSON(raw)
	if len(body) > MaxBodyBytes {
		return nil, fmt.Errorf("the verdict for %s takes %d bytes, more than the %d a message may", v.InstanceID, len(body), MaxBodyBytes)
	}
	return body, nil
}

// asciiJSON escapes every non-ASCII character of a JSON text, which can only be inside
// its strings, as \uXXXX (a surrogate pair beyond the Basic Multilingual Plane).
func asciiJSON(raw []byte) []byte {
	out := make([]byte, 0, len(raw))
	for _, r := range string(raw) {
		if r < utf8.RuneSelf {
			out = append(out, byte(r))
			continue
		}
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			out = fmt.Appendf(out, "\\u%04x\\u%04x", r1, r2)
			continue
		}
		out = fmt.Appendf(out, "\\u%04x", r)
	}
	return out
}

// Seen returns the options the verdict saw, as the policy holds them.
func (v Verdict) Seen() *policy.MetadataOptions {
	if v.Current == nil {
		return nil
	}
	return &policy.MetadataOptions{HTTPTokens: v.Current.HTTPTokens, HopLimit: v.Current.HopLimit, HTTPEndpoint: v.Current.HTTPEndpoint}
}

// NewDecisionID returns a unique id that sorts by creation time.
func NewDecisionID(at time.Time) (string, error) {
	var random [8]byte
	if _, err := rand.Read(random[:]); err != nil {
		return "", fmt.Errorf("making a decision id: %w", err)
	}
	return fmt.Sprintf("%013x-%s", at.UnixMilli(), hex.EncodeToString(random[:])), nil
}

var decisionIDPattern = regexp.MustCompile(`^[0-9a-f]{13}-[0-9a-f]{16}$`)

// Parse decodes and validates a message body. Its error names what is wrong. A valid
// message is only well-formed: whether detect sent it is for the ledger to say.
func Parse(body string) (Verdict, error) {
	if len(body) > MaxBodyBytes {
		return Verdict{}, fmt.Errorf("verdict message of %d bytes is longer than %d", len(body), MaxBodyBytes)
	}
	var v Verdict
	if err := decodeExactly(body, &v, "verdict message", Schema); err != nil {
		return Verdict{}, err
	}
	if err := v.Validate(); err != nil {
		return Verdict{}, err
	}
	return v, nil
}

// decodeExactly decodes body, one JSON object and nothing after it, into v (a pointer to
// a struct), refusing any member that is not one of v's fields spelt as its tag spells
// it, or that repeats one. what and schema name the message in errors.
func decodeExactly[T any](body string, v *T, what, schema string) error {
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s is not valid %s JSON: %w", what, schema, err)
	}
	if err := dec.Decode(new(json.RawMessage)); err != io.EOF {
		return fmt.Errorf("%s has more after its JSON object", what)
	}
	if err := exactFields([]byte(body), reflect.TypeFor[T](), ""); err != nil {
		return fmt.Errorf("%s is not valid %s JSON: %w", what, schema, err)
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// exactFields returns an error naming the first member of the JSON value raw, or of the
// objects in it, that is not spelt as the field of t it fills, or that repeats one.
// encoding/json matches names regardless of case (even by Unicode folding) and keeps the
// last of repeated ones, so `"action":"ticket","Action":"remediate"` would otherwise
// parse as remediate although the schema's "action" says ticket. raw has been decoded
// into t already.
func exactFields(raw []byte, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Slice {
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return nil // null
		}
		for i, item := range items {
			if err := exactFields(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		fields[name] = f.Type
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil // null
	}
	if path != "" {
		path += "."
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return err
		}
		ft, ok := fields[key]
		switch {
		case !ok:
			return fmt.Errorf("field %q is not spelt as the schema spells it (names are case-sensitive)", path+key)
		case seen[key]:
			return fmt.Errorf("field %q appears twice", path+key)
		}
		seen[key] = true
		if err := exactFields(value, ft, path+key); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks every field a consumer relies on.
func (v Verdict) Validate() error {
	problems := envelopeProblems(v.Schema, Schema, v.DecisionID, v.CreatedAt, v.AccountID, v.Region, v.SweepID)
	if !policy.ValidInstanceID(v.InstanceID) {
		problems = append(problems, fmt.Sprintf("instance_id %q is not an instance id", v.InstanceID))
	}
	switch v.Action {
	case policy.ActionRemediate, policy.ActionTicket, policy.ActionDefer:
	case policy.ActionSkip:
		// detect sends a skip only to close the open ticket of an instance that is now
		// compliant or gone.
		if len(v.Reasons) == 0 || (v.Reasons[0].Code != policy.ReasonCompliant && v.Reasons[0].Code != policy.ReasonTerminated) {
			problems = append(problems, "a skip verdict is only sent to close a ticket: its primary reason must be compliant or terminated")
		}
	default:
		problems = append(problems, fmt.Sprintf("action %q is not remediate, ticket, defer or skip", v.Action))
	}
	if len(v.Reasons) == 0 || v.Reasons[0].Code == "" {
		problems = append(problems, "reasons are missing")
	}
	if c := v.Current; c != nil && (c.HopLimit < 0 || c.HopLimit > 64) {
		problems = append(problems, fmt.Sprintf("current hop_limit %d is outside 0 to 64", c.HopLimit))
	}
	if len(problems) > 0 {
		return errors.New("invalid verdict message: " + strings.Join(problems, "; "))
	}
	return nil
}

// envelopeProblems are the problems of the fields every message has: its schema (want),
// decision id, creation time, account, region and sweep.
func envelopeProblems(schema, want, decisionID string, createdAt time.Time, account, region, sweepID string) []string {
	var problems []string
	if schema != want {
		problems = append(problems, fmt.Sprintf("schema is %q, want %q", schema, want))
	}
	if !decisionIDPattern.MatchString(decisionID) {
		problems = append(problems, fmt.Sprintf("decision_id %q is malformed", decisionID))
	}
	if createdAt.IsZero() {
		problems = append(problems, "created_at is missing")
	}
	if !policy.ValidAccountID(account) {
		problems = append(problems, fmt.Sprintf("account_id %q is not a 12-digit account id", account))
	}
	if !policy.ValidRegion(region) {
		problems = append(problems, fmt.Sprintf("region %q is not a region", region))
	}
	if sweepID != "" && !decisionIDPattern.MatchString(sweepID) {
		problems = append(problems, fmt.Sprintf("sweep_id %q is malformed", sweepID))
	}
	return problems
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

package trigger

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// event is one EventBridge event being parsed: its envelope read, its detail not yet.
type event struct {
	source, detailType string
	name               string // "source / detail-type", fit for messages
	cfg                Config
	account, region    string // from the envelope; either may be empty
	detail             json.RawMessage
}

// readEvent reads the envelope: source and detail-type are required, account and region
// are strings when present.
func readEvent(top map[string]json.RawMessage, cfg Config) (*event, error) {
	source, err := topString(top, "source")
	if err != nil {
		return nil, fmt.Errorf("EventBridge event: %v", err)
	}
	detailType, err := topString(top, "detail-type")
	if err != nil {
		return nil, fmt.Errorf("event from %s: %v", show(source), err)
	}
	e := &event{source: source, detailType: detailType, name: show(source) + " / " + show(detailType), cfg: cfg}
	for _, f := range []struct {
		key string
		dst *string
	}{{"account", &e.account}, {"region", &e.region}} {
		if v, ok := top[f.key]; ok && !isNull(v) {
			if err := json.Unmarshal(v, f.dst); err != nil {
				return nil, e.errf("%s is %s, not a string", f.key, jsonKind(v))
			}
		}
	}
	e.detail = top["detail"]
	return e, nil
}

// topString reads a required non-empty string from the envelope.
func topString(top map[string]json.RawMessage, key string) (string, error) {
	v, ok := top[key]
	if !ok || isNull(v) {
		return "", fmt.Errorf("%q is missing", key)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("%q is %s, not a string", key, jsonKind(v))
	}
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("%q is empty", key)
	}
	return s, nil
}

// errf is an error about the event, naming it.
func (e *event) errf(format string, args ...any) error {
	return fmt.Errorf("event from %s: %s", e.name, fmt.Sprintf(format, args...))
}

// request starts the request this event makes.
func (e *event) request() *builder { return newBuilder(e.cfg, e.name) }

// decodeDetail decodes the detail object into dst.
func (e *event) decodeDetail(dst any) error {
	if isNull(e.detail) {
		return e.errf("detail is missing")
	}
	if k := jsonKind(e.detail); k != "an object" {
		return e.errf("detail is %s, not an object", k)
	}
	if err := json.Unmarshal(e.detail, dst); err != nil {
		return e.errf("%s", decodeProblem("detail", err))
	}
	return nil
}

// where checks the account and region an event names; the field names say where they came
// from, for the error.
func (e *event) where(account, accountField, region, regionField string) (string, string, error) {
	if account == "" {
		return "", "", e.errf("the account is missing (%s)", accountField)
	}
	if !policy.ValidAccountID(account) {
		return "", "", e.errf("%s %q is not a 12-digit account id", accountField, account)
	}
	if region == "" {
		return "", "", e.errf("the region is missing (%s)", regionField)
	}
	if !policy.ValidRegion(region) {
		return "", "", e.errf("%s %q is not a region", regionField, region)
	}
	return account, region, nil
}

// firstOf returns the first non-empty value and the name of its field; when every value
// is empty, the field names them all ("detail.awsRegion or region").
func firstOf(pairs ...string) (value, field string) {
	names := make([]string, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i] != "" {
			return pairs[i], pairs[i+1]
		}
		names = append(names, pairs[i+1])
	}
	return "", strings.Join(names, " or ")
}

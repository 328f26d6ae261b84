package trigger

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The EventBridge sources and detail-types understood.
const (
	sourceConfig      = "aws.config"
	sourceSecurityHub = "aws.securityhub"
	sourceEC2         = "aws.ec2"
	sourceAutoScaling = "aws.autoscaling"

	typeConfigCompliance = "Config Rules Compliance Change"
	typeFindingsImported = "Security Hub Findings - Imported"
	typeStateChange      = "EC2 Instance State-change Notification"
	typeCloudTrail       = "AWS API Call via CloudTrail"
)

// An eventKind is one kind of EventBridge event and the parser of its detail. The parser
// gets the envelope already read (source, detail-type, account, region) and returns the
// request, or an error made with event.errf so that it names the event.
type eventKind struct {
	source, detailType string
	parse              func(*event) (Request, error)
}

// eventKinds are the EventBridge events understood, in the order errors list them. To
// understand one more, write its parser in a file of its own (configcompliance.go is the
// model), name its source and detail-type above, and add it here.
var eventKinds = []eventKind{
	{sourceConfig, typeConfigCompliance, parseConfigCompliance},
	{sourceSecurityHub, typeFindingsImported, parseFindingsImported},
	{sourceEC2, typeStateChange, parseStateChange},
	{sourceEC2, typeCloudTrail, parseEC2CloudTrail},
	{sourceAutoScaling, typeCloudTrail, parseAutoScalingCloudTrail},
}

// A payloadKind is an input that is not an EventBridge event: a schedule or a person
// writes it, and its one top-level key tells it apart. Its parser gets the whole input.
type payloadKind struct {
	key   string // the top-level key
	name  string // for errors: "a sweep"
	shape string // for errors: what it looks like
	parse func(raw []byte, cfg Config) (Request, error)
}

// payloadKinds are the other inputs understood.
var payloadKinds = []payloadKind{
	{"sweep", "a sweep", `{"sweep": {"regions": [...]}}`, parseSweep},
	{"instance_ids", "a direct invoke", `{"instance_ids": [...]}`, parseDirect},
}

// eventKey is what tells EventBridge events apart. The envelope's version is not part of
// it: AWS sends version "0" for all of these, and checking it would only refuse events
// that are understood.
type eventKey struct{ source, detailType string }

var eventParsers = func() map[eventKey]eventKind {
	m := make(map[eventKey]eventKind, len(eventKinds))
	for _, k := range eventKinds {
		m[eventKey{k.source, k.detailType}] = k
	}
	return m
}()

// dispatch hands the input, a JSON object, to the parser of its kind: an EventBridge
// event (it has a source or a detail-type) by its source and detail-type, any other by
// its top-level key.
func dispatch(raw []byte, top map[string]json.RawMessage, cfg Config) (Request, error) {
	_, hasSource := top["source"]
	_, hasDetailType := top["detail-type"]
	if hasSource || hasDetailType {
		e, err := readEvent(top, cfg)
		if err != nil {
			return Request{}, err
		}
		if kind, ok := eventParsers[eventKey{e.source, e.detailType}]; ok {
			return kind.parse(e)
		}
		accepted := make([]string, len(eventKinds))
		for i, k := range eventKinds {
			accepted[i] = k.source + " / " + k.detailType
		}
		return Request{}, e.errf("unsupported source and detail-type; accepted: %s", strings.Join(accepted, ", "))
	}
	var found []payloadKind
	for _, p := range payloadKinds {
		if _, ok := top[p.key]; ok {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 1:
		return found[0].parse(raw, cfg)
	case 0:
		shapes := make([]string, len(payloadKinds))
		for i, p := range payloadKinds {
			shapes[i] = fmt.Sprintf("%s (%s)", p.name, p.shape)
		}
		return Request{}, fmt.Errorf(`event is not an EventBridge event ("source", "detail-type"), %s; its keys: %s`,
			orList(shapes), keyList(top))
	}
	return Request{}, fmt.Errorf("event has both %q and %q: send %s or %s, not both",
		found[0].key, found[1].key, found[0].name, found[1].name)
}

// orList is "a, b or c".
func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

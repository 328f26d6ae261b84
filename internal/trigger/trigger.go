// Package trigger turns what reaches the detect Lambda into the instances to judge.
//
// Accepted inputs:
//   - AWS Config "Config Rules Compliance Change" (source aws.config) for the IMDSv2 rule
//     (name contains Config.RuleSubstring, default "ec2-imdsv2-check", which also matches
//     Security Hub's "securityhub-ec2-imdsv2-check-<hash>") on an AWS::EC2::Instance;
//   - Security Hub "Security Hub Findings - Imported" (source aws.securityhub): FAILED,
//     active, unsuppressed findings for control EC2.8;
//   - "EC2 Instance State-change Notification" (source aws.ec2) for state running;
//   - "AWS API Call via CloudTrail" (source aws.ec2) for RunInstances and for
//     ModifyInstanceMetadataOptions calls that do not set HttpTokens=required;
//   - a scheduled sweep {"sweep": {"regions": [...]}};
//   - a direct invoke {"instance_ids": [...], "region": "..."}.
//
// Parse is pure: it does no IO and never panics. A malformed input is an error that names
// the input and the problem; a well-formed input that asks for nothing comes back with
// Request.Ignored saying why.
package trigger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultRuleSubstring is matched against Config rule names when Config.RuleSubstring is empty.
const DefaultRuleSubstring = "ec2-imdsv2-check"

// Sources of the requests that are not EventBridge events. EventBridge events have the
// source "<source> / <detail-type>", e.g. "aws.config / Config Rules Compliance Change".
const (
	SourceSweep  = "sweep"
	SourceDirect = "direct"
)

// The EventBridge sources and detail-types understood.
const (
	sourceConfig      = "aws.config"
	sourceSecurityHub = "aws.securityhub"
	sourceEC2         = "aws.ec2"

	typeConfigCompliance = "Config Rules Compliance Change"
	typeFindingsImported = "Security Hub Findings - Imported"
	typeStateChange      = "EC2 Instance State-change Notification"
	typeCloudTrail       = "AWS API Call via CloudTrail"
)

// Ref names one instance.
type Ref struct{ AccountID, Region, InstanceID string }

// String is "account/region/instance-id".
func (r Ref) String() string { return r.AccountID + "/" + r.Region + "/" + r.InstanceID }

// Request is what an input asks detect to do.
//
// Exactly one of these holds for a Request returned without error: Refs or Sweep is not
// empty, or Ignored says why nothing is to be done. Foreign and ForeignRegions are
// reported in either case; when they are all there is, Ignored says so.
type Request struct {
	// Source names the input: "<source> / <detail-type>" for EventBridge events,
	// SourceSweep or SourceDirect otherwise.
	Source string
	// Refs are the instances to judge, in the function's own account and region:
	// deduplicated, in the order the input names them.
	Refs []Ref
	// Sweep holds the function's own region when the input asks for a sweep of it.
	Sweep []string
	// ForeignRegions are sweep regions other than the function's: reported, not swept.
	ForeignRegions []string
	// Foreign are instances in another account or region than the function's:
	// reported, not acted on. Deduplicated, in input order.
	Foreign []Ref
	// Ignored is non-empty when the input is well-formed but asks for nothing; it says why.
	Ignored string
}

// Config is the function's own account and region, and the Config rule name substring.
type Config struct{ AccountID, Region, RuleSubstring string }

var (
	instanceIDPattern = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)
	accountIDPattern  = regexp.MustCompile(`^[0-9]{12}$`)
	regionPattern     = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
)

// ValidInstanceID reports whether s is an EC2 instance id (i- and 8 or 17 hex digits).
func ValidInstanceID(s string) bool { return instanceIDPattern.MatchString(s) }

// ValidRegion reports whether s has the shape of an AWS region name.
func ValidRegion(s string) bool { return regionPattern.MatchString(s) }

// ValidAccountID reports whether s is a 12-digit AWS account id.
func ValidAccountID(s string) bool { return accountIDPattern.MatchString(s) }

// Validate checks the function's own account and region.
func (c Config) Validate() error {
	if !ValidAccountID(c.AccountID) {
		return fmt.Errorf("trigger config: account id %q is not a 12-digit account id", c.AccountID)
	}
	if !ValidRegion(c.Region) {
		return fmt.Errorf("trigger config: region %q is not a region", c.Region)
	}
	return nil
}

func (c Config) ruleSubstring() string {
	if c.RuleSubstring == "" {
		return DefaultRuleSubstring
	}
	return c.RuleSubstring
}

// Parse reads one input of the detect function. cfg is the function's own account and
// region: instances and sweep regions elsewhere are reported as foreign, not acted on.
func Parse(raw []byte, cfg Config) (Request, error) {
	if err := cfg.Validate(); err != nil {
		return Request{}, err
	}
	if !json.Valid(raw) {
		var v any
		err := json.Unmarshal(raw, &v)
		if err == nil { // cannot happen: json.Valid said no
			err = errors.New("invalid JSON")
		}
		return Request{}, fmt.Errorf("event is not valid JSON: %v", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil || top == nil {
		return Request{}, fmt.Errorf("event is not a JSON object but %s", jsonKind(raw))
	}
	_, hasSource := top["source"]
	_, hasDetailType := top["detail-type"]
	_, hasSweep := top["sweep"]
	_, hasIDs := top["instance_ids"]
	switch {
	case hasSource || hasDetailType:
		return parseEventBridge(top, cfg)
	case hasSweep && hasIDs:
		return Request{}, errors.New(`event has both "sweep" and "instance_ids": send a sweep or a direct invoke, not both`)
	case hasSweep:
		return parseSweep(raw, cfg)
	case hasIDs:
		return parseDirect(raw, cfg)
	}
	return Request{}, fmt.Errorf(`event is not an EventBridge event ("source", "detail-type"), a sweep ({"sweep": {"regions": [...]}}) or a direct invoke ({"instance_ids": [...]}); its keys: %s`, keyList(top))
}

// builder collects refs for one request.
type builder struct {
	cfg  Config
	req  Request
	seen map[Ref]bool
}

func newBuilder(cfg Config, source string) *builder {
	return &builder{cfg: cfg, req: Request{Source: source}, seen: map[Ref]bool{}}
}

// add files ref under Refs or Foreign, once.
func (b *builder) add(ref Ref) {
	if b.seen[ref] {
		return
	}
	b.seen[ref] = true
	if ref.AccountID == b.cfg.AccountID && ref.Region == b.cfg.Region {
		b.req.Refs = append(b.req.Refs, ref)
	} else {
		b.req.Foreign = append(b.req.Foreign, ref)
	}
}

// ignore returns a request that asks for nothing, for the reason given.
func (b *builder) ignore(format string, args ...any) (Request, error) {
	b.req.Refs, b.req.Sweep = nil, nil
	b.req.Ignored = fmt.Sprintf(format, args...)
	return b.req, nil
}

// done returns the request, saying why when all it names is foreign.
func (b *builder) done() (Request, error) {
	if len(b.req.Refs) > 0 || len(b.req.Sweep) > 0 {
		return b.req, nil
	}
	var parts []string
	if n := len(b.req.Foreign); n > 0 {
		parts = append(parts, fmt.Sprintf("%s in another account or region", plural(n, "instance", "instances")))
	}
	if n := len(b.req.ForeignRegions); n > 0 {
		parts = append(parts, fmt.Sprintf("%s to sweep (%s)", plural(n, "other region", "other regions"), strings.Join(b.req.ForeignRegions, ", ")))
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing to judge")
	}
	b.req.Ignored = fmt.Sprintf("nothing in this function's account %s and region %s: %s", b.cfg.AccountID, b.cfg.Region, strings.Join(parts, "; "))
	return b.req, nil
}

// ---- EventBridge ----

// parseEventBridge reads the envelope and dispatches on source and detail-type.
func parseEventBridge(top map[string]json.RawMessage, cfg Config) (Request, error) {
	source, err := topString(top, "source")
	if err != nil {
		return Request{}, fmt.Errorf("EventBridge event: %v", err)
	}
	detailType, err := topString(top, "detail-type")
	if err != nil {
		return Request{}, fmt.Errorf("event from %s: %v", show(source), err)
	}
	e := &event{name: show(source) + " / " + show(detailType), cfg: cfg}
	for _, f := range []struct {
		key string
		dst *string
	}{{"account", &e.account}, {"region", &e.region}} {
		if v, ok := top[f.key]; ok && !isNull(v) {
			if err := json.Unmarshal(v, f.dst); err != nil {
				return Request{}, e.errf("%s is %s, not a string", f.key, jsonKind(v))
			}
		}
	}
	e.detail = top["detail"]
	switch {
	case source == sourceConfig && detailType == typeConfigCompliance:
		return e.config()
	case source == sourceSecurityHub && detailType == typeFindingsImported:
		return e.securityHub()
	case source == sourceEC2 && detailType == typeStateChange:
		return e.stateChange()
	case source == sourceEC2 && detailType == typeCloudTrail:
		return e.cloudTrail()
	}
	return Request{}, e.errf("unsupported source and detail-type; accepted: %s / %s, %s / %s, %s / %s, %s / %s",
		sourceConfig, typeConfigCompliance, sourceSecurityHub, typeFindingsImported,
		sourceEC2, typeStateChange, sourceEC2, typeCloudTrail)
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

// event is one EventBridge event being parsed.
type event struct {
	name            string // "source / detail-type"
	cfg             Config
	account, region string // from the envelope
	detail          json.RawMessage
}

func (e *event) errf(format string, args ...any) error {
	return fmt.Errorf("event from %s: %s", e.name, fmt.Sprintf(format, args...))
}

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
	if !ValidAccountID(account) {
		return "", "", e.errf("%s %q is not a 12-digit account id", accountField, account)
	}
	if region == "" {
		return "", "", e.errf("the region is missing (%s)", regionField)
	}
	if !ValidRegion(region) {
		return "", "", e.errf("%s %q is not a region", regionField, region)
	}
	return account, region, nil
}

// firstOf returns the first non-empty value and the name of its field.
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

// ---- AWS Config ----

type configDetail struct {
	ResourceID          string `json:"resourceId"`
	ResourceType        string `json:"resourceType"`
	AwsRegion           string `json:"awsRegion"`
	AwsAccountID        string `json:"awsAccountId"`
	ConfigRuleName      string `json:"configRuleName"`
	NewEvaluationResult *struct {
		ComplianceType string `json:"complianceType"`
	} `json:"newEvaluationResult"`
}

func (e *event) config() (Request, error) {
	var d configDetail
	if err := e.decodeDetail(&d); err != nil {
		return Request{}, err
	}
	switch {
	case d.ConfigRuleName == "":
		return Request{}, e.errf("detail.configRuleName is missing")
	case d.ResourceType == "":
		return Request{}, e.errf("detail.resourceType is missing")
	case d.ResourceID == "":
		return Request{}, e.errf("detail.resourceId is missing")
	case d.NewEvaluationResult == nil || d.NewEvaluationResult.ComplianceType == "":
		return Request{}, e.errf("detail.newEvaluationResult.complianceType is missing")
	}
	b := newBuilder(e.cfg, e.name)
	sub := e.cfg.ruleSubstring()
	if !strings.Contains(strings.ToLower(d.ConfigRuleName), strings.ToLower(sub)) {
		return b.ignore("Config rule %q is not the IMDSv2 rule (its name does not contain %q)", d.ConfigRuleName, sub)
	}
	if d.ResourceType != "AWS::EC2::Instance" {
		return b.ignore("resource type %s is not AWS::EC2::Instance", show(d.ResourceType))
	}
	if !ValidInstanceID(d.ResourceID) {
		return Request{}, e.errf("detail.resourceId %q is not an instance id", d.ResourceID)
	}
	account, accountField := firstOf(d.AwsAccountID, "detail.awsAccountId", e.account, "account")
	region, regionField := firstOf(d.AwsRegion, "detail.awsRegion", e.region, "region")
	account, region, err := e.where(account, accountField, region, regionField)
	if err != nil {
		return Request{}, err
	}
	if ct := d.NewEvaluationResult.ComplianceType; ct != "NON_COMPLIANT" {
		return b.ignore("instance %s is %s with Config rule %q", d.ResourceID, show(ct), d.ConfigRuleName)
	}
	b.add(Ref{AccountID: account, Region: region, InstanceID: d.ResourceID})
	return b.done()
}

// ---- Security Hub ----

// The Security Hub control this project remediates.
const controlIMDSv2 = "EC2.8"

type securityHubDetail struct {
	Findings []json.RawMessage `json:"findings"`
}

type finding struct {
	ID         string `json:"Id"`
	Compliance *struct {
		Status            string `json:"Status"`
		SecurityControlID string `json:"SecurityControlId"`
	} `json:"Compliance"`
	ProductFields map[string]json.RawMessage `json:"ProductFields"`
	Workflow      *struct {
		Status string `json:"Status"`
	} `json:"Workflow"`
	RecordState string `json:"RecordState"`
	Resources   []struct {
		Type string `json:"Type"`
		ID   string `json:"Id"`
	} `json:"Resources"`
}

// controlID is Compliance.SecurityControlId (consolidated findings) or
// ProductFields.ControlId (findings from before consolidated control findings).
func (f *finding) controlID() string {
	if f.Compliance != nil && f.Compliance.SecurityControlID != "" {
		return f.Compliance.SecurityControlID
	}
	var id string
	if v, ok := f.ProductFields["ControlId"]; ok && json.Unmarshal(v, &id) == nil {
		return id
	}
	return ""
}

func (e *event) securityHub() (Request, error) {
	var d securityHubDetail
	if err := e.decodeDetail(&d); err != nil {
		return Request{}, err
	}
	if d.Findings == nil {
		return Request{}, e.errf("detail.findings is missing")
	}
	b := newBuilder(e.cfg, e.name)
	skipped := map[string]int{}
	var skipOrder []string
	skip := func(reason string) {
		if skipped[reason] == 0 {
			skipOrder = append(skipOrder, reason)
		}
		skipped[reason]++
	}
	for i, raw := range d.Findings {
		field := fmt.Sprintf("detail.findings[%d]", i)
		if k := jsonKind(raw); k != "an object" {
			return Request{}, e.errf("%s is %s, not an object", field, k)
		}
		var f finding
		if err := json.Unmarshal(raw, &f); err != nil {
			return Request{}, e.errf("%s", decodeProblem(field, err))
		}
		if f.ID != "" {
			field += fmt.Sprintf(" (%s)", f.ID)
		}
		control := f.controlID()
		status := ""
		if f.Compliance != nil {
			status = f.Compliance.Status
		}
		switch {
		case control == "":
			skip("no control id")
			continue
		case control != controlIMDSv2:
			skip("for control " + show(control))
			continue
		case f.RecordState == "ARCHIVED":
			skip("archived")
			continue
		case f.Workflow != nil && f.Workflow.Status == "SUPPRESSED":
			skip("suppressed")
			continue
		case status == "":
			skip("without a compliance status")
			continue
		case status != "FAILED":
			skip(show(status))
			continue
		}
		found := false
		for j, r := range f.Resources {
			if r.Type != "AwsEc2Instance" {
				continue
			}
			found = true
			ref, err := instanceARN(r.ID)
			if err != nil {
				return Request{}, e.errf("%s.Resources[%d].Id %q %v", field, j, r.ID, err)
			}
			b.add(ref)
		}
		if !found {
			return Request{}, e.errf("%s is a FAILED %s finding without an AwsEc2Instance resource", field, controlIMDSv2)
		}
	}
	if len(b.req.Refs) == 0 && len(b.req.Foreign) == 0 {
		if len(d.Findings) == 0 {
			return b.ignore("detail.findings is empty")
		}
		parts := make([]string, 0, len(skipOrder))
		for _, reason := range skipOrder {
			parts = append(parts, fmt.Sprintf("%d %s", skipped[reason], reason))
		}
		return b.ignore("no active, unsuppressed FAILED %s finding among %s (%s)", controlIMDSv2,
			plural(len(d.Findings), "finding", "findings"), strings.Join(parts, ", "))
	}
	return b.done()
}

// instanceARN reads arn:PARTITION:ec2:REGION:ACCOUNT:instance/i-....
func instanceARN(arn string) (Ref, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || !strings.HasPrefix(parts[1], "aws") || parts[2] != "ec2" ||
		!strings.HasPrefix(parts[5], "instance/") {
		return Ref{}, errors.New("is not an EC2 instance ARN (arn:aws:ec2:REGION:ACCOUNT:instance/i-...)")
	}
	ref := Ref{Region: parts[3], AccountID: parts[4], InstanceID: strings.TrimPrefix(parts[5], "instance/")}
	switch {
	case !ValidRegion(ref.Region):
		return Ref{}, fmt.Errorf("has region %q, which is not a region", ref.Region)
	case !ValidAccountID(ref.AccountID):
		return Ref{}, fmt.Errorf("has account %q, which is not a 12-digit account id", ref.AccountID)
	case !ValidInstanceID(ref.InstanceID):
		return Ref{}, fmt.Errorf("has instance id %q, which is not an instance id", ref.InstanceID)
	}
	return ref, nil
}

// ---- EC2 state change ----

type stateChangeDetail struct {
	InstanceID string `json:"instance-id"`
	State      string `json:"state"`
}

func (e *event) stateChange() (Request, error) {
	var d stateChangeDetail
	if err := e.decodeDetail(&d); err != nil {
		return Request{}, err
	}
	switch {
	case d.InstanceID == "":
		return Request{}, e.errf("detail.instance-id is missing")
	case !ValidInstanceID(d.InstanceID):
		return Request{}, e.errf("detail.instance-id %q is not an instance id", d.InstanceID)
	case d.State == "":
		return Request{}, e.errf("detail.state is missing")
	}
	account, region, err := e.where(e.account, "account", e.region, "region")
	if err != nil {
		return Request{}, err
	}
	b := newBuilder(e.cfg, e.name)
	if d.State != "running" {
		return b.ignore("instance %s is %s, not running", d.InstanceID, show(d.State))
	}
	b.add(Ref{AccountID: account, Region: region, InstanceID: d.InstanceID})
	return b.done()
}

// ---- CloudTrail ----

type cloudTrailDetail struct {
	EventSource        string          `json:"eventSource"`
	EventName          string          `json:"eventName"`
	AwsRegion          string          `json:"awsRegion"`
	RecipientAccountID string          `json:"recipientAccountId"`
	ErrorCode          string          `json:"errorCode"`
	ErrorMessage       string          `json:"errorMessage"`
	RequestParameters  json.RawMessage `json:"requestParameters"`
	ResponseElements   json.RawMessage `json:"responseElements"`
}

func (e *event) cloudTrail() (Request, error) {
	var d cloudTrailDetail
	if err := e.decodeDetail(&d); err != nil {
		return Request{}, err
	}
	if d.EventName == "" {
		return Request{}, e.errf("detail.eventName is missing")
	}
	b := newBuilder(e.cfg, e.name)
	if d.ErrorCode != "" {
		msg := show(d.ErrorCode)
		if d.ErrorMessage != "" {
			msg += ": " + show(truncate(d.ErrorMessage, 200))
		}
		return b.ignore("the %s call failed (%s)", show(d.EventName), msg)
	}
	if d.EventSource != "" && d.EventSource != "ec2.amazonaws.com" {
		return b.ignore("event source %s is not ec2.amazonaws.com", show(d.EventSource))
	}
	if d.EventName != "RunInstances" && d.EventName != "ModifyInstanceMetadataOptions" {
		return b.ignore("API call %s is neither RunInstances nor ModifyInstanceMetadataOptions", show(d.EventName))
	}
	account, accountField := firstOf(e.account, "account", d.RecipientAccountID, "detail.recipientAccountId")
	region, regionField := firstOf(e.region, "region", d.AwsRegion, "detail.awsRegion")
	account, region, err := e.where(account, accountField, region, regionField)
	if err != nil {
		return Request{}, err
	}
	if d.EventName == "RunInstances" {
		ids, err := e.runInstances(d)
		if err != nil {
			return Request{}, err
		}
		for _, id := range ids {
			b.add(Ref{AccountID: account, Region: region, InstanceID: id})
		}
		return b.done()
	}
	id, tokens, err := e.modifyMetadataOptions(d)
	if err != nil {
		return Request{}, err
	}
	if strings.EqualFold(tokens, "required") {
		return b.ignore("ModifyInstanceMetadataOptions set HttpTokens=required on %s", id)
	}
	b.add(Ref{AccountID: account, Region: region, InstanceID: id})
	return b.done()
}

// runInstances returns detail.responseElements.instancesSet.items[].instanceId.
func (e *event) runInstances(d cloudTrailDetail) ([]string, error) {
	const field = "detail.responseElements"
	if isNull(d.ResponseElements) {
		return nil, e.errf("%s is missing", field)
	}
	var resp struct {
		InstancesSet *struct {
			Items []struct {
				InstanceID string `json:"instanceId"`
			} `json:"items"`
		} `json:"instancesSet"`
	}
	if err := unmarshalObject(d.ResponseElements, &resp, field); err != nil {
		return nil, e.errf("%s", err)
	}
	if resp.InstancesSet == nil || len(resp.InstancesSet.Items) == 0 {
		return nil, e.errf("%s.instancesSet.items is missing or empty", field)
	}
	ids := make([]string, 0, len(resp.InstancesSet.Items))
	for i, item := range resp.InstancesSet.Items {
		if !ValidInstanceID(item.InstanceID) {
			return nil, e.errf("%s.instancesSet.items[%d].instanceId %q is not an instance id", field, i, item.InstanceID)
		}
		ids = append(ids, item.InstanceID)
	}
	return ids, nil
}

// modifyMetadataOptions returns the instance id and the HttpTokens the call asked for
// ("" when the request did not set it).
func (e *event) modifyMetadataOptions(d cloudTrailDetail) (id, tokens string, err error) {
	type options struct {
		InstanceID string `json:"InstanceId"`
		HTTPTokens string `json:"HttpTokens"`
	}
	const (
		reqField  = "detail.requestParameters.ModifyInstanceMetadataOptionsRequest"
		respField = "detail.responseElements.ModifyInstanceMetadataOptionsResponse"
	)
	var reqID, respID string
	if !isNull(d.RequestParameters) {
		// CloudTrail wraps the parameters in ModifyInstanceMetadataOptionsRequest; accept
		// them unwrapped too.
		var wrapped struct {
			Request *options `json:"ModifyInstanceMetadataOptionsRequest"`
			options
		}
		if err := unmarshalObject(d.RequestParameters, &wrapped, "detail.requestParameters"); err != nil {
			return "", "", e.errf("%s", err)
		}
		req := wrapped.options
		if wrapped.Request != nil {
			req = *wrapped.Request
		}
		reqID, tokens = req.InstanceID, req.HTTPTokens
	}
	if !isNull(d.ResponseElements) {
		var resp struct {
			Response *struct {
				InstanceID string `json:"instanceId"`
			} `json:"ModifyInstanceMetadataOptionsResponse"`
		}
		if err := unmarshalObject(d.ResponseElements, &resp, "detail.responseElements"); err != nil {
			return "", "", e.errf("%s", err)
		}
		if resp.Response != nil {
			respID = resp.Response.InstanceID
		}
	}
	switch {
	case reqID == "" && respID == "":
		return "", "", e.errf("no instance id in %s.InstanceId or %s.instanceId", reqField, respField)
	case reqID != "" && !ValidInstanceID(reqID):
		return "", "", e.errf("%s.InstanceId %q is not an instance id", reqField, reqID)
	case respID != "" && !ValidInstanceID(respID):
		return "", "", e.errf("%s.instanceId %q is not an instance id", respField, respID)
	case reqID != "" && respID != "" && reqID != respID:
		return "", "", e.errf("%s.InstanceId %q and %s.instanceId %q differ", reqField, reqID, respField, respID)
	}
	if reqID == "" {
		reqID = respID
	}
	return reqID, tokens, nil
}

// ---- sweep and direct invoke ----

type sweepPayload struct {
	Sweep *struct {
		Regions []string `json:"regions"`
	} `json:"sweep"`
}

// parseSweep reads {"sweep": {"regions": [...]}}; a null sweep, missing or empty regions
// mean the function's own region.
func parseSweep(raw []byte, cfg Config) (Request, error) {
	var p sweepPayload
	if err := strictUnmarshal(raw, &p); err != nil {
		return Request{}, fmt.Errorf("sweep: %s", decodeProblem("", err))
	}
	b := newBuilder(cfg, SourceSweep)
	var regions []string
	if p.Sweep != nil {
		regions = p.Sweep.Regions
	}
	if len(regions) == 0 {
		b.req.Sweep = []string{cfg.Region}
		return b.done()
	}
	seen := map[string]bool{}
	for i, r := range regions {
		if !ValidRegion(r) {
			return Request{}, fmt.Errorf("sweep: sweep.regions[%d] %q is not a region", i, r)
		}
		if seen[r] {
			continue
		}
		seen[r] = true
		if r == cfg.Region {
			b.req.Sweep = append(b.req.Sweep, r)
		} else {
			b.req.ForeignRegions = append(b.req.ForeignRegions, r)
		}
	}
	return b.done()
}

type directPayload struct {
	InstanceIDs []string `json:"instance_ids"`
	Region      *string  `json:"region"`
}

// parseDirect reads {"instance_ids": [...], "region": "..."}: instances in the function's
// account, in region (default the function's).
func parseDirect(raw []byte, cfg Config) (Request, error) {
	var p directPayload
	if err := strictUnmarshal(raw, &p); err != nil {
		return Request{}, fmt.Errorf("direct invoke: %s", decodeProblem("", err))
	}
	if len(p.InstanceIDs) == 0 {
		return Request{}, errors.New("direct invoke: instance_ids is empty: name at least one instance id")
	}
	region := cfg.Region
	if p.Region != nil {
		if !ValidRegion(*p.Region) {
			return Request{}, fmt.Errorf("direct invoke: region %q is not a region", *p.Region)
		}
		region = *p.Region
	}
	b := newBuilder(cfg, SourceDirect)
	for i, id := range p.InstanceIDs {
		if !ValidInstanceID(id) {
			return Request{}, fmt.Errorf("direct invoke: instance_ids[%d] %q is not an instance id", i, id)
		}
		b.add(Ref{AccountID: cfg.AccountID, Region: region, InstanceID: id})
	}
	return b.done()
}

// ---- JSON helpers ----

// strictUnmarshal decodes one JSON value into dst, refusing unknown fields: sweeps and
// direct invokes are written by people, and a misspelt field must not be ignored.
func strictUnmarshal(raw []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(dst)
}

// unmarshalObject decodes raw, which must be a JSON object, into dst; errors name field.
func unmarshalObject(raw json.RawMessage, dst any, field string) error {
	if k := jsonKind(raw); k != "an object" {
		return fmt.Errorf("%s is %s, not an object", field, k)
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return errors.New(decodeProblem(field, err))
	}
	return nil
}

// decodeProblem words a decoding error in terms of the input's fields.
func decodeProblem(field string, err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		name := field
		if te.Field != "" {
			if name != "" {
				name += "."
			}
			name += te.Field
		}
		if name == "" {
			name = "the payload"
		}
		return fmt.Sprintf("%s is %s, not %s", name, article(te.Value), goKind(te.Type))
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if field == "" {
		return msg
	}
	return field + ": " + msg
}

// jsonKind names the kind of a JSON value.
func jsonKind(raw []byte) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "empty"
	}
	switch t[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func isNull(raw []byte) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// article turns encoding/json's value description ("string", "number 5", "array") into
// words.
func article(v string) string {
	switch {
	case v == "object":
		return "an object"
	case v == "array":
		return "a list"
	case v == "bool":
		return "a boolean"
	case v == "string":
		return "a string"
	case strings.HasPrefix(v, "number"):
		return "a number"
	}
	return v
}

func goKind(t reflect.Type) string {
	if t == nil {
		return "what was expected"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

// keyList lists an object's keys for an error message.
func keyList(top map[string]json.RawMessage) string {
	if len(top) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, fmt.Sprintf("%q", truncate(k, 40)))
	}
	sort.Strings(keys)
	if len(keys) > 10 {
		keys = append(keys[:10], fmt.Sprintf("and %d more", len(keys)-10))
	}
	return strings.Join(keys, ", ")
}

// show makes a value from the input fit for a message: at most 120 characters, quoted
// when it holds control characters or is not UTF-8.
func show(s string) string {
	s = truncate(s, 120)
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return strconv.Quote(s)
	}
	return s
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "..."
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

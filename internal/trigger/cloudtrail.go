package trigger

import (
	"encoding/json"
	"strings"

	"github.com/imdsguard/imdsguard/internal/policy"
)

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

// An apiCall is one API call that CloudTrail records and detect reads: its name and the
// parser of the record of a successful call.
type apiCall struct {
	name  string
	parse func(*apiCallRecord) (Request, error)
}

// A cloudTrailService is the API calls of one AWS service that detect reads from
// CloudTrail, in the order ignore messages list them. To read one more call, write its
// parser and add it here (and to the EventBridge rule in template.yaml that sends these
// calls to detect).
type cloudTrailService struct {
	eventSource string
	calls       []apiCall
}

// ec2Calls are the EC2 calls that launch instances or change their metadata options, and
// those that change a source of instances: a launch template, the account's instance
// metadata defaults.
var ec2Calls = cloudTrailService{"ec2.amazonaws.com", []apiCall{
	{"RunInstances", parseRunInstances},
	{"ModifyInstanceMetadataOptions", parseModifyMetadataOptions},
	{"CreateLaunchTemplateVersion", parseCreateLaunchTemplateVersion},
	{"ModifyLaunchTemplate", parseModifyLaunchTemplate},
	{"ModifyInstanceMetadataDefaults", parseModifyMetadataDefaults},
}}

// autoScalingCalls are the Auto Scaling calls that make or change a group, a source of
// instances.
var autoScalingCalls = cloudTrailService{"autoscaling.amazonaws.com", []apiCall{
	{"CreateAutoScalingGroup", parseAutoScalingGroupCall},
	{"UpdateAutoScalingGroup", parseAutoScalingGroupCall},
}}

// parseEC2CloudTrail reads an EC2 API call CloudTrail recorded (source aws.ec2).
func parseEC2CloudTrail(e *event) (Request, error) { return ec2Calls.parse(e) }

// parseAutoScalingCloudTrail reads an Auto Scaling API call CloudTrail recorded (source
// aws.autoscaling).
func parseAutoScalingCloudTrail(e *event) (Request, error) { return autoScalingCalls.parse(e) }

// apiCallRecord is the record of one successful API call being parsed: the event, its
// detail, the account and region the call was made in, and the request it makes.
type apiCallRecord struct {
	e               *event
	d               cloudTrailDetail
	account, region string
	b               *builder
}

// parse reads an API call of the service that CloudTrail recorded: each call the service
// lists has its parser. Failed calls, calls of another event source and other API calls
// are ignored.
func (s cloudTrailService) parse(e *event) (Request, error) {
	var d cloudTrailDetail
	if err := e.decodeDetail(&d); err != nil {
		return Request{}, err
	}
	if d.EventName == "" {
		return Request{}, e.errf("detail.eventName is missing")
	}
	b := e.request()
	if d.ErrorCode != "" {
		msg := show(d.ErrorCode)
		if d.ErrorMessage != "" {
			msg += ": " + show(truncate(d.ErrorMessage, 200))
		}
		return b.ignore("the %s call failed (%s)", show(d.EventName), msg)
	}
	if d.EventSource != "" && d.EventSource != s.eventSource {
		return b.ignore("event source %s is not %s", show(d.EventSource), s.eventSource)
	}
	var call *apiCall
	names := make([]string, len(s.calls))
	for i := range s.calls {
		names[i] = s.calls[i].name
		if s.calls[i].name == d.EventName {
			call = &s.calls[i]
		}
	}
	if call == nil {
		return b.ignore("API call %s is not %s", show(d.EventName), orList(names))
	}
	account, accountField := firstOf(e.account, "account", d.RecipientAccountID, "detail.recipientAccountId")
	region, regionField := firstOf(e.region, "region", d.AwsRegion, "detail.awsRegion")
	account, region, err := e.where(account, accountField, region, regionField)
	if err != nil {
		return Request{}, err
	}
	return call.parse(&apiCallRecord{e: e, d: d, account: account, region: region, b: b})
}

// parseRunInstances asks for every instance RunInstances launched.
func parseRunInstances(c *apiCallRecord) (Request, error) {
	ids, err := runInstances(c.e, c.d)
	if err != nil {
		return Request{}, err
	}
	for _, id := range ids {
		c.b.add(Ref{AccountID: c.account, Region: c.region, InstanceID: id})
	}
	return c.b.done()
}

// parseModifyMetadataOptions asks for the instance of a ModifyInstanceMetadataOptions
// call unless the call set HttpTokens=required (someone may have turned IMDSv1 back on).
func parseModifyMetadataOptions(c *apiCallRecord) (Request, error) {
	id, tokens, err := modifyMetadataOptions(c.e, c.d)
	if err != nil {
		return Request{}, err
	}
	if strings.EqualFold(tokens, "required") {
		return c.b.ignore("ModifyInstanceMetadataOptions set HttpTokens=required on %s", id)
	}
	c.b.add(Ref{AccountID: c.account, Region: c.region, InstanceID: id})
	return c.b.done()
}

// runInstances returns detail.responseElements.instancesSet.items[].instanceId.
func runInstances(e *event, d cloudTrailDetail) ([]string, error) {
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
		if !policy.ValidInstanceID(item.InstanceID) {
			return nil, e.errf("%s.instancesSet.items[%d].instanceId %q is not an instance id", field, i, item.InstanceID)
		}
		ids = append(ids, item.InstanceID)
	}
	return ids, nil
}

// modifyMetadataOptions returns the instance id and the HttpTokens the call asked for
// ("" when the request did not set it).
func modifyMetadataOptions(e *event, d cloudTrailDetail) (id, tokens string, err error) {
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
	case reqID != "" && !policy.ValidInstanceID(reqID):
		return "", "", e.errf("%s.InstanceId %q is not an instance id", reqField, reqID)
	case respID != "" && !policy.ValidInstanceID(respID):
		return "", "", e.errf("%s.instanceId %q is not an instance id", respField, respID)
	case reqID != "" && respID != "" && reqID != respID:
		return "", "", e.errf("%s.InstanceId %q and %s.instanceId %q differ", reqField, reqID, respField, respID)
	}
	if reqID == "" {
		reqID = respID
	}
	return reqID, tokens, nil
}

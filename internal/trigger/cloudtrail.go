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

// parseCloudTrail reads an EC2 API call CloudTrail recorded: RunInstances asks for every
// instance it launched, and ModifyInstanceMetadataOptions for its instance unless it set
// HttpTokens=required (someone may have turned IMDSv1 back on). Failed calls and other
// API calls are ignored.
func parseCloudTrail(e *event) (Request, error) {
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
		ids, err := runInstances(e, d)
		if err != nil {
			return Request{}, err
		}
		for _, id := range ids {
			b.add(Ref{AccountID: account, Region: region, InstanceID: id})
		}
		return b.done()
	}
	id, tokens, err := modifyMetadataOptions(e, d)
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

package trigger

import (
	"encoding/json"
	"strings"
)

// The API calls that change a source of instances (DESIGN.md section 10) ask detect to
// judge that source again at once, rather than at the next sweep: a new launch template
// version or default version, new account metadata defaults, a new or changed Auto
// Scaling group may launch IMDSv1 instances from now on.
//
// CloudTrail records EC2's newer query API calls with the request's members, capitalised
// as in the API, under detail.requestParameters.<Call>Request, and the response as EC2's
// XML reply, camel-cased, under detail.responseElements.<Call>Response (as for
// ModifyInstanceMetadataOptions). It records Auto Scaling's calls with camel-cased
// members directly under detail.requestParameters.

// parseCreateLaunchTemplateVersion asks for the launch template that got a new version
// (it may be the default version, or the $Latest a group launches).
func parseCreateLaunchTemplateVersion(c *apiCallRecord) (Request, error) {
	return c.launchTemplate("CreateLaunchTemplateVersion", "launchTemplateVersion")
}

// parseModifyLaunchTemplate asks for the launch template whose default version changed.
func parseModifyLaunchTemplate(c *apiCallRecord) (Request, error) {
	return c.launchTemplate("ModifyLaunchTemplate", "launchTemplate")
}

// parseModifyMetadataDefaults asks for the account's instance metadata defaults in the
// call's region unless the call set HttpTokens=required and weakened nothing: it did not
// turn HttpTokensEnforced off (disabled or no-preference let a launch ask for IMDSv1
// again). The other options it may set (hop limit, endpoint, tags) do not turn IMDSv1 on;
// a call that leaves HttpTokens alone is judged again all the same, like
// ModifyInstanceMetadataOptions.
func parseModifyMetadataDefaults(c *apiCallRecord) (Request, error) {
	var req struct {
		HTTPTokens         string `json:"HttpTokens"`
		HTTPTokensEnforced string `json:"HttpTokensEnforced"`
	}
	if _, err := c.requestParameters("ModifyInstanceMetadataDefaults", &req); err != nil {
		return Request{}, err
	}
	if strings.EqualFold(req.HTTPTokens, "required") && (req.HTTPTokensEnforced == "" || strings.EqualFold(req.HTTPTokensEnforced, "enabled")) {
		return c.b.ignore("ModifyInstanceMetadataDefaults set HttpTokens=required for account %s in %s", c.account, c.region)
	}
	c.b.addSource(c.account, c.region, SourceRef{Kind: SourceRefAccountDefaults})
	return c.b.done()
}

// parseAutoScalingGroupCall asks for the group that CreateAutoScalingGroup made or
// UpdateAutoScalingGroup changed: detail.requestParameters.autoScalingGroupName.
func parseAutoScalingGroupCall(c *apiCallRecord) (Request, error) {
	const field = "detail.requestParameters"
	if isNull(c.d.RequestParameters) {
		return Request{}, c.e.errf("%s is missing", field)
	}
	var req struct {
		Name string `json:"autoScalingGroupName"`
	}
	if err := unmarshalObject(c.d.RequestParameters, &req, field); err != nil {
		return Request{}, c.e.errf("%s", err)
	}
	switch {
	case req.Name == "":
		return Request{}, c.e.errf("%s.autoScalingGroupName is missing", field)
	case !validAutoScalingGroupName(req.Name):
		return Request{}, c.e.errf("%s.autoScalingGroupName %q is not an Auto Scaling group name (1 to 255 characters, no colon or control characters)",
			field, truncate(req.Name, 120))
	}
	c.b.addSource(c.account, c.region, SourceRef{Kind: SourceRefAutoScalingGroup, Name: req.Name})
	return c.b.done()
}

// launchTemplate asks for the launch template a call names: by the request's
// LaunchTemplateId or LaunchTemplateName, and by the launchTemplateId and
// launchTemplateName of the response's respMember. The response's id is preferred; where
// request and response both name it, they must agree.
func (c *apiCallRecord) launchTemplate(call, respMember string) (Request, error) {
	var req struct {
		ID   string `json:"LaunchTemplateId"`
		Name string `json:"LaunchTemplateName"`
	}
	reqField, err := c.requestParameters(call, &req)
	if err != nil {
		return Request{}, err
	}
	var resp struct {
		ID   string `json:"launchTemplateId"`
		Name string `json:"launchTemplateName"`
	}
	wrapperField := "detail.responseElements." + call + "Response"
	respField := wrapperField + "." + respMember
	raw, err := memberOf(c.d.ResponseElements, "detail.responseElements", call+"Response")
	if err == nil {
		raw, err = memberOf(raw, wrapperField, respMember)
	}
	if err == nil && raw != nil {
		err = unmarshalObject(raw, &resp, respField)
	}
	if err != nil {
		return Request{}, c.e.errf("%s", err)
	}
	switch {
	case req.ID == "" && req.Name == "" && resp.ID == "" && resp.Name == "":
		return Request{}, c.e.errf("no launch template id or name in %s.LaunchTemplateId or .LaunchTemplateName, nor in %s.launchTemplateId or .launchTemplateName",
			reqField, respField)
	case req.ID != "" && !validLaunchTemplateID(req.ID):
		return Request{}, c.e.errf("%s.LaunchTemplateId %q is not a launch template id", reqField, truncate(req.ID, 120))
	case resp.ID != "" && !validLaunchTemplateID(resp.ID):
		return Request{}, c.e.errf("%s.launchTemplateId %q is not a launch template id", respField, truncate(resp.ID, 120))
	case req.Name != "" && !validLaunchTemplateName(req.Name):
		return Request{}, c.e.errf("%s.LaunchTemplateName %q is not a launch template name (3 to 128 characters of A-Z, a-z, 0-9, ( ) . / _ -)",
			reqField, truncate(req.Name, 120))
	case resp.Name != "" && !validLaunchTemplateName(resp.Name):
		return Request{}, c.e.errf("%s.launchTemplateName %q is not a launch template name (3 to 128 characters of A-Z, a-z, 0-9, ( ) . / _ -)",
			respField, truncate(resp.Name, 120))
	case req.ID != "" && resp.ID != "" && req.ID != resp.ID:
		return Request{}, c.e.errf("%s.LaunchTemplateId %q and %s.launchTemplateId %q differ", reqField, req.ID, respField, resp.ID)
	case req.Name != "" && resp.Name != "" && req.Name != resp.Name:
		return Request{}, c.e.errf("%s.LaunchTemplateName %q and %s.launchTemplateName %q differ", reqField, req.Name, respField, resp.Name)
	}
	ref := SourceRef{Kind: SourceRefLaunchTemplate, ID: resp.ID, Name: resp.Name}
	if ref.ID == "" {
		ref.ID = req.ID
	}
	if ref.Name == "" {
		ref.Name = req.Name
	}
	c.b.addSource(c.account, c.region, ref)
	return c.b.done()
}

// requestParameters decodes the request's members into dst, from
// detail.requestParameters.<call>Request, or from detail.requestParameters itself when a
// record does not wrap them; nothing is decoded when there are none. field is where they
// were read (the wrapper's path when there are none), for the caller's messages.
func (c *apiCallRecord) requestParameters(call string, dst any) (field string, err error) {
	field = "detail.requestParameters." + call + "Request"
	raw, err := memberOf(c.d.RequestParameters, "detail.requestParameters", call+"Request")
	if err != nil {
		return "", c.e.errf("%s", err)
	}
	if raw == nil {
		if isNull(c.d.RequestParameters) {
			return field, nil
		}
		raw, field = c.d.RequestParameters, "detail.requestParameters"
	}
	if err := unmarshalObject(raw, dst, field); err != nil {
		return "", c.e.errf("%s", err)
	}
	return field, nil
}

// memberOf returns the member key of raw, which must be a JSON object unless it is null;
// nil when raw is null or the member is missing or null. field names raw in errors.
func memberOf(raw json.RawMessage, field, key string) (json.RawMessage, error) {
	if isNull(raw) {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := unmarshalObject(raw, &m, field); err != nil {
		return nil, err
	}
	if v := m[key]; !isNull(v) {
		return v, nil
	}
	return nil, nil
}

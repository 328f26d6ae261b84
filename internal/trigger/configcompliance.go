package trigger

import (
	"strings"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// This parser is the model for the others: the detail's fields that are read, then a
// parse function that decodes the detail, refuses what is missing or malformed (e.errf
// names the event), ignores what asks for nothing (b.ignore says why), and adds the
// instances it asks for (b.add files each as the function's own or foreign). Its line in
// registry.go's eventKinds says which source and detail-type it reads.

type configComplianceDetail struct {
	ResourceID          string `json:"resourceId"`
	ResourceType        string `json:"resourceType"`
	AwsRegion           string `json:"awsRegion"`
	AwsAccountID        string `json:"awsAccountId"`
	ConfigRuleName      string `json:"configRuleName"`
	NewEvaluationResult *struct {
		ComplianceType string `json:"complianceType"`
	} `json:"newEvaluationResult"`
}

// parseConfigCompliance reads AWS Config's new evaluation of one resource by one rule.
// It asks for the instance when the rule is the IMDSv2 rule and the instance is
// NON_COMPLIANT; any other rule, resource type or result is ignored. Config delivers
// best-effort and may repeat itself, which is harmless: everything downstream is
// idempotent.
func parseConfigCompliance(e *event) (Request, error) {
	var d configComplianceDetail
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
	b := e.request()
	sub := e.cfg.ruleSubstring()
	if !strings.Contains(strings.ToLower(d.ConfigRuleName), strings.ToLower(sub)) {
		return b.ignore("Config rule %q is not the IMDSv2 rule (its name does not contain %q)", d.ConfigRuleName, sub)
	}
	if d.ResourceType != "AWS::EC2::Instance" {
		return b.ignore("resource type %s is not AWS::EC2::Instance", show(d.ResourceType))
	}
	if !policy.ValidInstanceID(d.ResourceID) {
		return Request{}, e.errf("detail.resourceId %q is not an instance id", d.ResourceID)
	}
	// The detail names the evaluated resource's own account and region; the envelope's
	// are the fallback.
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

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
//     ModifyInstanceMetadataOptions calls that do not set HttpTokens=required (the
//     instances), for CreateLaunchTemplateVersion and ModifyLaunchTemplate (the launch
//     template, a source), and for ModifyInstanceMetadataDefaults unless the call set
//     HttpTokens=required without turning HttpTokensEnforced off (the account's instance
//     metadata defaults in the region, a source);
//   - "AWS API Call via CloudTrail" (source aws.autoscaling) for CreateAutoScalingGroup
//     and UpdateAutoScalingGroup (the group, a source);
//   - a scheduled sweep {"sweep": {"regions": [...]}};
//   - a direct invoke {"instance_ids": [...], "region": "..."}.
//
// Each kind has its own small parser in its own file; registry.go lists them and hands
// every input to its parser.
//
// Parse is pure: it does no IO and never panics. A malformed input is an error that names
// the input and the problem; a well-formed input that asks for nothing comes back with
// Request.Ignored saying why.
package trigger

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// DefaultRuleSubstring is matched against Config rule names when Config.RuleSubstring is empty.
const DefaultRuleSubstring = "ec2-imdsv2-check"

// Sources of the requests that are not EventBridge events. EventBridge events have the
// source "<source> / <detail-type>", e.g. "aws.config / Config Rules Compliance Change".
const (
	SourceSweep  = "sweep"
	SourceDirect = "direct"
)

// Ref names one instance. It is policy's, so that detect hands the refs on as they are.
type Ref = policy.Ref

// Request is what an input asks detect to do.
//
// Exactly one of these holds for a Request returned without error: Refs, Sweep or Sources
// is not empty, or Ignored says why nothing is to be done. Foreign, ForeignRegions and
// ForeignSources are reported in either case; when they are all there is, Ignored says so.
type Request struct {
	// Source names the input: "<source> / <detail-type>" for EventBridge events,
	// SourceSweep or SourceDirect otherwise.
	Source string
	// Refs are the instances to judge, in the function's own account and region:
	// deduplicated, in the order the input names them.
	Refs []Ref
	// Sweep holds the function's own region when the input asks for a sweep of it.
	Sweep []string
	// Sources are the sources of instances (launch templates, Auto Scaling groups, the
	// account's instance metadata defaults) to judge again, in the function's own account
	// and region: deduplicated, in input order.
	Sources []SourceRef
	// ForeignRegions are sweep regions other than the function's: reported, not swept.
	ForeignRegions []string
	// Foreign are instances in another account or region than the function's:
	// reported, not acted on. Deduplicated, in input order.
	Foreign []Ref
	// ForeignSources are sources in another account or region than the function's:
	// reported, not acted on. Deduplicated, in input order.
	ForeignSources []ForeignSource
	// Ignored is non-empty when the input is well-formed but asks for nothing; it says why.
	Ignored string
}

// Config is the function's own account and region, and the Config rule name substring.
type Config struct{ AccountID, Region, RuleSubstring string }

// Validate checks the function's own account and region.
func (c Config) Validate() error {
	if !policy.ValidAccountID(c.AccountID) {
		return fmt.Errorf("trigger config: account id %q is not a 12-digit account id", c.AccountID)
	}
	if !policy.ValidRegion(c.Region) {
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
// region: instances, sources and sweep regions elsewhere are reported as foreign, not
// acted on.
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
	return dispatch(raw, top, cfg)
}

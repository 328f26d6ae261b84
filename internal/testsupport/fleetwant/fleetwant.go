// Package fleetwant holds the verdict the guard must reach, under the default settings,
// for each kind of instance of the demo's sample fleet (package demo): the tests' answer
// key, kept out of the production packages.
package fleetwant

import "github.com/imdsguard/imdsguard/internal/policy"

// Want is the expected verdict of one kind.
type Want struct {
	Action policy.Action
	// Codes are all the reason codes, primary first.
	Codes []policy.ReasonCode
	// Target is checked for remediate verdicts.
	Target *policy.MetadataOptions
}

// For returns the expected verdict of the kind named; it panics for a kind it does not
// know, so that a kind added to the fleet cannot go unchecked.
func For(kind string) Want {
	w, ok := wants[kind]
	if !ok {
		panic("fleetwant: no expected verdict for the kind " + kind)
	}
	return w
}

func want(action policy.Action, codes ...policy.ReasonCode) Want {
	return Want{Action: action, Codes: codes}
}

func wantRemediate(t *policy.MetadataOptions, codes ...policy.ReasonCode) Want {
	return Want{Action: policy.ActionRemediate, Codes: codes, Target: t}
}

func target(hop int32, endpoint string) *policy.MetadataOptions {
	return &policy.MetadataOptions{HTTPTokens: policy.TokensRequired, HopLimit: hop, HTTPEndpoint: endpoint}
}

var wants = map[string]Want{
	"gone":                want(policy.ActionSkip, policy.ReasonTerminated),
	"already-v2":          want(policy.ActionSkip, policy.ReasonCompliant),
	"exempt":              want(policy.ActionSkip, policy.ReasonExempt),
	"exempt-until-today":  want(policy.ActionSkip, policy.ReasonExempt),
	"exempt-endpoint-off": want(policy.ActionSkip, policy.ReasonExempt),
	"endpoint-off":        wantRemediate(target(1, policy.EndpointDisable), policy.ReasonEndpointDisabled),
	"stopped":             want(policy.ActionDefer, policy.ReasonNotRunning),
	"legacy-v1":           want(policy.ActionTicket, policy.ReasonIMDSv1UsedMetric),
	// The instances the sample fleet's Auto Scaling groups run (demo.GroupKinds): their
	// launch templates set hop limit 2 and no instance profile.
	"asg-web":          wantRemediate(target(1, policy.EndpointEnabled), policy.ReasonIMDSv1Unused, policy.ReasonNoInstanceProfile),
	"asg-batch":        wantRemediate(target(1, policy.EndpointEnabled), policy.ReasonIMDSv1Unused, policy.ReasonNoInstanceProfile),
	"asg-batch-v1":     want(policy.ActionTicket, policy.ReasonIMDSv1UsedMetric),
	"weekly-cron-v1":   want(policy.ActionTicket, policy.ReasonIMDSv1UsedMetric),
	"new-and-v1":       want(policy.ActionTicket, policy.ReasonIMDSv1UsedMetric),
	"new":              want(policy.ActionDefer, policy.ReasonInsufficientMetrics),
	"gappy":            want(policy.ActionDefer, policy.ReasonInsufficientMetrics),
	"no-metrics":       want(policy.ActionDefer, policy.ReasonInsufficientMetrics),
	"stale":            want(policy.ActionDefer, policy.ReasonStaleMetrics),
	"sdk-v1":           want(policy.ActionTicket, policy.ReasonIMDSv1UsedCloudTrail),
	"stolen-creds":     want(policy.ActionTicket, policy.ReasonIMDSv1UsedCloudTrail, policy.ReasonPossibleCredentialTheft),
	"trail-denied":     want(policy.ActionDefer, policy.ReasonCloudTrailUnavailable),
	"trail-malformed":  want(policy.ActionDefer, policy.ReasonCloudTrailUnavailable),
	"web":              wantRemediate(target(1, policy.EndpointEnabled), policy.ReasonIMDSv1Unused),
	"static-site":      wantRemediate(target(1, policy.EndpointEnabled), policy.ReasonIMDSv1Unused, policy.ReasonNoInstanceProfile),
	"exemption-lapsed": wantRemediate(target(1, policy.EndpointEnabled), policy.ReasonIMDSv1Unused, policy.ReasonExemptionExpired),
	"eks-node":         wantRemediate(target(2, policy.EndpointEnabled), policy.ReasonIMDSv1Unused, policy.ReasonContainerHost),
	"k8s-node-hop3":    wantRemediate(target(3, policy.EndpointEnabled), policy.ReasonIMDSv1Unused, policy.ReasonContainerHost),
}

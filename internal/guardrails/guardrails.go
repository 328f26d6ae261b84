// Package guardrails is the lock-in of DESIGN.md section 10: the organization-wide
// policies that keep IMDSv1 out once imdsguard has moved every instance off it (two
// service control policies and the EC2 declarative policy), and whether each account is
// ready for them on the evidence.
//
// It is pure: the caller gathers the evidence (instances with their verdicts, the sources
// with theirs, the account defaults) and this package decides and renders. An SCP that
// refuses IMDSv1 is attached in seconds and breaks every launch and every workload that
// still needs IMDSv1 just as fast, so readiness is never assumed: an account-region that
// could not be read makes its account not ready.
package guardrails

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// Schema is the guardrails document's schema identifier; docs/schema/guardrails.schema.json
// describes it and v1 grows by new keys only.
const Schema = "imdsguard.guardrails/v1"

// Scope is the evidence of one account-region.
type Scope struct {
	AccountID, Region string
	// Failed is set when the account-region could not be read; Error says why.
	Failed bool
	Error  string
	// Instances are its instances with their verdicts.
	Instances []policy.SourceMember
	// DefaultsHTTPTokens is the account's instance metadata default there: "required",
	// "optional", or "" for no preference. DefaultsManagedBy is "account" or
	// "declarative-policy".
	DefaultsHTTPTokens, DefaultsManagedBy string
	// Sources are the verdicts of its launch templates and launch configurations, by
	// label ("launch-template lt-0abc (web)"). The account defaults and the AMIs do not
	// belong here: neither launches anything the SCP would refuse on its own, and the
	// defaults are DefaultsHTTPTokens.
	Sources map[string]policy.SourceVerdict
}

// Options shape the policy documents.
type Options struct {
	// ExemptRoles are the IAM role ARN patterns allowed to call
	// ModifyInstanceMetadataOptions: imdsguard's own roles (it enforces and rolls back
	// with that call) and the break-glass role, e.g. "arn:aws:iam::*:role/imdsguard-*".
	ExemptRoles []string
	// HopLimit is the largest hop limit allowed at launch, and the default the
	// declarative policy sets (2 lets containers reach IMDS).
	HopLimit int32
}

// AccountReadiness is whether one account may get the guardrails, region by region.
type AccountReadiness struct {
	AccountID string `json:"account_id"`
	// Ready is set only when every region read is ready.
	Ready   bool              `json:"ready"`
	Regions []RegionReadiness `json:"regions"`
}

// ScopeStatus says whether an account-region could be read.
type ScopeStatus string

// The statuses of an account-region.
const (
	ScopeOK     ScopeStatus = "ok"
	ScopeFailed ScopeStatus = "failed"
)

// MaxOpenListed is how many open instances a region names; the rest are counted.
const MaxOpenListed = 10

// RegionReadiness is the readiness of one account-region and the evidence behind it.
type RegionReadiness struct {
	Region string      `json:"region"`
	Status ScopeStatus `json:"status"`
	// Error says why a failed region could not be read; empty (absent from JSON) otherwise.
	Error string `json:"error,omitempty"`
	Ready bool   `json:"ready"`
	// Counts are zero when the region could not be read: nothing was.
	Counts Counts `json:"counts"`
	// OpenInstances are the first MaxOpenListed of the open instances by id;
	// MoreOpenInstances counts the others.
	OpenInstances     []OpenInstance `json:"open_instances"`
	MoreOpenInstances int            `json:"more_open_instances"`
	// SourcesNotReady are the launch templates and configurations that do not launch
	// with HttpTokens required, by label.
	SourcesNotReady []SourceNotReady `json:"sources_not_ready"`
	Defaults        Defaults         `json:"defaults"`
	// WhyNotReady says, for people, what keeps the region from being ready; empty when
	// it is ready.
	WhyNotReady []string `json:"why_not_ready"`
	// Notes are what is worth knowing without blocking readiness.
	Notes []string `json:"notes"`
}

// Counts are an account-region's instances by readiness; Compliant, Verified and Open
// add up to Instances.
type Counts struct {
	Instances int `json:"instances"`
	// Compliant are those with HttpTokens required already (or gone: terminated) that
	// imdsguard is not still verifying.
	Compliant int `json:"compliant"`
	// Verified are those imdsguard enforced and whose verification window ended clean.
	Verified int `json:"verified"`
	Open     int `json:"open"`
}

// OpenInstance is an instance that is neither compliant nor verified: it may still use
// IMDSv1, and the SCP refusing IMDSv1 credentials would break it if it does.
type OpenInstance struct {
	InstanceID string            `json:"instance_id"`
	Action     policy.Action     `json:"action"`
	Reason     policy.ReasonCode `json:"reason"`
	// Verifying is set when imdsguard enforced IMDSv2 on it and is still watching.
	Verifying bool `json:"verifying"`
}

// SourceNotReady is a source whose next launch the SCP requiring IMDSv2 would refuse.
type SourceNotReady struct {
	Label  string              `json:"label"`
	Action policy.SourceAction `json:"action"`
	Reason policy.ReasonCode   `json:"reason"`
	Detail string              `json:"detail"`
}

// Defaults are an account-region's instance metadata defaults as read.
type Defaults struct {
	// HTTPTokens is "required", "optional", or "" for no preference.
	HTTPTokens string `json:"http_tokens"`
	// ManagedBy is "account" or "declarative-policy"; empty when not read.
	ManagedBy string `json:"managed_by"`
}

const managedByDeclarativePolicy = "declarative-policy"

// Readiness judges every account of the scopes, sorted by account id, its regions by
// region. An account is ready only when every one of its account-regions was read and
// nothing there could need IMDSv1: every instance compliant or verified, every launch
// template and launch configuration launching with HttpTokens required. An
// account-region with no instance and no source is ready: there is nothing to break.
func Readiness(scopes []Scope) []AccountReadiness {
	regions := map[string][]RegionReadiness{}
	for _, s := range scopes {
		regions[s.AccountID] = append(regions[s.AccountID], regionReadiness(s))
	}
	out := make([]AccountReadiness, 0, len(regions))
	for _, id := range slices.Sorted(maps.Keys(regions)) {
		rs := regions[id]
		slices.SortStableFunc(rs, func(a, b RegionReadiness) int { return cmp.Compare(a.Region, b.Region) })
		out = append(out, AccountReadiness{
			AccountID: id,
			Ready:     !slices.ContainsFunc(rs, func(r RegionReadiness) bool { return !r.Ready }),
			Regions:   rs,
		})
	}
	return out
}

func regionReadiness(s Scope) RegionReadiness {
	r := RegionReadiness{
		Region: s.Region, Status: ScopeOK,
		OpenInstances: []OpenInstance{}, SourcesNotReady: []SourceNotReady{},
		Defaults:    Defaults{HTTPTokens: s.DefaultsHTTPTokens, ManagedBy: s.DefaultsManagedBy},
		WhyNotReady: []string{}, Notes: []string{},
	}
	if s.AccountID == "" {
		r.WhyNotReady = append(r.WhyNotReady, "the account of this region is not known: no account can be called ready on its evidence")
	}
	if s.Failed {
		r.Status = ScopeFailed
		r.Error = cmp.Or(s.Error, "no reason given")
		r.WhyNotReady = append(r.WhyNotReady, fmt.Sprintf("could not be read (%s): nothing is known of what the guardrails would break here", r.Error))
		return r
	}

	var open []OpenInstance
	for _, m := range s.Instances {
		r.Counts.Instances++
		switch {
		// A verified enforcement counts only while the instance is still compliant: one
		// set back to IMDSv1 since proves nothing any more.
		case m.Verified && isCompliant(m.Verdict) && !m.Verifying:
			r.Counts.Verified++
		case isCompliant(m.Verdict) && !m.Verifying:
			r.Counts.Compliant++
		default:
			open = append(open, OpenInstance{InstanceID: m.InstanceID, Action: m.Verdict.Action, Reason: m.Verdict.Primary(), Verifying: m.Verifying})
		}
	}
	slices.SortFunc(open, func(a, b OpenInstance) int { return cmp.Compare(a.InstanceID, b.InstanceID) })
	r.Counts.Open = len(open)
	r.OpenInstances = append(r.OpenInstances, open[:min(len(open), MaxOpenListed)]...)
	r.MoreOpenInstances = len(open) - len(r.OpenInstances)
	if len(open) > 0 {
		r.WhyNotReady = append(r.WhyNotReady, openLine(r))
	}

	for _, label := range slices.Sorted(maps.Keys(s.Sources)) {
		v := s.Sources[label]
		if launchesIMDSv2Only(v) {
			continue
		}
		n := SourceNotReady{Label: label, Action: v.Action}
		if len(v.Reasons) > 0 {
			n.Reason, n.Detail = v.Reasons[0].Code, v.Reasons[0].Detail
		}
		r.SourcesNotReady = append(r.SourcesNotReady, n)
		r.WhyNotReady = append(r.WhyNotReady, sourceLine(n))
	}

	if len(s.Instances) == 0 && len(s.Sources) == 0 {
		r.Notes = append(r.Notes, "no instances and no launch templates or launch configurations: nothing here to break")
	}
	if note := defaultsNote(r.Defaults); note != "" {
		r.Notes = append(r.Notes, note)
	}
	r.Ready = len(r.WhyNotReady) == 0
	return r
}

// isCompliant is the instance rule policy.DecideAccountDefaults applies too: HttpTokens
// required already, or the instance is gone.
func isCompliant(v policy.Verdict) bool {
	return v.Action == policy.ActionSkip && (v.Primary() == policy.ReasonCompliant || v.Primary() == policy.ReasonTerminated)
}

// launchesIMDSv2Only reports whether a source's next launch gets past the SCP: only a
// source that launches with HttpTokens required does. An exempt source does not count:
// its exemption says it still needs IMDSv1, which is exactly what the guardrails take
// away, so it must be settled (required on it, or its account kept out of the SCP's
// reach) before the lock-in, not after its next launch fails.
func launchesIMDSv2Only(v policy.SourceVerdict) bool {
	return v.Action == policy.SourceSkip && len(v.Reasons) > 0 && v.Reasons[0].Code == policy.ReasonSourceCompliant
}

func openLine(r RegionReadiness) string {
	names := make([]string, len(r.OpenInstances))
	for i, o := range r.OpenInstances {
		names[i] = o.label()
	}
	more := ""
	if r.MoreOpenInstances > 0 {
		more = fmt.Sprintf(" and %d more", r.MoreOpenInstances)
	}
	verb := "are"
	if r.Counts.Open == 1 {
		verb = "is"
	}
	return fmt.Sprintf("%d of the %d instances %s not compliant or verified yet: %s%s",
		r.Counts.Open, r.Counts.Instances, verb, strings.Join(names, ", "), more)
}

// label is "i-0abc (defer insufficient-metrics)", or "i-0abc (enforced, still being
// verified)".
func (o OpenInstance) label() string {
	if o.Verifying {
		return o.InstanceID + " (enforced, still being verified)"
	}
	return fmt.Sprintf("%s (%s %s)", o.InstanceID, orDash(string(o.Action)), orDash(string(o.Reason)))
}

func sourceLine(n SourceNotReady) string {
	if n.Reason == policy.ReasonSourceExempt {
		return fmt.Sprintf("%s is exempt from imdsguard (%s) and does not launch with HttpTokens required: the SCP would refuse its next launch; "+
			"require IMDSv2 on it, or keep this account out of the SCP's reach", n.Label, n.Detail)
	}
	why := string(n.Action) + " " + orDash(string(n.Reason))
	if n.Detail != "" {
		why += ": " + n.Detail
	}
	return fmt.Sprintf("%s does not launch with HttpTokens required: the SCP would refuse its next launch (%s)", n.Label, why)
}

// defaultsNote explains what the account defaults mean for the lock-in. They do not block
// readiness: the declarative policy replaces them, and nothing running depends on them.
func defaultsNote(d Defaults) string {
	if d.HTTPTokens == policy.TokensRequired {
		return ""
	}
	tokens := cmp.Or(d.HTTPTokens, "no preference")
	if d.ManagedBy == managedByDeclarativePolicy {
		return fmt.Sprintf("a declarative policy already sets the instance metadata defaults here (HttpTokens %s): "+
			"the guardrails' EC2 declarative policy must be the one in effect, so replace that policy or attach this one where it wins", tokens)
	}
	return fmt.Sprintf("the account default is HttpTokens %s: launches that set no metadata options of their own get it; "+
		"the guardrails' EC2 declarative policy makes required the default", tokens)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Documents are the three policy documents, each indented JSON with its keys in a fixed
// order.
type Documents struct {
	// RequireIMDSv2 is the SCP that refuses launches without IMDSv2 or above the hop
	// limit, and metadata option changes by anyone but the exempt roles.
	RequireIMDSv2 json.RawMessage `json:"scp_require_imdsv2"`
	// RefuseIMDSv1Credentials is the SCP that refuses every call signed with role
	// credentials fetched over IMDSv1.
	RefuseIMDSv1Credentials json.RawMessage `json:"scp_refuse_imdsv1_credentials"`
	// DeclarativePolicyEC2 sets the instance metadata defaults of every account it
	// reaches (Organizations policy type DECLARATIVE_POLICY_EC2).
	DeclarativePolicyEC2 json.RawMessage `json:"declarative_policy_ec2"`
}

// ErrInvalidOptions is wrapped by every error NewDocuments returns.
var ErrInvalidOptions = errors.New("invalid guardrail options")

// maxSCPCharacters is AWS Organizations' limit on an SCP's size. Whitespace counts, but
// need not be sent, so the compact form is what must fit.
const maxSCPCharacters = 5120

// The condition keys and values AWS documents for IMDS (the EC2 User Guide's example
// policies, "Work with instance metadata").
const (
	keyMetadataHTTPTokens = "ec2:MetadataHttpTokens"
	keyHopLimit           = "ec2:MetadataHttpPutResponseHopLimit"
	keyRoleDelivery       = "ec2:RoleDelivery"
	// roleDeliveryIMDSv2 is the value of ec2:RoleDelivery for credentials fetched over
	// IMDSv2; IMDSv1 delivers "1.0".
	roleDeliveryIMDSv2 = "2.0"
	keyPrincipalARN    = "aws:PrincipalArn"
	anyInstance        = "arn:aws:ec2:*:*:instance/*"
)

// exemptRolePattern is an IAM role ARN or ArnLike pattern in the aws partition: the
// account is 12 digits or "*", the role path and name what IAM allows plus wildcards.
var exemptRolePattern = regexp.MustCompile(`^arn:aws:iam::([0-9]{12}|\*):role/[A-Za-z0-9+=,.@_/*?-]+$`)

// NewDocuments writes the three policy documents for o. The error names every option
// that is wrong.
func NewDocuments(o Options) (Documents, error) {
	roles, err := validate(o)
	if err != nil {
		return Documents{}, err
	}
	requireIMDSv2 := policyDocument{Version: "2012-10-17", Statement: []statement{
		{
			Sid: "DenyLaunchWithoutIMDSv2", Effect: "Deny", Action: "ec2:RunInstances", Resource: anyInstance,
			Condition: map[string]map[string]any{"StringNotEquals": {keyMetadataHTTPTokens: policy.TokensRequired}},
		},
		{
			Sid: "DenyLaunchAboveHopLimit", Effect: "Deny", Action: "ec2:RunInstances", Resource: anyInstance,
			Condition: map[string]map[string]any{"NumericGreaterThan": {keyHopLimit: fmt.Sprint(o.HopLimit)}},
		},
		{
			// Without this, anyone allowed to call it could turn IMDSv1 back on for a
			// running instance; imdsguard needs it to enforce and to roll back.
			Sid: "DenyMetadataOptionsChangeExceptExemptRoles", Effect: "Deny", Action: "ec2:ModifyInstanceMetadataOptions", Resource: "*",
			Condition: map[string]map[string]any{"ArnNotLike": {keyPrincipalARN: roles}},
		},
	}}
	refuseIMDSv1 := policyDocument{Version: "2012-10-17", Statement: []statement{{
		Sid: "DenyIMDSv1RoleCredentials", Effect: "Deny", Action: "*", Resource: "*",
		Condition: map[string]map[string]any{"NumericLessThan": {keyRoleDelivery: roleDeliveryIMDSv2}},
	}}}
	// AWS also documents HttpTokensEnforced for the account defaults (EC2 API,
	// ModifyInstanceMetadataDefaults), but not, in what was found, its declarative policy
	// attribute name: an unknown attribute would make create-policy fail, so it is left
	// out and the SCP above is what refuses a launch that asks for IMDSv1.
	declarative := declarativePolicy{EC2Attributes: ec2Attributes{InstanceMetadataDefaults: imdsDefaults{
		HTTPTokens:           assign[string]{policy.TokensRequired},
		HopLimit:             assign[int32]{o.HopLimit},
		HTTPEndpoint:         assign[string]{"no_preference"},
		InstanceMetadataTags: assign[string]{"no_preference"},
	}}}

	var d Documents
	for _, doc := range []struct {
		name string
		v    any
		dst  *json.RawMessage
		max  int
	}{
		{"the SCP requiring IMDSv2", requireIMDSv2, &d.RequireIMDSv2, maxSCPCharacters},
		{"the SCP refusing IMDSv1 credentials", refuseIMDSv1, &d.RefuseIMDSv1Credentials, maxSCPCharacters},
		{"the EC2 declarative policy", declarative, &d.DeclarativePolicyEC2, 0},
	} {
		compact, pretty, err := encode(doc.v)
		if err != nil {
			return Documents{}, fmt.Errorf("encoding %s: %w", doc.name, err)
		}
		if doc.max > 0 && len(compact) > doc.max {
			return Documents{}, fmt.Errorf("%w: %s would be %d characters, over the %d AWS Organizations allows: name fewer exempt roles (a wildcard can cover several)",
				ErrInvalidOptions, doc.name, len(compact), doc.max)
		}
		*doc.dst = pretty
	}
	return d, nil
}

// validate returns the exempt roles without repeats, in the order given.
func validate(o Options) ([]string, error) {
	var problems []string
	if o.HopLimit < 1 || o.HopLimit > 64 {
		problems = append(problems, fmt.Sprintf("hop limit %d is not between 1 and 64", o.HopLimit))
	}
	if len(o.ExemptRoles) == 0 {
		problems = append(problems, "no exempt roles: the SCP would refuse ModifyInstanceMetadataOptions to imdsguard itself (it enforces and rolls back with it) "+
			"and to the break-glass role; name them, e.g. arn:aws:iam::*:role/imdsguard-*")
	}
	var roles []string
	for _, role := range o.ExemptRoles {
		switch {
		case !exemptRolePattern.MatchString(role):
			problems = append(problems, fmt.Sprintf("exempt role %q is not an IAM role ARN pattern (arn:aws:iam::<account id or *>:role/<name>)", role))
		case strings.Trim(role[strings.Index(role, ":role/")+len(":role/"):], "*?/") == "":
			problems = append(problems, fmt.Sprintf("exempt role %q matches every role: the SCP would then let anyone turn IMDSv1 back on", role))
		case !slices.Contains(roles, role):
			roles = append(roles, role)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidOptions, strings.Join(problems, "; "))
	}
	return roles, nil
}

// encode returns v as compact JSON and indented by two spaces, without HTML escaping (an
// ARN pattern stays readable).
func encode(v any) (compact, pretty []byte, err error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, nil, err
	}
	compact = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	var indented bytes.Buffer
	if err := json.Indent(&indented, compact, "", "  "); err != nil {
		return nil, nil, err
	}
	return compact, indented.Bytes(), nil
}

// policyDocument is an IAM policy document, its fields in the order AWS writes them.
type policyDocument struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid       string                    `json:"Sid"`
	Effect    string                    `json:"Effect"`
	Action    string                    `json:"Action"`
	Resource  string                    `json:"Resource"`
	Condition map[string]map[string]any `json:"Condition"`
}

// declarativePolicy is the EC2 declarative policy (AWS Organizations user guide,
// "Declarative policy syntax and examples"): every attribute under ec2_attributes, each
// value set with the @@assign operator.
type declarativePolicy struct {
	EC2Attributes ec2Attributes `json:"ec2_attributes"`
}

type ec2Attributes struct {
	InstanceMetadataDefaults imdsDefaults `json:"instance_metadata_defaults"`
}

type imdsDefaults struct {
	HTTPTokens           assign[string] `json:"http_tokens"`
	HopLimit             assign[int32]  `json:"http_put_response_hop_limit"`
	HTTPEndpoint         assign[string] `json:"http_endpoint"`
	InstanceMetadataTags assign[string] `json:"instance_metadata_tags"`
}

type assign[T any] struct {
	Value T `json:"@@assign"`
}

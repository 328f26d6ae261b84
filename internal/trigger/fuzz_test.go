package trigger

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// fuzzConfigs are the function configurations the fuzz targets parse with, picked by a
// fuzzed byte: the default one, one whose account is the samples' member account, one in
// another region than the samples, and an invalid one (every input must then fail).
var fuzzConfigs = []Config{
	{AccountID: account, Region: region},
	{AccountID: member, Region: region},
	{AccountID: account, Region: "eu-west-1"},
	{AccountID: "12345", Region: region},
}

// errorPrefixes are how a Parse error names the input it refuses (or the configuration).
var errorPrefixes = []string{"trigger config: ", "event ", "EventBridge event: ", "sweep: ", "direct invoke: "}

// inputStrings returns every string token (keys and values, duplicates included) of a
// JSON text, in order; nil when raw is not valid JSON.
func inputStrings(raw []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var out []string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			return nil
		}
		if s, ok := tok.(string); ok {
			out = append(out, s)
		}
	}
}

// inInput reports whether s occurs in one of the input's strings.
func inInput(strs []string, s string) bool {
	for _, v := range strs {
		if strings.Contains(v, s) {
			return true
		}
	}
	return false
}

// checkParse asserts everything Parse promises about one input under one configuration.
func checkParse(t *testing.T, raw []byte, c Config, req Request, err error) {
	t.Helper()
	if err != nil {
		msg := err.Error()
		named := false
		for _, p := range errorPrefixes {
			if strings.HasPrefix(msg, p) && len(msg) > len(p) {
				named = true
			}
		}
		if !named {
			t.Errorf("error %q does not name the input and its problem", msg)
		}
		if !reflect.DeepEqual(req, Request{}) {
			t.Errorf("Parse returned %+v with the error %q, want the zero Request", req, msg)
		}
		if c.Validate() != nil && !strings.HasPrefix(msg, "trigger config: ") {
			t.Errorf("invalid config %+v: error %q, want a trigger config error", c, msg)
		}
		return
	}
	if c.Validate() != nil {
		t.Fatalf("Parse accepted an input with the invalid config %+v: %+v", c, req)
	}
	switch {
	case req.Source == SourceSweep, req.Source == SourceDirect:
	case req.Source == sourceConfig+" / "+typeConfigCompliance,
		req.Source == sourceSecurityHub+" / "+typeFindingsImported,
		req.Source == sourceEC2+" / "+typeStateChange,
		req.Source == sourceEC2+" / "+typeCloudTrail,
		req.Source == sourceAutoScaling+" / "+typeCloudTrail:
	default:
		t.Errorf("Source %q is none of the accepted inputs", req.Source)
	}
	n := 0
	for _, b := range []bool{len(req.Refs) > 0, len(req.Sweep) > 0, len(req.Sources) > 0, req.Ignored != ""} {
		if b {
			n++
		}
	}
	if n != 1 {
		t.Errorf("want exactly one of Refs, Sweep, Sources and Ignored: %+v", req)
	}
	if len(req.Sweep) > 0 && req.Source != SourceSweep || len(req.ForeignRegions) > 0 && req.Source != SourceSweep {
		t.Errorf("a %s request sweeps: %+v", req.Source, req)
	}
	cloudTrail := req.Source == sourceEC2+" / "+typeCloudTrail || req.Source == sourceAutoScaling+" / "+typeCloudTrail
	if len(req.Sources)+len(req.ForeignSources) > 0 && !cloudTrail {
		t.Errorf("a %s request names sources: %+v", req.Source, req)
	}
	strs := inputStrings(raw)
	seen := map[Ref]bool{}
	check := func(kind string, r Ref, own bool) {
		if !policy.ValidInstanceID(r.InstanceID) || !policy.ValidAccountID(r.AccountID) || !policy.ValidRegion(r.Region) {
			t.Errorf("%s %+v is not a valid ref", kind, r)
		}
		if seen[r] {
			t.Errorf("%s %+v is listed twice: %+v", kind, r, req)
		}
		seen[r] = true
		if mine := r.AccountID == c.AccountID && r.Region == c.Region; mine != own {
			t.Errorf("%s %+v: in the function's account %s and region %s = %v", kind, r, c.AccountID, c.Region, mine)
		}
		// Nothing is made up: the instance id is in the input, and so are the account and
		// region, except those a direct invoke takes from the function.
		if !inInput(strs, r.InstanceID) {
			t.Errorf("%s %+v: instance id is not in the input", kind, r)
		}
		direct := req.Source == SourceDirect
		if !inInput(strs, r.AccountID) && !(direct && r.AccountID == c.AccountID) {
			t.Errorf("%s %+v: account is not in the input", kind, r)
		}
		if !inInput(strs, r.Region) && !(direct && r.Region == c.Region) {
			t.Errorf("%s %+v: region is not in the input", kind, r)
		}
	}
	for _, r := range req.Refs {
		check("ref", r, true)
	}
	for _, r := range req.Foreign {
		check("foreign ref", r, false)
	}
	sources := map[ForeignSource]bool{}
	checkSource := func(kind string, at ForeignSource, own bool) {
		s := at.Source
		if !validSourceRef(s) || !policy.ValidAccountID(at.AccountID) || !policy.ValidRegion(at.Region) {
			t.Errorf("%s %+v is not a valid source", kind, at)
		}
		if sources[at] {
			t.Errorf("%s %+v is listed twice: %+v", kind, at, req)
		}
		sources[at] = true
		if mine := at.AccountID == c.AccountID && at.Region == c.Region; mine != own {
			t.Errorf("%s %+v: in the function's account %s and region %s = %v", kind, at, c.AccountID, c.Region, mine)
		}
		// Nothing is made up: the source's id, name, account and region are in the input.
		for _, v := range []string{s.ID, s.Name, at.AccountID, at.Region} {
			if v != "" && !inInput(strs, v) {
				t.Errorf("%s %+v: %q is not in the input", kind, at, v)
			}
		}
	}
	for _, s := range req.Sources {
		checkSource("source", ForeignSource{AccountID: c.AccountID, Region: c.Region, Source: s}, true)
	}
	for _, f := range req.ForeignSources {
		checkSource("foreign source", f, false)
	}
	if len(req.Sweep) > 1 || len(req.Sweep) == 1 && req.Sweep[0] != c.Region {
		t.Errorf("Sweep = %q, want at most the function's region %s", req.Sweep, c.Region)
	}
	regions := map[string]bool{}
	for _, r := range req.ForeignRegions {
		if !policy.ValidRegion(r) || r == c.Region || regions[r] || !inInput(strs, r) {
			t.Errorf("foreign region %q: invalid, the function's own, repeated or not in the input: %q", r, req.ForeignRegions)
		}
		regions[r] = true
	}
	if req.Ignored != "" && len(req.Refs)+len(req.Foreign)+len(req.ForeignRegions)+len(req.Sources)+len(req.ForeignSources) > 0 {
		if !strings.Contains(req.Ignored, "another account or region") && !strings.Contains(req.Ignored, "other region") {
			t.Errorf("Ignored %q does not say that all there is is foreign: %+v", req.Ignored, req)
		}
	}
}

// FuzzParseInvariants feeds any bytes, under each configuration, to Parse: it never
// panics, never changes its input, answers the same twice, and either refuses the input
// with an error naming it or returns a request that keeps every promise of Request.
func FuzzParseInvariants(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no samples: %v", err)
	}
	for i, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, uint8(i), "")
	}
	for _, s := range []string{
		``, ` `, `{}`, `null`, `[]`, `"x"`, `1e999`, `{"sweep": null}`, `{"sweep": {}}`, `{"sweep": 1}`,
		`{"sweep": {"regions": [null]}}`, `{"sweep": {"regions": ["us-east-1", "US-EAST-1"]}}`,
		`{"sweep": {"regions": ["eu-west-1", "eu-west-1"]}}`,
		`{"instance_ids": []}`, `{"instance_ids": null}`, `{"instance_ids": "i-1a2b3c4d"}`, `{"sweep": {}, "instance_ids": []}`,
		`{"instance_ids": ["i-1a2b3c4d"], "region": "eu-west-1"}`,
		`{"instance_ids": ["i-1a2b3c4d"], "region": null}`,
		`{"instance_ids": ["i-1a2b3c4d", "i-1a2b3c4d", "i-1A2B3C4D"]}`,
		`{"instance_ids": ["i-1a2b3c4d"]} {"instance_ids": ["i-2a2b3c4d"]}`,
		`{"instance_ids": ["i-1a2b3c4d"], "INSTANCE_IDS": ["i-2a2b3c4d"]}`,
		`{"instance_ids": ["i-1a2b3c4d"], "instance_ids": ["i-2a2b3c4d"]}`,
		`{"instance_ids": ["\u0069-1a2b3c4d"]}`,
		`{"instance_ids": ["i-1a2b3c4d\n"]}`,
		`{"source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail", "account": "123456789012", "region": "us-east-1",
		  "detail": {"eventName": "ModifyInstanceMetadataOptions", "requestParameters": {"instanceId": "i-1a2b3c4d"}}}`,
		`{"source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail", "account": "123456789012", "region": "us-east-1",
		  "detail": {"eventName": "ModifyInstanceMetadataOptions", "requestParameters": {"InstanceId": "i-1a2b3c4d", "HttpTokens": "REQUIRED"}}}`,
		`{"source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail", "detail": {"eventName": "RunInstances",
		  "recipientAccountId": "210987654321", "awsRegion": "eu-west-1",
		  "responseElements": {"instancesSet": {"items": [{"instanceId": "i-1a2b3c4d"}, {"instanceId": "i-1a2b3c4d"}]}}}}`,
		`{"source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail", "account": "123456789012", "region": "us-east-1",
		  "detail": {"eventName": "CreateLaunchTemplateVersion", "requestParameters": {"LaunchTemplateName": "web"}}}`,
		`{"source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail", "account": "123456789012", "region": "us-east-1",
		  "detail": {"eventName": "CreateLaunchTemplateVersion", "requestParameters": {"CreateLaunchTemplateVersionRequest": null,
		  "LaunchTemplateId": "lt-1a2b3c4d"}, "responseElements": {"CreateLaunchTemplateVersionResponse": {"launchTemplateVersion": null}}}}`,
		`{"source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail", "detail": {"eventName": "ModifyLaunchTemplate",
		  "recipientAccountId": "210987654321", "awsRegion": "eu-west-1",
		  "requestParameters": {"ModifyLaunchTemplateRequest": {"LaunchTemplateId": "lt-1a2b3c4d", "LaunchTemplateName": "web"}},
		  "responseElements": {"ModifyLaunchTemplateResponse": {"launchTemplate": {"launchTemplateId": "lt-1a2b3c4d", "launchTemplateName": "web"}}}}}`,
		`{"source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail", "account": "123456789012", "region": "us-east-1",
		  "detail": {"eventName": "ModifyLaunchTemplate", "responseElements": {"ModifyLaunchTemplateResponse": {"launchTemplate": {"launchTemplateId": "lt-1a2b3c4d"}}}}}`,
		`{"source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail", "account": "123456789012", "region": "us-east-1",
		  "detail": {"eventName": "ModifyInstanceMetadataDefaults", "requestParameters": {"HttpTokens": "REQUIRED"}}}`,
		`{"source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail", "account": "123456789012", "region": "us-east-1",
		  "detail": {"eventName": "ModifyInstanceMetadataDefaults", "requestParameters": {"ModifyInstanceMetadataDefaultsRequest": []}}}`,
		`{"source": "aws.autoscaling", "detail-type": "AWS API Call via CloudTrail", "account": "123456789012", "region": "us-east-1",
		  "detail": {"eventSource": "autoscaling.amazonaws.com", "eventName": "UpdateAutoScalingGroup",
		  "requestParameters": {"autoScalingGroupName": "web:1"}}}`,
		`{"source": "aws.autoscaling", "detail-type": "AWS API Call via CloudTrail", "account": "123456789012", "region": "us-east-1",
		  "detail": {"eventName": "CreateAutoScalingGroup", "requestParameters": {"AutoScalingGroupName": "web", "autoScalingGroupName": "web"}}}`,
		`{"source": "aws.autoscaling", "detail-type": "AWS API Call via CloudTrail", "account": "123456789012", "region": "us-east-1",
		  "detail": {"eventName": "RunInstances", "responseElements": {"instancesSet": {"items": [{"instanceId": "i-1a2b3c4d"}]}}}}`,
		`{"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "account": "123456789012",
		  "region": "us-east-1", "detail": {"instance-id": "i-1a2b3c4d", "state": "running"}}`,
		`{"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "account": 123456789012,
		  "region": "us-east-1", "detail": {"instance-id": "i-1a2b3c4d", "state": "running"}}`,
		`{"source": "aws.config", "detail-type": "Config Rules Compliance Change", "account": "123456789012", "region": "us-east-1",
		  "detail": {"resourceId": "i-1a2b3c4d", "resourceType": "AWS::EC2::Instance", "configRuleName": "ec2-imdsv2-check",
		  "newEvaluationResult": {"complianceType": "NON_COMPLIANT"}}}`,
		`{"source": "aws.securityhub", "detail-type": "Security Hub Findings - Imported", "detail": {"findings": [
		  {"Compliance": {"Status": "FAILED", "SecurityControlId": "EC2.8"}, "Resources": [
		   {"Type": "AwsEc2Instance", "Id": "arn:aws:ec2:us-east-1:123456789012:instance/i-1a2b3c4d"},
		   {"Type": "AwsEc2Instance", "Id": "arn:aws:ec2:us-east-1:123456789012:instance/i-1a2b3c4d"},
		   {"Type": "AwsEc2Instance", "Id": "arn:aws-cn:ec2:eu-west-1:210987654321:instance/i-2a2b3c4d"}]}]}}`,
		`{"source": "aws.securityhub", "detail-type": "Security Hub Findings - Imported", "detail": {"findings": [
		  {"Compliance": {"Status": "FAILED"}, "ProductFields": {"ControlId": 8}}]}}`,
		`{"source": "aws.securityhub", "detail-type": "Security Hub Findings - Imported", "detail": {"findings": null}}`,
		`{"source": "", "detail-type": "x"}`, `{"source": null}`, `{"detail-type": "EC2 Instance State-change Notification"}`,
	} {
		f.Add([]byte(s), uint8(0), "")
	}
	f.Add(readSample(f, "config-noncompliant.json"), uint8(0), "IMDSV2")
	f.Add(readSample(f, "config-noncompliant.json"), uint8(0), "-")
	f.Add(readSample(f, "config-other-rule.json"), uint8(0), "ec2-")
	f.Fuzz(func(t *testing.T, raw []byte, pick uint8, ruleSubstring string) {
		c := fuzzConfigs[int(pick)%len(fuzzConfigs)]
		c.RuleSubstring = ruleSubstring
		orig := bytes.Clone(raw)
		req, err := Parse(raw, c)
		if !bytes.Equal(raw, orig) {
			t.Fatalf("Parse changed its input")
		}
		checkParse(t, raw, c, req, err)
		again, err2 := Parse(raw, c)
		if !reflect.DeepEqual(req, again) || (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Errorf("Parse is not deterministic:\n%+v, %v\n%+v, %v", req, err, again, err2)
		}
	})
}

// expectation is what an event built from known fields must parse to.
type expectation struct {
	err     bool
	ignored bool
	refs    []Ref           // Refs and Foreign together, in input order
	sources []ForeignSource // Sources and ForeignSources together, in input order
}

// eventFieldKinds is how many kinds of input FuzzParseEventFields builds.
const eventFieldKinds = 9

// FuzzParseEventFields builds each kind of input from fuzzed field values (encoded by
// encoding/json, so the input is always well-formed) and checks Parse's answer against
// what the package documentation says that input means.
func FuzzParseEventFields(f *testing.F) {
	const (
		id1 = "i-0a1b2c3d4e5f60718"
		id2 = "i-1a2b3c4d"
	)
	for kind := range uint8(eventFieldKinds) {
		for pick := range uint8(3) {
			f.Add(kind, pick, account, region, id1, "running", "ec2-imdsv2-check")
			f.Add(kind, pick, member, "eu-west-1", id2, "NON_COMPLIANT", "EC2.8")
			f.Add(kind, pick, account, region, id1, "FAILED", "EC2.8")
			f.Add(kind, pick, account, region, id1, "optional", id2)
			f.Add(kind, pick, account, region, id1, "Required", id1)
			f.Add(kind, pick, account, region, id1, id2, "")
			f.Add(kind, pick, member, "eu-west-1", id1, "NON_COMPLIANT", "ec2-imdsv2-check")
			f.Add(kind, pick, "", "", id2, "NON_COMPLIANT", "securityhub-ec2-imdsv2-check-2e9b12a3")
		}
		f.Add(kind, uint8(0), "", "", "", "", "")
		f.Add(kind, uint8(0), "12345678901", "us-east", "i-0A1B2C3D", "stopped", "PASSED")
		f.Add(kind, uint8(0), account+":x", region+":"+account, "i-1a2b3c4d/x", "required", "EC2.9")
		f.Add(kind, uint8(0), account, "moon-1", "i-1a2b3c4d\x00", "\u2028", "ec2-IMDSv2-CHECK")
		f.Add(kind, uint8(0), account, region, templateID, templateID, "worker")
		f.Add(kind, uint8(1), member, region, "", "lt-1a2b3c4d", "worker-asg")
		f.Add(kind, uint8(2), account, "eu-west-1", "lt-1a2b3c4d", "", "w")
		f.Add(kind, uint8(0), account, region, "", "", "")
		f.Add(kind, uint8(0), account, region, "lt-1a2b3c4d", templateID, "web:1")
		f.Add(kind, uint8(0), account, region, "LT-1A2B3C4D", "required", "my worker")
		f.Add(kind, uint8(0), account, region, "", "required", "enabled")
		f.Add(kind, uint8(0), account, region, "", "required", "disabled")
	}
	f.Fuzz(func(t *testing.T, kind, pick uint8, acct, reg, id, s1, s2 string) {
		c := fuzzConfigs[int(pick)%3]
		var doc map[string]any
		var want expectation
		where := func(a, r string) bool { return policy.ValidAccountID(a) && policy.ValidRegion(r) }
		switch kind % eventFieldKinds {
		case 0: // EC2 state change
			doc = map[string]any{"source": "aws.ec2", "detail-type": typeStateChange, "account": acct, "region": reg,
				"detail": map[string]any{"instance-id": id, "state": s1}}
			switch {
			case !policy.ValidInstanceID(id) || s1 == "" || !where(acct, reg):
				want.err = true
			case s1 != "running":
				want.ignored = true
			default:
				want.refs = []Ref{{AccountID: acct, Region: reg, InstanceID: id}}
			}
		case 1: // AWS Config, account and region in the detail, the envelope's otherwise
			doc = map[string]any{"source": "aws.config", "detail-type": typeConfigCompliance, "account": account, "region": region,
				"detail": map[string]any{"resourceId": id, "resourceType": "AWS::EC2::Instance", "awsAccountId": acct, "awsRegion": reg,
					"configRuleName": s2, "newEvaluationResult": map[string]any{"complianceType": s1}}}
			a, r := acct, reg
			if a == "" {
				a = account
			}
			if r == "" {
				r = region
			}
			sub := c.RuleSubstring
			if sub == "" {
				sub = DefaultRuleSubstring
			}
			switch {
			case s2 == "" || id == "" || s1 == "":
				want.err = true
			case !strings.Contains(strings.ToLower(s2), strings.ToLower(sub)):
				want.ignored = true
			case !policy.ValidInstanceID(id) || !where(a, r):
				want.err = true
			case s1 != "NON_COMPLIANT":
				want.ignored = true
			default:
				want.refs = []Ref{{AccountID: a, Region: r, InstanceID: id}}
			}
		case 2: // CloudTrail ModifyInstanceMetadataOptions, account and region in the detail only
			doc = map[string]any{"source": "aws.ec2", "detail-type": typeCloudTrail,
				"detail": map[string]any{"eventSource": "ec2.amazonaws.com", "eventName": "ModifyInstanceMetadataOptions",
					"recipientAccountId": acct, "awsRegion": reg,
					"requestParameters": map[string]any{"ModifyInstanceMetadataOptionsRequest": map[string]any{"InstanceId": id, "HttpTokens": s1}}}}
			switch {
			case !where(acct, reg) || !policy.ValidInstanceID(id):
				want.err = true
			case strings.EqualFold(s1, "required"):
				want.ignored = true
			default:
				want.refs = []Ref{{AccountID: acct, Region: reg, InstanceID: id}}
			}
		case 3: // CloudTrail RunInstances of two instances
			doc = map[string]any{"source": "aws.ec2", "detail-type": typeCloudTrail, "account": acct, "region": reg,
				"detail": map[string]any{"eventSource": "ec2.amazonaws.com", "eventName": "RunInstances",
					"responseElements": map[string]any{"instancesSet": map[string]any{"items": []any{
						map[string]any{"instanceId": id}, map[string]any{"instanceId": s1}}}}}}
			switch {
			case !where(acct, reg) || !policy.ValidInstanceID(id) || !policy.ValidInstanceID(s1):
				want.err = true
			default:
				want.refs = dedup([]Ref{{AccountID: acct, Region: reg, InstanceID: id}, {AccountID: acct, Region: reg, InstanceID: s1}})
			}
		case 4: // Security Hub, one finding for one instance ARN
			doc = map[string]any{"source": "aws.securityhub", "detail-type": typeFindingsImported, "account": account, "region": region,
				"detail": map[string]any{"findings": []any{map[string]any{
					"Compliance":  map[string]any{"Status": s1, "SecurityControlId": s2},
					"RecordState": "ACTIVE", "Workflow": map[string]any{"Status": "NEW"},
					"Resources": []any{map[string]any{"Type": "AwsEc2Instance", "Id": "arn:aws:ec2:" + reg + ":" + acct + ":instance/" + id}}}}}}
			switch {
			case s2 != controlIMDSv2 || s1 != "FAILED":
				want.ignored = true
			case !where(acct, reg) || !policy.ValidInstanceID(id):
				want.err = true
			default:
				want.refs = []Ref{{AccountID: acct, Region: reg, InstanceID: id}}
			}
		case 5: // direct invoke of two instances, in region reg when it is not empty
			doc = map[string]any{"instance_ids": []any{id, s1}}
			r := c.Region
			if reg != "" {
				doc["region"], r = reg, reg
			}
			switch {
			case !policy.ValidRegion(r) || !policy.ValidInstanceID(id) || !policy.ValidInstanceID(s1):
				want.err = true
			default:
				want.refs = dedup([]Ref{{AccountID: c.AccountID, Region: r, InstanceID: id}, {AccountID: c.AccountID, Region: r, InstanceID: s1}})
			}
		case 6: // CloudTrail CreateLaunchTemplateVersion: id in the request, s1 the response's id, s2 the request's name
			doc = map[string]any{"source": "aws.ec2", "detail-type": typeCloudTrail, "account": acct, "region": reg,
				"detail": map[string]any{"eventSource": "ec2.amazonaws.com", "eventName": "CreateLaunchTemplateVersion",
					"requestParameters": map[string]any{"CreateLaunchTemplateVersionRequest": map[string]any{
						"LaunchTemplateId": id, "LaunchTemplateName": s2}},
					"responseElements": map[string]any{"CreateLaunchTemplateVersionResponse": map[string]any{
						"launchTemplateVersion": map[string]any{"launchTemplateId": s1}}}}}
			switch {
			case !where(acct, reg) || id == "" && s1 == "" && s2 == "":
				want.err = true
			case id != "" && !validLaunchTemplateID(id) || s1 != "" && !validLaunchTemplateID(s1):
				want.err = true
			case s2 != "" && !validLaunchTemplateName(s2) || id != "" && s1 != "" && id != s1:
				want.err = true
			default:
				lt := SourceRef{Kind: SourceRefLaunchTemplate, ID: s1, Name: s2}
				if lt.ID == "" {
					lt.ID = id
				}
				want.sources = []ForeignSource{{AccountID: acct, Region: reg, Source: lt}}
			}
		case 7: // CloudTrail UpdateAutoScalingGroup of group s2, account and region in the detail only
			s2 = string([]rune(s2)) // as encoding/json sends it: each invalid byte a U+FFFD
			doc = map[string]any{"source": "aws.autoscaling", "detail-type": typeCloudTrail,
				"detail": map[string]any{"eventSource": "autoscaling.amazonaws.com", "eventName": "UpdateAutoScalingGroup",
					"recipientAccountId": acct, "awsRegion": reg,
					"requestParameters": map[string]any{"autoScalingGroupName": s2, "launchTemplate": map[string]any{
						"launchTemplateId": id, "version": s1}}}}
			switch {
			case !where(acct, reg) || !validAutoScalingGroupName(s2):
				want.err = true
			default:
				want.sources = []ForeignSource{{AccountID: acct, Region: reg, Source: SourceRef{Kind: SourceRefAutoScalingGroup, Name: s2}}}
			}
		case 8: // CloudTrail ModifyInstanceMetadataDefaults to HttpTokens s1, HttpTokensEnforced s2
			doc = map[string]any{"source": "aws.ec2", "detail-type": typeCloudTrail, "account": acct, "region": reg,
				"detail": map[string]any{"eventSource": "ec2.amazonaws.com", "eventName": "ModifyInstanceMetadataDefaults",
					"requestParameters": map[string]any{"ModifyInstanceMetadataDefaultsRequest": map[string]any{
						"HttpTokens": s1, "HttpTokensEnforced": s2}}}}
			switch {
			case !where(acct, reg):
				want.err = true
			case strings.EqualFold(s1, "required") && (s2 == "" || strings.EqualFold(s2, "enabled")):
				want.ignored = true
			default:
				want.sources = []ForeignSource{{AccountID: acct, Region: reg, Source: SourceRef{Kind: SourceRefAccountDefaults}}}
			}
		}
		raw, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		req, err := Parse(raw, c)
		checkParse(t, raw, c, req, err)
		if want.err {
			if err == nil {
				t.Fatalf("Parse(%s) = %+v, want an error", raw, req)
			}
			return
		}
		if err != nil {
			t.Fatalf("Parse(%s): %v", raw, err)
		}
		if want.ignored {
			if req.Ignored == "" || len(req.Refs)+len(req.Foreign)+len(req.Sources)+len(req.ForeignSources) > 0 {
				t.Fatalf("Parse(%s) = %+v, want it ignored", raw, req)
			}
			return
		}
		var own, foreign []Ref
		for _, r := range want.refs {
			if r.AccountID == c.AccountID && r.Region == c.Region {
				own = append(own, r)
			} else {
				foreign = append(foreign, r)
			}
		}
		if !reflect.DeepEqual(req.Refs, own) || !reflect.DeepEqual(req.Foreign, foreign) {
			t.Fatalf("Parse(%s) = Refs %v, Foreign %v; want Refs %v, Foreign %v", raw, req.Refs, req.Foreign, own, foreign)
		}
		var ownSources []SourceRef
		var foreignSources []ForeignSource
		for _, s := range want.sources {
			if s.AccountID == c.AccountID && s.Region == c.Region {
				ownSources = append(ownSources, s.Source)
			} else {
				foreignSources = append(foreignSources, s)
			}
		}
		if !reflect.DeepEqual(req.Sources, ownSources) || !reflect.DeepEqual(req.ForeignSources, foreignSources) {
			t.Fatalf("Parse(%s) = Sources %v, ForeignSources %v; want Sources %v, ForeignSources %v",
				raw, req.Sources, req.ForeignSources, ownSources, foreignSources)
		}
	})
}

func dedup(refs []Ref) []Ref {
	var out []Ref
	seen := map[Ref]bool{}
	for _, r := range refs {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

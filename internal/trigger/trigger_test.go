package trigger

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// The function's own account and region in every test.
var cfg = Config{AccountID: "123456789012", Region: "us-east-1"}

const (
	account = "123456789012"
	region  = "us-east-1"
	member  = "210987654321"

	configSource      = "aws.config / Config Rules Compliance Change"
	securityHubSource = "aws.securityhub / Security Hub Findings - Imported"
	stateSource       = "aws.ec2 / EC2 Instance State-change Notification"
	cloudTrailSource  = "aws.ec2 / AWS API Call via CloudTrail"
	autoScalingSource = "aws.autoscaling / AWS API Call via CloudTrail"

	templateID = "lt-0a1b2c3d4e5f60718"
)

func ref(id string) Ref { return Ref{AccountID: account, Region: region, InstanceID: id} }

// The sources of the samples.
var (
	workerTemplate = SourceRef{Kind: SourceRefLaunchTemplate, ID: templateID, Name: "worker"}
	accountDefault = SourceRef{Kind: SourceRefAccountDefaults}
	workerGroup    = SourceRef{Kind: SourceRefAutoScalingGroup, Name: "worker-asg"}
)

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// patched returns a testdata sample with the fields at the dotted paths set (a nil value
// deletes the field).
func patched(t testing.TB, name string, set map[string]any) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(readSample(t, name), &doc); err != nil {
		t.Fatal(err)
	}
	for path, value := range set {
		keys := strings.Split(path, ".")
		m := doc
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				t.Fatalf("%s: %s is not an object in %s", path, k, name)
			}
			m = next
		}
		if value == nil {
			delete(m, keys[len(keys)-1])
		} else {
			m[keys[len(keys)-1]] = value
		}
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestParseAccepted(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
		cfg  Config
		want Request
		// ignored is a fragment Request.Ignored must contain; "" means it must be empty.
		ignored string
	}{
		{
			name: "config non-compliant",
			raw:  readSample(t, "config-noncompliant.json"),
			want: Request{Source: configSource, Refs: []Ref{ref("i-0a1b2c3d4e5f60718")}},
		},
		{
			name: "config Security Hub's copy of the rule",
			raw:  readSample(t, "config-securityhub-rule-noncompliant.json"),
			want: Request{Source: configSource, Refs: []Ref{ref("i-0f9e8d7c6b5a49382")}},
		},
		{
			name: "config rule substring configured",
			raw: patched(t, "config-noncompliant.json", map[string]any{
				"detail.configRuleName": "org-IMDSv2-Required-prod"}),
			cfg:  Config{AccountID: account, Region: region, RuleSubstring: "imdsv2-required"},
			want: Request{Source: configSource, Refs: []Ref{ref("i-0a1b2c3d4e5f60718")}},
		},
		{
			name: "config account and region from the envelope when detail lacks them",
			raw: patched(t, "config-noncompliant.json", map[string]any{
				"detail.awsAccountId": nil, "detail.awsRegion": nil}),
			want: Request{Source: configSource, Refs: []Ref{ref("i-0a1b2c3d4e5f60718")}},
		},
		{
			name:    "config compliant is ignored",
			raw:     readSample(t, "config-compliant.json"),
			want:    Request{Source: configSource},
			ignored: `instance i-0a1b2c3d4e5f60718 is COMPLIANT with Config rule "ec2-imdsv2-check"`,
		},
		{
			name:    "config other rule is ignored",
			raw:     readSample(t, "config-other-rule.json"),
			want:    Request{Source: configSource},
			ignored: `Config rule "ec2-instance-no-public-ip" is not the IMDSv2 rule (its name does not contain "ec2-imdsv2-check")`,
		},
		{
			name: "config other resource type is ignored",
			raw: patched(t, "config-noncompliant.json", map[string]any{
				"detail.resourceType": "AWS::EC2::LaunchTemplate", "detail.resourceId": "lt-0a1b2c3d4e5f60718"}),
			want:    Request{Source: configSource},
			ignored: "resource type AWS::EC2::LaunchTemplate is not AWS::EC2::Instance",
		},
		{
			name: "config in another account is foreign",
			raw: patched(t, "config-noncompliant.json", map[string]any{
				"detail.awsAccountId": member}),
			want: Request{Source: configSource,
				Foreign: []Ref{{AccountID: member, Region: region, InstanceID: "i-0a1b2c3d4e5f60718"}}},
			ignored: "1 instance in another account or region",
		},
		{
			name: "security hub: FAILED EC2.8 only, not PASSED EC2.8 nor FAILED EC2.9",
			raw:  readSample(t, "securityhub-findings-imported.json"),
			want: Request{Source: securityHubSource, Refs: []Ref{ref("i-0a1b2c3d4e5f60718")}},
		},
		{
			name: "security hub: ProductFields.ControlId; suppressed and archived skipped",
			raw:  readSample(t, "securityhub-legacy-controlid.json"),
			want: Request{Source: securityHubSource, Refs: []Ref{ref("i-0123456789abcdef0")}},
		},
		{
			name: "security hub: member account and aggregated region are foreign",
			raw:  readSample(t, "securityhub-foreign.json"),
			want: Request{Source: securityHubSource, Foreign: []Ref{
				{AccountID: member, Region: region, InstanceID: "i-0d3f5a2b9c8e71f04"},
				{AccountID: account, Region: "eu-west-1", InstanceID: "i-0e6b4d2f8a1c39507"},
			}},
			ignored: "2 instances in another account or region",
		},
		{
			name: "security hub: nothing failed",
			raw: patched(t, "securityhub-findings-imported.json", map[string]any{
				"detail.findings": []any{}}),
			want:    Request{Source: securityHubSource},
			ignored: "detail.findings is empty",
		},
		{
			name:    "ec2 state running",
			raw:     readSample(t, "ec2-state-running.json"),
			want:    Request{Source: stateSource, Refs: []Ref{ref("i-0a1b2c3d4e5f60718")}},
			ignored: "",
		},
		{
			name:    "ec2 state stopped is ignored",
			raw:     readSample(t, "ec2-state-stopped.json"),
			want:    Request{Source: stateSource},
			ignored: "instance i-0a1b2c3d4e5f60718 is stopped, not running",
		},
		{
			name: "cloudtrail RunInstances: every instance launched",
			raw:  readSample(t, "cloudtrail-runinstances.json"),
			want: Request{Source: cloudTrailSource, Refs: []Ref{ref("i-07c4e2a9b1d3f5068"), ref("i-0123456789abcdef0")}},
		},
		{
			name:    "cloudtrail RunInstances that failed is ignored",
			raw:     readSample(t, "cloudtrail-runinstances-error.json"),
			want:    Request{Source: cloudTrailSource},
			ignored: "the RunInstances call failed (Client.UnauthorizedOperation: You are not authorized",
		},
		{
			name: "cloudtrail ModifyInstanceMetadataOptions to optional",
			raw:  readSample(t, "cloudtrail-modify-optional.json"),
			want: Request{Source: cloudTrailSource, Refs: []Ref{ref("i-0a1b2c3d4e5f60718")}},
		},
		{
			name: "cloudtrail ModifyInstanceMetadataOptions without HttpTokens",
			raw: patched(t, "cloudtrail-modify-optional.json", map[string]any{
				"detail.requestParameters.ModifyInstanceMetadataOptionsRequest.HttpTokens":              nil,
				"detail.requestParameters.ModifyInstanceMetadataOptionsRequest.HttpPutResponseHopLimit": 3}),
			want: Request{Source: cloudTrailSource, Refs: []Ref{ref("i-0a1b2c3d4e5f60718")}},
		},
		{
			name: "cloudtrail ModifyInstanceMetadataOptions: instance id from the response",
			raw: patched(t, "cloudtrail-modify-optional.json", map[string]any{
				"detail.requestParameters.ModifyInstanceMetadataOptionsRequest.InstanceId": nil}),
			want: Request{Source: cloudTrailSource, Refs: []Ref{ref("i-0a1b2c3d4e5f60718")}},
		},
		{
			name:    "cloudtrail ModifyInstanceMetadataOptions to required is ignored",
			raw:     readSample(t, "cloudtrail-modify-required.json"),
			want:    Request{Source: cloudTrailSource},
			ignored: "ModifyInstanceMetadataOptions set HttpTokens=required on i-0f9e8d7c6b5a49382",
		},
		{
			name: "cloudtrail other API call is ignored",
			raw: patched(t, "cloudtrail-modify-optional.json", map[string]any{
				"detail.eventName": "ModifyInstanceAttribute"}),
			want:    Request{Source: cloudTrailSource},
			ignored: "API call ModifyInstanceAttribute is not RunInstances, ModifyInstanceMetadataOptions, CreateLaunchTemplateVersion, ModifyLaunchTemplate or ModifyInstanceMetadataDefaults",
		},
		{
			name: "cloudtrail call of another event source is ignored",
			raw: patched(t, "cloudtrail-modify-launch-template.json", map[string]any{
				"detail.eventSource": "autoscaling.amazonaws.com"}),
			want:    Request{Source: cloudTrailSource},
			ignored: "event source autoscaling.amazonaws.com is not ec2.amazonaws.com",
		},
		{
			name: "cloudtrail CreateLaunchTemplateVersion: the template, id and name from the response",
			raw:  readSample(t, "cloudtrail-create-launch-template-version.json"),
			want: Request{Source: cloudTrailSource, Sources: []SourceRef{workerTemplate}},
		},
		{
			name: "cloudtrail CreateLaunchTemplateVersion without response: the request's id",
			raw: patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
				"detail.responseElements": nil}),
			want: Request{Source: cloudTrailSource, Sources: []SourceRef{{Kind: SourceRefLaunchTemplate, ID: templateID}}},
		},
		{
			name: "cloudtrail CreateLaunchTemplateVersion by name without response: no id",
			raw: patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
				"detail.requestParameters.CreateLaunchTemplateVersionRequest.LaunchTemplateId":   nil,
				"detail.requestParameters.CreateLaunchTemplateVersionRequest.LaunchTemplateName": "worker",
				"detail.responseElements": nil}),
			want: Request{Source: cloudTrailSource, Sources: []SourceRef{{Kind: SourceRefLaunchTemplate, Name: "worker"}}},
		},
		{
			name: "cloudtrail CreateLaunchTemplateVersion: the response alone names it",
			raw: patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
				"detail.requestParameters": nil}),
			want: Request{Source: cloudTrailSource, Sources: []SourceRef{workerTemplate}},
		},
		{
			name: "cloudtrail CreateLaunchTemplateVersion with unwrapped request parameters",
			raw: patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
				"detail.requestParameters": map[string]any{"LaunchTemplateId": "lt-1a2b3c4d"},
				"detail.responseElements":  nil}),
			want: Request{Source: cloudTrailSource, Sources: []SourceRef{{Kind: SourceRefLaunchTemplate, ID: "lt-1a2b3c4d"}}},
		},
		{
			name: "cloudtrail CreateLaunchTemplateVersion that failed is ignored",
			raw: patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
				"detail.errorCode": "InvalidLaunchTemplateId.NotFound", "detail.responseElements": nil}),
			want:    Request{Source: cloudTrailSource},
			ignored: "the CreateLaunchTemplateVersion call failed (InvalidLaunchTemplateId.NotFound)",
		},
		{
			name: "cloudtrail CreateLaunchTemplateVersion in another account is foreign",
			raw: patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
				"account": member, "detail.recipientAccountId": member}),
			want: Request{Source: cloudTrailSource,
				ForeignSources: []ForeignSource{{AccountID: member, Region: region, Source: workerTemplate}}},
			ignored: "1 source in another account or region",
		},
		{
			name: "cloudtrail ModifyLaunchTemplate by name: the id from the response",
			raw:  readSample(t, "cloudtrail-modify-launch-template.json"),
			want: Request{Source: cloudTrailSource, Sources: []SourceRef{workerTemplate}},
		},
		{
			name: "cloudtrail ModifyLaunchTemplate by id without response",
			raw: patched(t, "cloudtrail-modify-launch-template.json", map[string]any{
				"detail.requestParameters.ModifyLaunchTemplateRequest": map[string]any{"LaunchTemplateId": templateID, "SetDefaultVersion": "4"},
				"detail.responseElements":                              nil}),
			want: Request{Source: cloudTrailSource, Sources: []SourceRef{{Kind: SourceRefLaunchTemplate, ID: templateID}}},
		},
		{
			name: "cloudtrail ModifyInstanceMetadataDefaults to no-preference: the account defaults",
			raw:  readSample(t, "cloudtrail-modify-metadata-defaults.json"),
			want: Request{Source: cloudTrailSource, Sources: []SourceRef{accountDefault}},
		},
		{
			name: "cloudtrail ModifyInstanceMetadataDefaults without HttpTokens",
			raw: patched(t, "cloudtrail-modify-metadata-defaults.json", map[string]any{
				"detail.requestParameters.ModifyInstanceMetadataDefaultsRequest.HttpTokens": nil}),
			want: Request{Source: cloudTrailSource, Sources: []SourceRef{accountDefault}},
		},
		{
			name: "cloudtrail ModifyInstanceMetadataDefaults without request parameters",
			raw: patched(t, "cloudtrail-modify-metadata-defaults.json", map[string]any{
				"detail.requestParameters": nil}),
			want: Request{Source: cloudTrailSource, Sources: []SourceRef{accountDefault}},
		},
		{
			name: "cloudtrail ModifyInstanceMetadataDefaults to required is ignored",
			raw: patched(t, "cloudtrail-modify-metadata-defaults.json", map[string]any{
				"detail.requestParameters.ModifyInstanceMetadataDefaultsRequest.HttpTokens": "required"}),
			want:    Request{Source: cloudTrailSource},
			ignored: "ModifyInstanceMetadataDefaults set HttpTokens=required for account 123456789012 in us-east-1",
		},
		{
			name: "cloudtrail ModifyInstanceMetadataDefaults to required and enforced is ignored",
			raw: patched(t, "cloudtrail-modify-metadata-defaults.json", map[string]any{
				"detail.requestParameters.ModifyInstanceMetadataDefaultsRequest.HttpTokens":         "required",
				"detail.requestParameters.ModifyInstanceMetadataDefaultsRequest.HttpTokensEnforced": "enabled"}),
			want:    Request{Source: cloudTrailSource},
			ignored: "ModifyInstanceMetadataDefaults set HttpTokens=required",
		},
		{
			name: "cloudtrail ModifyInstanceMetadataDefaults to required that stops enforcing it",
			raw: patched(t, "cloudtrail-modify-metadata-defaults.json", map[string]any{
				"detail.requestParameters.ModifyInstanceMetadataDefaultsRequest.HttpTokens":         "required",
				"detail.requestParameters.ModifyInstanceMetadataDefaultsRequest.HttpTokensEnforced": "disabled"}),
			want: Request{Source: cloudTrailSource, Sources: []SourceRef{accountDefault}},
		},
		{
			name: "cloudtrail ModifyInstanceMetadataDefaults enforcing with no preference for HttpTokens",
			raw: patched(t, "cloudtrail-modify-metadata-defaults.json", map[string]any{
				"detail.requestParameters.ModifyInstanceMetadataDefaultsRequest.HttpTokensEnforced": "enabled"}),
			want: Request{Source: cloudTrailSource, Sources: []SourceRef{accountDefault}},
		},
		{
			name: "cloudtrail ModifyInstanceMetadataDefaults in another region is foreign",
			raw: patched(t, "cloudtrail-modify-metadata-defaults.json", map[string]any{
				"region": "eu-west-1", "detail.awsRegion": "eu-west-1"}),
			want: Request{Source: cloudTrailSource,
				ForeignSources: []ForeignSource{{AccountID: account, Region: "eu-west-1", Source: accountDefault}}},
			ignored: "1 source in another account or region",
		},
		{
			name: "autoscaling UpdateAutoScalingGroup: the group",
			raw:  readSample(t, "cloudtrail-autoscaling-update.json"),
			want: Request{Source: autoScalingSource, Sources: []SourceRef{workerGroup}},
		},
		{
			name: "autoscaling CreateAutoScalingGroup: the group",
			raw:  readSample(t, "cloudtrail-autoscaling-create.json"),
			want: Request{Source: autoScalingSource, Sources: []SourceRef{
				{Kind: SourceRefAutoScalingGroup, Name: "platform-BatchGroup-1X9ZQ4EXAMPLE"}}},
		},
		{
			name: "autoscaling group name of 255 characters",
			raw: patched(t, "cloudtrail-autoscaling-update.json", map[string]any{
				"detail.requestParameters.autoScalingGroupName": strings.Repeat("é", 255)}),
			want: Request{Source: autoScalingSource, Sources: []SourceRef{
				{Kind: SourceRefAutoScalingGroup, Name: strings.Repeat("é", 255)}}},
		},
		{
			name: "autoscaling in another account is foreign",
			raw: patched(t, "cloudtrail-autoscaling-update.json", map[string]any{
				"account": member, "detail.recipientAccountId": member}),
			want: Request{Source: autoScalingSource,
				ForeignSources: []ForeignSource{{AccountID: member, Region: region, Source: workerGroup}}},
			ignored: "1 source in another account or region",
		},
		{
			name: "autoscaling other API call is ignored",
			raw: patched(t, "cloudtrail-autoscaling-update.json", map[string]any{
				"detail.eventName": "SetDesiredCapacity"}),
			want:    Request{Source: autoScalingSource},
			ignored: "API call SetDesiredCapacity is not CreateAutoScalingGroup or UpdateAutoScalingGroup",
		},
		{
			name: "autoscaling call that failed is ignored",
			raw: patched(t, "cloudtrail-autoscaling-update.json", map[string]any{
				"detail.errorCode": "ValidationError", "detail.errorMessage": "AutoScalingGroup name not found - AutoScalingGroup worker-asg not found"}),
			want:    Request{Source: autoScalingSource},
			ignored: "the UpdateAutoScalingGroup call failed (ValidationError: AutoScalingGroup name not found",
		},
		{
			name: "autoscaling call of another event source is ignored",
			raw: patched(t, "cloudtrail-autoscaling-update.json", map[string]any{
				"detail.eventSource": "ec2.amazonaws.com"}),
			want:    Request{Source: autoScalingSource},
			ignored: "event source ec2.amazonaws.com is not autoscaling.amazonaws.com",
		},
		{
			name: "sweep of the function's region by default",
			raw:  readSample(t, "sweep-default.json"),
			want: Request{Source: SourceSweep, Sweep: []string{region}},
		},
		{
			name: "sweep with empty regions",
			raw:  []byte(`{"sweep": {"regions": []}}`),
			want: Request{Source: SourceSweep, Sweep: []string{region}},
		},
		{
			name: "sweep of other regions reports them",
			raw:  readSample(t, "sweep-regions.json"),
			want: Request{Source: SourceSweep, Sweep: []string{region},
				ForeignRegions: []string{"eu-west-1", "ap-southeast-2"}},
		},
		{
			name:    "sweep of another region only",
			raw:     []byte(`{"sweep": {"regions": ["eu-west-1"]}}`),
			want:    Request{Source: SourceSweep, ForeignRegions: []string{"eu-west-1"}},
			ignored: "1 other region to sweep (eu-west-1)",
		},
		{
			name: "direct invoke deduplicates in order",
			raw:  readSample(t, "direct-dedup.json"),
			want: Request{Source: SourceDirect, Refs: []Ref{
				ref("i-0a1b2c3d4e5f60718"), ref("i-1a2b3c4d"), ref("i-0f9e8d7c6b5a49382")}},
		},
		{
			name:    "direct invoke in another region is foreign",
			raw:     readSample(t, "direct-region.json"),
			want:    Request{Source: SourceDirect, Foreign: []Ref{{AccountID: account, Region: "eu-west-1", InstanceID: "i-0e6b4d2f8a1c39507"}}},
			ignored: "1 instance in another account or region",
		},
		{
			name: "direct invoke naming the function's region",
			raw:  []byte(`{"instance_ids": ["i-0a1b2c3d4e5f60718"], "region": "us-east-1"}`),
			want: Request{Source: SourceDirect, Refs: []Ref{ref("i-0a1b2c3d4e5f60718")}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			if tt.cfg != (Config{}) {
				c = tt.cfg
			}
			got, err := Parse(tt.raw, c)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tt.ignored == "" && got.Ignored != "" {
				t.Errorf("Ignored = %q, want empty", got.Ignored)
			}
			if !strings.Contains(got.Ignored, tt.ignored) {
				t.Errorf("Ignored = %q, want it to contain %q", got.Ignored, tt.ignored)
			}
			got.Ignored = ""
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseSecurityHubIgnoredSaysWhy(t *testing.T) {
	raw := patched(t, "securityhub-findings-imported.json", map[string]any{})
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	findings := doc["detail"].(map[string]any)["findings"].([]any)
	doc["detail"].(map[string]any)["findings"] = findings[1:] // PASSED EC2.8, FAILED EC2.9
	raw, _ = json.Marshal(doc)
	got, err := Parse(raw, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := "no active, unsuppressed FAILED EC2.8 finding among 2 findings (1 PASSED, 1 for control EC2.9)"
	if got.Ignored != want || len(got.Refs) != 0 || len(got.Foreign) != 0 {
		t.Errorf("Parse = %+v, want only Ignored %q", got, want)
	}
}

func TestParseRejected(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
		want string // a fragment of the error
	}{
		{"not JSON", []byte(`{"sweep": `), "event is not valid JSON"},
		{"empty input", []byte(``), "event is not valid JSON"},
		{"JSON null", []byte(`null`), "event is not a JSON object but null"},
		{"JSON list", []byte(`[{"instance_ids": ["i-0a1b2c3d4e5f60718"]}]`), "event is not a JSON object but a list"},
		{"empty object", []byte(`{}`), `event is not an EventBridge event ("source", "detail-type"), a sweep`},
		{"an SQS batch by mistake", []byte(`{"Records": []}`), `its keys: "Records"`},
		{"sweep and direct at once", []byte(`{"sweep": {}, "instance_ids": ["i-0a1b2c3d4e5f60718"]}`), `both "sweep" and "instance_ids"`},
		{
			"unknown detail-type",
			[]byte(`{"version":"0","id":"6b1f7c3a-0e2d-4a95-8c61-3f9d2b7e4a10","detail-type":"EC2 Spot Instance Interruption Warning","source":"aws.ec2","account":"123456789012","time":"2026-11-21T12:00:00Z","region":"us-east-1","resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-0a1b2c3d4e5f60718"],"detail":{"instance-id":"i-0a1b2c3d4e5f60718","instance-action":"terminate"}}`),
			"event from aws.ec2 / EC2 Spot Instance Interruption Warning: unsupported source and detail-type",
		},
		{"unknown source", patched(t, "ec2-state-running.json", map[string]any{"source": "aws.autoscaling"}),
			"event from aws.autoscaling / EC2 Instance State-change Notification: unsupported source and detail-type"},
		{"source not a string", patched(t, "ec2-state-running.json", map[string]any{"source": 7}),
			`EventBridge event: "source" is a number, not a string`},
		{"detail-type missing", patched(t, "ec2-state-running.json", map[string]any{"detail-type": nil}),
			`event from aws.ec2: "detail-type" is missing`},
		{"detail missing", patched(t, "ec2-state-running.json", map[string]any{"detail": nil}),
			"event from aws.ec2 / EC2 Instance State-change Notification: detail is missing"},
		{"detail not an object", patched(t, "ec2-state-running.json", map[string]any{"detail": "running"}),
			"event from aws.ec2 / EC2 Instance State-change Notification: detail is a string, not an object"},
		{"config missing resourceId", readSample(t, "config-missing-resource-id.json"),
			"event from aws.config / Config Rules Compliance Change: detail.resourceId is missing"},
		{"config missing complianceType", patched(t, "config-noncompliant.json", map[string]any{"detail.newEvaluationResult": nil}),
			"event from aws.config / Config Rules Compliance Change: detail.newEvaluationResult.complianceType is missing"},
		{"config resourceType not a string", patched(t, "config-noncompliant.json", map[string]any{"detail.resourceType": 3}),
			"event from aws.config / Config Rules Compliance Change: detail.resourceType is a number, not a string"},
		{"config bad instance id", patched(t, "config-noncompliant.json", map[string]any{"detail.resourceId": "i-XYZ"}),
			`event from aws.config / Config Rules Compliance Change: detail.resourceId "i-XYZ" is not an instance id`},
		{"config bad account", patched(t, "config-noncompliant.json", map[string]any{"detail.awsAccountId": "12345"}),
			`event from aws.config / Config Rules Compliance Change: detail.awsAccountId "12345" is not a 12-digit account id`},
		{"config no region anywhere", patched(t, "config-noncompliant.json", map[string]any{"detail.awsRegion": nil, "region": nil}),
			"event from aws.config / Config Rules Compliance Change: the region is missing (detail.awsRegion or region)"},
		{"state-change bad instance id", patched(t, "ec2-state-running.json", map[string]any{"detail.instance-id": "x"}),
			`event from aws.ec2 / EC2 Instance State-change Notification: detail.instance-id "x" is not an instance id`},
		{"state-change missing state", patched(t, "ec2-state-running.json", map[string]any{"detail.state": nil}),
			"event from aws.ec2 / EC2 Instance State-change Notification: detail.state is missing"},
		{"state-change missing account", patched(t, "ec2-state-running.json", map[string]any{"account": nil}),
			"event from aws.ec2 / EC2 Instance State-change Notification: the account is missing (account)"},
		{"security hub findings missing", patched(t, "securityhub-findings-imported.json", map[string]any{"detail.findings": nil}),
			"event from aws.securityhub / Security Hub Findings - Imported: detail.findings is missing"},
		{"security hub findings not a list", patched(t, "securityhub-findings-imported.json", map[string]any{"detail.findings": map[string]any{}}),
			"event from aws.securityhub / Security Hub Findings - Imported: detail.findings is an object, not a list"},
		{"security hub finding not an object", patched(t, "securityhub-findings-imported.json", map[string]any{"detail.findings": []any{"EC2.8"}}),
			"detail.findings[0] is a string, not an object"},
		{"security hub bad instance ARN", securityHubWithResourceID(t, "arn:aws:ec2:us-east-1:123456789012:volume/vol-0a1b2c3d4e5f60718"),
			`detail.findings[0] (arn:aws:securityhub:us-east-1:123456789012:security-control/EC2.8/finding/4d1f8c2a-7b3e-4f0a-9c65-2e8b1d7a3f90).Resources[0].Id "arn:aws:ec2:us-east-1:123456789012:volume/vol-0a1b2c3d4e5f60718" is not an EC2 instance ARN`},
		{"security hub bad instance id in ARN", securityHubWithResourceID(t, "arn:aws:ec2:us-east-1:123456789012:instance/web-1"),
			`has instance id "web-1", which is not an instance id`},
		{"cloudtrail without eventName", patched(t, "cloudtrail-runinstances.json", map[string]any{"detail.eventName": nil}),
			"event from aws.ec2 / AWS API Call via CloudTrail: detail.eventName is missing"},
		{"cloudtrail RunInstances without response", patched(t, "cloudtrail-runinstances.json", map[string]any{"detail.responseElements": nil}),
			"event from aws.ec2 / AWS API Call via CloudTrail: detail.responseElements is missing"},
		{"cloudtrail RunInstances without items", patched(t, "cloudtrail-runinstances.json", map[string]any{"detail.responseElements.instancesSet": map[string]any{}}),
			"detail.responseElements.instancesSet.items is missing or empty"},
		{"cloudtrail RunInstances bad instance id", patched(t, "cloudtrail-runinstances.json", map[string]any{"detail.responseElements.instancesSet": map[string]any{"items": []any{map[string]any{"instanceId": "i-1"}}}}),
			`detail.responseElements.instancesSet.items[0].instanceId "i-1" is not an instance id`},
		{"cloudtrail Modify without instance id", patched(t, "cloudtrail-modify-optional.json", map[string]any{
			"detail.requestParameters.ModifyInstanceMetadataOptionsRequest.InstanceId": nil,
			"detail.responseElements.ModifyInstanceMetadataOptionsResponse.instanceId": nil}),
			"no instance id in detail.requestParameters.ModifyInstanceMetadataOptionsRequest.InstanceId or detail.responseElements.ModifyInstanceMetadataOptionsResponse.instanceId"},
		{"cloudtrail Modify with ids that differ", patched(t, "cloudtrail-modify-optional.json", map[string]any{
			"detail.responseElements.ModifyInstanceMetadataOptionsResponse.instanceId": "i-0f9e8d7c6b5a49382"}),
			"differ"},
		{"cloudtrail CreateLaunchTemplateVersion naming no template", patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
			"detail.requestParameters.CreateLaunchTemplateVersionRequest.LaunchTemplateId": nil,
			"detail.responseElements": nil}),
			"event from aws.ec2 / AWS API Call via CloudTrail: no launch template id or name in detail.requestParameters.CreateLaunchTemplateVersionRequest.LaunchTemplateId or .LaunchTemplateName, nor in detail.responseElements.CreateLaunchTemplateVersionResponse.launchTemplateVersion.launchTemplateId or .launchTemplateName"},
		{"cloudtrail CreateLaunchTemplateVersion bad request id", patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
			"detail.requestParameters.CreateLaunchTemplateVersionRequest.LaunchTemplateId": "lt-XYZ"}),
			`detail.requestParameters.CreateLaunchTemplateVersionRequest.LaunchTemplateId "lt-XYZ" is not a launch template id`},
		{"cloudtrail CreateLaunchTemplateVersion request id of 12 hex digits", patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
			"detail.requestParameters.CreateLaunchTemplateVersionRequest.LaunchTemplateId": "lt-0a1b2c3d4e5f"}),
			`LaunchTemplateId "lt-0a1b2c3d4e5f" is not a launch template id`},
		{"cloudtrail CreateLaunchTemplateVersion upper-case response id", patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
			"detail.responseElements.CreateLaunchTemplateVersionResponse.launchTemplateVersion.launchTemplateId": "lt-0A1B2C3D4E5F60718"}),
			`detail.responseElements.CreateLaunchTemplateVersionResponse.launchTemplateVersion.launchTemplateId "lt-0A1B2C3D4E5F60718" is not a launch template id`},
		{"cloudtrail CreateLaunchTemplateVersion ids that differ", patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
			"detail.responseElements.CreateLaunchTemplateVersionResponse.launchTemplateVersion.launchTemplateId": "lt-1a2b3c4d"}),
			`detail.requestParameters.CreateLaunchTemplateVersionRequest.LaunchTemplateId "lt-0a1b2c3d4e5f60718" and detail.responseElements.CreateLaunchTemplateVersionResponse.launchTemplateVersion.launchTemplateId "lt-1a2b3c4d" differ`},
		{"cloudtrail CreateLaunchTemplateVersion name too short", patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
			"detail.responseElements.CreateLaunchTemplateVersionResponse.launchTemplateVersion.launchTemplateName": "wk"}),
			`launchTemplateVersion.launchTemplateName "wk" is not a launch template name`},
		{"cloudtrail CreateLaunchTemplateVersion name with a space", patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
			"detail.requestParameters.CreateLaunchTemplateVersionRequest.LaunchTemplateName": "my worker"}),
			`detail.requestParameters.CreateLaunchTemplateVersionRequest.LaunchTemplateName "my worker" is not a launch template name`},
		{"cloudtrail CreateLaunchTemplateVersion name of 129 characters", patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
			"detail.requestParameters.CreateLaunchTemplateVersionRequest.LaunchTemplateName": strings.Repeat("w", 129)}),
			"is not a launch template name"},
		{"cloudtrail CreateLaunchTemplateVersion names that differ", patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
			"detail.requestParameters.CreateLaunchTemplateVersionRequest.LaunchTemplateName": "batch"}),
			`LaunchTemplateName "batch" and detail.responseElements.CreateLaunchTemplateVersionResponse.launchTemplateVersion.launchTemplateName "worker" differ`},
		{"cloudtrail CreateLaunchTemplateVersion id not a string", patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
			"detail.requestParameters.CreateLaunchTemplateVersionRequest.LaunchTemplateId": 7}),
			"detail.requestParameters.CreateLaunchTemplateVersionRequest.LaunchTemplateId is a number, not a string"},
		{"cloudtrail CreateLaunchTemplateVersion request not an object", patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
			"detail.requestParameters.CreateLaunchTemplateVersionRequest": "lt-0a1b2c3d4e5f60718"}),
			"detail.requestParameters.CreateLaunchTemplateVersionRequest is a string, not an object"},
		{"cloudtrail CreateLaunchTemplateVersion response a list", patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
			"detail.responseElements": []any{}}),
			"detail.responseElements is a list, not an object"},
		{"cloudtrail CreateLaunchTemplateVersion version not an object", patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
			"detail.responseElements.CreateLaunchTemplateVersionResponse.launchTemplateVersion": "4"}),
			"detail.responseElements.CreateLaunchTemplateVersionResponse.launchTemplateVersion is a string, not an object"},
		{"cloudtrail CreateLaunchTemplateVersion without account", patched(t, "cloudtrail-create-launch-template-version.json", map[string]any{
			"account": nil, "detail.recipientAccountId": nil}),
			"event from aws.ec2 / AWS API Call via CloudTrail: the account is missing (account or detail.recipientAccountId)"},
		{"cloudtrail ModifyLaunchTemplate naming no template", patched(t, "cloudtrail-modify-launch-template.json", map[string]any{
			"detail.requestParameters.ModifyLaunchTemplateRequest.LaunchTemplateName": nil,
			"detail.responseElements.ModifyLaunchTemplateResponse":                    nil}),
			"no launch template id or name in detail.requestParameters.ModifyLaunchTemplateRequest.LaunchTemplateId or .LaunchTemplateName, nor in detail.responseElements.ModifyLaunchTemplateResponse.launchTemplate.launchTemplateId or .launchTemplateName"},
		{"cloudtrail ModifyLaunchTemplate bad response id", patched(t, "cloudtrail-modify-launch-template.json", map[string]any{
			"detail.responseElements.ModifyLaunchTemplateResponse.launchTemplate.launchTemplateId": "i-0a1b2c3d4e5f60718"}),
			`detail.responseElements.ModifyLaunchTemplateResponse.launchTemplate.launchTemplateId "i-0a1b2c3d4e5f60718" is not a launch template id`},
		{"cloudtrail ModifyInstanceMetadataDefaults HttpTokens not a string", patched(t, "cloudtrail-modify-metadata-defaults.json", map[string]any{
			"detail.requestParameters.ModifyInstanceMetadataDefaultsRequest.HttpTokens": true}),
			"detail.requestParameters.ModifyInstanceMetadataDefaultsRequest.HttpTokens is a boolean, not a string"},
		{"cloudtrail ModifyInstanceMetadataDefaults bad region", patched(t, "cloudtrail-modify-metadata-defaults.json", map[string]any{
			"region": "moon-1"}),
			`event from aws.ec2 / AWS API Call via CloudTrail: region "moon-1" is not a region`},
		{"autoscaling without eventName", patched(t, "cloudtrail-autoscaling-update.json", map[string]any{"detail.eventName": nil}),
			"event from aws.autoscaling / AWS API Call via CloudTrail: detail.eventName is missing"},
		{"autoscaling without request parameters", patched(t, "cloudtrail-autoscaling-update.json", map[string]any{"detail.requestParameters": nil}),
			"event from aws.autoscaling / AWS API Call via CloudTrail: detail.requestParameters is missing"},
		{"autoscaling request parameters not an object", patched(t, "cloudtrail-autoscaling-update.json", map[string]any{"detail.requestParameters": "worker-asg"}),
			"event from aws.autoscaling / AWS API Call via CloudTrail: detail.requestParameters is a string, not an object"},
		{"autoscaling without group name", patched(t, "cloudtrail-autoscaling-update.json", map[string]any{"detail.requestParameters.autoScalingGroupName": nil}),
			"event from aws.autoscaling / AWS API Call via CloudTrail: detail.requestParameters.autoScalingGroupName is missing"},
		{"autoscaling group name not a string", patched(t, "cloudtrail-autoscaling-update.json", map[string]any{"detail.requestParameters.autoScalingGroupName": []any{"worker-asg"}}),
			"detail.requestParameters.autoScalingGroupName is a list, not a string"},
		{"autoscaling group ARN for a name", patched(t, "cloudtrail-autoscaling-update.json", map[string]any{
			"detail.requestParameters.autoScalingGroupName": "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:4f1e2d3c:autoScalingGroupName/worker-asg"}),
			`detail.requestParameters.autoScalingGroupName "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:4f1e2d3c:autoScalingGroupName/worker-asg" is not an Auto Scaling group name`},
		{"autoscaling group name with a control character", patched(t, "cloudtrail-autoscaling-update.json", map[string]any{
			"detail.requestParameters.autoScalingGroupName": "worker\nasg"}),
			`autoScalingGroupName "worker\nasg" is not an Auto Scaling group name`},
		{"autoscaling group name of 256 characters", patched(t, "cloudtrail-autoscaling-update.json", map[string]any{
			"detail.requestParameters.autoScalingGroupName": strings.Repeat("w", 256)}),
			"is not an Auto Scaling group name"},
		{"autoscaling bad account", patched(t, "cloudtrail-autoscaling-update.json", map[string]any{"account": "12345"}),
			`event from aws.autoscaling / AWS API Call via CloudTrail: account "12345" is not a 12-digit account id`},
		{"direct invoke empty", []byte(`{"instance_ids": []}`), "direct invoke: instance_ids is empty"},
		{"direct invoke null", []byte(`{"instance_ids": null}`), "direct invoke: instance_ids is empty"},
		{"direct invoke name not id", []byte(`{"instance_ids": ["web-1"]}`), `direct invoke: instance_ids[0] "web-1" is not an instance id`},
		{"direct invoke string not list", []byte(`{"instance_ids": "web-1"}`), "direct invoke: instance_ids is a string, not a list"},
		{"direct invoke bad region", []byte(`{"instance_ids": ["i-0a1b2c3d4e5f60718"], "region": "moon-1"}`), `direct invoke: region "moon-1" is not a region`},
		{"direct invoke misspelt field", []byte(`{"instance_ids": ["i-0a1b2c3d4e5f60718"], "regoin": "eu-west-1"}`), `direct invoke: unknown field "regoin"`},
		{"sweep bad region", []byte(`{"sweep": {"regions": ["us-east-1", "moon-1"]}}`), `sweep: sweep.regions[1] "moon-1" is not a region`},
		{"sweep region not a list", []byte(`{"sweep": {"regions": "us-east-1"}}`), "sweep: sweep.regions is a string, not a list"},
		{"sweep misspelt field", []byte(`{"sweep": {"region": ["us-east-1"]}}`), `sweep: unknown field "region"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.raw, cfg)
			if err == nil {
				t.Fatalf("Parse = %+v, want an error containing %q", got, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
			if !reflect.DeepEqual(got, Request{}) {
				t.Errorf("Parse returned %+v with the error, want the zero Request", got)
			}
		})
	}
}

// securityHubWithResourceID is the Security Hub sample whose FAILED EC2.8 finding names
// the resource id given.
func securityHubWithResourceID(t *testing.T, id string) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(readSample(t, "securityhub-findings-imported.json"), &doc); err != nil {
		t.Fatal(err)
	}
	f := doc["detail"].(map[string]any)["findings"].([]any)[0].(map[string]any)
	f["Resources"].([]any)[0].(map[string]any)["Id"] = id
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestParseRejectsBadConfig(t *testing.T) {
	for _, c := range []Config{
		{AccountID: "", Region: region},
		{AccountID: account, Region: ""},
		{AccountID: "12345678901x", Region: region},
	} {
		if _, err := Parse(readSample(t, "sweep-default.json"), c); err == nil || !strings.HasPrefix(err.Error(), "trigger config: ") {
			t.Errorf("Parse with config %+v: error = %v, want a trigger config error", c, err)
		}
	}
}

// checkRequest asserts what every error-free Parse result promises.
func checkRequest(t *testing.T, req Request) {
	t.Helper()
	if req.Source == "" {
		t.Errorf("Source is empty: %+v", req)
	}
	actionable := len(req.Refs) > 0 || len(req.Sweep) > 0 || len(req.Sources) > 0
	if actionable == (req.Ignored != "") {
		t.Errorf("want exactly one of Refs/Sweep/Sources and Ignored: %+v", req)
	}
	sources := map[ForeignSource]bool{}
	for _, s := range req.Sources {
		at := ForeignSource{AccountID: cfg.AccountID, Region: cfg.Region, Source: s}
		if !validSourceRef(s) || sources[at] {
			t.Errorf("source %+v is invalid or repeated: %+v", s, req)
		}
		sources[at] = true
	}
	for _, f := range req.ForeignSources {
		if !validSourceRef(f.Source) || !policy.ValidAccountID(f.AccountID) || !policy.ValidRegion(f.Region) || sources[f] {
			t.Errorf("foreign source %+v is invalid or repeated: %+v", f, req)
		}
		if f.AccountID == cfg.AccountID && f.Region == cfg.Region {
			t.Errorf("foreign source %+v is in the function's account and region", f)
		}
		sources[f] = true
	}
	seen := map[Ref]bool{}
	for _, r := range append(append([]Ref(nil), req.Refs...), req.Foreign...) {
		if !policy.ValidInstanceID(r.InstanceID) || !policy.ValidAccountID(r.AccountID) || !policy.ValidRegion(r.Region) {
			t.Errorf("invalid ref %+v", r)
		}
		if seen[r] {
			t.Errorf("duplicate ref %+v", r)
		}
		seen[r] = true
	}
	for _, r := range req.Refs {
		if r.AccountID != cfg.AccountID || r.Region != cfg.Region {
			t.Errorf("ref %+v is not in the function's account and region", r)
		}
	}
	for _, r := range req.Foreign {
		if r.AccountID == cfg.AccountID && r.Region == cfg.Region {
			t.Errorf("foreign ref %+v is in the function's account and region", r)
		}
	}
	if len(req.Sweep) > 1 || (len(req.Sweep) == 1 && req.Sweep[0] != cfg.Region) {
		t.Errorf("Sweep = %v, want at most the function's region", req.Sweep)
	}
	for _, r := range req.ForeignRegions {
		if !policy.ValidRegion(r) || r == cfg.Region {
			t.Errorf("foreign region %q", r)
		}
	}
}

// validSourceRef reports whether a source has the fields its kind has, each of its shape.
func validSourceRef(s SourceRef) bool {
	switch s.Kind {
	case SourceRefLaunchTemplate:
		return (s.ID != "" || s.Name != "") &&
			(s.ID == "" || validLaunchTemplateID(s.ID)) && (s.Name == "" || validLaunchTemplateName(s.Name))
	case SourceRefAutoScalingGroup:
		return s.ID == "" && validAutoScalingGroupName(s.Name)
	case SourceRefAccountDefaults:
		return s.ID == "" && s.Name == ""
	}
	return false
}

func TestSourceNames(t *testing.T) {
	for _, tt := range []struct {
		s    ForeignSource
		want string
	}{
		{ForeignSource{member, region, workerTemplate}, "210987654321/us-east-1/launch-template/lt-0a1b2c3d4e5f60718 (worker)"},
		{ForeignSource{member, region, SourceRef{Kind: SourceRefLaunchTemplate, ID: templateID}}, "210987654321/us-east-1/launch-template/lt-0a1b2c3d4e5f60718"},
		{ForeignSource{member, region, SourceRef{Kind: SourceRefLaunchTemplate, Name: "worker"}}, "210987654321/us-east-1/launch-template/worker"},
		{ForeignSource{account, "eu-west-1", workerGroup}, "123456789012/eu-west-1/auto-scaling-group/worker-asg"},
		{ForeignSource{account, "eu-west-1", accountDefault}, "123456789012/eu-west-1/account-defaults"},
	} {
		if got := tt.s.Name(); got != tt.want {
			t.Errorf("%#v.Name() = %q, want %q", tt.s, got, tt.want)
		}
	}
}

func TestSourceNameShapes(t *testing.T) {
	for _, tt := range []struct {
		valid func(string) bool
		name  string
		ok    []string
		bad   []string
	}{
		{validLaunchTemplateID, "launch template id",
			[]string{"lt-0a1b2c3d4e5f60718", "lt-1a2b3c4d"},
			[]string{"", "lt-", "lt-1a2b3c4", "lt-1a2b3c4d5", "lt-0a1b2c3d4e5f6071", "lt-0a1b2c3d4e5f607189", "lt-0A1B2C3D", "i-1a2b3c4d", "lt-1a2b3c4d\n", " lt-1a2b3c4d"}},
		{validLaunchTemplateName, "launch template name",
			[]string{"web", "worker", "a.b/c_d-(e)", strings.Repeat("w", 128)},
			[]string{"", "wk", "my worker", "w:x", "wörker", strings.Repeat("w", 129), "web\n"}},
		{validAutoScalingGroupName, "Auto Scaling group name",
			[]string{"w", "worker-asg", "platform-BatchGroup-1X9ZQ4EXAMPLE", "batch (spot) v2", strings.Repeat("w", 255), strings.Repeat("é", 255)},
			[]string{"", "arn:aws:autoscaling", strings.Repeat("w", 256), "worker\tasg", "worker\x7f", "\xff\xfe"}},
	} {
		for _, s := range tt.ok {
			if !tt.valid(s) {
				t.Errorf("%q is not a %s, want it to be", s, tt.name)
			}
		}
		for _, s := range tt.bad {
			if tt.valid(s) {
				t.Errorf("%q is a %s, want it not to be", s, tt.name)
			}
		}
	}
}

func TestSamplesKeepPromises(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if req, err := Parse(raw, cfg); err == nil {
			checkRequest(t, req)
		}
	}
}

func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	for _, s := range []string{
		`{}`, `null`, `[]`, `"x"`, `{"sweep": null}`, `{"instance_ids": ["i-1a2b3c4d"], "region": "eu-west-1"}`,
		`{"source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail", "account": "123456789012", "region": "us-east-1",
		  "detail": {"eventName": "ModifyInstanceMetadataOptions", "requestParameters": {"instanceId": "i-1a2b3c4d"}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := Parse(raw, cfg)
		if err != nil {
			msg := err.Error()
			ok := false
			for _, prefix := range []string{"event ", "event: ", "EventBridge event: ", "sweep: ", "direct invoke: "} {
				ok = ok || strings.HasPrefix(msg, prefix)
			}
			if !ok {
				t.Errorf("error %q does not name the input", msg)
			}
			if !reflect.DeepEqual(req, Request{}) {
				t.Errorf("Parse returned %+v with an error", req)
			}
			return
		}
		checkRequest(t, req)
	})
}

// TestSampleMutations replaces every value in every sample, one at a time, by values of
// other JSON kinds: Parse must answer each with a clean error or a request that keeps its
// promises.
func TestSampleMutations(t *testing.T) {
	replacements := []any{nil, 0.5, "i-0a1b2c3d4e5f60718", []any{"x"}}
	// The fields Parse reads get every replacement and are walked into; the others are
	// replaced once, whole, to keep the test fast.
	read := map[string]bool{}
	for _, k := range strings.Fields(`version id detail-type source account region detail
		resourceId resourceType awsRegion awsAccountId configRuleName newEvaluationResult complianceType
		findings Id Compliance Status SecurityControlId ProductFields ControlId Workflow RecordState Resources Type
		instance-id state eventSource eventName recipientAccountId errorCode errorMessage requestParameters
		responseElements instancesSet items instanceId InstanceId HttpTokens
		ModifyInstanceMetadataOptionsRequest ModifyInstanceMetadataOptionsResponse sweep regions instance_ids
		CreateLaunchTemplateVersionRequest CreateLaunchTemplateVersionResponse launchTemplateVersion
		ModifyLaunchTemplateRequest ModifyLaunchTemplateResponse launchTemplate
		LaunchTemplateId LaunchTemplateName launchTemplateId launchTemplateName
		ModifyInstanceMetadataDefaultsRequest HttpTokensEnforced autoScalingGroupName`) {
		read[k] = true
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	for _, file := range files {
		var doc any
		if err := json.Unmarshal(readSample(t, filepath.Base(file)), &doc); err != nil {
			t.Fatal(err)
		}
		try := func() {
			raw, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			if req, err := Parse(raw, cfg); err == nil {
				checkRequest(t, req)
			}
			runs++
		}
		var walk func(v any, set func(any))
		walk = func(v any, set func(any)) {
			for _, r := range replacements {
				set(r)
				try()
			}
			set(v)
			switch v := v.(type) {
			case map[string]any:
				for k, child := range v {
					if !read[k] {
						v[k] = map[string]any{}
						try()
						v[k] = child
						continue
					}
					walk(child, func(n any) { v[k] = n })
				}
			case []any:
				if len(v) > 0 { // the other elements have the same shape
					walk(v[0], func(n any) { v[0] = n })
				}
			}
		}
		walk(doc, func(n any) { doc = n })
	}
	if runs < 500 {
		t.Errorf("only %d mutations tried", runs)
	}
}

// TestBuilderFilesSourcesOnce: a source named twice is filed once, under Sources in the
// function's account and region and under ForeignSources elsewhere, in input order.
func TestBuilderFilesSourcesOnce(t *testing.T) {
	b := newBuilder(cfg, cloudTrailSource)
	b.addSource(account, region, workerTemplate)
	b.addSource(member, region, workerTemplate)
	b.addSource(account, region, workerGroup)
	b.addSource(account, region, workerTemplate)
	b.addSource(member, region, workerTemplate)
	got, err := b.done()
	if err != nil {
		t.Fatal(err)
	}
	want := Request{Source: cloudTrailSource, Sources: []SourceRef{workerTemplate, workerGroup},
		ForeignSources: []ForeignSource{{AccountID: member, Region: region, Source: workerTemplate}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("done() =\n%+v\nwant\n%+v", got, want)
	}
}

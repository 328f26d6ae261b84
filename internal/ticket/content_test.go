package ticket

import (
	"encoding/json"
	"flag"
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

// adfText flattens an ADF document to its text, one line per paragraph or heading.
func adfText(node any) string {
	var b strings.Builder
	var walk func(any)
	walk = func(n any) {
		m, ok := n.(map[string]any)
		if !ok {
			return
		}
		if text, ok := m["text"].(string); ok {
			b.WriteString(text)
		}
		if kids, ok := m["content"].([]any); ok {
			for _, k := range kids {
				walk(k)
			}
		}
		if m["type"] == "paragraph" || m["type"] == "heading" {
			b.WriteString("\n")
		}
	}
	walk(node)
	return b.String()
}

// roundTrip is what Jira receives: the ADF document as JSON.
func roundTrip(t *testing.T, doc map[string]any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("ADF does not marshal: %v", err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("ADF is not valid JSON: %v", err)
	}
	return out
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

// outsideCode returns the Markdown text outside code spans (CommonMark: a run of n
// backticks opens a span that the next run of exactly n backticks closes).
func outsideCode(t *testing.T, md string) string {
	t.Helper()
	var out strings.Builder
	for i := 0; i < len(md); {
		if md[i] == '\\' && i+1 < len(md) {
			out.WriteString(md[i : i+2])
			i += 2
			continue
		}
		if md[i] != '`' {
			out.WriteByte(md[i])
			i++
			continue
		}
		n := 0
		for i+n < len(md) && md[i+n] == '`' {
			n++
		}
		closeAt := -1
		for j := i + n; j < len(md); {
			if md[j] != '`' {
				j++
				continue
			}
			m := 0
			for j+m < len(md) && md[j+m] == '`' {
				m++
			}
			if m == n {
				closeAt = j
				break
			}
			j += m
		}
		if closeAt < 0 {
			t.Fatalf("unclosed code span at %q", md[i:min(len(md), i+40)])
		}
		if strings.Contains(md[i:closeAt], "\n") {
			t.Fatalf("code span crosses a line: %q", md[i:closeAt+n])
		}
		i = closeAt + n
	}
	return out.String()
}

func TestMarkdownEscapesUserText(t *testing.T) {
	v := hostileVerdict()
	md := Compose(v, ComposeOptions{ExemptTag: testTag}).Markdown()
	var quoted []string
	for _, line := range strings.Split(md, "\n") {
		// Block-quote markers of the warning section are ours.
		if line == ">" {
			line = ""
		}
		quoted = append(quoted, strings.TrimPrefix(line, "> "))
	}
	text := outsideCode(t, strings.Join(quoted, "\n"))
	var unescaped strings.Builder
	for i := 0; i < len(text); i++ {
		if text[i] == '\\' {
			i++
			continue
		}
		unescaped.WriteByte(text[i])
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == '\\' {
			i++
			continue
		}
		if strings.IndexByte("<>|&[]`", c) >= 0 {
			t.Errorf("unescaped %q outside code spans near %q", c, text[max(0, i-30):min(len(text), i+30)])
		}
	}
	for _, line := range strings.Split(md, "\n") {
		if strings.Contains(line, "Injected heading") && strings.HasPrefix(strings.TrimLeft(line, "> "), "#") {
			t.Errorf("user agent made a heading: %q", line)
		}
		if strings.HasPrefix(line, "- injected") || strings.HasPrefix(line, "1. list") {
			t.Errorf("user text made a list: %q", line)
		}
	}
	// Each user agent is one code span that reads back as the cleaned user agent.
	for _, ua := range v.Evidence.CloudTrail.UserAgents {
		if want := mdCode(clean(ua, maxUserAgentRunes)); !strings.Contains(md, want) {
			t.Errorf("markdown lacks code span %s", want)
		}
	}
	if strings.Contains(md, "\u202e") || strings.Contains(md, "\u200b") {
		t.Error("bidirectional override or zero-width character passed through")
	}
	for _, bad := range []string{"<script", "<img", "<b>", "](javascript", "](http://evil"} {
		if strings.Contains(unescaped.String(), bad) {
			t.Errorf("markdown outside code spans contains %q", bad)
		}
	}
}

func TestMdCodeRoundTrip(t *testing.T) {
	for _, s := range []string{"plain", "a`b", "``", "`x`", " lead", "a | b", "<script>"} {
		got := mdCode(s)
		fence := 0
		for got[fence] == '`' {
			fence++
		}
		inner := got[fence : len(got)-fence]
		if strings.Contains(inner, strings.Repeat("`", fence)) && !strings.Contains(s, strings.Repeat("`", fence)) {
			t.Errorf("mdCode(%q) = %q: fence appears inside", s, got)
		}
		if len(inner) >= 2 && inner[0] == ' ' && inner[len(inner)-1] == ' ' && strings.Trim(inner, " ") != "" {
			inner = inner[1 : len(inner)-1]
		}
		if inner != s {
			t.Errorf("mdCode(%q) = %q reads back as %q", s, got, inner)
		}
	}
}

var (
	adfBlockTypes  = map[string]bool{"heading": true, "paragraph": true, "bulletList": true, "panel": true, "rule": true}
	adfPanelBlocks = map[string]bool{"heading": true, "paragraph": true, "bulletList": true}
)

// checkADF validates the node types, their nesting and the text nodes of a document.
func checkADF(t *testing.T, name string, node map[string]any, parent string) (panels int) {
	t.Helper()
	typ, _ := node["type"].(string)
	kids, _ := node["content"].([]any)
	child := func(i int) map[string]any {
		m, ok := kids[i].(map[string]any)
		if !ok {
			t.Fatalf("%s: %s child %d is not an object", name, typ, i)
		}
		return m
	}
	switch typ {
	case "doc":
		if parent != "" || node["version"] != float64(1) {
			t.Errorf("%s: doc must be the root with version 1, got %v", name, node["version"])
		}
		for i := range kids {
			if ct, _ := child(i)["type"].(string); !adfBlockTypes[ct] {
				t.Errorf("%s: %q at the top level", name, ct)
			}
		}
	case "heading":
		level, _ := node["attrs"].(map[string]any)["level"].(float64)
		if level < 1 || level > 6 {
			t.Errorf("%s: heading level %v", name, level)
		}
		fallthrough
	case "paragraph":
		if len(kids) == 0 {
			t.Errorf("%s: empty %s", name, typ)
		}
		for i := range kids {
			if child(i)["type"] != "text" {
				t.Errorf("%s: %s holds %v", name, typ, child(i)["type"])
			}
		}
	case "bulletList":
		if len(kids) == 0 {
			t.Errorf("%s: empty bulletList", name)
		}
		for i := range kids {
			if child(i)["type"] != "listItem" {
				t.Errorf("%s: bulletList holds %v", name, child(i)["type"])
			}
		}
	case "listItem":
		if len(kids) == 0 || child(0)["type"] != "paragraph" {
			t.Errorf("%s: listItem must start with a paragraph", name)
		}
		for i := 1; i < len(kids); i++ {
			if child(i)["type"] != "bulletList" {
				t.Errorf("%s: listItem holds %v", name, child(i)["type"])
			}
		}
	case "panel":
		panels++
		if pt := node["attrs"].(map[string]any)["panelType"]; pt != "warning" {
			t.Errorf("%s: panelType %v", name, pt)
		}
		if len(kids) == 0 {
			t.Errorf("%s: empty panel", name)
		}
		for i := range kids {
			if ct, _ := child(i)["type"].(string); !adfPanelBlocks[ct] {
				t.Errorf("%s: panel holds %q", name, ct)
			}
		}
	case "rule":
		if len(kids) != 0 {
			t.Errorf("%s: rule with content", name)
		}
	case "text":
		text, _ := node["text"].(string)
		if text == "" {
			t.Errorf("%s: empty text node", name)
		}
		if marks, ok := node["marks"].([]any); ok {
			if len(marks) != 1 {
				t.Errorf("%s: %d marks on one text node", name, len(marks))
			}
			for _, m := range marks {
				if mt := m.(map[string]any)["type"]; mt != "strong" && mt != "code" {
					t.Errorf("%s: mark %v", name, mt)
				}
			}
		}
		if len(kids) != 0 {
			t.Errorf("%s: text with content", name)
		}
		return 0
	default:
		t.Errorf("%s: node type %q is not allowed", name, typ)
	}
	for k := range node {
		if k != "type" && k != "content" && k != "attrs" && k != "version" {
			t.Errorf("%s: %s has unexpected field %q", name, typ, k)
		}
	}
	for i := range kids {
		panels += checkADF(t, name, child(i), typ)
	}
	return panels
}

func TestADFIsValid(t *testing.T) {
	all := append(fixtures(), fixture{"hostile", hostileVerdict(), true})
	for _, f := range all {
		for _, dryRun := range []bool{false, true} {
			doc := roundTrip(t, Compose(f.v, ComposeOptions{ExemptTag: testTag, DryRun: dryRun}).ADF())
			if doc["type"] != "doc" {
				t.Fatalf("%s: root type %v", f.name, doc["type"])
			}
			panels := checkADF(t, f.name, doc, "")
			if (panels == 1) != f.theft || panels > 1 {
				t.Errorf("%s: %d warning panels, theft %v", f.name, panels, f.theft)
			}
		}
	}
	// Empty user-controlled values still give non-empty text nodes.
	v := metricVerdict()
	v.Name, v.DecisionID, v.Reasons[0].Detail = "", "", ""
	v.Evidence.CloudTrail = &message.CloudTrail{UserAgents: []string{"", " "}, SourceIPs: []string{""}}
	checkADF(t, "empty", roundTrip(t, Compose(v, ComposeOptions{}).ADF()), "")
}

func TestPlainTextHasNoMarkdown(t *testing.T) {
	for _, f := range fixtures() {
		out := Compose(f.v, ComposeOptions{ExemptTag: testTag, DryRun: true}).PlainText()
		for _, bad := range []string{"**", "`", "](", "<", "\\", "__"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s: plain text contains %q:\n%s", f.name, bad, out)
			}
		}
		for _, line := range strings.Split(out, "\n") {
			for _, prefix := range []string{"#", ">", "|", "---", "***", "```"} {
				if strings.HasPrefix(line, prefix) {
					t.Errorf("%s: plain text line %q starts with %q", f.name, line, prefix)
				}
			}
		}
	}
}

func TestPlainTextKeepsUserTextOnOneLine(t *testing.T) {
	out := Compose(hostileVerdict(), ComposeOptions{}).PlainText()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "# Injected") || strings.HasPrefix(line, "- injected") {
			t.Errorf("user agent injected a line: %q", line)
		}
	}
}

func TestEvidenceDigest(t *testing.T) {
	digest := func(v message.Verdict) string { return Compose(v, ComposeOptions{}).EvidenceDigest() }
	base := theftVerdict()
	want := digest(base)
	if len(want) != 64 {
		t.Fatalf("digest %q is not a hex SHA-256", want)
	}

	same := map[string]func(*message.Verdict){
		"decision id":    func(v *message.Verdict) { v.DecisionID = "0192f0a1b2d00-fedcba9876543210" },
		"created at":     func(v *message.Verdict) { v.CreatedAt = v.CreatedAt.Add(time.Hour) },
		"last datapoint": func(v *message.Verdict) { v.Evidence.LastDatapoint = ptr(at("2026-11-22T10:00:00Z")) },
		"last v1 use":    func(v *message.Verdict) { v.Evidence.LastV1Use = ptr(at("2026-11-22T09:30:00Z")) },
		"observed hours": func(v *message.Verdict) { v.Evidence.ObservedHours = ptr(201) },
		"detail wording": func(v *message.Verdict) { v.Reasons[0].Detail += " (again)" },
		"v2 deliveries":  func(v *message.Verdict) { v.Evidence.CloudTrail.V2Deliveries = 7 },
		"v1 deliveries":  func(v *message.Verdict) { v.Evidence.CloudTrail.V1Deliveries += 5 },
		"name":           func(v *message.Verdict) { v.Name = "renamed" },
		"ua order": func(v *message.Verdict) {
			v.Evidence.CloudTrail.UserAgents = []string{uaJava, uaBoto, uaJava}
		},
		"secondary order": func(v *message.Verdict) {
			v.Reasons[1], v.Reasons[2] = v.Reasons[2], v.Reasons[1]
		},
	}
	for name, change := range same {
		v := theftVerdict()
		change(&v)
		if got := digest(v); got != want {
			t.Errorf("%s changed the digest", name)
		}
	}
	if got := Compose(base, ComposeOptions{DryRun: true, ExemptTag: "x"}).EvidenceDigest(); got != want {
		t.Error("compose options changed the digest")
	}

	different := map[string]func(*message.Verdict){
		"new user agent": func(v *message.Verdict) {
			v.Evidence.CloudTrail.UserAgents = append(v.Evidence.CloudTrail.UserAgents, uaCLI)
		},
		"metric now shows v1": func(v *message.Verdict) { v.Evidence.MetadataNoTokenSum = ptr(1.0) },
		"new source ip": func(v *message.Verdict) {
			v.Evidence.CloudTrail.SourceIPs = append(v.Evidence.CloudTrail.SourceIPs, "198.51.100.7")
		},
		"reason code gone": func(v *message.Verdict) { v.Reasons = v.Reasons[:2] },
		"other instance":   func(v *message.Verdict) { v.InstanceID = "i-0fed1234abc567891" },
	}
	for name, change := range different {
		v := theftVerdict()
		change(&v)
		if got := digest(v); got == want {
			t.Errorf("%s did not change the digest", name)
		}
	}

	// The metric ticket: neither a later datapoint nor a higher count over the rolling
	// window is new evidence; IMDSv1 was already known to be in use.
	m := metricVerdict()
	mWant := digest(m)
	m.Evidence.LastDatapoint = ptr(at("2026-11-22T10:00:00Z"))
	m.DecisionID, m.CreatedAt = "0192f0a1b2d01-fedcba9876543210", m.CreatedAt.Add(time.Hour)
	if digest(m) != mWant {
		t.Error("metric ticket: a repeat sweep changed the digest")
	}
	m.Evidence.MetadataNoTokenSum = ptr(43.0)
	if digest(m) != mWant {
		t.Error("metric ticket: a higher MetadataNoToken sum changed the digest")
	}
}

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"  a \n\t b  ", "a b"},
		{"x\u202ey", "x\ufffdy"},
		{"x\x00y\x1b[31m", "x\ufffdy\ufffd[31m"},
		{"bad \xff utf8", "bad \ufffd utf8"},
		{strings.Repeat("a", 10), "aaaaa…"},
	}
	for _, tt := range tests {
		max := maxTextRunes
		if strings.HasPrefix(tt.in, "aaa") {
			max = 5
		}
		if got := clean(tt.in, max); got != tt.want {
			t.Errorf("clean(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
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

func TestMarkdownWithin(t *testing.T) {
	const opsItemDescription = 2048
	big := hostileVerdict()
	for i := range 30 {
		big.Evidence.CloudTrail.UserAgents = append(big.Evidence.CloudTrail.UserAgents,
			"aws-sdk-java/1.11.500 Linux/4.14 OpenJDK_64-Bit_Server_VM/25.252 build-"+strings.Repeat("x", i*7))
	}
	all := append(fixtures(), fixture{"hostile", hostileVerdict(), true}, fixture{"big", big, true})
	for _, f := range all {
		for _, dryRun := range []bool{false, true} {
			c := Compose(f.v, ComposeOptions{ExemptTag: testTag, DryRun: dryRun})
			for _, limit := range []int{opsItemDescription, 1000, 600} {
				got := c.MarkdownWithin(limit)
				if len(got) > limit {
					t.Errorf("%s/%d: %d bytes", f.name, limit, len(got))
				}
				if !strings.Contains(got, f.v.DecisionID) {
					t.Errorf("%s/%d: the footer with the decision id was dropped:\n%s", f.name, limit, got)
				}
				outsideCode(t, got) // fails on a split code span
				if full := c.Markdown(); len(full) <= limit && got != full {
					t.Errorf("%s/%d: shortened a ticket that fits", f.name, limit)
				}
				if f.theft && limit >= 1000 && !strings.Contains(got, "WARNING: possible credential theft") {
					t.Errorf("%s/%d: the theft warning did not survive shortening:\n%s", f.name, limit, got)
				}
				if before, _, cut := strings.Cut(got, "\n**Shortened:**"); cut {
					lines := strings.Split(strings.TrimRight(before, "\n"), "\n")
					if last := lines[len(lines)-1]; strings.HasPrefix(last, "#") {
						t.Errorf("%s/%d: shortened after an empty heading %q", f.name, limit, last)
					}
				}
				if dryRun && !strings.Contains(got, "DRY RUN") {
					t.Errorf("%s/%d: the dry-run banner did not survive shortening", f.name, limit)
				}
			}
		}
	}
	if got := Compose(big, ComposeOptions{}).MarkdownWithin(opsItemDescription); !strings.Contains(got, "**Shortened:**") {
		t.Errorf("a cut ticket does not say so:\n%s", got)
	}
}

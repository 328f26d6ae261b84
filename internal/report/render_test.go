package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport/schematest"
)

func render(t *testing.T, p *Plan, f Format) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, p, f); err != nil {
		t.Fatalf("Write %s: %v", f, err)
	}
	return buf.String()
}

func keys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

func sameKeys(t *testing.T, where string, m any, want ...string) {
	t.Helper()
	obj, ok := m.(map[string]any)
	if !ok {
		t.Errorf("%s: not an object: %#v", where, m)
		return
	}
	slices.Sort(want)
	if got := keys(obj); !slices.Equal(got, want) {
		t.Errorf("%s keys: got %v, want %v", where, got, want)
	}
}

func TestJSONDocument(t *testing.T) {
	p := fixturePlan()
	// An instance built by hand, without reasons or CloudTrail lists: still [] in JSON.
	p.Add(Instance{AccountID: "123456789012", Region: "us-east-1", InstanceID: "i-00000000000000009", Action: policy.ActionDefer,
		Evidence: Evidence{CloudTrail: CloudTrail{Checked: true}}})
	out := render(t, p, FormatJSON)
	schematest.ValidateAgainstSchema(t, "plan.schema.json", []byte(out))

	if !strings.HasSuffix(out, "}\n") || strings.HasSuffix(out, "\n\n") {
		t.Errorf("want exactly one trailing newline, got %q", out[max(0, len(out)-10):])
	}
	if !strings.HasPrefix(out, "{\n  \"schema\": \"imdsguard.plan/v1\",\n  \"version\": \"test\",\n  \"generated_at\": \"2026-11-22T10:00:00Z\",\n") {
		t.Errorf("not indented by two spaces or fields out of order:\n%s", out[:min(len(out), 200)])
	}

	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	sameKeys(t, "plan", doc, "schema", "version", "generated_at", "settings", "scopes", "instances", "summary", "sources", "source_summary", "api_calls")
	sameKeys(t, "settings", doc["settings"], "lookback_hours", "min_observed_hours", "max_metric_staleness", "hop_limit",
		"container_hop_limit", "exempt_tag", "mode", "container_tags", "call_timeout", "boot_window")
	if scopes := doc["scopes"].([]any); len(scopes) != 1 {
		t.Errorf("scopes = %v, want the fixture's one", scopes)
	} else {
		sameKeys(t, "ok scope", scopes[0], "account_id", "region", "status")
	}
	sameKeys(t, "summary", doc["summary"], "remediate", "ticket", "defer", "skip")
	sameKeys(t, "api_calls", doc["api_calls"], "ec2:DescribeInstances", "cloudwatch:GetMetricData", "cloudtrail:LookupEvents")

	wantSummary := map[string]any{"remediate": 2.0, "ticket": 2.0, "defer": 3.0, "skip": 2.0}
	if got := doc["summary"].(map[string]any); !maps.Equal(got, wantSummary) {
		t.Errorf("summary %v, want %v", got, wantSummary)
	}

	instances := doc["instances"].([]any)
	if len(instances) != 9 {
		t.Fatalf("%d instances, want 9", len(instances))
	}
	seen := map[string]bool{}
	cloudTrailRead := map[string]bool{}
	var prevID string
	for _, raw := range instances {
		in := raw.(map[string]any)
		id, _ := in["instance_id"].(string)
		if id <= prevID {
			t.Errorf("instances not sorted: %s after %s", id, prevID)
		}
		prevID = id
		action := in["action"].(string)
		seen[action] = true
		instanceKeys := []string{"account_id", "region", "instance_id", "name", "state", "current", "action", "reasons", "evidence", "source"}
		if action == "remediate" {
			instanceKeys = append(instanceKeys, "target")
			sameKeys(t, id+" target", in["target"], "http_tokens", "hop_limit", "http_endpoint")
		}
		sameKeys(t, id, in, instanceKeys...)
		if in["current"] != nil {
			sameKeys(t, id+" current", in["current"], "http_tokens", "hop_limit", "http_endpoint")
		}
		if _, ok := in["reasons"].([]any); !ok {
			t.Errorf("%s: reasons is %#v, want an array", id, in["reasons"])
		}
		ev := in["evidence"]
		sameKeys(t, id+" evidence", ev, "metadata_no_token_sum", "observed_hours", "last_datapoint", "last_v1_use", "cloudtrail")
		ct, read := ev.(map[string]any)["cloudtrail"]
		if !read {
			t.Errorf("%s: no cloudtrail key", id)
		}
		if ct == nil {
			continue // not read: null, never an object saying so
		}
		cloudTrailRead[id] = true
		sameKeys(t, id+" cloudtrail", ct, "checked", "v1_deliveries", "v2_deliveries", "user_agents", "source_ips")
		if ct.(map[string]any)["checked"] != true {
			t.Errorf("%s: cloudtrail object with checked %v", id, ct.(map[string]any)["checked"])
		}
		for _, list := range []string{"user_agents", "source_ips"} {
			if _, ok := ct.(map[string]any)[list].([]any); !ok {
				t.Errorf("%s: %s is %#v, want an array", id, list, ct.(map[string]any)[list])
			}
		}
	}
	// CloudTrail was read for the remediation and the CloudTrail ticket only (and the
	// hand-built instance); everywhere else it is null.
	if want := map[string]bool{"i-00000000000000001": true, "i-00000000000000003": true, "i-00000000000000009": true}; !maps.Equal(cloudTrailRead, want) {
		t.Errorf("cloudtrail objects for %v, want %v", cloudTrailRead, want)
	}
	for _, a := range policy.Actions {
		if !seen[string(a)] {
			t.Errorf("no %s instance in the fixture plan", a)
		}
	}

	byID := func(id string) map[string]any {
		for _, raw := range instances {
			if in := raw.(map[string]any); in["instance_id"] == id {
				return in
			}
		}
		t.Fatalf("no instance %s", id)
		return nil
	}
	// The remediated instance: IMDSv1 never seen, so last_v1_use is present and null.
	ev := byID("i-00000000000000001")["evidence"].(map[string]any)
	if v, ok := ev["last_v1_use"]; !ok || v != nil {
		t.Errorf("last_v1_use = %#v (present %v), want null", v, ok)
	}
	hand := byID("i-00000000000000009")
	if r := hand["reasons"].([]any); len(r) != 0 {
		t.Errorf("hand-built reasons = %v, want []", r)
	}
	if !strings.Contains(out, `"reasons": []`) || !strings.Contains(out, `"user_agents": []`) || !strings.Contains(out, `"scopes": [`) {
		t.Error("empty lists not written as []")
	}

	// Round trip: decoding and encoding again gives the same document.
	var back Plan
	if err := json.Unmarshal([]byte(out), &back); err != nil {
		t.Fatal(err)
	}
	if again := render(t, &back, FormatJSON); again != out {
		t.Errorf("round trip changed the document:\n%s\nvs\n%s", again, out)
	}
}

func TestWriteDoesNotChangePlan(t *testing.T) {
	p := fixturePlan()
	first := p.Instances[0].InstanceID
	render(t, p, FormatTable)
	if p.Instances[0].InstanceID != first {
		t.Error("Write sorted the caller's plan")
	}
}

func TestWriteRecountsSummary(t *testing.T) {
	p := fixturePlan()
	p.Summary = Summary{} // stale, as after changing p.Instances directly
	if out := render(t, p, FormatJSON); !strings.Contains(out, `"defer": 2`) {
		t.Errorf("summary not recounted:\n%s", out)
	}
}

func TestCSV(t *testing.T) {
	p := fixturePlan()
	out := render(t, p, FormatCSV)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rows[0], CSVHeader) {
		t.Errorf("header %v", rows[0])
	}
	if len(rows) != len(p.Instances)+1 {
		t.Fatalf("%d rows, want header + %d", len(rows), len(p.Instances))
	}
	col := map[string]int{}
	for i, name := range CSVHeader {
		col[name] = i
	}
	row := map[string][]string{}
	for _, r := range rows[1:] {
		if len(r) != len(CSVHeader) {
			t.Fatalf("row has %d cells, want %d: %v", len(r), len(CSVHeader), r)
		}
		row[r[col["instance_id"]]] = r
	}

	tests := []struct {
		id, column, want string
	}{
		{"i-00000000000000008", "http_tokens", ""}, // not found: current is null
		{"i-00000000000000008", "metadata_no_token_sum", ""},
		{"i-00000000000000008", "action", "skip"},
		{"i-00000000000000001", "last_v1_use", ""}, // null
		{"i-00000000000000001", "metadata_no_token_sum", "0"},
		{"i-00000000000000001", "last_datapoint", "2026-11-22T09:00:00Z"},
		{"i-00000000000000001", "target_http_tokens", "required"},
		{"i-00000000000000001", "hop_limit", "2"},
		{"i-00000000000000001", "target_hop_limit", "1"},
		{"i-00000000000000001", "v2_deliveries", "12"},
		{"i-00000000000000002", "reason_codes", "imdsv1-unused;container-host;no-instance-profile"},
		{"i-00000000000000002", "target_hop_limit", "2"},
		{"i-00000000000000002", "cloudtrail_checked", "false"},
		{"i-00000000000000002", "v1_deliveries", ""}, // not looked up: not zero
		{"i-00000000000000003", "target_http_tokens", ""},
		{"i-00000000000000003", "user_agents", "aws-cli/1.16.0 Python/2.7.5"},
		{"i-00000000000000003", "source_ips", "10.0.0.5;203.0.113.9"},
		{"i-00000000000000003", "reason_codes", "imdsv1-used-cloudtrail;possible-credential-theft"},
		{"i-00000000000000003", "last_v1_use", "2026-11-21T08:30:00Z"},
		{"i-00000000000000004", "metadata_no_token_sum", "42"},
		{"i-00000000000000007", "name", `'=HYPERLINK("x")`}, // formula defused
		{"i-00000000000000007", "observed_hours", ""},
	}
	for _, tt := range tests {
		if got := row[tt.id][col[tt.column]]; got != tt.want {
			t.Errorf("%s %s = %q, want %q", tt.id, tt.column, got, tt.want)
		}
	}
	if details := row["i-00000000000000003"][col["reason_details"]]; !strings.Contains(details, "; credentials fetched over IMDSv1") {
		t.Errorf("reason details not joined with \"; \": %q", details)
	}
}

func TestTable(t *testing.T) {
	p := fixturePlan()
	out := render(t, p, FormatTable)
	for _, in := range p.Instances {
		if !strings.Contains(out, in.InstanceID) {
			t.Errorf("table lacks %s:\n%s", in.InstanceID, out)
		}
	}
	for _, want := range []string{
		"imdsguard plan generated 2026-11-22T10:00:00Z (lookback 336h, min observed 168h, mode report)",
		"account 123456789012, region us-east-1",
		"INSTANCE",
		"2 remediate, 2 ticket, 2 defer, 2 skip (8 instances)",
		"API calls: cloudtrail:LookupEvents 2, cloudwatch:GetMetricData 1, ec2:DescribeInstances 1",
		"v1 calls 0 in 336h obs, last dp 09:00Z, hop 2->1",
		"v1 calls 42, last use 2026-11-20T14:00Z",
		"CloudTrail v1 x3 (aws-cli/1.16.0 Python/2.7.5)",
		"imdsv1-used-cloudtrail+possible-credential-theft",
		"12h obs of 168h needed",
		"hop 1->2",
		"not found",
		"Why:",
		"user agents: aws-cli/1.16.0 Python/2.7.5",
		"WARNING possible-credential-theft: credentials fetched over IMDSv1 were used from 203.0.113.9",
		"i-00000000000000007 (=HYPERLINK(\"x\")) defer: evidence-error: reading the MetadataNoToken metric failed: throttled",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ACCOUNT") || strings.Contains(out, "REGION") {
		t.Errorf("single account and region should not get columns:\n%s", out)
	}
	// The Why section lists tickets and defers only.
	why := out[strings.Index(out, "Why:"):]
	for _, id := range []string{"i-00000000000000001", "i-00000000000000002", "i-00000000000000006", "i-00000000000000008"} {
		if strings.Contains(why, id) {
			t.Errorf("Why section lists %s, which is neither ticket nor defer:\n%s", id, why)
		}
	}
	// Columns are aligned: EVIDENCE starts at the same offset on every row.
	lines := strings.Split(out, "\n")
	var headerAt int
	for i, l := range lines {
		if strings.HasPrefix(l, "INSTANCE") {
			headerAt = i
		}
	}
	col := strings.Index(lines[headerAt], "EVIDENCE")
	for _, l := range lines[headerAt+1 : headerAt+1+len(p.Instances)] {
		if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("row not aligned with EVIDENCE at %d: %q", col, l)
		}
	}
}

func TestTableSeveralRegions(t *testing.T) {
	p := fixturePlan()
	p.Instances[0].Region = "eu-west-1"
	out := render(t, p, FormatTable)
	if !strings.Contains(out, "REGION") || strings.Contains(out, "ACCOUNT") {
		t.Errorf("want a REGION column and no ACCOUNT column:\n%s", out)
	}
	if strings.Contains(out, "region us-east-1") {
		t.Errorf("names a single region though there are two:\n%s", out)
	}
}

func TestEmptyPlan(t *testing.T) {
	p := New("test", now, policy.DefaultSettings())
	for _, f := range []Format{FormatTable, FormatMarkdown} {
		if out := render(t, p, f); !strings.Contains(strings.ToLower(out), "no instances found") {
			t.Errorf("%s: empty plan does not say so:\n%s", f, out)
		}
	}
	if out := render(t, p, FormatCSV); out != strings.Join(CSVHeader, ",")+"\n" {
		t.Errorf("empty CSV = %q, want the header only", out)
	}
	if out := render(t, p, FormatJSON); !strings.Contains(out, `"instances": []`) {
		t.Errorf("empty JSON lacks \"instances\": []:\n%s", out)
	}
}

func TestMarkdown(t *testing.T) {
	p := fixturePlan()
	out := render(t, p, FormatMarkdown)
	for _, want := range []string{
		"# imdsguard plan\n",
		"mode `report`",
		"**2 remediate, 2 ticket, 2 defer, 2 skip (8 instances)**",
		"| Instance | Name | State | Action | Reason | Evidence |",
		`| i-00000000000000003 | batch\|legacy | running | ticket |`,
		"## Why",
		"- i-00000000000000003 (batch|legacy) **ticket**: imdsv1-used-cloudtrail:",
		"  - **Warning** possible-credential-theft:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	// Every table line has as many unescaped pipes as the header.
	var rows int
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "|") {
			continue
		}
		rows++
		if n := strings.Count(l, "|") - strings.Count(l, `\|`); n != 7 {
			t.Errorf("%d cell separators, want 7: %q", n, l)
		}
	}
	if want := len(p.Instances) + 2; rows != want {
		t.Errorf("%d table lines, want %d", rows, want)
	}
}

func TestMarkdownCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a|b", `a\|b`},
		{`a\|b`, `a\\\|b`},
		{"two\nlines", "two lines"},
	}
	for _, tt := range tests {
		if got := mdCell(tt.in); got != tt.want {
			t.Errorf("mdCell(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTableCleansControlCharacters(t *testing.T) {
	p := New("test", now, policy.DefaultSettings())
	p.Add(Instance{InstanceID: "i-1", Name: "evil\tname\n\x1b[31mred", Action: policy.ActionSkip,
		Reasons: []policy.Reason{{Code: policy.ReasonCompliant, Detail: "d"}}})
	out := render(t, p, FormatTable)
	if strings.Contains(out, "\x1b") || strings.Contains(out, "evil\t") || strings.Contains(out, "name\n") {
		t.Errorf("control characters reached the table: %q", out)
	}
}

func TestParseFormat(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Format
	}{
		{"table", FormatTable}, {"json", FormatJSON}, {"csv", FormatCSV}, {"markdown", FormatMarkdown}, {" JSON ", FormatJSON},
	} {
		got, err := ParseFormat(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	_, err := ParseFormat("xml")
	if err == nil {
		t.Fatal("ParseFormat(xml) succeeded")
	}
	for _, want := range []string{`"xml"`, "table", "json", "csv", "markdown"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrors(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, fixturePlan(), Format("yaml")); err == nil || !strings.Contains(err.Error(), "yaml") || buf.Len() != 0 {
		t.Errorf("unknown format: err %v, wrote %d bytes", err, buf.Len())
	}
	if err := Write(&buf, nil, FormatJSON); err == nil {
		t.Error("nil plan: no error")
	}
	if err := Write(failWriter{}, fixturePlan(), FormatTable); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("writer error lost: %v", err)
	}
}

package report

import (
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport/schematest"
)

// sourcesPlan is the fixture plan with the sources of a clean group, a group with an
// IMDSv1 user, the account defaults and an AMI, and the instance rows naming them.
func sourcesPlan() *Plan {
	p := fixturePlan()
	optional := policy.MetadataOptions{HTTPTokens: policy.TokensOptional, HopLimit: 2}
	fix := policy.SourceVerdict{Action: policy.SourceFix, Reasons: []policy.Reason{{Code: policy.ReasonSourceIMDSv1Unused, Detail: "none of the 2 uses IMDSv1"}},
		Target: &policy.MetadataOptions{HTTPTokens: policy.TokensRequired, HopLimit: 2}}
	ticket := policy.SourceVerdict{Action: policy.SourceTicket, Reasons: []policy.Reason{{Code: policy.ReasonSourceIMDSv1Used, Detail: "i-00000000000000003 uses IMDSv1"}},
		Target: &policy.MetadataOptions{HTTPTokens: policy.TokensRequired}} // a target on a ticket must not be written
	p.AddSource(NewSource("123456789012", "us-east-1", policy.Source{Kind: policy.SourceLaunchTemplate, ID: "lt-0123456789abcdef0", Name: "clean",
		Options: &optional, Groups: []string{"clean-asg"}}, []string{"i-00000000000000001", "i-00000000000000002"}, fix, 1, 1))
	p.AddSource(NewSource("123456789012", "us-east-1", policy.Source{Kind: policy.SourceLaunchTemplate, ID: "lt-0fedcba9876543210", Name: "=legacy|app",
		Options: &optional, Groups: []string{"user-asg"}}, []string{"i-00000000000000003"}, ticket, 2, 3))
	p.AddSource(NewSource("123456789012", "us-east-1", policy.Source{Kind: policy.SourceAccountDefaults, ID: "123456789012/us-east-1"}, nil,
		policy.DecideAccountDefaults("123456789012", "us-east-1", policy.AccountDefaults{}, []policy.SourceMember{{InstanceID: "i-00000000000000003"}}, nil), 0, 0))
	p.AddSource(NewSource("123456789012", "us-east-1", policy.Source{Kind: policy.SourceAMI, ID: "ami-12345678"}, []string{"i-00000000000000001"},
		policy.DecideImage("ami-12345678", "", 1), 0, 0))
	for i := range p.Instances {
		if p.Instances[i].InstanceID == "i-00000000000000001" {
			p.Instances[i].Source = &Origin{Kind: policy.SourceLaunchTemplate, ID: "lt-0123456789abcdef0", Group: "clean-asg"}
		}
	}
	return p
}

func TestSourcesJSON(t *testing.T) {
	out := render(t, sourcesPlan(), FormatJSON)
	schematest.ValidateAgainstSchema(t, "plan.schema.json", []byte(out))
	var doc struct {
		Sources       []map[string]any `json:"sources"`
		SourceSummary SourceSummary    `json:"source_summary"`
		Instances     []Instance       `json:"instances"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if want := (SourceSummary{Fix: 1, Ticket: 1, Defer: 1, Skip: 1}); doc.SourceSummary != want {
		t.Errorf("source summary %+v, want %+v", doc.SourceSummary, want)
	}
	kinds := []string{}
	for _, s := range doc.Sources {
		kinds = append(kinds, s["kind"].(string)+" "+s["action"].(string))
		_, hasTarget := s["target"]
		if hasTarget != (s["action"] == "fix") {
			t.Errorf("%s %s: target %v; only a fix has one", s["kind"], s["id"], s["target"])
		}
	}
	if got, want := strings.Join(kinds, ","), "account-defaults defer,ami skip,launch-template fix,launch-template ticket"; got != want {
		t.Errorf("sources in order %s, want %s", got, want)
	}
	for _, in := range doc.Instances {
		if (in.InstanceID == "i-00000000000000001") != (in.Source != nil) {
			t.Errorf("%s: source %+v", in.InstanceID, in.Source)
		}
	}

	// The schema refuses a source without a verdict.
	var raw map[string]any
	_ = json.Unmarshal([]byte(out), &raw)
	delete(raw["sources"].([]any)[0].(map[string]any), "action")
	bad, _ := json.Marshal(raw)
	if err := schematest.Validate("plan.schema.json", bad); err == nil {
		t.Error("the schema accepts a source without an action")
	}
}

func TestSourcesTableAndMarkdown(t *testing.T) {
	p := sourcesPlan()
	table := render(t, p, FormatTable)
	for _, want := range []string{
		"Sources (what launches the instances):",
		"optional, hop 2 -> required, hop 2",
		"Sources: 1 fix, 1 ticket, 1 defer, 1 skip",
		"launch-template lt-0fedcba9876543210 (=legacy|app) ticket: source-imdsv1-used: i-00000000000000003 uses IMDSv1",
		"launch-template lt-0123456789abcdef0 via clean-asg",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "ami-12345678 skip:") {
		t.Errorf("the table explains skipped sources:\n%s", table)
	}
	md := render(t, p, FormatMarkdown)
	for _, want := range []string{"## Sources", `=legacy\|app`, "| Source |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestSourcesCSV(t *testing.T) {
	rows, err := csv.NewReader(strings.NewReader(render(t, sourcesPlan(), FormatSourcesCSV))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 || strings.Join(rows[0], ",") != strings.Join(SourcesCSVHeader, ",") {
		t.Fatalf("%d rows, header %v", len(rows), rows[0])
	}
	byID := map[string][]string{}
	for _, r := range rows[1:] {
		if len(r) != len(SourcesCSVHeader) {
			t.Fatalf("row %v has %d cells", r, len(r))
		}
		byID[r[3]] = r
	}
	if r := byID["lt-0fedcba9876543210"]; r[4] != "'=legacy|app" || r[16] != "" || r[13] != "ticket" {
		t.Errorf("ticket row %v: the name defused, no target", r)
	}
	if r := byID["lt-0123456789abcdef0"]; r[16] != "required" || r[17] != "2" || r[12] != "i-00000000000000001;i-00000000000000002" {
		t.Errorf("fix row %v", r)
	}
	instances, err := csv.NewReader(strings.NewReader(render(t, sourcesPlan(), FormatCSV))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	n := len(CSVHeader)
	for _, r := range instances[1:] {
		if r[2] == "i-00000000000000001" && (r[n-3] != "launch-template" || r[n-1] != "clean-asg") {
			t.Errorf("instance row %v does not name its source", r)
		}
	}
}

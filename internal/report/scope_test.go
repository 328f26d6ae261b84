package report

import (
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/policy"
)

const deniedEU = "ec2:DescribeInstances in eu-west-1: api error UnauthorizedOperation: You are not authorized to perform this operation."

// failedScopePlan is the fixture plan with a second region that could not be planned.
func failedScopePlan() *Plan {
	p := fixturePlan()
	p.Scopes = append(p.Scopes, Scope{AccountID: p.Scopes[0].AccountID, Region: "eu-west-1", Status: ScopeFailed, Error: deniedEU})
	return p
}

func TestScopesJSON(t *testing.T) {
	p := failedScopePlan()
	p.Scopes = append(p.Scopes, Scope{Region: "ap-south-1", Status: ScopeFailed, Error: "no route"})
	out := render(t, p, FormatJSON)
	var doc struct {
		Scopes []map[string]any `json:"scopes"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Scopes) != 3 {
		t.Fatalf("scopes = %v, want 3", doc.Scopes)
	}
	sameKeys(t, "ok scope", doc.Scopes[0], "account_id", "region", "status")
	sameJSON(t, doc.Scopes[1], `{"account_id": "123456789012", "region": "eu-west-1", "status": "failed", "error": "`+deniedEU+`"}`)
	// An account that could not be told is null, not "".
	sameJSON(t, doc.Scopes[2], `{"account_id": null, "region": "ap-south-1", "status": "failed", "error": "no route"}`)
	if got := p.Failed(); len(got) != 2 || got[0].Region != "eu-west-1" || got[1].Region != "ap-south-1" {
		t.Errorf("Failed() = %+v", got)
	}
}

func TestScopesForPeople(t *testing.T) {
	p := failedScopePlan()
	table := render(t, p, FormatTable)
	for _, want := range []string{
		"FAILED: 1 of 2 scopes could not be planned; their instances are not in this plan:\n",
		"  eu-west-1 (account 123456789012): " + deniedEU + "\n",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	// At the end, where a terminal leaves it in sight.
	if !strings.HasSuffix(table, deniedEU+"\n") {
		t.Errorf("the failure is not the table's last line:\n%s", table)
	}

	md := render(t, p, FormatMarkdown)
	for _, want := range []string{
		"**Warning: 1 of 2 scopes could not be planned; their instances are not in this plan:**\n\n- eu-west-1 (account 123456789012): " + deniedEU,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// Before the instances, where a reader starts.
	if strings.Index(md, "**Warning") > strings.Index(md, "| Instance") {
		t.Errorf("markdown names the failure after the table:\n%s", md)
	}

	// Without failures, no such section.
	for _, f := range []Format{FormatTable, FormatMarkdown} {
		if out := render(t, fixturePlan(), f); strings.Contains(out, "could not be planned") {
			t.Errorf("%s speaks of failures in a plan without any:\n%s", f, out)
		}
	}
}

func TestEveryScopeFailed(t *testing.T) {
	p := New("test", now, policy.DefaultSettings())
	p.Scopes = []Scope{{Region: "eu-west-1", Status: ScopeFailed, Error: "connection refused"}}
	for _, f := range []Format{FormatTable, FormatMarkdown} {
		out := render(t, p, f)
		if !strings.Contains(strings.ToLower(out), "no instances: no scope could be planned") || strings.Contains(out, "no instances found") {
			t.Errorf("%s: a plan whose every scope failed must not read as an empty account:\n%s", f, out)
		}
		if !strings.Contains(out, "eu-west-1 (account unknown): connection refused") {
			t.Errorf("%s lacks the failure:\n%s", f, out)
		}
	}
	// A plan with an ok scope and no instance is empty, truly.
	p.Scopes = append(p.Scopes, Scope{Region: "us-east-1", Status: ScopeOK})
	if out := render(t, p, FormatTable); !strings.Contains(out, "no instances found") {
		t.Errorf("empty ok scope:\n%s", out)
	}
}

func TestCloudTrailJSON(t *testing.T) {
	tests := []struct {
		name string
		ct   CloudTrail
		want string
	}{
		{"not read", CloudTrail{}, `null`},
		{"not read, whatever the counts", CloudTrail{V2Deliveries: 3, UserAgents: []string{"x"}}, `null`},
		{"read, nothing found", CloudTrail{Checked: true},
			`{"checked": true, "v1_deliveries": 0, "v2_deliveries": 0, "user_agents": [], "source_ips": []}`},
		{"read", CloudTrail{Checked: true, V1Deliveries: 1, UserAgents: []string{"<aws-cli>"}, SourceIPs: []string{"10.0.0.1"}},
			`{"checked": true, "v1_deliveries": 1, "v2_deliveries": 0, "user_agents": ["<aws-cli>"], "source_ips": ["10.0.0.1"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sameJSON(t, tt.ct, tt.want)
			var back CloudTrail
			if err := json.Unmarshal([]byte(tt.want), &back); err != nil {
				t.Fatal(err)
			}
			if back.Checked != tt.ct.Checked || back.V1Deliveries != tt.ct.V1Deliveries && tt.ct.Checked {
				t.Errorf("decoded %+v from %s", back, tt.want)
			}
		})
	}
	// null decodes to "not read" even over a value.
	back := CloudTrail{Checked: true, V1Deliveries: 2}
	if err := json.Unmarshal([]byte("null"), &back); err != nil || back.Checked || back.V1Deliveries != 0 {
		t.Errorf("null decoded to %+v, %v", back, err)
	}
	// Not escaped for HTML, as the rest of the plan.
	b, _ := CloudTrail{Checked: true, UserAgents: []string{"<a&b>"}}.MarshalJSON()
	if !strings.Contains(string(b), "<a&b>") {
		t.Errorf("user agent escaped: %s", b)
	}
}

// TestCloudTrailNotReadForPeople: CSV, table and Markdown tell CloudTrail that was not
// read from CloudTrail read with nothing in it.
func TestCloudTrailNotReadForPeople(t *testing.T) {
	p := fixturePlan()
	rows, err := csv.NewReader(strings.NewReader(render(t, p, FormatCSV))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	cells := map[string][]string{}
	for _, r := range rows[1:] {
		cells[r[col["instance_id"]]] = r
	}
	for id, want := range map[string][3]string{
		"i-00000000000000001": {"true", "0", "12"}, // read: counts, zero included
		"i-00000000000000004": {"false", "", ""},   // not needed: no counts, not zeros
		"i-00000000000000007": {"false", "", ""},
	} {
		r := cells[id]
		if got := [3]string{r[col["cloudtrail_checked"]], r[col["v1_deliveries"]], r[col["v2_deliveries"]]}; got != want {
			t.Errorf("%s CloudTrail cells = %v, want %v", id, got, want)
		}
	}

	unavailable := running("i-0000000000000000a", "api-2")
	ev := policy.Evidence{InstanceID: unavailable.InstanceID, Instance: unavailable, Metrics: quiet(), CloudTrailErr: errDenied}
	q := New("test", now, policy.DefaultSettings())
	q.Add(NewInstance(ev, policy.Decide(ev, policy.DefaultSettings(), now), "", ""))
	for _, f := range []Format{FormatTable, FormatMarkdown} {
		if out := render(t, q, f); !strings.Contains(out, "CloudTrail not read") || !strings.Contains(out, "cloudtrail-unavailable") {
			t.Errorf("%s does not say CloudTrail was not read:\n%s", f, out)
		}
	}
}

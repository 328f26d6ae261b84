package guardrails

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport/schematest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var now = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func verdict(a policy.Action, code policy.ReasonCode) policy.Verdict {
	return policy.Verdict{Action: a, Reasons: []policy.Reason{{Code: code, Detail: string(code)}}}
}

func compliant(id string) policy.SourceMember {
	return policy.SourceMember{InstanceID: id, Verdict: verdict(policy.ActionSkip, policy.ReasonCompliant)}
}

func verified(id string) policy.SourceMember {
	return policy.SourceMember{InstanceID: id, Verdict: verdict(policy.ActionSkip, policy.ReasonCompliant), Verified: true}
}

func open(id string, a policy.Action, code policy.ReasonCode) policy.SourceMember {
	return policy.SourceMember{InstanceID: id, Verdict: verdict(a, code)}
}

func source(a policy.SourceAction, code policy.ReasonCode, detail string) policy.SourceVerdict {
	return policy.SourceVerdict{Action: a, Reasons: []policy.Reason{{Code: code, Detail: detail}}}
}

var sourceCompliant = source(policy.SourceSkip, policy.ReasonSourceCompliant, "launches with HttpTokens required")

func instanceID(n int) string { return fmt.Sprintf("i-%017x", n) }

// TestReadinessRegion: what makes one account-region ready, and what it says when not.
func TestReadinessRegion(t *testing.T) {
	tests := []struct {
		name       string
		scope      Scope
		ready      bool
		counts     Counts
		open       []OpenInstance
		moreOpen   int
		sources    []string // labels not ready
		why, notes []string // substrings, one per line, in order
	}{
		{
			name: "every instance compliant or verified, every source required",
			scope: Scope{Instances: []policy.SourceMember{compliant("i-00000000000000001"), verified("i-00000000000000002"),
				{InstanceID: "i-00000000000000003", Verdict: verdict(policy.ActionSkip, policy.ReasonTerminated)}},
				DefaultsHTTPTokens: "required", DefaultsManagedBy: "account",
				Sources: map[string]policy.SourceVerdict{"launch-template lt-0abc (web)": sourceCompliant}},
			ready: true, counts: Counts{Instances: 3, Compliant: 2, Verified: 1},
		},
		{
			// Verified is the evidence; the verdict read since may say anything.
			name:  "verified and still compliant",
			scope: Scope{Instances: []policy.SourceMember{{InstanceID: "i-00000000000000001", Verdict: verdict(policy.ActionSkip, policy.ReasonCompliant), Verified: true}}, DefaultsHTTPTokens: "required"},
			ready: true, counts: Counts{Instances: 1, Verified: 1},
		},
		{
			// Verified once, then set back to HttpTokens optional (its verdict is no longer
			// compliant): the old verification proves nothing.
			name:  "verified once, optional again",
			scope: Scope{Instances: []policy.SourceMember{{InstanceID: "i-00000000000000001", Verdict: verdict(policy.ActionDefer, policy.ReasonStaleMetrics), Verified: true}}, DefaultsHTTPTokens: "required"},
			ready: false, counts: Counts{Instances: 1, Open: 1},
			open: []OpenInstance{{InstanceID: "i-00000000000000001", Action: policy.ActionDefer, Reason: policy.ReasonStaleMetrics}},
			why:  []string{"1 of the 1 instances is not compliant or verified yet"},
		},
		{
			name: "instances not there yet",
			scope: Scope{Instances: []policy.SourceMember{
				open("i-00000000000000009", policy.ActionDefer, policy.ReasonInsufficientMetrics),
				compliant("i-00000000000000001"),
				open("i-00000000000000003", policy.ActionTicket, policy.ReasonIMDSv1UsedMetric),
				open("i-00000000000000004", policy.ActionRemediate, policy.ReasonIMDSv1Unused),
				open("i-00000000000000005", policy.ActionSkip, policy.ReasonExempt),
			}, DefaultsHTTPTokens: "required"},
			counts: Counts{Instances: 5, Compliant: 1, Open: 4},
			open: []OpenInstance{
				{InstanceID: "i-00000000000000003", Action: policy.ActionTicket, Reason: policy.ReasonIMDSv1UsedMetric},
				{InstanceID: "i-00000000000000004", Action: policy.ActionRemediate, Reason: policy.ReasonIMDSv1Unused},
				{InstanceID: "i-00000000000000005", Action: policy.ActionSkip, Reason: policy.ReasonExempt},
				{InstanceID: "i-00000000000000009", Action: policy.ActionDefer, Reason: policy.ReasonInsufficientMetrics},
			},
			why: []string{"4 of the 5 instances are not compliant or verified yet: i-00000000000000003 (ticket imdsv1-used-metric), " +
				"i-00000000000000004 (remediate imdsv1-unused), i-00000000000000005 (skip exempt), i-00000000000000009 (defer insufficient-metrics)"},
		},
		{
			name: "enforced and still being verified",
			scope: Scope{Instances: []policy.SourceMember{{InstanceID: "i-00000000000000001",
				Verdict: verdict(policy.ActionSkip, policy.ReasonCompliant), Verifying: true}}, DefaultsHTTPTokens: "required"},
			counts: Counts{Instances: 1, Open: 1},
			open:   []OpenInstance{{InstanceID: "i-00000000000000001", Action: policy.ActionSkip, Reason: policy.ReasonCompliant, Verifying: true}},
			why:    []string{"1 of the 1 instances is not compliant or verified yet: i-00000000000000001 (enforced, still being verified)"},
		},
		{
			name:   "a verdict without reasons",
			scope:  Scope{Instances: []policy.SourceMember{{InstanceID: "i-00000000000000001", Verdict: policy.Verdict{Action: policy.ActionDefer}}}},
			counts: Counts{Instances: 1, Open: 1},
			open:   []OpenInstance{{InstanceID: "i-00000000000000001", Action: policy.ActionDefer}},
			why:    []string{"i-00000000000000001 (defer -)"},
			notes:  []string{"the account default is HttpTokens no preference"},
		},
		{
			name: "sources still launching without IMDSv2 required",
			scope: Scope{Instances: []policy.SourceMember{compliant("i-00000000000000001")}, DefaultsHTTPTokens: "required",
				Sources: map[string]policy.SourceVerdict{
					"launch-template lt-0bbb (web)":  source(policy.SourceTicket, policy.ReasonSourceIMDSv1Used, "1 of the 2 running instances still use IMDSv1"),
					"launch-template lt-0aaa (api)":  sourceCompliant,
					"launch-configuration legacy-lc": source(policy.SourceDefer, policy.ReasonSourceNoInstances, "no running instance"),
					"launch-template lt-0ccc (ops)":  source(policy.SourceFix, policy.ReasonSourceIMDSv1Unused, "none uses IMDSv1"),
				}},
			counts:  Counts{Instances: 1, Compliant: 1},
			sources: []string{"launch-configuration legacy-lc", "launch-template lt-0bbb (web)", "launch-template lt-0ccc (ops)"},
			why: []string{
				"launch-configuration legacy-lc does not launch with HttpTokens required: the SCP would refuse its next launch (defer source-no-instances: no running instance)",
				"launch-template lt-0bbb (web) does not launch with HttpTokens required: the SCP would refuse its next launch (ticket source-imdsv1-used: 1 of the 2",
				"launch-template lt-0ccc (ops) does not launch with HttpTokens required: the SCP would refuse its next launch (fix source-imdsv1-unused: none uses IMDSv1)",
			},
		},
		{
			// Its exemption says it needs IMDSv1: the lock-in takes that away.
			name: "an exempt source is not ready",
			scope: Scope{DefaultsHTTPTokens: "required", Sources: map[string]policy.SourceVerdict{
				"launch-template lt-0abc (legacy)": source(policy.SourceSkip, policy.ReasonSourceExempt, "exempt until 2027-01-01")}},
			sources: []string{"launch-template lt-0abc (legacy)"},
			why:     []string{"launch-template lt-0abc (legacy) is exempt from imdsguard (exempt until 2027-01-01) and does not launch with HttpTokens required: the SCP would refuse its next launch"},
		},
		{
			name: "a skip source without reasons is not ready",
			scope: Scope{DefaultsHTTPTokens: "required", Sources: map[string]policy.SourceVerdict{
				"launch-template lt-0abc": {Action: policy.SourceSkip}}},
			sources: []string{"launch-template lt-0abc"},
			why:     []string{"launch-template lt-0abc does not launch with HttpTokens required: the SCP would refuse its next launch (skip -)"},
		},
		{
			name:  "nothing there",
			scope: Scope{DefaultsManagedBy: "account"},
			ready: true,
			notes: []string{"no instances and no launch templates or launch configurations: nothing here to break",
				"the account default is HttpTokens no preference: launches that set no metadata options of their own get it"},
		},
		{
			name:  "defaults optional do not block",
			scope: Scope{Instances: []policy.SourceMember{verified("i-00000000000000001")}, DefaultsHTTPTokens: "optional", DefaultsManagedBy: "account"},
			ready: true, counts: Counts{Instances: 1, Verified: 1},
			notes: []string{"the account default is HttpTokens optional"},
		},
		{
			name:  "defaults set by another declarative policy",
			scope: Scope{Instances: []policy.SourceMember{verified("i-00000000000000001")}, DefaultsHTTPTokens: "optional", DefaultsManagedBy: "declarative-policy"},
			ready: true, counts: Counts{Instances: 1, Verified: 1},
			notes: []string{"a declarative policy already sets the instance metadata defaults here (HttpTokens optional)"},
		},
		{
			// Whatever was read before the failure is not the whole picture.
			name:  "could not be read",
			scope: Scope{Failed: true, Error: "AccessDenied: not authorized to perform ec2:DescribeInstances", Instances: []policy.SourceMember{compliant("i-00000000000000001")}},
			why:   []string{"could not be read (AccessDenied: not authorized to perform ec2:DescribeInstances): nothing is known of what the guardrails would break here"},
		},
		{
			name:  "could not be read, no reason given",
			scope: Scope{Failed: true},
			why:   []string{"could not be read (no reason given)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.scope.AccountID, tt.scope.Region = "111111111111", "eu-west-1"
			accounts := Readiness([]Scope{tt.scope})
			if len(accounts) != 1 || len(accounts[0].Regions) != 1 {
				t.Fatalf("got %+v, want one account with one region", accounts)
			}
			a, r := accounts[0], accounts[0].Regions[0]
			if r.Ready != tt.ready || a.Ready != tt.ready {
				t.Errorf("ready: region %v, account %v, want %v; why %q", r.Ready, a.Ready, tt.ready, r.WhyNotReady)
			}
			if r.Counts != tt.counts {
				t.Errorf("counts %+v, want %+v", r.Counts, tt.counts)
			}
			if r.Counts.Compliant+r.Counts.Verified+r.Counts.Open != r.Counts.Instances {
				t.Errorf("counts do not add up: %+v", r.Counts)
			}
			if want := append([]OpenInstance{}, tt.open...); !reflect.DeepEqual(r.OpenInstances, want) || r.MoreOpenInstances != tt.moreOpen {
				t.Errorf("open %+v (+%d), want %+v (+%d)", r.OpenInstances, r.MoreOpenInstances, want, tt.moreOpen)
			}
			var labels []string
			for _, s := range r.SourcesNotReady {
				labels = append(labels, s.Label)
			}
			if !slices.Equal(labels, tt.sources) {
				t.Errorf("sources not ready %q, want %q", labels, tt.sources)
			}
			containsInOrder(t, "why", r.WhyNotReady, tt.why)
			containsInOrder(t, "notes", r.Notes, tt.notes)
			if tt.scope.Failed {
				if r.Status != ScopeFailed || r.Error == "" {
					t.Errorf("status %q error %q, want failed with an error", r.Status, r.Error)
				}
			} else if r.Status != ScopeOK || r.Error != "" {
				t.Errorf("status %q error %q, want ok without error", r.Status, r.Error)
			}
			if r.Defaults != (Defaults{HTTPTokens: tt.scope.DefaultsHTTPTokens, ManagedBy: tt.scope.DefaultsManagedBy}) {
				t.Errorf("defaults %+v", r.Defaults)
			}
		})
	}
}

// containsInOrder checks that got has one line per want, each containing its want.
func containsInOrder(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d lines %q, want %d", what, len(got), got, len(want))
		return
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("%s[%d] = %q, want it to contain %q", what, i, got[i], want[i])
		}
	}
}

func TestReadinessListsTenOpenInstances(t *testing.T) {
	var members []policy.SourceMember
	for n := 25; n >= 1; n-- {
		members = append(members, open(instanceID(n), policy.ActionDefer, policy.ReasonInsufficientMetrics))
	}
	r := Readiness([]Scope{{AccountID: "111111111111", Region: "eu-west-1", Instances: members}})[0].Regions[0]
	if len(r.OpenInstances) != MaxOpenListed || r.MoreOpenInstances != 15 || r.Counts.Open != 25 {
		t.Fatalf("listed %d, more %d, open %d; want 10, 15, 25", len(r.OpenInstances), r.MoreOpenInstances, r.Counts.Open)
	}
	for i, o := range r.OpenInstances {
		if o.InstanceID != instanceID(i+1) {
			t.Errorf("open[%d] = %s, want %s (sorted by id)", i, o.InstanceID, instanceID(i+1))
		}
	}
	if !strings.HasSuffix(r.WhyNotReady[0], instanceID(10)+" (defer insufficient-metrics) and 15 more") {
		t.Errorf("why = %q", r.WhyNotReady[0])
	}
}

func TestReadinessAccounts(t *testing.T) {
	scopes := []Scope{
		{AccountID: "333333333333", Region: "us-east-1", Instances: []policy.SourceMember{compliant("i-00000000000000001")}},
		{AccountID: "111111111111", Region: "us-east-1", Instances: []policy.SourceMember{open("i-00000000000000002", policy.ActionDefer, policy.ReasonStaleMetrics)}},
		{AccountID: "111111111111", Region: "eu-west-1"},
		{AccountID: "222222222222", Region: "eu-west-1", Failed: true, Error: "throttled"},
		{AccountID: "222222222222", Region: "ap-south-1"},
		{AccountID: "", Region: "eu-west-1"},
	}
	got := Readiness(scopes)
	type summary struct {
		account string
		ready   bool
		regions []string
	}
	var sums []summary
	for _, a := range got {
		s := summary{account: a.AccountID, ready: a.Ready}
		for _, r := range a.Regions {
			s.regions = append(s.regions, fmt.Sprintf("%s:%v", r.Region, r.Ready))
		}
		sums = append(sums, s)
	}
	want := []summary{
		// The account could not be told: its evidence makes no account ready.
		{"", false, []string{"eu-west-1:false"}},
		// One region not ready is enough.
		{"111111111111", false, []string{"eu-west-1:true", "us-east-1:false"}},
		// One region unread is enough.
		{"222222222222", false, []string{"ap-south-1:true", "eu-west-1:false"}},
		{"333333333333", true, []string{"us-east-1:true"}},
	}
	if !reflect.DeepEqual(sums, want) {
		t.Errorf("got %+v\nwant %+v", sums, want)
	}
	if why := got[0].Regions[0].WhyNotReady; len(why) != 1 || !strings.Contains(why[0], "the account of this region is not known") {
		t.Errorf("unknown account why = %q", why)
	}
	if got := Readiness(nil); len(got) != 0 {
		t.Errorf("Readiness(nil) = %+v", got)
	}
}

func testOptions() Options {
	return Options{ExemptRoles: []string{"arn:aws:iam::*:role/imdsguard-*", "arn:aws:iam::123456789012:role/break-glass"}, HopLimit: 2}
}

func mustDocuments(t *testing.T) Documents {
	t.Helper()
	d, err := NewDocuments(testOptions())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (rerun with -update if the change is meant):\n%s", name, got)
	}
}

func TestDocumentsGolden(t *testing.T) {
	d := mustDocuments(t)
	for name, doc := range map[string]json.RawMessage{
		"scp-require-imdsv2.json":            d.RequireIMDSv2,
		"scp-refuse-imdsv1-credentials.json": d.RefuseIMDSv1Credentials,
		"declarative-policy-ec2.json":        d.DeclarativePolicyEC2,
	} {
		t.Run(name, func(t *testing.T) { golden(t, name, append(append([]byte{}, doc...), '\n')) })
	}
}

// TestDocumentsSay checks the documents' meaning, which the golden files only freeze: the
// condition keys and operators AWS documents, fed from the options.
func TestDocumentsSay(t *testing.T) {
	o := testOptions()
	o.HopLimit = 3
	o.ExemptRoles = append(o.ExemptRoles, o.ExemptRoles[0]) // a repeat is named once
	d, err := NewDocuments(o)
	if err != nil {
		t.Fatal(err)
	}
	var scp policyDocument
	if err := json.Unmarshal(d.RequireIMDSv2, &scp); err != nil {
		t.Fatal(err)
	}
	want := []statement{
		{Sid: "DenyLaunchWithoutIMDSv2", Effect: "Deny", Action: "ec2:RunInstances", Resource: "arn:aws:ec2:*:*:instance/*",
			Condition: map[string]map[string]any{"StringNotEquals": {"ec2:MetadataHttpTokens": "required"}}},
		{Sid: "DenyLaunchAboveHopLimit", Effect: "Deny", Action: "ec2:RunInstances", Resource: "arn:aws:ec2:*:*:instance/*",
			Condition: map[string]map[string]any{"NumericGreaterThan": {"ec2:MetadataHttpPutResponseHopLimit": "3"}}},
		{Sid: "DenyMetadataOptionsChangeExceptExemptRoles", Effect: "Deny", Action: "ec2:ModifyInstanceMetadataOptions", Resource: "*",
			Condition: map[string]map[string]any{"ArnNotLike": {"aws:PrincipalArn": []any{"arn:aws:iam::*:role/imdsguard-*", "arn:aws:iam::123456789012:role/break-glass"}}}},
	}
	if scp.Version != "2012-10-17" || !reflect.DeepEqual(scp.Statement, want) {
		t.Errorf("require-IMDSv2 SCP:\n%s", d.RequireIMDSv2)
	}
	var creds policyDocument
	if err := json.Unmarshal(d.RefuseIMDSv1Credentials, &creds); err != nil {
		t.Fatal(err)
	}
	if len(creds.Statement) != 1 || !reflect.DeepEqual(creds.Statement[0], statement{Sid: "DenyIMDSv1RoleCredentials", Effect: "Deny", Action: "*", Resource: "*",
		Condition: map[string]map[string]any{"NumericLessThan": {"ec2:RoleDelivery": "2.0"}}}) {
		t.Errorf("credentials SCP:\n%s", d.RefuseIMDSv1Credentials)
	}
	var decl map[string]any
	if err := json.Unmarshal(d.DeclarativePolicyEC2, &decl); err != nil {
		t.Fatal(err)
	}
	wantDecl := map[string]any{"ec2_attributes": map[string]any{"instance_metadata_defaults": map[string]any{
		"http_tokens":                 map[string]any{"@@assign": "required"},
		"http_put_response_hop_limit": map[string]any{"@@assign": 3.0},
		"http_endpoint":               map[string]any{"@@assign": "no_preference"},
		"instance_metadata_tags":      map[string]any{"@@assign": "no_preference"},
	}}}
	if !reflect.DeepEqual(decl, wantDecl) {
		t.Errorf("declarative policy:\n%s", d.DeclarativePolicyEC2)
	}
	if bytes.Contains(d.RequireIMDSv2, []byte(`\u0026`)) || !bytes.HasPrefix(d.RequireIMDSv2, []byte("{\n  \"Version\"")) {
		t.Errorf("not indented by two spaces, or HTML-escaped:\n%s", d.RequireIMDSv2)
	}
}

func TestDocumentsRefuseOptions(t *testing.T) {
	many := make([]string, 120)
	for i := range many {
		many[i] = fmt.Sprintf("arn:aws:iam::123456789012:role/team-%03d-operator", i)
	}
	tests := []struct {
		name  string
		o     Options
		wants []string
	}{
		{"hop limit 0", Options{ExemptRoles: testOptions().ExemptRoles}, []string{"hop limit 0 is not between 1 and 64"}},
		{"hop limit 65", Options{ExemptRoles: testOptions().ExemptRoles, HopLimit: 65}, []string{"hop limit 65"}},
		{"no exempt roles", Options{HopLimit: 2}, []string{"no exempt roles", "imdsguard itself"}},
		{"a user, not a role", Options{HopLimit: 2, ExemptRoles: []string{"arn:aws:iam::123456789012:user/alice"}}, []string{`"arn:aws:iam::123456789012:user/alice" is not an IAM role ARN pattern`}},
		{"another service", Options{HopLimit: 2, ExemptRoles: []string{"arn:aws:sts::123456789012:assumed-role/x/y"}}, []string{"arn:aws:sts::123456789012:assumed-role/x/y"}},
		{"a short account", Options{HopLimit: 2, ExemptRoles: []string{"arn:aws:iam::12345:role/x"}}, []string{"arn:aws:iam::12345:role/x"}},
		{"a space", Options{HopLimit: 2, ExemptRoles: []string{"arn:aws:iam::*:role/a b"}}, []string{`"arn:aws:iam::*:role/a b"`}},
		{"no role name", Options{HopLimit: 2, ExemptRoles: []string{"arn:aws:iam::*:role/"}}, []string{`"arn:aws:iam::*:role/" is not`}},
		{"every role", Options{HopLimit: 2, ExemptRoles: []string{"arn:aws:iam::*:role/*"}}, []string{`"arn:aws:iam::*:role/*" matches every role`}},
		{"every role under any path", Options{HopLimit: 2, ExemptRoles: []string{"arn:aws:iam::123456789012:role/*/*"}}, []string{"matches every role"}},
		{"every problem at once", Options{HopLimit: -1, ExemptRoles: []string{"role/x", "arn:aws:iam::*:role/ok"}}, []string{"hop limit -1", `"role/x"`}},
		{"too large an SCP", Options{HopLimit: 2, ExemptRoles: many}, []string{"the SCP requiring IMDSv2 would be", "over the 5120 AWS Organizations allows"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDocuments(tt.o)
			if err == nil {
				t.Fatalf("no error; documents %s", d.RequireIMDSv2)
			}
			if !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("error %v does not wrap ErrInvalidOptions", err)
			}
			for _, want := range tt.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if !reflect.DeepEqual(d, Documents{}) {
				t.Errorf("documents returned with the error: %+v", d)
			}
		})
	}
}

// fixtureReport has one ready account, one with an open instance and a source that still
// launches IMDSv1, and one that could not be read.
func fixtureReport(t *testing.T) Report {
	return Report{Version: "test", GeneratedAt: now.Add(500 * time.Millisecond), Documents: mustDocuments(t), Accounts: Readiness([]Scope{
		{AccountID: "111111111111", Region: "eu-west-1", DefaultsHTTPTokens: "required", DefaultsManagedBy: "account",
			Instances: []policy.SourceMember{compliant("i-00000000000000001"), verified("i-00000000000000002")},
			Sources:   map[string]policy.SourceVerdict{"launch-template lt-0aaa (api)": sourceCompliant}},
		{AccountID: "111111111111", Region: "ap-south-1", DefaultsManagedBy: "account"},
		{AccountID: "222222222222", Region: "us-east-1", DefaultsHTTPTokens: "optional", DefaultsManagedBy: "account",
			Instances: []policy.SourceMember{compliant("i-00000000000000003"), open("i-00000000000000004", policy.ActionTicket, policy.ReasonIMDSv1UsedCloudTrail)},
			Sources: map[string]policy.SourceVerdict{
				"launch-template lt-0bbb (web)": source(policy.SourceTicket, policy.ReasonSourceIMDSv1Used, "1 of the 1 running instances launch-template lt-0bbb (web) launched still use IMDSv1: i-00000000000000004 (imdsv1-used-cloudtrail)"),
			}},
		{AccountID: "333333333333", Region: "eu-west-1", Failed: true, Error: "AccessDenied: sts:AssumeRole\non imdsguard-read"},
	})}
}

func writeText(t *testing.T, r Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func writeJSON(t *testing.T, r Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestWriteTextNotReady(t *testing.T) {
	out := writeText(t, fixtureReport(t))
	golden(t, "not-ready.txt", []byte(out))
	for _, want := range []string{
		"imdsguard guardrails generated 2026-11-22T10:00:00Z (imdsguard test)",
		"NOT READY: 2 of 3 accounts are not ready. Attaching the SCPs to them now would break:",
		"  - the next launch from launch-template lt-0bbb (web) in 222222222222 us-east-1",
		"  - the open instance below, if it still fetches its role credentials over IMDSv1",
		"  - whatever needs IMDSv1 in 333333333333 eu-west-1, which could not be read",
		"Ready accounts: 111111111111. Attach the guardrails to these only until the others are ready.",
		"Why not ready:\n  222222222222 us-east-1:\n    - 1 of the 2 instances is not compliant or verified yet: i-00000000000000004 (ticket imdsv1-used-cloudtrail)",
		"    - launch-template lt-0bbb (web) does not launch with HttpTokens required: the SCP would refuse its next launch",
		// The error's newline stays out of the layout.
		"  333333333333 eu-west-1:\n    - could not be read (AccessDenied: sts:AssumeRole on imdsguard-read)",
		"Notes:\n  111111111111 ap-south-1:\n    - no instances and no launch templates or launch configurations: nothing here to break",
		"  222222222222 us-east-1:\n    - the account default is HttpTokens optional",
		"== 1. EC2 declarative policy: IMDSv2 by default (declarative-policy-ec2.json) ==",
		"aws organizations enable-policy-type --root-id <root id> --policy-type DECLARATIVE_POLICY_EC2",
		`aws organizations create-policy --type DECLARATIVE_POLICY_EC2 --name imdsguard-imds-defaults --description "IMDSv2 required by default (imdsguard)" --content file://declarative-policy-ec2.json`,
		"== 2. SCP: require IMDSv2 at launch (scp-require-imdsv2.json) ==",
		"aws organizations create-policy --type SERVICE_CONTROL_POLICY --name imdsguard-require-imdsv2",
		"== 3. SCP: refuse IMDSv1 credentials (scp-refuse-imdsv1-credentials.json) ==",
		"aws organizations attach-policy --policy-id <the id create-policy returns> --target-id <ready account or OU id>",
		`"ec2:RoleDelivery": "2.0"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	// The table comes before the documents, one aligned row per account-region.
	lines := strings.Split(out, "\n")
	header := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "ACCOUNT ") })
	if header < 0 || header > strings.Count(out[:strings.Index(out, "== 1.")], "\n") {
		t.Fatalf("no table before the documents:\n%s", out)
	}
	col := strings.Index(lines[header], "DEFAULTS")
	rows := lines[header+1 : header+5]
	wantRows := []string{"111111111111  ap-south-1  yes", "111111111111  eu-west-1   yes", "222222222222  us-east-1   no ", "333333333333  eu-west-1   unread"}
	for i, row := range rows {
		if !strings.HasPrefix(row, wantRows[i]) {
			t.Errorf("row %d = %q, want it to start with %q", i, row, wantRows[i])
		}
		if len(row) <= col || row[col-1] != ' ' || row[col] == ' ' {
			t.Errorf("row %d not aligned with DEFAULTS at %d: %q", i, col, row)
		}
	}
	if f := strings.Fields(rows[2]); !slices.Equal(f[3:], []string{"2", "1", "0", "1", "1", "optional"}) || !strings.HasSuffix(rows[3], "-") {
		t.Errorf("unread row should have no counts, the others their counts and defaults:\n%s", strings.Join(rows, "\n"))
	}
}

func TestWriteTextReady(t *testing.T) {
	r := Report{Version: "v1.2.3", GeneratedAt: now, Documents: mustDocuments(t), Accounts: Readiness([]Scope{
		{AccountID: "111111111111", Region: "eu-west-1", DefaultsHTTPTokens: "required", Instances: []policy.SourceMember{verified("i-00000000000000001")}},
		{AccountID: "222222222222", Region: "eu-west-1", DefaultsHTTPTokens: "required"},
	})}
	out := writeText(t, r)
	if !strings.Contains(out, "READY: all 2 accounts are ready:") || strings.Contains(out, "NOT READY:") || strings.Contains(out, "Why not ready:") {
		t.Errorf("ready report:\n%s", out)
	}
	r.Accounts = r.Accounts[:1]
	if out := writeText(t, r); !strings.Contains(out, "READY: the 1 account is ready:") {
		t.Errorf("one ready account:\n%s", out)
	}
	r.Accounts = nil
	if out := writeText(t, r); !strings.Contains(out, "NOT READY: no account-region was read") || strings.Contains(out, "ACCOUNT ") {
		t.Errorf("no accounts:\n%s", out)
	}
	r.Accounts = Readiness([]Scope{{AccountID: "111111111111", Region: "eu-west-1", Failed: true, Error: "x"}})
	if out := writeText(t, r); !strings.Contains(out, "NOT READY: 1 of 1 account is not ready.") || !strings.Contains(out, "Ready accounts: none.") {
		t.Errorf("no ready account:\n%s", out)
	}
}

func TestWriteJSON(t *testing.T) {
	out := writeJSON(t, fixtureReport(t))
	schematest.ValidateAgainstSchema(t, "guardrails.schema.json", []byte(out))
	golden(t, "not-ready.json", []byte(out))
	if !strings.HasPrefix(out, "{\n  \"schema\": \"imdsguard.guardrails/v1\",\n  \"version\": \"test\",\n  \"generated_at\": \"2026-11-22T10:00:00Z\",\n  \"ready\": false,\n") {
		t.Errorf("fields out of order, not indented by two spaces, or time not whole seconds:\n%s", out[:min(len(out), 200)])
	}
	if !strings.HasSuffix(out, "}\n") || strings.HasSuffix(out, "\n\n") {
		t.Errorf("want exactly one trailing newline")
	}
	var doc struct {
		Ready     bool               `json:"ready"`
		Accounts  []AccountReadiness `json:"accounts"`
		Documents map[string]any     `json:"documents"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Ready || len(doc.Accounts) != 3 || !doc.Accounts[0].Ready || doc.Accounts[1].Ready {
		t.Errorf("readiness lost: %+v", doc.Accounts)
	}
	for _, key := range []string{"scp_require_imdsv2", "scp_refuse_imdsv1_credentials", "declarative_policy_ec2"} {
		if _, ok := doc.Documents[key].(map[string]any); !ok {
			t.Errorf("documents.%s is %#v, want the policy as an object", key, doc.Documents[key])
		}
	}

	// A ready report built by hand, with nil lists: still [] and valid.
	ready := Report{Version: "test", GeneratedAt: now, Documents: mustDocuments(t), Accounts: []AccountReadiness{
		{AccountID: "111111111111", Ready: true, Regions: []RegionReadiness{{Region: "eu-west-1", Status: ScopeOK, Ready: true}}}}}
	out = writeJSON(t, ready)
	schematest.ValidateAgainstSchema(t, "guardrails.schema.json", []byte(out))
	for _, want := range []string{`"ready": true,`, `"open_instances": []`, `"sources_not_ready": []`, `"why_not_ready": []`, `"notes": []`} {
		if !strings.Contains(out, want) {
			t.Errorf("hand-built report lacks %s:\n%s", want, out)
		}
	}
	if ready.Accounts[0].Regions[0].Notes != nil {
		t.Error("WriteJSON changed the caller's report")
	}
}

// TestGuardrailsSchemaRejects: the schema accepts what WriteJSON writes and refuses what
// imdsguard.guardrails/v1 rules out.
func TestGuardrailsSchemaRejects(t *testing.T) {
	valid := writeJSON(t, fixtureReport(t))
	region := func(d map[string]any, account, region int) map[string]any {
		return d["accounts"].([]any)[account].(map[string]any)["regions"].([]any)[region].(map[string]any)
	}
	statement := func(d map[string]any, i int) map[string]any {
		return d["documents"].(map[string]any)["scp_require_imdsv2"].(map[string]any)["Statement"].([]any)[i].(map[string]any)
	}
	imds := func(d map[string]any) map[string]any {
		return d["documents"].(map[string]any)["declarative_policy_ec2"].(map[string]any)["ec2_attributes"].(map[string]any)["instance_metadata_defaults"].(map[string]any)
	}
	tests := []struct {
		name   string
		change func(d map[string]any)
	}{
		{"an undocumented key", func(d map[string]any) { d["extra"] = 1 }},
		{"another schema", func(d map[string]any) { d["schema"] = "imdsguard.plan/v1" }},
		{"no ready", func(d map[string]any) { delete(d, "ready") }},
		{"empty version", func(d map[string]any) { d["version"] = "" }},
		{"generated_at not a time", func(d map[string]any) { d["generated_at"] = "now" }},
		{"an account without regions", func(d map[string]any) { d["accounts"].([]any)[0].(map[string]any)["regions"] = []any{} }},
		{"a malformed account id", func(d map[string]any) { d["accounts"].([]any)[0].(map[string]any)["account_id"] = "1111" }},
		{"failed without error", func(d map[string]any) { delete(region(d, 2, 0), "error") }},
		{"failed but ready", func(d map[string]any) { r := region(d, 2, 0); r["ready"] = true; r["why_not_ready"] = []any{} }},
		{"ok with an error", func(d map[string]any) { region(d, 0, 0)["error"] = "x" }},
		{"ready with a why", func(d map[string]any) { region(d, 0, 0)["why_not_ready"] = []any{"x"} }},
		{"ready with open instances", func(d map[string]any) { region(d, 0, 0)["counts"].(map[string]any)["open"] = 1 }},
		{"not ready without a why", func(d map[string]any) { region(d, 1, 0)["why_not_ready"] = []any{} }},
		{"an unknown status", func(d map[string]any) { region(d, 0, 0)["status"] = "partial" }},
		{"a malformed instance id", func(d map[string]any) {
			region(d, 1, 0)["open_instances"].([]any)[0].(map[string]any)["instance_id"] = "i-1"
		}},
		{"an unknown source action", func(d map[string]any) {
			region(d, 1, 0)["sources_not_ready"].([]any)[0].(map[string]any)["action"] = "remediate"
		}},
		{"an unknown default", func(d map[string]any) { region(d, 0, 0)["defaults"].(map[string]any)["http_tokens"] = "v2" }},
		{"a negative count", func(d map[string]any) { region(d, 0, 0)["more_open_instances"] = -1 }},
		{"a document missing", func(d map[string]any) { delete(d["documents"].(map[string]any), "scp_refuse_imdsv1_credentials") }},
		{"an Allow statement", func(d map[string]any) { statement(d, 0)["Effect"] = "Allow" }},
		{"a statement without condition", func(d map[string]any) { delete(statement(d, 0), "Condition") }},
		{"an old policy version", func(d map[string]any) {
			d["documents"].(map[string]any)["scp_require_imdsv2"].(map[string]any)["Version"] = "2008-10-17"
		}},
		{"defaults not required", func(d map[string]any) { imds(d)["http_tokens"] = map[string]any{"@@assign": "optional"} }},
		{"hop limit as a string", func(d map[string]any) { imds(d)["http_put_response_hop_limit"] = map[string]any{"@@assign": "2"} }},
		{"an undocumented attribute", func(d map[string]any) { imds(d)["http_tokens_enforcement"] = map[string]any{"@@assign": "enabled"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc map[string]any
			if err := json.Unmarshal([]byte(valid), &doc); err != nil {
				t.Fatal(err)
			}
			tt.change(doc)
			b, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			if err := schematest.Validate("guardrails.schema.json", b); err == nil {
				t.Errorf("the schema accepts a report with %s", tt.name)
			}
		})
	}
}

// TestWriteRefuses: a report that cannot be rendered whole is not rendered at all.
func TestWriteRefuses(t *testing.T) {
	noDocuments := fixtureReport(t)
	noDocuments.Documents.DeclarativePolicyEC2 = nil
	noVersion := fixtureReport(t)
	noVersion.Version = ""
	tests := []struct {
		name  string
		r     Report
		write func(*bytes.Buffer, Report) error
		want  string
	}{
		{"text without documents", noDocuments, func(b *bytes.Buffer, r Report) error { return WriteText(b, r) }, "lacks its policy documents"},
		{"json without documents", noDocuments, func(b *bytes.Buffer, r Report) error { return WriteJSON(b, r) }, "lacks its policy documents"},
		{"json without version", noVersion, func(b *bytes.Buffer, r Report) error { return WriteJSON(b, r) }, "names no imdsguard version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			err := tt.write(&b, tt.r)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
			if b.Len() > 0 {
				t.Errorf("wrote %d bytes though rendering failed", b.Len())
			}
		})
	}
	// A text report without a version still renders: the version is for the record.
	if out := writeText(t, noVersion); !strings.Contains(out, "(imdsguard -)") {
		t.Errorf("text without version:\n%s", out[:min(len(out), 200)])
	}
}

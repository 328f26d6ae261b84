package message

import (
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/policy"
)

func sourceFix(t *testing.T) SourceVerdict {
	t.Helper()
	src := policy.Source{Kind: policy.SourceLaunchTemplate, ID: "lt-0123456789abcdef0", Name: "web", Groups: []string{"web-asg"}}
	v := policy.SourceVerdict{Action: policy.SourceFix, Reasons: []policy.Reason{{Code: policy.ReasonSourceIMDSv1Unused, Detail: "none uses IMDSv1"}},
		Target: &policy.MetadataOptions{HTTPTokens: policy.TokensRequired, HopLimit: 2}}
	m, err := NewSource("123456789012", "us-east-1", src, []string{"i-0123456789abcdef0"}, v, 3, 1, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSourceVerdictRoundTrip(t *testing.T) {
	m := sourceFix(t)
	body, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if SchemaOf(string(body)) != SourceSchema {
		t.Fatalf("SchemaOf = %q", SchemaOf(string(body)))
	}
	got, err := ParseSource(string(body))
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject() != "lt-0123456789abcdef0" || got.SeenVersion != 3 || got.Wave != 1 || got.Target.HopLimit != 2 || got.InstanceCount != 1 {
		t.Errorf("round trip: %+v", got)
	}
	if _, err := Parse(string(body)); err == nil {
		t.Error("a source verdict parses as a verdict on an instance")
	}
}

func TestParseSourceRefuses(t *testing.T) {
	good, err := sourceFix(t).Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"another schema", `"imdsguard.source-verdict/v1"`, `"imdsguard.verdict/v2"`, "schema"},
		{"a launch configuration fixed", `"kind":"launch-template"`, `"kind":"launch-configuration"`, "cannot be fixed"},
		{"a fix without tokens required", `"http_tokens":"required"`, `"http_tokens":"optional"`, "http_tokens required"},
		{"a fix without its version", `"seen_version":3`, `"seen_version":0`, "default version"},
		{"an id that is not a template's", `"source_id":"lt-0123456789abcdef0"`, `"source_id":"i-0123456789abcdef0"`, "launch template id"},
		{"an unknown field", `"wave":1`, `"wave":1,"force":true`, "unknown field"},
		{"a field spelt otherwise", `"action":"fix"`, `"Action":"fix"`, "spelt"},
		{"an action it cannot take", `"action":"fix"`, `"action":"remediate"`, "fix or ticket"},
		{"a bad instance", `"i-0123456789abcdef0"`, `"i-nope"`, "not an instance id"},
	} {
		body := strings.Replace(string(good), tc.from, tc.to, 1)
		if body == string(good) {
			t.Fatalf("%s: %s not in %s", tc.name, tc.from, good)
		}
		if _, err := ParseSource(body); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ParseSource = %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	if _, err := ParseSource(strings.Repeat(" ", MaxBodyBytes+1)); err == nil {
		t.Error("an oversized body parsed")
	}
}

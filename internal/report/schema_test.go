package report

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport/schematest"
)

// TestPlanSchemaRejects: docs/schema/plan.schema.json accepts the plans this package
// writes (TestJSONDocument) and rejects what imdsguard.plan/v1 rules out.
func TestPlanSchemaRejects(t *testing.T) {
	valid := render(t, failedScopePlan(), FormatJSON)
	schematest.ValidateAgainstSchema(t, "plan.schema.json", []byte(valid))

	instance := func(doc map[string]any, id string) map[string]any {
		for _, raw := range doc["instances"].([]any) {
			if in := raw.(map[string]any); in["instance_id"] == id {
				return in
			}
		}
		t.Fatalf("no instance %s", id)
		return nil
	}
	tests := []struct {
		name   string
		change func(doc map[string]any)
	}{
		{"no version", func(d map[string]any) { delete(d, "version") }},
		{"empty version", func(d map[string]any) { d["version"] = "" }},
		{"no scopes", func(d map[string]any) { delete(d, "scopes") }},
		{"an undocumented key", func(d map[string]any) { d["extra"] = 1 }},
		{"a setting missing", func(d map[string]any) { delete(d["settings"].(map[string]any), "container_tags") }},
		{"an undocumented setting", func(d map[string]any) { d["settings"].(map[string]any)["retries"] = 3 }},
		{"lookback as a string", func(d map[string]any) { d["settings"].(map[string]any)["lookback_hours"] = "336h" }},
		{"staleness as a number", func(d map[string]any) { d["settings"].(map[string]any)["max_metric_staleness"] = 3 }},
		{"failed scope without error", func(d map[string]any) { delete(d["scopes"].([]any)[1].(map[string]any), "error") }},
		{"ok scope with an error", func(d map[string]any) { d["scopes"].([]any)[0].(map[string]any)["error"] = "x" }},
		{"scope status unknown", func(d map[string]any) { d["scopes"].([]any)[0].(map[string]any)["status"] = "partial" }},
		{"scope account empty", func(d map[string]any) { d["scopes"].([]any)[0].(map[string]any)["account_id"] = "" }},
		{"cloudtrail not checked as an object", func(d map[string]any) {
			instance(d, "i-00000000000000004")["evidence"].(map[string]any)["cloudtrail"] = map[string]any{
				"checked": false, "v1_deliveries": 0, "v2_deliveries": 0, "user_agents": []any{}, "source_ips": []any{}}
		}},
		{"target on a ticket", func(d map[string]any) {
			instance(d, "i-00000000000000003")["target"] = map[string]any{"http_tokens": "required", "hop_limit": 1, "http_endpoint": "enabled"}
		}},
		{"remediate without target", func(d map[string]any) { delete(instance(d, "i-00000000000000001"), "target") }},
		{"malformed instance id", func(d map[string]any) { instance(d, "i-00000000000000001")["instance_id"] = "i-123" }},
		{"unknown action", func(d map[string]any) { instance(d, "i-00000000000000001")["action"] = "fix" }},
		{"negative count", func(d map[string]any) { d["summary"].(map[string]any)["skip"] = -1 }},
		{"generated_at not a time", func(d map[string]any) { d["generated_at"] = "yesterday" }},
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
			if err := schematest.Validate("plan.schema.json", b); err == nil {
				t.Errorf("the schema accepts a plan with %s", tt.name)
			}
		})
	}
}

// TestPlanSchemaReadsEverySetting: a setting the plan echoes must be described in the
// schema (which refuses undocumented keys); this names the one that is not.
func TestPlanSchemaReadsEverySetting(t *testing.T) {
	out := render(t, New("test", now, policy.DefaultSettings()), FormatJSON)
	if err := schematest.Validate("plan.schema.json", []byte(out)); err != nil {
		t.Fatalf("%v\nA new setting must be added to docs/schema/plan.schema.json ($defs/settings).", err)
	}
	if !strings.Contains(out, `"container_tags"`) {
		t.Errorf("settings lack container_tags:\n%s", out)
	}
}

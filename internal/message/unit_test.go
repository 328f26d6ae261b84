package message_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/testsupport/schematest"
)

func TestUnitRoundTripAndContinuations(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	u, err := message.NewUnit("222222222222", "eu-west-1", "sweep", "", true, nil, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	body, err := u.Encode()
	if err != nil {
		t.Fatal(err)
	}
	schematest.ValidateAgainstSchema(t, "unit.schema.json", body)
	back, err := message.ParseUnit(string(body))
	if err != nil {
		t.Fatal(err)
	}
	if back.UnitID != u.UnitID || !back.Sweep || back.GroupID() != "222222222222:eu-west-1" || back.DeduplicationID() != u.UnitID+".0" {
		t.Errorf("round trip gave %+v", back)
	}
	left := make([]string, message.MaxUnitInstances+3)
	for i := range left {
		left[i] = fmt.Sprintf("i-%017x", i)
	}
	next := back.Continuations(left)
	if len(next) != 2 || len(next[0].Instances) != message.MaxUnitInstances || len(next[1].Instances) != 3 {
		t.Fatalf("continuations %d, want 2 of %d and 3 instances", len(next), message.MaxUnitInstances)
	}
	for i, c := range next {
		if c.Sweep || c.Part != i+1 || c.UnitID != u.UnitID || c.DeduplicationID() == u.DeduplicationID() {
			t.Errorf("continuation %d: %+v", i, c)
		}
		c.TrailQuery = &message.UnitTrailQuery{ID: "0b7c8e2a-5f4d-4c1e-9a3b-2d6f8e1c4a7b", Start: now.Add(-14 * 24 * time.Hour), End: now}
		body, err := c.Encode()
		if err != nil {
			t.Fatalf("continuation %d does not encode: %v", i, err)
		}
		schematest.ValidateAgainstSchema(t, "unit.schema.json", body)
	}
	if again := next[1].Continuations(left[:1]); again[0].Part != 3 {
		t.Errorf("a continuation's continuation is part %d, want 3", again[0].Part)
	}
}

func TestParseUnitRefuses(t *testing.T) {
	valid := `{"schema":"imdsguard.unit/v1","unit_id":"0190a1b2c3d4e-0123456789abcdef","created_at":"2026-12-01T10:00:00Z",` +
		`"account_id":"222222222222","region":"eu-west-1","trigger":"sweep","sweep":false,"instances":["i-0123456789abcdef0"],"sources":null,"part":0}`
	if _, err := message.ParseUnit(valid); err != nil {
		t.Fatalf("the valid unit was refused: %v", err)
	}
	tests := []struct{ name, body, want string }{
		{"misspelt field", strings.Replace(valid, `"sweep":false`, `"Sweep":true`, 1), "not spelt"},
		{"unknown field", strings.Replace(valid, `"part":0`, `"part":0,"role":"admin"`, 1), "unknown field"},
		{"bad account", strings.Replace(valid, "222222222222", "2222", 1), "account_id"},
		{"asks for nothing", strings.Replace(valid, `["i-0123456789abcdef0"]`, `[]`, 1), "asks for nothing"},
		{"sweep naming instances", strings.Replace(valid, `"sweep":false`, `"sweep":true`, 1), "names none"},
		{"bad instance", strings.Replace(valid, "i-0123456789abcdef0", "i-nope", 1), `"i-nope"`},
		{"bad source", strings.Replace(valid, `"sources":null`, `"sources":[{"kind":"ami","id":"ami-1"}]`, 1), `"ami"`},
		{"negative part", strings.Replace(valid, `"part":0`, `"part":-1`, 1), "part -1"},
		{"other schema", strings.Replace(valid, "imdsguard.unit/v1", "imdsguard.verdict/v2", 1), "schema"},
		{"trailing data", valid + `{}`, "more after"},
		{"no trigger", strings.Replace(valid, `"trigger":"sweep"`, `"trigger":""`, 1), "trigger"},
		{"bad trail query", strings.Replace(valid, `"part":0`, `"part":0,"trail_query":{"id":"x","start":"2026-11-17T10:00:00Z","end":"2026-12-01T10:00:00Z"}`, 1), "trail_query id"},
		{"trail query over 90 days", strings.Replace(valid, `"part":0`, `"part":0,"trail_query":{"id":"0b7c8e2a-5f4d-4c1e-9a3b-2d6f8e1c4a7b","start":"2026-01-01T00:00:00Z","end":"2026-12-01T10:00:00Z"}`, 1), "at most 90 days"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := message.ParseUnit(tc.body); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

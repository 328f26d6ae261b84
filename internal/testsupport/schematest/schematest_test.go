package schematest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEverySchemaCompiles: each docs/schema/*.schema.json is a valid draft 2020-12
// schema (checked against the meta-schema when compiled).
func TestEverySchemaCompiles(t *testing.T) {
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("schemas in %s: %v, want at least the plan's and the audit record's", dir, files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), `"$schema": "https://json-schema.org/draft/2020-12/schema"`) {
			t.Errorf("%s does not declare draft 2020-12", f)
		}
		if _, err := compiled(filepath.Base(f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestValidateFails(t *testing.T) {
	for name, tc := range map[string]struct{ schema, doc, want string }{
		"not JSON":       {"plan.schema.json", `{"schema":`, "not JSON"},
		"not conforming": {"plan.schema.json", `{"schema": "imdsguard.plan/v2"}`, "does not conform"},
		"no such schema": {"nothing.schema.json", `{}`, "nothing.schema.json"},
	} {
		t.Run(name, func(t *testing.T) {
			err := Validate(tc.schema, []byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate(%s, %s) = %v, want an error with %q", tc.schema, tc.doc, err, tc.want)
			}
		})
	}
}

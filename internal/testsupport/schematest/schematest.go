// Package schematest checks JSON documents against the project's JSON Schemas
// (docs/schema/*.schema.json, draft 2020-12), for tests only.
//
// It is a package of its own, not a file of internal/testsupport, because the CLI links
// internal/testsupport (through the demo): the validator must stay out of production
// binaries.
//
// To cover a new document kind, add docs/schema/<kind>.schema.json and call
// ValidateAgainstSchema(t, "<kind>.schema.json", output) from the test that produced it.
package schematest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// ValidateAgainstSchema fails the test unless doc is valid JSON that conforms to
// docs/schema/<schemaFile>, naming every violation.
func ValidateAgainstSchema(t testing.TB, schemaFile string, doc []byte) {
	t.Helper()
	if err := Validate(schemaFile, doc); err != nil {
		t.Fatalf("%v\ndocument:\n%s", err, doc)
	}
}

// Validate checks doc against docs/schema/<schemaFile>. The schema itself is checked
// against its meta-schema, and "format" (date-time, ...) is asserted, not just noted.
func Validate(schemaFile string, doc []byte) error {
	sch, err := compiled(schemaFile)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := sch.Validate(inst); err != nil {
		var verr *jsonschema.ValidationError
		if errors.As(err, &verr) {
			return fmt.Errorf("does not conform to %s:\n%#v", schemaFile, verr)
		}
		return fmt.Errorf("does not conform to %s: %w", schemaFile, err)
	}
	return nil
}

var cache struct {
	sync.Mutex
	schemas map[string]*jsonschema.Schema
}

func compiled(schemaFile string) (*jsonschema.Schema, error) {
	cache.Lock()
	defer cache.Unlock()
	if sch, ok := cache.schemas[schemaFile]; ok {
		return sch, nil
	}
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	// Every schema is known by its $id, so that one may refer to another
	// ("$ref": "status.schema.json") without a fetch.
	files, err := filepath.Glob(filepath.Join(dir, "*.schema.json"))
	if err != nil {
		return nil, err
	}
	target := ""
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", filepath.Base(f), err)
		}
		id, _ := doc.(map[string]any)["$id"].(string)
		if id == "" {
			return nil, fmt.Errorf("schema %s has no $id", filepath.Base(f))
		}
		if err := c.AddResource(id, doc); err != nil {
			return nil, fmt.Errorf("schema %s: %w", filepath.Base(f), err)
		}
		if filepath.Base(f) == schemaFile {
			target = id
		}
	}
	if target == "" {
		return nil, fmt.Errorf("no schema %s in %s", schemaFile, dir)
	}
	sch, err := c.Compile(target)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", schemaFile, err)
	}
	if cache.schemas == nil {
		cache.schemas = map[string]*jsonschema.Schema{}
	}
	cache.schemas[schemaFile] = sch
	return sch, nil
}

// Dir is the absolute path of docs/schema in the module the test runs in, found by
// walking up from the working directory (a test's is its package directory) to go.mod.
func Dir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fi, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !fi.IsDir() {
			return filepath.Join(dir, "docs", "schema"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("schematest: no go.mod at or above the working directory")
		}
		dir = parent
	}
}

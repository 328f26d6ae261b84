package trigger

// The wording of JSON problems: errors name the input's fields and say what kind of
// value was found and what was expected, in words ("a list", not "[]string"), and show
// outside values only cut short and quoted when they could garble a log line.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// strictUnmarshal decodes one JSON value into dst, refusing unknown fields: sweeps and
// direct invokes are written by people, and a misspelt field must not be ignored.
func strictUnmarshal(raw []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(dst)
}

// unmarshalObject decodes raw, which must be a JSON object, into dst; errors name field.
func unmarshalObject(raw json.RawMessage, dst any, field string) error {
	if k := jsonKind(raw); k != "an object" {
		return fmt.Errorf("%s is %s, not an object", field, k)
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return errors.New(decodeProblem(field, err))
	}
	return nil
}

// decodeProblem words a decoding error in terms of the input's fields.
func decodeProblem(field string, err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		name := field
		if te.Field != "" {
			if name != "" {
				name += "."
			}
			name += te.Field
		}
		if name == "" {
			name = "the payload"
		}
		return fmt.Sprintf("%s is %s, not %s", name, article(te.Value), goKind(te.Type))
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if field == "" {
		return msg
	}
	return field + ": " + msg
}

// jsonKind names the kind of a JSON value.
func jsonKind(raw []byte) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "empty"
	}
	switch t[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func isNull(raw []byte) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// article turns encoding/json's value description ("string", "number 5", "array") into
// words.
func article(v string) string {
	switch {
	case v == "object":
		return "an object"
	case v == "array":
		return "a list"
	case v == "bool":
		return "a boolean"
	case v == "string":
		return "a string"
	case strings.HasPrefix(v, "number"):
		return "a number"
	}
	return v
}

func goKind(t reflect.Type) string {
	if t == nil {
		return "what was expected"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

// keyList lists an object's keys for an error message.
func keyList(top map[string]json.RawMessage) string {
	if len(top) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, fmt.Sprintf("%q", truncate(k, 40)))
	}
	sort.Strings(keys)
	if len(keys) > 10 {
		keys = append(keys[:10], fmt.Sprintf("and %d more", len(keys)-10))
	}
	return strings.Join(keys, ", ")
}

// show makes a value from the input fit for a message: at most 120 characters, quoted
// when it holds control characters or is not UTF-8.
func show(s string) string {
	s = truncate(s, 120)
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return strconv.Quote(s)
	}
	return s
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "..."
}

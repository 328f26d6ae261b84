package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Format is an output format of the plan.
type Format string

// The plan's output formats.
const (
	// FormatTable is an aligned text table for people; the default.
	FormatTable Format = "table"
	// FormatJSON is the imdsguard.plan/v1 document.
	FormatJSON Format = "json"
	// FormatCSV is one row per instance, for spreadsheets.
	FormatCSV Format = "csv"
	// FormatSourcesCSV is one row per source, for spreadsheets.
	FormatSourcesCSV Format = "csv-sources"
	// FormatMarkdown is a GitHub-flavoured Markdown report, for tickets and pull requests.
	FormatMarkdown Format = "markdown"
)

// Formats lists every format, the default first.
var Formats = []Format{FormatTable, FormatJSON, FormatCSV, FormatSourcesCSV, FormatMarkdown}

// ParseFormat reads a format name (case and surrounding spaces ignored). The error names
// the value given and the allowed ones.
func ParseFormat(s string) (Format, error) {
	want := Format(strings.ToLower(strings.TrimSpace(s)))
	for _, f := range Formats {
		if f == want {
			return f, nil
		}
	}
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return "", fmt.Errorf("invalid format %q: allowed: %s", s, strings.Join(names, ", "))
}

// Write renders p in format f to w. The instances are listed sorted by account, region
// and instance id, and the summary is recounted from them; p itself is not changed.
// Nothing is written when rendering fails.
func Write(w io.Writer, p *Plan, f Format) error {
	if p == nil {
		return errors.New("report: no plan to write")
	}
	q := normalized(p)
	var buf bytes.Buffer
	var err error
	switch f {
	case FormatJSON:
		err = writeJSON(&buf, q)
	case FormatTable:
		err = writeTable(&buf, q)
	case FormatCSV:
		err = writeCSV(&buf, q)
	case FormatSourcesCSV:
		err = writeSourcesCSV(&buf, q)
	case FormatMarkdown:
		err = writeMarkdown(&buf, q)
	default:
		_, err = ParseFormat(string(f))
	}
	if err != nil {
		return err
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// writeJSON writes the document indented by two spaces with a trailing newline. HTML
// characters are not escaped: user agents and names stay readable.
func writeJSON(w io.Writer, p *Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(p)
}

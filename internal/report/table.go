package report

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteTableSorted renders p as the table format does, with the instances (and the Why
// lines) in the order cmp gives instead of by account, region and instance id: the demo
// lists them by name, as it lists the pipeline's outcomes. p is not changed; nothing is
// written when rendering fails.
func WriteTableSorted(w io.Writer, p *Plan, cmp func(a, b Instance) int) error {
	q := normalized(p)
	slices.SortStableFunc(q.Instances, cmp)
	var buf bytes.Buffer
	if err := writeTable(&buf, q); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// writeTable renders the plan for people: a header, one aligned row per instance, the
// summary and API calls, and why each ticket and defer was decided. The ACCOUNT and
// REGION columns appear only when the plan spans several accounts or regions; otherwise
// the single account and region are named under the header.
func writeTable(w io.Writer, p *Plan) error {
	fmt.Fprintln(w, headerLine(p))
	if len(p.Instances) == 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, emptyLine(p))
		fmt.Fprintln(w)
		fmt.Fprintln(w, apiCallsLine(p.APICalls))
		if err := writeTableSources(w, p, "", ""); err != nil {
			return err
		}
		writeTableFailures(w, p)
		return nil
	}
	account, region := scope(p)
	if line := scopeLine(account, region); line != "" {
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w)

	var header []string
	if account == "" {
		header = append(header, "ACCOUNT")
	}
	if region == "" {
		header = append(header, "REGION")
	}
	header = append(header, "INSTANCE", "NAME", "STATE", "ACTION", "REASON", "EVIDENCE")
	if hasOrigins(p) {
		header = append(header, "SOURCE")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, in := range p.Instances {
		row := rowCells(p, in, account, region, truncate(in.Name, maxNameRunes))
		for i := range row {
			row[i] = clean(row[i])
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, summaryLine(p.Summary))
	fmt.Fprintln(w, apiCallsLine(p.APICalls))

	if ws := whys(p); len(ws) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Why:")
		for _, y := range ws {
			fmt.Fprintf(w, "  %s %s: %s\n", clean(instanceLabel(y.in)), y.in.Action, clean(reasonLine(y.primary)))
			if y.theft != nil {
				fmt.Fprintf(w, "    WARNING %s\n", clean(reasonLine(*y.theft)))
			}
		}
	}
	if err := writeTableSources(w, p, account, region); err != nil {
		return err
	}
	writeTableFailures(w, p)
	return nil
}

// writeTableFailures ends the table with the scopes that failed, where a terminal
// leaves them in sight.
func writeTableFailures(w io.Writer, p *Plan) {
	failed := p.Failed()
	if len(failed) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "FAILED: %s:\n", failedLine(p))
	for _, s := range failed {
		fmt.Fprintf(w, "  %s: %s\n", clean(s.Label()), clean(s.Error))
	}
}

// instanceLabel is "i-0abc (web-1)", or the id alone when the instance has no name.
func instanceLabel(in Instance) string {
	if in.Name == "" {
		return orDash(in.InstanceID)
	}
	return fmt.Sprintf("%s (%s)", orDash(in.InstanceID), truncate(in.Name, maxNameRunes))
}

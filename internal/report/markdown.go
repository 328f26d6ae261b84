package report

import (
	"fmt"
	"io"
	"strings"
)

// writeMarkdown renders the plan as GitHub-flavoured Markdown: heading, settings,
// summary, a table with the same columns as the text table, and the "Why" list.
func writeMarkdown(w io.Writer, p *Plan) error {
	fmt.Fprintln(w, "# imdsguard plan")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Generated %s; lookback %dh, min observed %dh, mode `%s`.\n",
		p.GeneratedAt.UTC().Format("2006-01-02T15:04:05Z"), p.Settings.lookbackHours(), p.Settings.MinObservedHours, mdText(string(p.Settings.Mode)))
	fmt.Fprintln(w)
	writeMarkdownFailures(w, p)
	if len(p.Instances) == 0 {
		line := emptyLine(p)
		fmt.Fprintf(w, "**%s.**\n", strings.ToUpper(line[:1])+line[1:])
		fmt.Fprintln(w)
		fmt.Fprintln(w, apiCallsLine(p.APICalls))
		writeMarkdownSources(w, p, "", "")
		return nil
	}
	account, region := scope(p)
	if line := scopeLine(account, region); line != "" {
		fmt.Fprintf(w, "Scope: %s.\n\n", mdText(line))
	}
	fmt.Fprintf(w, "**%s**\n\n", summaryLine(p.Summary))

	var header []string
	if account == "" {
		header = append(header, "Account")
	}
	if region == "" {
		header = append(header, "Region")
	}
	header = append(header, "Instance", "Name", "State", "Action", "Reason", "Evidence")
	if hasOrigins(p) {
		header = append(header, "Source")
	}
	fmt.Fprintln(w, "| "+strings.Join(header, " | ")+" |")
	fmt.Fprintln(w, strings.Repeat("|---", len(header))+"|")
	for _, in := range p.Instances {
		row := rowCells(p, in, account, region, in.Name)
		for i := range row {
			row[i] = mdCell(row[i])
		}
		fmt.Fprintln(w, "| "+strings.Join(row, " | ")+" |")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, apiCallsLine(p.APICalls))

	if ws := whys(p); len(ws) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "## Why")
		fmt.Fprintln(w)
		for _, y := range ws {
			fmt.Fprintf(w, "- %s **%s**: %s\n", mdText(instanceLabel(y.in)), y.in.Action, mdText(reasonLine(y.primary)))
			if y.theft != nil {
				fmt.Fprintf(w, "  - **Warning** %s\n", mdText(reasonLine(*y.theft)))
			}
		}
	}
	writeMarkdownSources(w, p, account, region)
	return nil
}

// writeMarkdownFailures puts the scopes that failed first, where a reader starts.
func writeMarkdownFailures(w io.Writer, p *Plan) {
	failed := p.Failed()
	if len(failed) == 0 {
		return
	}
	fmt.Fprintf(w, "**Warning: %s:**\n\n", failedLine(p))
	for _, s := range failed {
		fmt.Fprintf(w, "- %s: %s\n", mdText(s.Label()), mdText(s.Error))
	}
	fmt.Fprintln(w)
}

// mdText keeps text on one line.
func mdText(s string) string {
	return strings.TrimSpace(clean(s))
}

// mdCell makes text safe inside a table cell: one line, backslashes and pipes escaped
// (a pipe would otherwise end the cell).
func mdCell(s string) string {
	s = mdText(s)
	s = strings.ReplaceAll(s, `\`, `\\`)
	return strings.ReplaceAll(s, "|", `\|`)
}

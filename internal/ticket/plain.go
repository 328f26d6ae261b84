package ticket

import "strings"

// PlainText renders the ticket without markup: for SNS e-mail and for Jira Data Center
// descriptions (noformat sets it in a {noformat} block there). Every text is one line
// (safeLine), so no outside value can start a line of its own.
func (c Content) PlainText() string {
	var b strings.Builder
	b.WriteString(safeLine(c.Title) + "\n")
	for _, s := range c.Sections {
		b.WriteString("\n")
		heading := safeLine(s.Heading)
		switch {
		case s.Warning:
			b.WriteString("!! " + strings.ToUpper(heading) + " !!\n")
		case heading != "":
			b.WriteString("== " + heading + " ==\n")
		}
		for i, bl := range s.Blocks {
			if i > 0 && len(bl.Spans) > 0 {
				b.WriteString("\n")
			}
			if len(bl.Spans) > 0 {
				b.WriteString(plainSpans(bl.Spans) + "\n")
			}
			for _, it := range bl.Items {
				b.WriteString("- " + plainSpans(it.Spans) + "\n")
				for _, child := range it.Children {
					b.WriteString("    - " + plainSpans(child.Spans) + "\n")
				}
			}
		}
	}
	b.WriteString("\n" + plainSpans(c.Footer) + "\n")
	return b.String()
}

func plainSpans(spans []Span) string {
	var b strings.Builder
	for _, s := range spans {
		b.WriteString(safeLine(s.Text))
	}
	return b.String()
}

// plainWithin renders PlainText in at most maxBytes bytes: the full text when it fits,
// else the compact ticket (evidence last), cut at a line and saying so, with the footer.
func plainWithin(c Content, maxBytes int) string {
	if t := c.PlainText(); len(t) <= maxBytes {
		return t
	}
	t := c.compact().PlainText()
	if len(t) <= maxBytes {
		return t
	}
	footer := "\n" + plainSpans(c.Footer) + "\n"
	const notice = "\nShortened: the rest of this ticket did not fit.\n"
	body := strings.TrimSuffix(t, footer)
	kept := strings.TrimRight(truncateLines(body, max(0, maxBytes-len(footer)-len(notice))), "\n")
	for {
		// A heading whose section was cut away says nothing.
		last := kept[strings.LastIndexByte(kept, '\n')+1:]
		if !(strings.HasPrefix(last, "== ") || strings.HasPrefix(last, "!! ")) {
			break
		}
		kept = strings.TrimRight(strings.TrimSuffix(kept, last), "\n")
	}
	return truncateBytes(kept+"\n"+notice+footer, maxBytes)
}

// adfWithin renders ADF whose JSON takes at most maxBytes bytes: the full document when

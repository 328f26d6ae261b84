package ticket

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Markdown renders the ticket as CommonMark/GitHub-flavoured Markdown. Every line's
// structure (heading, list item, quote) is the renderer's own; text is escaped, and
// literal values and anything an autolinker could take for a link are code spans
// (mdWriter), so nothing a caller controls (user agents, tag values, reason details)
// can become HTML, a link, an image or formatting, or start a line.
func (c Content) Markdown() string {
	return c.markdown(true) + c.markdownFooter()
}

// MarkdownWithin renders Markdown of at most maxBytes bytes, for fields with a limit
// (an OpsItem description holds 2048 characters). When the full rendering is too long
// it leaves out the title (the ticket system shows it), puts the evidence last, drops
// the sub-bullets outside the software section, and finally cuts whole lines from the
// end, keeping the footer and saying that it shortened the ticket. Lines are cut whole,
// so no code span or escape is ever split.
func (c Content) MarkdownWithin(maxBytes int) string {
	if md := c.Markdown(); len(md) <= maxBytes {
		return md
	}
	footer := c.markdownFooter()
	body := c.compact().markdown(false)
	if len(body)+len(footer) <= maxBytes {
		return body + footer
	}
	const notice = "\n**Shortened:** the rest of this ticket did not fit.\n"
	budget := maxBytes - len(footer) - len(notice)
	cut := strings.LastIndexByte(body[:max(0, min(len(body), budget))], '\n')
	if cut < 0 {
		// Not even one line fits: the footer alone, cut at a line.
		return truncateLines(footer, maxBytes)
	}
	kept := strings.TrimRight(body[:cut+1], "\n")
	for {
		// A heading whose section was cut away says nothing.
		last := kept[strings.LastIndexByte(kept, '\n')+1:]
		if !strings.HasPrefix(last, "## ") {
			break
		}
		kept = strings.TrimRight(strings.TrimSuffix(kept, last), "\n")
	}
	return kept + "\n" + notice + footer
}

func (c Content) markdownFooter() string {
	return "\n---\n\n" + mdSpans(c.Footer) + "\n"
}

func (c Content) markdown(withTitle bool) string {
	var b strings.Builder
	if withTitle {
		b.WriteString("# " + mdText(c.Title) + "\n")
	}
	for i, s := range c.Sections {
		if withTitle || i > 0 {
			b.WriteString("\n")
		}
		if s.Heading != "" {
			b.WriteString("## " + mdText(s.Heading) + "\n\n")
		}
		var body strings.Builder
		for i, bl := range s.Blocks {
			if i > 0 {
				body.WriteString("\n")
			}
			writeMarkdownBlock(&body, bl)
		}
		if !s.Warning {
			b.WriteString(body.String())
			continue
		}
		for _, line := range strings.SplitAfter(strings.TrimSuffix(body.String(), "\n"), "\n") {
			if strings.TrimSpace(line) == "" {
				b.WriteString(">\n")
			} else {
				b.WriteString("> " + strings.TrimSuffix(line, "\n") + "\n")
			}
		}
	}
	return b.String()
}

func writeMarkdownBlock(b *strings.Builder, bl Block) {
	if len(bl.Spans) > 0 {
		b.WriteString(mdSpans(bl.Spans) + "\n")
	}
	for _, it := range bl.Items {
		b.WriteString("- " + mdSpans(it.Spans) + "\n")
		for _, child := range it.Children {
			b.WriteString("  - " + mdSpans(child.Spans) + "\n")
		}
	}
}

// mdSpans renders spans as one line of Markdown inline content: Plain and Strong text
// through mdWriter, Code as code spans.
func mdSpans(spans []Span) string {
	var w mdWriter
	for _, s := range coalesce(spans) {
		text := safeLine(s.Text)
		switch s.Style {
		case Code:
			w.code(text)
		case Strong:
			// Emphasis delimiters must touch the text: keep surrounding spaces outside.
			inner := strings.Trim(text, " ")
			if inner == "" {
				w.text(text)
				continue
			}
			lead := text[:len(text)-len(strings.TrimLeft(text, " "))]
			w.text(lead)
			w.delimiter("**")
			w.text(inner)
			w.delimiter("**")
			w.text(text[len(lead)+len(inner):])
		default:
			w.text(text)
		}
	}
	return w.String()
}

// mdText is s as Markdown text: mdSpans of one plain span.
func mdText(s string) string {
	return mdSpans([]Span{{s, Plain}})
}

// coalesce joins neighbouring spans of one style, so that a word split across two
// spans is judged whole by mdWriter and two strong spans do not touch as "****".
func coalesce(spans []Span) []Span {
	var out []Span
	for _, s := range spans {
		if s.Text == "" {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Style == s.Style {
			out[n-1].Text += s.Text
			continue
		}
		out = append(out, s)
	}
	return out
}

// Markdown characters escaped wherever they are, and those escaped only where they
// would start a block (a list item, a definition): at the start of the line.
const (
	mdEscaped        = "\\`*_[]<>|~&#!$^{}=+"
	mdEscapedAtStart = "-:"
)

// mdWriter builds one line of Markdown inline content in which text stays text:
//
//   - Markdown punctuation is backslash-escaped, and so is what would start a block at
//     the start of the line ("-", ":", "1." and "1)"). CommonMark lets any ASCII
//     punctuation be escaped, so an escape is never wrong.
//   - A word that an autolinker could take for a link (linkable), or that holds a
//     backtick, is set as a code span instead. Escapes cannot stop autolinks:
//     cmark-gfm (GitHub) joins the text around escapes before it looks for e-mail
//     addresses, and renderers that link in a pass over the parsed text do the same
//     for URLs. A code span is literal in every CommonMark renderer and no autolinker
//     looks inside one.
//   - Neighbouring code spans are merged: written side by side, their fences would touch
//     and read as one longer fence.
//   - Runs of spaces collapse to one and leading spaces are dropped: HTML shows them as
//     one anyway, and four at the start of a line would start a code block.
type mdWriter struct {
	b strings.Builder
	// pendingCode is the literal text of the code span being gathered.
	pendingCode strings.Builder
	// started: something is written, the start-of-line rules are done.
	started bool
	// space: a space is due before what comes next.
	space bool
}

// text writes s, already through safeLine, as text.
func (w *mdWriter) text(s string) {
	for i, word := range strings.Split(s, " ") {
		if i > 0 && w.started {
			w.space = true
		}
		if word != "" {
			w.word(word)
		}
	}
}

func (w *mdWriter) word(word string) {
	if strings.ContainsRune(word, '`') {
		w.code(word)
		return
	}
	if !linkable(word) {
		w.escaped(word)
		return
	}
	// The punctuation around a link-like word stays text, "(see www.example.com).",
	// unless the word is link-like only with it: GFM links "WWW." as "WWW".
	rest := strings.TrimLeftFunc(word, isWordEdge)
	core := strings.TrimRightFunc(rest, isWordEdge)
	if !linkable(core) {
		w.code(word)
		return
	}
	w.escaped(word[:len(word)-len(rest)])
	w.code(core)
	w.escaped(rest[len(core):])
}

// code adds s, already through safeLine, to the code span being gathered.
func (w *mdWriter) code(s string) {
	if w.space {
		w.flushCode()
		w.b.WriteByte(' ')
		w.space = false
	}
	w.pendingCode.WriteString(s)
	w.started = true
}

// delimiter writes Markdown syntax of the renderer's own (the emphasis "**").
func (w *mdWriter) delimiter(d string) {
	w.separate()
	w.b.WriteString(d)
	w.started = true
}

func (w *mdWriter) escaped(s string) {
	if s == "" {
		return
	}
	w.separate()
	atStart := !w.started
	w.started = true
	digits := atStart
	for i, r := range s {
		switch {
		case strings.ContainsRune(mdEscaped, r),
			atStart && i == 0 && strings.ContainsRune(mdEscapedAtStart, r),
			digits && i > 0 && (r == '.' || r == ')'): // "1." or "1)" would start an ordered list
			w.b.WriteByte('\\')
		}
		if r < '0' || r > '9' {
			digits = false
		}
		w.b.WriteRune(r)
	}
}

// separate ends the code span being gathered and writes the space due.
func (w *mdWriter) separate() {
	w.flushCode()
	if w.space {
		w.b.WriteByte(' ')
		w.space = false
	}
}

func (w *mdWriter) flushCode() {
	if w.pendingCode.Len() > 0 {
		w.b.WriteString(mdCode(w.pendingCode.String()))
		w.pendingCode.Reset()
	}
}

func (w *mdWriter) String() string {
	w.flushCode()
	return w.b.String()
}

// isWordEdge is punctuation that prose puts around a word, as in "(www.example.com),".
func isWordEdge(r rune) bool {
	return strings.ContainsRune("()[]{}<>\"',.;:!?*_~", r)
}

// linkable reports whether an autolinker could take word (white space free) for a link:
// GFM's extended autolinks (www., http://, https://, ftp://, e-mail addresses, mailto:,
// xmpp:), and those of other common renderers (a scheme such as tel: or javascript:,
// linkify-it's //host, bare domains such as example.com).
func linkable(word string) bool {
	if strings.ContainsRune(word, '@') || strings.Contains(word, "//") || strings.Contains(strings.ToLower(word), "www.") {
		return true
	}
	for i := 1; i+1 < len(word); i++ {
		if word[i] == ':' && isASCIILetter(word[i-1]) {
			return true
		}
	}
	// A bare domain: a dot after a letter or digit, then a label of two letters or more.
	for i := 1; i < len(word); i++ {
		if before, _ := utf8.DecodeLastRuneInString(word[:i]); word[i] != '.' || !isAlnum(before) {
			continue
		}
		letters := 0
		for _, r := range word[i+1:] {
			if !unicode.IsLetter(r) {
				if isAlnum(r) {
					letters = 0 // a digit in the label: not a top-level domain
				}
				break
			}
			letters++
		}
		if letters >= 2 {
			return true
		}
	}
	return false
}

func isASCIILetter(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isAlnum(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// mdCode is a code span that holds s, through safeLine, literally: the fence is one
// backtick longer than the longest run inside, padded with a space when s starts or
// ends with a backtick or a space (CommonMark strips one space from each side).
func mdCode(s string) string {
	s = safeLine(s)
	if s == "" {
		// "``" would be no code span but a fence that the next "``" on the line closes.
		return "` `"
	}
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	// Content of spaces only is kept whole, so it needs no padding. A fence of three
	// backticks or more at the start of a line opens no code block: the content then
	// holds backticks, and a backtick fence's info string may not.
	if strings.Trim(s, " ") != "" && (strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") || strings.HasPrefix(s, " ") || strings.HasSuffix(s, " ")) {
		s = " " + s + " "
	}
	return fence + s + fence
}

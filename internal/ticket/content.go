package ticket

import "slices"

// Content is one ticket, independent of where it goes: Compose builds it from a verdict,
// and Markdown (OpsCenter, GitHub), ADF (Jira Cloud REST v3) and PlainText (SNS e-mail,
// Jira Data Center) render it. Compose cleans every string from the outside (clean: one
// line, no control or bidirectional-formatting characters, bounded length) and puts it
// in a Plain or Code span, never in markup; the renderers escape what their format
// needs and pass every text through safeLine again, so a hand-built Content cannot
// break them either.
type Content struct {
	// Title is the ticket's title, "[dry-run] " first for a dry run.
	Title  string
	DryRun bool
	// Sections in display order. A section without a heading is an untitled preamble.
	Sections []Section
	// Footer is the closing line: decision id and time, dry run or not.
	Footer []Span
	// Advice is AdviseUserAgent for each IMDSv1 user agent, in evidence order. Its
	// UserAgent and Version are as CloudTrail recorded them, not cleaned: whoever made
	// the call chose them, so escape them before display (the renderers use clean text).
	Advice []SDKAdvice

	evidence evidenceKey
}

// Section is a titled part of the ticket. Warning sections are rendered loudly (ADF
// warning panel, Markdown block quote, upper-case banner in plain text).
type Section struct {
	Heading string
	Warning bool
	Blocks  []Block
	// Short, when set, replaces Blocks in a shortened rendering (MarkdownWithin).
	Short []Block
}

// Block is a paragraph (Spans) or a bullet list (Items).
type Block struct {
	Spans []Span
	Items []Item
}

// Item is one bullet, optionally with one level of sub-bullets.
type Item struct {
	Spans    []Span
	Children []Item
}

// Style is how a span of text is set.
type Style int

const (
	// Plain text.
	Plain Style = iota
	// Strong (bold) text.
	Strong
	// Code is literal text: identifiers, commands, user agents, addresses.
	Code
)

// Span is a run of text in one style. Text is never empty.
type Span struct {
	Text  string
	Style Style
}

// The headings of the sections that compact treats apart.
const (
	headingEvidence = "Evidence"
	headingSoftware = "Software still using IMDSv1"
)

// compact is the ticket reordered and trimmed for a short rendering.
func (c Content) compact() Content {
	out := c
	out.Sections = nil
	var evidence []Section
	for _, s := range c.Sections {
		if s.Heading == headingEvidence {
			evidence = append(evidence, s)
			continue
		}
		if s.Short != nil {
			s.Blocks = s.Short
		} else if s.Heading != headingSoftware {
			s.Blocks = slices.Clone(s.Blocks)
			for i, bl := range s.Blocks {
				items := make([]Item, len(bl.Items))
				for j, it := range bl.Items {
					items[j] = Item{Spans: it.Spans}
				}
				s.Blocks[i].Items = items
			}
		}
		out.Sections = append(out.Sections, s)
	}
	out.Sections = append(out.Sections, evidence...)
	return out
}

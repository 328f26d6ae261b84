package ticket

import (
	"encoding/json"
	"slices"
)

// ADF renders the ticket as an Atlassian Document Format document (Jira Cloud REST v3):
// headings, paragraphs, bullet lists, text with strong and code marks, a warning panel
// for the theft section and a rule before the footer. No text node is empty, every text
// is one line (safeLine), and marks come from the span's style alone: outside text is
// only ever the text of a text node.
func (c Content) ADF() map[string]any {
	content := []any{adfHeading(1, c.Title)}
	for _, s := range c.Sections {
		if s.Heading != "" {
			content = append(content, adfHeading(2, s.Heading))
		}
		var nodes []any
		for _, bl := range s.Blocks {
			nodes = append(nodes, adfBlock(bl)...)
		}
		if len(nodes) == 0 {
			continue
		}
		if s.Warning {
			content = append(content, map[string]any{
				"type": "panel", "attrs": map[string]any{"panelType": "warning"}, "content": nodes,
			})
		} else {
			content = append(content, nodes...)
		}
	}
	content = append(content, map[string]any{"type": "rule"})
	if p := adfParagraph(c.Footer); p != nil {
		content = append(content, p)
	}
	return map[string]any{"type": "doc", "version": 1, "content": content}
}

func adfHeading(level int, text string) map[string]any {
	return map[string]any{
		"type": "heading", "attrs": map[string]any{"level": level},
		"content": []any{map[string]any{"type": "text", "text": nonEmpty(safeLine(text))}},
	}
}

func adfBlock(bl Block) []any {
	var out []any
	if p := adfParagraph(bl.Spans); p != nil {
		out = append(out, p)
	}
	if l := adfList(bl.Items); l != nil {
		out = append(out, l)
	}
	return out
}

func adfList(items []Item) map[string]any {
	var lis []any
	for _, it := range items {
		p := adfParagraph(it.Spans)
		if p == nil {
			continue
		}
		li := []any{p}
		if sub := adfList(it.Children); sub != nil {
			li = append(li, sub)
		}
		lis = append(lis, map[string]any{"type": "listItem", "content": li})
	}
	if len(lis) == 0 {
		return nil
	}
	return map[string]any{"type": "bulletList", "content": lis}
}

// adfParagraph is nil when there is no text: ADF rejects empty text nodes.
func adfParagraph(spans []Span) map[string]any {
	var texts []any
	for _, s := range spans {
		text := safeLine(s.Text)
		if text == "" {
			continue
		}
		node := map[string]any{"type": "text", "text": text}
		switch s.Style {
		case Strong:
			node["marks"] = []any{map[string]any{"type": "strong"}}
		case Code:
			node["marks"] = []any{map[string]any{"type": "code"}}
		}
		texts = append(texts, node)
	}
	if len(texts) == 0 {
		return nil
	}
	return map[string]any{"type": "paragraph", "content": texts}
}

// adfWithin renders ADF whose JSON takes at most maxBytes bytes: the full document when
// it fits, else the compact one (evidence last) with top-level blocks dropped from the
// end, saying so, with the footer.
func adfWithin(c Content, maxBytes int) map[string]any {
	if doc := c.ADF(); adfSize(doc) <= maxBytes {
		return doc
	}
	doc := c.compact().ADF()
	if adfSize(doc) <= maxBytes {
		return doc
	}
	content := doc["content"].([]any)
	if len(content) < 3 {
		return doc
	}
	// The title heading, the middle, the rule and the footer.
	head, tail := content[:1], content[len(content)-2:]
	middle := slices.Clone(content[1 : len(content)-2])
	notice := adfParagraph([]Span{{"Shortened:", Strong}, {" the rest of this ticket did not fit.", Plain}})
	for {
		if len(middle) > 0 {
			middle = middle[:len(middle)-1]
		}
		for len(middle) > 0 {
			if m, _ := middle[len(middle)-1].(map[string]any); m["type"] != "heading" {
				break
			}
			middle = middle[:len(middle)-1]
		}
		out := slices.Concat(head, middle, []any{notice}, tail)
		doc := map[string]any{"type": "doc", "version": 1, "content": out}
		if adfSize(doc) <= maxBytes || len(middle) == 0 {
			return doc
		}
	}
}

func adfSize(doc map[string]any) int {
	b, err := json.Marshal(doc)
	if err != nil {
		return 0
	}
	return len(b)
}

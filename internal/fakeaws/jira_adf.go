package fakeaws

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

var adfNodeTypes = []string{
	"doc", "paragraph", "text", "heading", "bulletList", "orderedList", "listItem", "codeBlock", "blockquote",
	"rule", "hardBreak", "mention", "emoji", "panel", "table", "tableRow", "tableHeader", "tableCell",
	"mediaSingle", "mediaGroup", "media", "mediaInline", "inlineCard", "blockCard", "embedCard", "expand",
	"nestedExpand", "status", "date", "decisionList", "decisionItem", "taskList", "taskItem", "placeholder",
	"extension", "bodiedExtension", "inlineExtension", "layoutSection", "layoutColumn",
}

// validADF checks that v is an ADF document: {"type":"doc","version":1,"content":[...]}
// whose nodes are all known types and whose text nodes have text. It returns "" when
// valid, else what is wrong.
func validADF(v any) string {
	doc, ok := v.(map[string]any)
	if !ok {
		return "not a JSON object"
	}
	if doc["type"] != "doc" {
		return `top-level type is not "doc"`
	}
	if n, ok := doc["version"].(json.Number); !ok || n.String() != "1" {
		return "version is not 1"
	}
	if _, ok := doc["content"].([]any); !ok {
		return "content is not an array"
	}
	var walk func(node any, top bool) string
	walk = func(node any, top bool) string {
		m, ok := node.(map[string]any)
		if !ok {
			return "a node is not an object"
		}
		t, _ := m["type"].(string)
		if !slices.Contains(adfNodeTypes, t) || (t == "doc") != top {
			return fmt.Sprintf("node type %q is not valid here", t)
		}
		if t == "text" {
			if s, _ := m["text"].(string); s == "" {
				return "a text node has no text"
			}
		}
		if c, ok := m["content"]; ok {
			children, ok := c.([]any)
			if !ok {
				return "content is not an array"
			}
			for _, ch := range children {
				if err := walk(ch, false); err != "" {
					return err
				}
			}
		}
		return ""
	}
	return walk(doc, true)
}

var adfBlocks = []string{"paragraph", "heading", "codeBlock", "blockquote", "listItem", "panel", "tableRow", "rule", "mediaSingle", "decisionItem", "taskItem"}

// adfToText flattens an ADF document: block nodes on their own lines.
func adfToText(v any) string {
	var lines []string
	var cur strings.Builder
	flush := func() {
		lines = append(lines, cur.String())
		cur.Reset()
	}
	var walk func(node any)
	walk = func(node any) {
		m, _ := node.(map[string]any)
		t, _ := m["type"].(string)
		switch t {
		case "text":
			s, _ := m["text"].(string)
			cur.WriteString(s)
		case "hardBreak":
			flush()
		case "mention", "emoji", "status", "date", "inlineCard":
			if attrs, ok := m["attrs"].(map[string]any); ok {
				for _, k := range []string{"text", "shortName", "url"} {
					if s, ok := attrs[k].(string); ok {
						cur.WriteString(s)
						break
					}
				}
			}
		}
		children, _ := m["content"].([]any)
		for _, ch := range children {
			walk(ch)
		}
		if slices.Contains(adfBlocks, t) && !(t == "listItem" && cur.Len() == 0) {
			flush()
		}
	}
	walk(v)
	if cur.Len() > 0 {
		flush()
	}
	return strings.Join(lines, "\n")
}

// textToADF wraps plain text in an ADF document, one paragraph per line, as Jira
// shows a v2 (wiki) text through v3.
func textToADF(s string) json.RawMessage {
	content := []any{}
	for _, line := range strings.Split(s, "\n") {
		p := map[string]any{"type": "paragraph", "content": []any{}}
		if line != "" {
			p["content"] = []any{map[string]any{"type": "text", "text": line}}
		}
		content = append(content, p)
	}
	raw, _ := json.Marshal(map[string]any{"type": "doc", "version": 1, "content": content})
	return raw
}

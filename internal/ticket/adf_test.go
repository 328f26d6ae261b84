package ticket

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/message"
)

// adfText flattens an ADF document to its text, one line per paragraph or heading.
func adfText(node any) string {
	var b strings.Builder
	var walk func(any)
	walk = func(n any) {
		m, ok := n.(map[string]any)
		if !ok {
			return
		}
		if text, ok := m["text"].(string); ok {
			b.WriteString(text)
		}
		if kids, ok := m["content"].([]any); ok {
			for _, k := range kids {
				walk(k)
			}
		}
		if m["type"] == "paragraph" || m["type"] == "heading" {
			b.WriteString("\n")
		}
	}
	walk(node)
	return b.String()
}

// roundTrip is what Jira receives: the ADF document as JSON.
func roundTrip(t *testing.T, doc map[string]any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("ADF does not marshal: %v", err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("ADF is not valid JSON: %v", err)
	}
	return out
}

var (
	adfBlockTypes  = map[string]bool{"heading": true, "paragraph": true, "bulletList": true, "panel": true, "rule": true}
	adfPanelBlocks = map[string]bool{"heading": true, "paragraph": true, "bulletList": true}
)

// checkADF validates the node types, their nesting and the text nodes of a document.
func checkADF(t *testing.T, name string, node map[string]any, parent string) (panels int) {
	t.Helper()
	typ, _ := node["type"].(string)
	kids, _ := node["content"].([]any)
	child := func(i int) map[string]any {
		m, ok := kids[i].(map[string]any)
		if !ok {
			t.Fatalf("%s: %s child %d is not an object", name, typ, i)
		}
		return m
	}
	switch typ {
	case "doc":
		if parent != "" || node["version"] != float64(1) {
			t.Errorf("%s: doc must be the root with version 1, got %v", name, node["version"])
		}
		for i := range kids {
			if ct, _ := child(i)["type"].(string); !adfBlockTypes[ct] {
				t.Errorf("%s: %q at the top level", name, ct)
			}
		}
	case "heading":
		level, _ := node["attrs"].(map[string]any)["level"].(float64)
		if level < 1 || level > 6 {
			t.Errorf("%s: heading level %v", name, level)
		}
		fallthrough
	case "paragraph":
		if len(kids) == 0 {
			t.Errorf("%s: empty %s", name, typ)
		}
		for i := range kids {
			if child(i)["type"] != "text" {
				t.Errorf("%s: %s holds %v", name, typ, child(i)["type"])
			}
		}
	case "bulletList":
		if len(kids) == 0 {
			t.Errorf("%s: empty bulletList", name)
		}
		for i := range kids {
			if child(i)["type"] != "listItem" {
				t.Errorf("%s: bulletList holds %v", name, child(i)["type"])
			}
		}
	case "listItem":
		if len(kids) == 0 || child(0)["type"] != "paragraph" {
			t.Errorf("%s: listItem must start with a paragraph", name)
		}
		for i := 1; i < len(kids); i++ {
			if child(i)["type"] != "bulletList" {
				t.Errorf("%s: listItem holds %v", name, child(i)["type"])
			}
		}
	case "panel":
		panels++
		if pt := node["attrs"].(map[string]any)["panelType"]; pt != "warning" {
			t.Errorf("%s: panelType %v", name, pt)
		}
		if len(kids) == 0 {
			t.Errorf("%s: empty panel", name)
		}
		for i := range kids {
			if ct, _ := child(i)["type"].(string); !adfPanelBlocks[ct] {
				t.Errorf("%s: panel holds %q", name, ct)
			}
		}
	case "rule":
		if len(kids) != 0 {
			t.Errorf("%s: rule with content", name)
		}
	case "text":
		text, _ := node["text"].(string)
		if text == "" {
			t.Errorf("%s: empty text node", name)
		}
		if marks, ok := node["marks"].([]any); ok {
			if len(marks) != 1 {
				t.Errorf("%s: %d marks on one text node", name, len(marks))
			}
			for _, m := range marks {
				if mt := m.(map[string]any)["type"]; mt != "strong" && mt != "code" {
					t.Errorf("%s: mark %v", name, mt)
				}
			}
		}
		if len(kids) != 0 {
			t.Errorf("%s: text with content", name)
		}
		return 0
	default:
		t.Errorf("%s: node type %q is not allowed", name, typ)
	}
	for k := range node {
		if k != "type" && k != "content" && k != "attrs" && k != "version" {
			t.Errorf("%s: %s has unexpected field %q", name, typ, k)
		}
	}
	for i := range kids {
		panels += checkADF(t, name, child(i), typ)
	}
	return panels
}

func TestADFIsValid(t *testing.T) {
	all := append(fixtures(), fixture{"hostile", hostileVerdict(), true})
	for _, f := range all {
		for _, dryRun := range []bool{false, true} {
			doc := roundTrip(t, Compose(f.v, ComposeOptions{ExemptTag: testTag, DryRun: dryRun}).ADF())
			if doc["type"] != "doc" {
				t.Fatalf("%s: root type %v", f.name, doc["type"])
			}
			panels := checkADF(t, f.name, doc, "")
			if (panels == 1) != f.theft || panels > 1 {
				t.Errorf("%s: %d warning panels, theft %v", f.name, panels, f.theft)
			}
		}
	}
	// Empty user-controlled values still give non-empty text nodes.
	v := metricVerdict()
	v.Name, v.DecisionID, v.Reasons[0].Detail = "", "", ""
	v.Evidence.CloudTrail = &message.CloudTrail{UserAgents: []string{"", " "}, SourceIPs: []string{""}}
	checkADF(t, "empty", roundTrip(t, Compose(v, ComposeOptions{}).ADF()), "")
}

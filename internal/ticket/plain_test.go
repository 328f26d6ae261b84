package ticket

import (
	"strings"
	"testing"
)

func TestPlainTextHasNoMarkdown(t *testing.T) {
	for _, f := range fixtures() {
		out := Compose(f.v, ComposeOptions{ExemptTag: testTag, DryRun: true}).PlainText()
		for _, bad := range []string{"**", "`", "](", "<", "\\", "__"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s: plain text contains %q:\n%s", f.name, bad, out)
			}
		}
		for _, line := range strings.Split(out, "\n") {
			for _, prefix := range []string{"#", ">", "|", "---", "***", "```"} {
				if strings.HasPrefix(line, prefix) {
					t.Errorf("%s: plain text line %q starts with %q", f.name, line, prefix)
				}
			}
		}
	}
}

func TestPlainTextKeepsUserTextOnOneLine(t *testing.T) {
	out := Compose(hostileVerdict(), ComposeOptions{}).PlainText()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "# Injected") || strings.HasPrefix(line, "- injected") {
			t.Errorf("user agent injected a line: %q", line)
		}
	}
}

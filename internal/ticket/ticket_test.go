package ticket

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/imdsguard/imdsguard/internal/ticket/jira"
)

// TestClosingKeepsEachFieldOnItsLine: a closing note is three lines, whatever its fields
// hold, for the SNS message, the OpsItem resolution and the Jira comment.
func TestClosingKeepsEachFieldOnItsLine(t *testing.T) {
	c := Closing{AccountID: "1\n2", Region: "r\u2028x", InstanceID: "i-1\r\n# h", Why: "fixed\n\n{noformat}\n[x|http://evil.example]",
		DecisionID: "d\x00", At: fixedNow, DryRun: true}
	text := c.Text()
	if lines := strings.Split(text, "\n"); len(lines) != 5 || lines[1] != "" || lines[3] != "" {
		t.Errorf("closing text %q is not title, reason and decision", text)
	}
	checkPlainText(t, "closing", text)
	if title := c.Title(); !strings.HasPrefix(title, "[dry-run] Resolved: ") || strings.ContainsAny(title, "\n\r\u2028") {
		t.Errorf("closing title %q", title)
	}
	dc := (&Jira{Client: jira.Client{Flavour: jira.DataCenter}}).resolveComment(c).(string)
	checkNoformat(t, "Data Center closing", dc, "")
	doc := (&Jira{Client: jira.Client{Flavour: jira.Cloud}}).resolveComment(c).(map[string]any)
	checkADFDoc(t, "Cloud closing", doc)
	if n := len(doc["content"].([]any)); n != 3 {
		t.Errorf("Cloud closing has %d paragraphs, want 3", n)
	}
	if !utf8.ValidString(text) {
		t.Error("closing text is not UTF-8")
	}
}

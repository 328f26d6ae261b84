package ticket

import (
	"strings"
	"testing"
)

// outsideCode returns the Markdown text outside code spans (CommonMark: a run of n
// backticks opens a span that the next run of exactly n backticks closes).
func outsideCode(t *testing.T, md string) string {
	t.Helper()
	var out strings.Builder
	for i := 0; i < len(md); {
		if md[i] == '\\' && i+1 < len(md) {
			out.WriteString(md[i : i+2])
			i += 2
			continue
		}
		if md[i] != '`' {
			out.WriteByte(md[i])
			i++
			continue
		}
		n := 0
		for i+n < len(md) && md[i+n] == '`' {
			n++
		}
		closeAt := -1
		for j := i + n; j < len(md); {
			if md[j] != '`' {
				j++
				continue
			}
			m := 0
			for j+m < len(md) && md[j+m] == '`' {
				m++
			}
			if m == n {
				closeAt = j
				break
			}
			j += m
		}
		if closeAt < 0 {
			t.Fatalf("unclosed code span at %q", md[i:min(len(md), i+40)])
		}
		if strings.Contains(md[i:closeAt], "\n") {
			t.Fatalf("code span crosses a line: %q", md[i:closeAt+n])
		}
		i = closeAt + n
	}
	return out.String()
}

func TestMarkdownEscapesUserText(t *testing.T) {
	v := hostileVerdict()
	md := Compose(v, ComposeOptions{ExemptTag: testTag}).Markdown()
	var quoted []string
	for _, line := range strings.Split(md, "\n") {
		// Block-quote markers of the warning section are ours.
		if line == ">" {
			line = ""
		}
		quoted = append(quoted, strings.TrimPrefix(line, "> "))
	}
	text := outsideCode(t, strings.Join(quoted, "\n"))
	var unescaped strings.Builder
	for i := 0; i < len(text); i++ {
		if text[i] == '\\' {
			i++
			continue
		}
		unescaped.WriteByte(text[i])
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == '\\' {
			i++
			continue
		}
		if strings.IndexByte("<>|&[]`", c) >= 0 {
			t.Errorf("unescaped %q outside code spans near %q", c, text[max(0, i-30):min(len(text), i+30)])
		}
	}
	for _, line := range strings.Split(md, "\n") {
		if strings.Contains(line, "Injected heading") && strings.HasPrefix(strings.TrimLeft(line, "> "), "#") {
			t.Errorf("user agent made a heading: %q", line)
		}
		if strings.HasPrefix(line, "- injected") || strings.HasPrefix(line, "1. list") {
			t.Errorf("user text made a list: %q", line)
		}
	}
	// Each user agent is one code span that reads back as the cleaned user agent.
	for _, ua := range v.Evidence.CloudTrail.UserAgents {
		if want := mdCode(clean(ua, maxUserAgentRunes)); !strings.Contains(md, want) {
			t.Errorf("markdown lacks code span %s", want)
		}
	}
	if strings.Contains(md, "\u202e") || strings.Contains(md, "\u200b") {
		t.Error("bidirectional override or zero-width character passed through")
	}
	for _, bad := range []string{"<script", "<img", "<b>", "](javascript", "](http://evil"} {
		if strings.Contains(unescaped.String(), bad) {
			t.Errorf("markdown outside code spans contains %q", bad)
		}
	}
}

func TestMdCodeRoundTrip(t *testing.T) {
	for _, s := range []string{"plain", "a`b", "``", "`x`", " lead", "a | b", "<script>"} {
		got := mdCode(s)
		fence := 0
		for got[fence] == '`' {
			fence++
		}
		inner := got[fence : len(got)-fence]
		if strings.Contains(inner, strings.Repeat("`", fence)) && !strings.Contains(s, strings.Repeat("`", fence)) {
			t.Errorf("mdCode(%q) = %q: fence appears inside", s, got)
		}
		if len(inner) >= 2 && inner[0] == ' ' && inner[len(inner)-1] == ' ' && strings.Trim(inner, " ") != "" {
			inner = inner[1 : len(inner)-1]
		}
		if inner != s {
			t.Errorf("mdCode(%q) = %q reads back as %q", s, got, inner)
		}
	}
}

func TestMarkdownWithin(t *testing.T) {
	const opsItemDescription = 2048
	big := hostileVerdict()
	for i := range 30 {
		big.Evidence.CloudTrail.UserAgents = append(big.Evidence.CloudTrail.UserAgents,
			"aws-sdk-java/1.11.500 Linux/4.14 OpenJDK_64-Bit_Server_VM/25.252 build-"+strings.Repeat("x", i*7))
	}
	all := append(fixtures(), fixture{"hostile", hostileVerdict(), true}, fixture{"big", big, true})
	for _, f := range all {
		for _, dryRun := range []bool{false, true} {
			c := Compose(f.v, ComposeOptions{ExemptTag: testTag, DryRun: dryRun})
			for _, limit := range []int{opsItemDescription, 1000, 600} {
				got := c.MarkdownWithin(limit)
				if len(got) > limit {
					t.Errorf("%s/%d: %d bytes", f.name, limit, len(got))
				}
				if !strings.Contains(got, f.v.DecisionID) {
					t.Errorf("%s/%d: the footer with the decision id was dropped:\n%s", f.name, limit, got)
				}
				outsideCode(t, got) // fails on a split code span
				if full := c.Markdown(); len(full) <= limit && got != full {
					t.Errorf("%s/%d: shortened a ticket that fits", f.name, limit)
				}
				if f.theft && limit >= 1000 && !strings.Contains(got, "WARNING: possible credential theft") {
					t.Errorf("%s/%d: the theft warning did not survive shortening:\n%s", f.name, limit, got)
				}
				if before, _, cut := strings.Cut(got, "\n**Shortened:**"); cut {
					lines := strings.Split(strings.TrimRight(before, "\n"), "\n")
					if last := lines[len(lines)-1]; strings.HasPrefix(last, "#") {
						t.Errorf("%s/%d: shortened after an empty heading %q", f.name, limit, last)
					}
				}
				if dryRun && !strings.Contains(got, "DRY RUN") {
					t.Errorf("%s/%d: the dry-run banner did not survive shortening", f.name, limit)
				}
			}
		}
	}
	if got := Compose(big, ComposeOptions{}).MarkdownWithin(opsItemDescription); !strings.Contains(got, "**Shortened:**") {
		t.Errorf("a cut ticket does not say so:\n%s", got)
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

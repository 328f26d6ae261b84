package ticket

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/ticket/jira"
)

// attackStrings are values an attacker controls (a crafted User-Agent, an instance's
// Name tag, a tag value a reason quotes, an event name) written to break out of a
// ticket's markup. They seed the fuzz targets, so every plain `go test` runs them all.
var attackStrings = []string{
	// HTML, entities
	`<img src=x onerror=alert(1)>`, `<script>alert(1)</script>`, `</code><b>x</b>`, `<!-- x -->`,
	`&lt;script&gt;`, `&#60;b&#62;`, `&#x3C;i&#x3E;`, `&amp;`, `&copy`,
	// links, images, autolinks (CommonMark, GFM's extension, other renderers')
	`[x](javascript:alert(1))`, `![x](http://evil.example/p.png)`, `[x]: http://evil.example`, `[x][1]`,
	`<http://evil.example>`, `<evil@example.com>`, `http://evil.example/path?q=1`, `https://evil.example`,
	`ftp://evil.example`, `HTTPS://EVIL.EXAMPLE`, `www.evil.example`, `WWW.`, `WWW.EVIL.EXAMPLE/x`, `(www.evil.example)`,
	`evil@example.com`, `mailto:evil@example.com`, `xmpp:evil@example.com`, `tel:+15551234`, `javascript:alert(1)`,
	`data:text/html;base64,PHNjcmlwdD4=`, `evil.example`, `//evil.example`, `//localhost`, `@here`, `user@localhost`,
	`http\://evil.example`, `www\.evil.example`, `evil\@example.com`,
	// blocks at the start of a line, and line breaks to get there
	"# heading", "1. list", "1) list", "- item", "+ item", "* item", "> quote", ": definition",
	"| a | b |\n|---|---|", "```\ncode", "~~~", "    indented", "===", "---", "***", "___",
	"a\nb", "a\r\n# b", "a\r# b", "a\u2028# b", "a\u2029# b", "a\u0085# b", "a\v# b", "a\f# b", "a\x00b",
	"x\n\n- injected", "x\n<div>", "x\n[evil]: http://evil.example",
	// inline formatting, code spans
	"**bold**", "__bold__", "*em*", "_em_", "~~strike~~", "==mark==", "$x^2$", "^sup^", "`code`", "``", "` `",
	"a`b", "```", "`", "\\", "\\`", "x\\", "x\\\n", "[^1]", "[ ] task", ":smile:", "{.cls onclick=alert(1)}",
	// invisible and reordering characters, invalid UTF-8, non-characters
	"\u202eevil", "\u2066x\u2069", "\u200bx\u200d", "\ufeffx", "\xff\xfe", "\xc3", "\uffff", "\ufdd0",
	// Jira wiki markup and its {noformat} block
	"{noformat}", "{no{noformat}format}", "{NoFormat}", "{noformat:title=x}", "{{noformat}noformat}",
	"{no{no{noformat}format}format}", "x\n{noformat}\n[evil|http://evil.example] !http://evil.example/i.png!",
	"{code}x{code}", "[~accountid:123]",
	// an agent whose version token carries the payload into the SDK name
	"kubelet/1.0\n# injected aws-sdk-go/1.0", "kubelet/1.0\u2028- injected,aws-sdk-go/1.0",
	// long and empty
	strings.Repeat("`", 40), strings.Repeat("{noformat}", 20), strings.Repeat("a", 300), "", " ",
}

// verdictField puts an outside value where a verdict carries one.
type verdictField struct {
	name string
	set  func(v *message.Verdict, opts *ComposeOptions, s string)
	// drivesLogic: the value decides what the ticket says (the advice for a user agent),
	// so a ticket with it differs in structure from one with a harmless value.
	drivesLogic bool
}

var verdictFields = []verdictField{
	{"name", func(v *message.Verdict, _ *ComposeOptions, s string) { v.Name = s }, false},
	{"user agent", func(v *message.Verdict, _ *ComposeOptions, s string) {
		v.Evidence.CloudTrail.UserAgents = append(v.Evidence.CloudTrail.UserAgents, s)
	}, true},
	{"agent version", func(v *message.Verdict, _ *ComposeOptions, s string) {
		v.Evidence.CloudTrail.UserAgents = append(v.Evidence.CloudTrail.UserAgents, "kubelet/"+s+" aws-sdk-go/1.20.0")
	}, true},
	{"source address", func(v *message.Verdict, _ *ComposeOptions, s string) {
		v.Evidence.CloudTrail.SourceIPs = append(v.Evidence.CloudTrail.SourceIPs, s)
	}, false},
	{"reason detail", func(v *message.Verdict, _ *ComposeOptions, s string) { v.Reasons[0].Detail = s }, false},
	{"theft detail", func(v *message.Verdict, _ *ComposeOptions, s string) { v.Reasons[2].Detail = s }, false},
	{"decision id", func(v *message.Verdict, _ *ComposeOptions, s string) { v.DecisionID = s }, false},
	{"metadata options", func(v *message.Verdict, _ *ComposeOptions, s string) { v.Current.HTTPTokens = s }, false},
	{"instance id", func(v *message.Verdict, _ *ComposeOptions, s string) { v.InstanceID = s }, false},
	{"region", func(v *message.Verdict, _ *ComposeOptions, s string) { v.Region = s }, false},
	{"account", func(v *message.Verdict, _ *ComposeOptions, s string) { v.AccountID = s }, false},
	{"exempt tag", func(_ *message.Verdict, o *ComposeOptions, s string) { o.ExemptTag = s }, false},
}

// Beyond the fields' indexes: every field that does not drive the ticket's logic, and
// every field.
var (
	allPlainFields = len(verdictFields)
	allFields      = len(verdictFields) + 1
)

// hostile is the theft verdict (it has every section) with s in field f, or in the
// fields allPlainFields or allFields stand for.
func hostile(f int, s string) (message.Verdict, ComposeOptions) {
	v, opts := theftVerdict(), ComposeOptions{ExemptTag: testTag, DryRun: true}
	for i, field := range verdictFields {
		if f == i || f >= allFields || (f == allPlainFields && !field.drivesLogic) {
			field.set(&v, &opts, s)
		}
	}
	return v, opts
}

// drivesLogic reports whether hostile(f, ...) sets a field that decides what the ticket says.
func drivesLogic(f int) bool {
	return f >= allFields || (f < allPlainFields && verdictFields[f].drivesLogic)
}

func fieldName(f int) string {
	switch {
	case f == allPlainFields:
		return "every field but the user agents"
	case f >= allFields:
		return "every field"
	}
	return verdictFields[f].name
}

// breaksText reports a rune that could end a line, hide or reorder text, or that a
// strict parser refuses: control characters, formatting characters (bidirectional
// overrides, zero-width marks), line and paragraph separators, non-characters.
func breaksText(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) ||
		(r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE
}

// checkOneLine fails when text is not valid UTF-8 or holds a rune that breaksText.
func checkOneLine(t *testing.T, where, text string) {
	t.Helper()
	if !utf8.ValidString(text) {
		t.Errorf("%s: invalid UTF-8 in %q", where, text)
	}
	if i := strings.IndexFunc(text, breaksText); i >= 0 {
		t.Errorf("%s: %U in %q", where, []rune(text[i:])[0], text)
	}
}

// checkPlainText: valid UTF-8, lines ended by "\n" only, nothing else that breaksText.
func checkPlainText(t *testing.T, where, text string) {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		checkOneLine(t, where, line)
	}
}

// --- Markdown ------------------------------------------------------------------------

// A Markdown checker independent of the renderer: the renderer writes a small grammar
// of lines, and inside them text in which every character that CommonMark, GFM or a
// common extension could read as syntax is escaped, code spans that close on their
// line, and "**" delimiters. The text around escapes is then checked for anything an
// autolinker could take for a link, as cmark-gfm and post-processing linkifiers see it.

// mdLiteralPunct is the ASCII punctuation that may stand unescaped in text: none of it
// starts an inline construct. At the start of a line "-" and ":" may not, nor "." and ")"
// after leading digits; "@", "//" and schemes are left to the link checks.
const mdLiteralPunct = `"'(),./:;?%@-`

var (
	mdScheme     = regexp.MustCompile(`(?i)(?:^|[^a-z])[a-z]+:[^\s()\[\]{}<>"',.;:!?*_~]`)
	mdBareDomain = regexp.MustCompile(`[\p{L}\p{N}]\.\p{L}{2,}(?:[^\p{L}\p{N}]|$)`)
)

// mdLinkLike names what in text an autolinker could take for a link, "" for nothing.
func mdLinkLike(text string) string {
	switch {
	case strings.Contains(strings.ToLower(text), "www."):
		return "a www autolink"
	case strings.Contains(text, "//"):
		return "a URL or //host"
	case strings.Contains(text, "@"):
		return "an e-mail autolink or a mention"
	case strings.Contains(text, ":") && mdScheme.MatchString(text):
		return "a scheme (mailto:, tel:, javascript:)"
	case strings.Contains(text, ".") && mdBareDomain.MatchString(text):
		return "a bare domain"
	}
	return ""
}

// checkMarkdown checks a whole rendering line by line and returns its lines' visible text.
func checkMarkdown(t *testing.T, where, md string) []string {
	t.Helper()
	var shown []string
	for n, line := range strings.Split(strings.TrimSuffix(md, "\n"), "\n") {
		at := fmt.Sprintf("%s: line %d %q", where, n+1, line)
		if inline, ok := mdStructure(line); !ok {
			t.Errorf("%s: not a line the renderer writes", at)
		} else if inline != "" {
			shown = append(shown, checkMdInline(t, at, inline))
		}
	}
	return shown
}

// mdStructure splits a line into the block structure the renderer writes and the inline
// content after it.
func mdStructure(line string) (inline string, ok bool) {
	switch {
	case line == "", line == ">", line == "---":
		return "", true
	case strings.HasPrefix(line, "# "), strings.HasPrefix(line, "## "):
		return line[strings.IndexByte(line, ' ')+1:], true
	case strings.HasPrefix(line, "> "):
		line = line[2:]
		if strings.HasPrefix(line, ">") || strings.HasPrefix(line, "#") {
			return "", false
		}
	}
	for _, bullet := range []string{"- ", "  - "} {
		if strings.HasPrefix(line, bullet) {
			return line[len(bullet):], true
		}
	}
	return line, true
}

// isASCIIPunct is CommonMark's ASCII punctuation, all of which a backslash can escape.
func isASCIIPunct(c byte) bool {
	return strings.IndexByte("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", c) >= 0
}

// codeSpanEnd is where the code span that starts s ends, -1 when it does not close.
func codeSpanEnd(s string) int {
	n := len(s) - len(strings.TrimLeft(s, "`"))
	for j := n; j < len(s); {
		m := len(s[j:]) - len(strings.TrimLeft(s[j:], "`"))
		switch {
		case m == 0:
			j++
		case m == n:
			return j + n
		default:
			j += m
		}
	}
	return -1
}

// checkMdInline checks one line's inline content and returns the text it shows, code
// spans included (CommonMark: escapes and "**" gone, a code span's content with one
// space stripped from each side when both have one).
func checkMdInline(t *testing.T, where, s string) string {
	t.Helper()
	if s == "" || s[0] == ' ' {
		t.Errorf("%s: empty or indented content", where)
		return ""
	}
	// text is what linkifiers see: the text nodes, a NUL for each code span or emphasis
	// delimiter between them.
	var shown, text strings.Builder
	strong := 0
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 == len(s) || !isASCIIPunct(s[i+1]) {
				t.Errorf("%s: a backslash that escapes nothing at %d", where, i)
				return shown.String()
			}
			shown.WriteByte(s[i+1])
			text.WriteByte(s[i+1])
			i += 2
			continue
		case c == '`':
			n := len(s[i:]) - len(strings.TrimLeft(s[i:], "`"))
			end := codeSpanEnd(s[i:])
			if end < 0 {
				t.Errorf("%s: a code span that does not close on its line at %d", where, i)
				return shown.String()
			}
			end += i
			content := s[i+n : end-n]
			if len(content) >= 2 && content[0] == ' ' && content[len(content)-1] == ' ' && strings.Trim(content, " ") != "" {
				content = content[1 : len(content)-1]
			}
			shown.WriteString(content)
			text.WriteByte(0)
			i = end
			continue
		case strings.HasPrefix(s[i:], "**") && !strings.HasPrefix(s[i:], "***"):
			// Emphasis makes a node of its own; left literal, it stays between the texts.
			strong++
			text.WriteByte(0)
			i += 2
			continue
		case c < utf8.RuneSelf && isASCIIPunct(c) && !strings.ContainsRune(mdLiteralPunct, rune(c)):
			t.Errorf("%s: unescaped %q at %d", where, c, i)
		case i == 0 && (c == '-' || c == ':'):
			t.Errorf("%s: unescaped %q starts the line", where, c)
		}
		shown.WriteByte(c)
		text.WriteByte(c)
		i++
	}
	if strong%2 != 0 {
		t.Errorf("%s: %d emphasis delimiters", where, strong)
	}
	if digits := len(s) - len(strings.TrimLeft(s, "0123456789")); digits > 0 && digits < len(s) && (s[digits] == '.' || s[digits] == ')') {
		t.Errorf("%s: starts an ordered list", where)
	}
	for _, segment := range strings.Split(text.String(), "\x00") {
		if what := mdLinkLike(segment); what != "" {
			t.Errorf("%s: text outside code spans that an autolinker could take for %s: %q", where, what, segment)
		}
	}
	return shown.String()
}

// mdSkeleton is the block structure of a rendering, one entry per line.
func mdSkeleton(md string) []string {
	var out []string
	for _, line := range strings.Split(md, "\n") {
		inline, _ := mdStructure(line)
		if line == "" {
			out = append(out, "(blank)")
			continue
		}
		out = append(out, strings.TrimSuffix(line, inline))
	}
	return out
}

// plainSkeleton is the structure of a plain-text rendering: the marker of each line.
func plainSkeleton(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		kind := "text"
		for _, p := range []string{"    - ", "- ", "== ", "!! "} {
			if strings.HasPrefix(line, p) {
				kind = p
				break
			}
		}
		if line == "" {
			kind = ""
		}
		out = append(out, kind)
	}
	return out
}

// --- ADF -----------------------------------------------------------------------------

// checkADFDoc checks what Jira Cloud receives: valid JSON of valid UTF-8, the node types,
// nesting and marks checkADF allows, and text nodes of one non-empty line each.
func checkADFDoc(t *testing.T, where string, doc any) {
	t.Helper()
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("%s: ADF does not marshal: %v", where, err)
	}
	if !utf8.Valid(raw) || !json.Valid(raw) {
		t.Fatalf("%s: ADF is not valid UTF-8 JSON", where)
	}
	var back map[string]any
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	checkADF(t, where, back, "")
	var walk func(any)
	walk = func(n any) {
		m, _ := n.(map[string]any)
		if text, ok := m["text"].(string); ok {
			checkOneLine(t, where+": ADF text", text)
		}
		kids, _ := m["content"].([]any)
		for _, k := range kids {
			walk(k)
		}
	}
	walk(back)
}

// --- Jira wiki, SNS, titles ----------------------------------------------------------

var noformatAnywhere = regexp.MustCompile(`(?i)\{noformat`)

// checkNoformat: a Data Center body is prefix and one {noformat} block, which nothing
// inside it can close early.
func checkNoformat(t *testing.T, where, body, prefix string) {
	t.Helper()
	if !strings.HasPrefix(body, prefix+"{noformat}\n") || !strings.HasSuffix(body, "\n{noformat}") {
		t.Errorf("%s: not one {noformat} block after %q: %q", where, prefix, body)
	}
	if n := len(noformatAnywhere.FindAllStringIndex(body, -1)); n != 2 {
		t.Errorf("%s: %d {noformat} macros, want the opening and the closing one: %q", where, n, body)
	}
}

// checkSNSSubject: SNS's documented rule, strictest reading: ASCII text that begins with
// a letter, number or punctuation mark, no line breaks or control characters, fewer than
// 100 characters.
func checkSNSSubject(t *testing.T, where, s string) {
	t.Helper()
	if s == "" || len(s) >= 100 {
		t.Errorf("%s: subject of %d characters: %q", where, len(s), s)
		return
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			t.Errorf("%s: subject byte %#x is not printable ASCII: %q", where, s[i], s)
		}
	}
	if first := rune(s[0]); !(unicode.IsLetter(first) || unicode.IsDigit(first) || unicode.IsPunct(first)) {
		t.Errorf("%s: subject starts with %q: %q", where, first, s)
	}
}

// checkTitleLine: a one-line title field of at most maxRunes runes, never empty.
func checkTitleLine(t *testing.T, where, s string, maxRunes int) {
	t.Helper()
	if s == "" || utf8.RuneCountInString(s) > maxRunes || strings.ContainsRune(s, '\n') {
		t.Errorf("%s: title %q (%d runes, at most %d)", where, s, utf8.RuneCountInString(s), maxRunes)
	}
	checkOneLine(t, where, s)
}

// --- the Content model --------------------------------------------------------------

// checkContentOneLine: every text Compose put in the model is one safe line.
func checkContentOneLine(t *testing.T, where string, c Content) {
	t.Helper()
	checkOneLine(t, where+": title", c.Title)
	eachText(c, func(text string) { checkOneLine(t, where+": text", text) })
}

// eachText calls fn for every heading and span text of c, title and footer aside.
func eachText(c Content, fn func(string)) {
	spans := func(ss []Span) {
		for _, s := range ss {
			fn(s.Text)
		}
	}
	var items func([]Item)
	items = func(its []Item) {
		for _, it := range its {
			spans(it.Spans)
			items(it.Children)
		}
	}
	for _, s := range c.Sections {
		fn(s.Heading)
		for _, bl := range append(slices.Clone(s.Blocks), s.Short...) {
			spans(bl.Spans)
			items(bl.Items)
		}
	}
	spans(c.Footer)
}

// withPlaceholders is c with every non-empty text replaced by "x": the same model, so a
// rendering of it has the structure any rendering of c must have.
func withPlaceholders(c Content) Content {
	x := func(s string) string {
		if s == "" {
			return ""
		}
		return "x"
	}
	spans := func(ss []Span) []Span {
		out := make([]Span, len(ss))
		for i, s := range ss {
			out[i] = Span{x(s.Text), s.Style}
		}
		return out
	}
	var items func([]Item) []Item
	items = func(its []Item) []Item {
		var out []Item
		for _, it := range its {
			out = append(out, Item{Spans: spans(it.Spans), Children: items(it.Children)})
		}
		return out
	}
	blocks := func(bs []Block) []Block {
		var out []Block
		for _, bl := range bs {
			out = append(out, Block{Spans: spans(bl.Spans), Items: items(bl.Items)})
		}
		return out
	}
	out := Content{Title: x(c.Title), DryRun: c.DryRun, Footer: spans(c.Footer)}
	for _, s := range c.Sections {
		out.Sections = append(out.Sections, Section{Heading: x(s.Heading), Warning: s.Warning, Blocks: blocks(s.Blocks), Short: blocks(s.Short)})
	}
	return out
}

// checkStructureOfModel: the renderings of c have the block structure of the model,
// whatever its texts hold.
func checkStructureOfModel(t *testing.T, where string, c Content) {
	t.Helper()
	p := withPlaceholders(c)
	if got, want := mdSkeleton(c.Markdown()), mdSkeleton(p.Markdown()); !slicesEqual(got, want) {
		t.Errorf("%s: the Markdown has another structure than its model:\n%s", where, c.Markdown())
	}
	// Plain text has no escaping: a text that starts a paragraph with "- " looks like a
	// bullet there. But it has the model's lines, and each of the model's markers.
	got, want := plainSkeleton(c.PlainText()), plainSkeleton(p.PlainText())
	same := len(got) == len(want)
	for i := 0; same && i < len(want); i++ {
		same = got[i] == want[i] || want[i] == "text"
	}
	if !same {
		t.Errorf("%s: the plain text has another structure than its model:\n%s", where, c.PlainText())
	}
}

// --- every renderer, for one verdict ------------------------------------------------

// checkAllRenderings renders the verdict's ticket and closing note for every backend and
// checks each against its format's invariants.
func checkAllRenderings(t *testing.T, where string, v message.Verdict, opts ComposeOptions, why string) Content {
	t.Helper()
	c := Compose(v, opts)
	closing := Closing{AccountID: v.AccountID, Region: v.Region, InstanceID: v.InstanceID, Why: why, DecisionID: v.DecisionID, At: fixedNow}
	checkContentOneLine(t, where, c)
	checkStructureOfModel(t, where, c)
	if n := strings.Count(closing.Text(), "\n"); n != 4 {
		t.Errorf("%s: the closing note has %d lines, want title, reason and decision with a blank line between: %q", where, n+1, closing.Text())
	}

	checkMarkdown(t, where+": Markdown", c.Markdown())
	for _, limit := range []int{opsItemMaxDescription, 600} {
		md := c.MarkdownWithin(limit)
		if len(md) > limit {
			t.Errorf("%s: MarkdownWithin(%d) is %d bytes", where, limit, len(md))
		}
		checkMarkdown(t, fmt.Sprintf("%s: MarkdownWithin(%d)", where, limit), md)
	}
	checkMarkdown(t, where+": OpsItem evidence", opsItemEvidence(c))
	checkTitleLine(t, where+": OpsItem title", titleLine(c.Title, opsItemMaxTitle), opsItemMaxTitle)
	checkPlainText(t, where+": OpsItem resolution", closing.Text())

	checkADFDoc(t, where+": ADF", c.ADF())
	checkADFDoc(t, where+": ADF within 3000", adfWithin(c, 3000))
	checkPlainText(t, where+": plain text", c.PlainText())
	checkPlainText(t, where+": plain text within 3000", plainWithin(c, 3000))

	cloud, dc := &Jira{Client: jira.Client{Flavour: jira.Cloud}}, &Jira{Client: jira.Client{Flavour: jira.DataCenter}}
	checkADFDoc(t, where+": Jira Cloud description", cloud.description(c))
	checkADFDoc(t, where+": Jira Cloud update", cloud.updateComment(c))
	checkADFDoc(t, where+": Jira Cloud resolution", cloud.resolveComment(closing))
	checkNoformat(t, where+": Jira Data Center description", dc.description(c).(string), "")
	checkNoformat(t, where+": Jira Data Center update", dc.updateComment(c).(string), jiraUpdateIntro+"\n\n")
	checkNoformat(t, where+": Jira Data Center resolution", dc.resolveComment(closing).(string), "")
	checkTitleLine(t, where+": Jira summary", titleLine(c.Title, jiraMaxSummary), jiraMaxSummary)

	checkSNSSubject(t, where+": SNS open", subject(c.Title))
	checkSNSSubject(t, where+": SNS update", subject("New evidence: "+c.Title))
	checkSNSSubject(t, where+": SNS resolve", subject(closing.Title()))
	checkPlainText(t, where+": SNS resolve message", closing.Text())
	return c
}

// FuzzTicketRenderings puts an arbitrary string into one of a verdict's outside fields
// (or several) and checks every rendering. Then the string goes into every field that
// does not decide what the ticket says (or the one chosen, if it is such a field), and
// the block structure must be that of a ticket with a harmless value there: the string
// added no line, heading, list item or quote.
func FuzzTicketRenderings(f *testing.F) {
	for _, s := range attackStrings {
		f.Add(s, uint8(allFields))
	}
	f.Fuzz(func(t *testing.T, s string, field uint8) {
		v, opts := hostile(int(field), s)
		checkAllRenderings(t, fmt.Sprintf("%s %q", fieldName(int(field)), s), v, opts, s)

		plain := int(field)
		if drivesLogic(plain) {
			plain = allPlainFields
		}
		where := fmt.Sprintf("%s %q", fieldName(plain), s)
		hv, hopts := hostile(plain, s)
		bv, bopts := hostile(plain, "harmless")
		c, b := Compose(hv, hopts), Compose(bv, bopts)
		if got, want := mdSkeleton(c.Markdown()), mdSkeleton(b.Markdown()); !slicesEqual(got, want) {
			t.Errorf("%s: Markdown structure changed:\n%s", where, c.Markdown())
		}
		if got, want := plainSkeleton(c.PlainText()), plainSkeleton(b.PlainText()); !slicesEqual(got, want) {
			t.Errorf("%s: plain-text structure changed:\n%s", where, c.PlainText())
		}
	})
}

// FuzzContentRenderings renders a Content built by hand, with an arbitrary string in
// every place text goes (title, headings, spans of each style, bullets, sub-bullets,
// footer): the renderers must not rely on Compose having cleaned it.
func FuzzContentRenderings(f *testing.F) {
	for _, s := range attackStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spans := []Span{{s, Plain}, {"word", Plain}, {s, Code}, {s, Strong}, {s + "www.x.example", Plain}}
		item := Item{Spans: spans, Children: []Item{{Spans: spans}}}
		blocks := []Block{{Spans: spans}, {Items: []Item{item, item}}}
		c := Content{
			Title: s,
			Sections: []Section{
				{Blocks: blocks},
				{Heading: s, Warning: true, Blocks: blocks, Short: blocks[:1]},
				{Heading: s, Blocks: blocks},
				{Heading: headingEvidence, Blocks: blocks},
			},
			Footer: []Span{{s, Code}, {" end ", Plain}, {s, Strong}},
		}
		where := fmt.Sprintf("content with %q", s)
		checkMarkdown(t, where+": Markdown", c.Markdown())
		checkMarkdown(t, where+": MarkdownWithin(600)", c.MarkdownWithin(600))
		checkStructureOfModel(t, where, c)
		checkADFDoc(t, where+": ADF", c.ADF())
		checkPlainText(t, where+": plain text", c.PlainText())
		cloud, dc := &Jira{Client: jira.Client{Flavour: jira.Cloud}}, &Jira{Client: jira.Client{Flavour: jira.DataCenter}}
		checkADFDoc(t, where+": Jira Cloud description", cloud.description(c))
		checkNoformat(t, where+": Jira Data Center description", dc.description(c).(string), "")
		checkTitleLine(t, where+": Jira summary", titleLine(c.Title, jiraMaxSummary), jiraMaxSummary)
		checkSNSSubject(t, where+": SNS subject", subject(c.Title))
	})
}

func slicesEqual(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

// FuzzMarkdownInline checks mdText, mdCode and mdSpans alone, where a line of their own
// starts, for any string: valid structure (checkMarkdown), and text that reads back as
// the string (on one line, spaces collapsed): escaping hides nothing and adds nothing.
func FuzzMarkdownInline(f *testing.F) {
	for _, s := range attackStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words := strings.Join(strings.Fields(safeLine(s)), " ")
		if text := mdText(s); words != "" {
			for _, line := range []string{text, "- " + text, "  - " + text, "> " + text, "## " + text} {
				if shown := checkMarkdown(t, "mdText", line); len(shown) != 1 || shown[0] != words {
					t.Errorf("mdText(%q) = %q shows %q, want %q", s, text, shown, words)
				}
			}
		} else if text != "" {
			t.Errorf("mdText(%q) = %q, want nothing", s, text)
		}

		code := mdCode(s)
		want := safeLine(s)
		if want == "" {
			want = " "
		}
		if shown := checkMarkdown(t, "mdCode", "- "+code); len(shown) != 1 || shown[0] != want {
			t.Errorf("mdCode(%q) = %q shows %q, want %q", s, code, shown, want)
		}
		if codeSpanEnd(code) != len(code) {
			t.Errorf("mdCode(%q) = %q is not one code span", s, code)
		}

		spans := []Span{{s, Plain}, {s, Code}, {s, Strong}, {s, Code}, {s, Code}, {"x" + s, Plain}, {s + "y", Strong}}
		checkMarkdown(t, "mdSpans", "- "+mdSpans(spans))
	})
}

// FuzzNoformat: nothing inside a {noformat} block closes it, and the text is kept rune
// for rune, only the brace of a "{noformat" inside turned fullwidth.
func FuzzNoformat(f *testing.F) {
	for _, s := range attackStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := noformat(s)
		checkNoformat(t, fmt.Sprintf("noformat(%q)", s), got, "")
		body := []rune(strings.TrimSuffix(strings.TrimPrefix(got, noformatOpen), noformatClose))
		orig := []rune(strings.TrimRight(s, "\n"))
		if len(body) != len(orig) {
			t.Fatalf("noformat(%q) = %q: %d runes inside, want %d", s, got, len(body), len(orig))
		}
		for i := range body {
			if body[i] != orig[i] && !(orig[i] == '{' && body[i] == '\uFF5B') {
				t.Errorf("noformat(%q) = %q changed rune %d", s, got, i)
			}
		}
	})
}

// FuzzSNSSubject: any title gives a subject SNS takes.
func FuzzSNSSubject(f *testing.F) {
	for _, s := range attackStrings {
		f.Add(s)
	}
	f.Add(strings.Repeat("x", 99))
	f.Add(strings.Repeat("x", 100))
	f.Add(strings.Repeat("é", 60))
	f.Fuzz(func(t *testing.T, s string) {
		checkSNSSubject(t, fmt.Sprintf("subject(%q)", s), subject(s))
	})
}

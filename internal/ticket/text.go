package ticket

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The line safety every renderer and backend shares (safeLine, and clean on top of it
// for Compose), and the cuts to the limits of the fields texts go into.

// safeLine is s with nothing that could end a line or hide or reorder text in any
// renderer: invalid UTF-8, control characters, formatting characters (bidirectional
// overrides and isolates, zero-width marks) and non-characters become U+FFFD, and every
// white space (line and paragraph separators, NEL, vertical tab and form feed included)
// becomes a space. Every renderer passes all its text through it, so a Content built
// by hand is as safe as one from Compose; clean adds the tidying on top.
func safeLine(s string) string {
	return strings.Map(safeRune, strings.ToValidUTF8(s, "\uFFFD"))
}

func safeRune(r rune) rune {
	switch {
	case ' ' <= r && r <= '~':
		return r
	case unicode.IsSpace(r):
		return ' '
	case unicode.IsControl(r), unicode.Is(unicode.Cf, r), isNoncharacter(r):
		return utf8.RuneError
	}
	return r
}

// isNoncharacter: U+FDD0..U+FDEF and the last two code points of every plane, which
// XML (the SNS API's) and many parsers refuse.
func isNoncharacter(r rune) bool {
	return (r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE
}

// clean makes user-controlled text readable on one line: safeLine's characters, white
// space trimmed and its runs collapsed to one space, and at most max runes (then "…").
func clean(s string, max int) string {
	var b strings.Builder
	space := false
	n := 0
	for _, r := range strings.TrimSpace(safeLine(s)) {
		if r == ' ' {
			space = true
			continue
		}
		if n >= max || (space && n+1 >= max) {
			b.WriteString("…")
			break
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// oneLine folds white space, including line breaks, to single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// nonEmpty stands in for an empty value, so that a ticket shows that it is empty (and
// an ADF text node is never empty).
func nonEmpty(s string) string {
	if s == "" {
		return "(empty)"
	}
	return s
}

// truncateRunes keeps s within max runes, ending with "…" when cut.
func truncateRunes(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}

// truncateBytes keeps s within max bytes without splitting a rune, ending with "…"
// when cut.
func truncateBytes(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// truncateLines keeps s within maxBytes bytes, cut after a line break: a cut never
// splits a line, so never a Markdown code span or escape.
func truncateLines(s string, maxBytes int) string {
	if len(s) <= maxBytes {
		return s
	}
	if cut := strings.LastIndexByte(s[:maxBytes], '\n'); cut >= 0 {
		return s[:cut+1]
	}
	return ""
}

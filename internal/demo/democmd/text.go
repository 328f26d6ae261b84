package democmd

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// wrap breaks text into lines of at most width columns at spaces; the lines after the
// first start with hang (and hold that much less). A word longer than a line is cut.
func wrap(text string, width int, hang string) []string {
	var lines []string
	line, room := "", width
	flush := func() {
		lines = append(lines, line)
		line, room = "", width-runes(hang)
	}
	for _, word := range strings.Fields(text) {
		for runes(word) > room {
			if line != "" {
				flush()
				continue
			}
			r := []rune(word)
			line, word = string(r[:room]), string(r[room:])
			flush()
		}
		switch {
		case line == "":
			line = word
		case runes(line)+1+runes(word) <= room:
			line += " " + word
		default:
			flush()
			line = word
		}
	}
	if line != "" || len(lines) == 0 {
		lines = append(lines, line)
	}
	for i := 1; i < len(lines); i++ {
		lines[i] = hang + lines[i]
	}
	return lines
}

// cut keeps at most width columns of s, ending in "..." when it cut.
func cut(s string, width int) string {
	if runes(s) <= width {
		return s
	}
	return string([]rune(s)[:width-3]) + "..."
}

func runes(s string) int { return utf8.RuneCountInString(s) }

func pad(s string, width int) string { return s + strings.Repeat(" ", max(0, width-runes(s))) }

func number(f float64) string { return strings.TrimSuffix(fmt.Sprintf("%.2f", f), ".00") }

// shortTime drops the date of a time on the same UTC day as now: "09:00Z", else
// "2026-11-20T14:00Z".
func shortTime(t, now time.Time) string {
	t, now = t.UTC(), now.UTC()
	if t.Format(time.DateOnly) == now.Format(time.DateOnly) {
		return t.Format("15:04Z")
	}
	return t.Format("2006-01-02T15:04Z")
}

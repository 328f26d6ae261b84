package ticket

import (
	"strings"
	"testing"
)

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

package ticket

import (
	"strings"
	"testing"
)

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"  a \n\t b  ", "a b"},
		{"x\u202ey", "x\ufffdy"},
		{"x\x00y\x1b[31m", "x\ufffdy\ufffd[31m"},
		{"bad \xff utf8", "bad \ufffd utf8"},
		{strings.Repeat("a", 10), "aaaaa…"},
	}
	for _, tt := range tests {
		max := maxTextRunes
		if strings.HasPrefix(tt.in, "aaa") {
			max = 5
		}
		if got := clean(tt.in, max); got != tt.want {
			t.Errorf("clean(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

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

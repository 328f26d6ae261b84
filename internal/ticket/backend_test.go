package ticket

import (
	"strings"
	"testing"
)

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

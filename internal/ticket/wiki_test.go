package ticket

import "testing"

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

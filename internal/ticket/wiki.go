package ticket

import (
	"regexp"
	"strings"
)

const (
	noformatOpen  = "{noformat}\n"
	noformatClose = "\n{noformat}"
)

// noformatStart is the start of a {noformat} macro, with or without parameters.
var noformatStart = regexp.MustCompile(`(?i)\{noformat`)

// noformat sets text in a {noformat} block, so Data Center's wiki renderer shows it as
// it is. Inside the block the one piece of markup is another {noformat}: it ends the
// block, and whatever follows is live wiki markup (links, images, macros). So the
// brace of every "{noformat" inside becomes a fullwidth one (U+FF5B). Removing the
// macro instead would let the text around it join into a new one ("{no{noformat}format}"
// becomes "{noformat}"); replacing a brace with a character that is no brace cannot
// form one.
func noformat(text string) string {
	body := noformatStart.ReplaceAllStringFunc(text, func(m string) string { return "\uFF5B" + m[1:] })
	return noformatOpen + strings.TrimRight(body, "\n") + noformatClose
}

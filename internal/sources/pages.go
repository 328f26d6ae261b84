package sources

import (
	"fmt"

	"github.com/imdsguard/imdsguard/internal/evidence"
)

// readPages follows one operation's page chain: read is called with each NextToken (nil
// for the first page), reads and files its page, and returns the page's NextToken. A
// token that comes back again is an incomplete reply (evidence.PageChain). Errors are
// wrapped with what.
func readPages(op, what string, read func(token *string) (next *string, err error)) error {
	chain := evidence.NewPageChain(op)
	var token *string
	for {
		next, err := read(token)
		if err == nil {
			token, err = chain.Next(next)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if token == nil {
			return nil
		}
	}
}

// incomplete is the error of a reply without its result element.
func incomplete(op, problem string) error {
	return &evidence.IncompleteReplyError{Operation: op, Problem: problem}
}

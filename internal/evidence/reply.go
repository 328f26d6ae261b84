package evidence

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/smithy-go/middleware"
)

// IncompleteReplyError is a reply that parsed but is not the whole answer: a 200 with an
// empty body, a body without the operation's result element, or one whose parts do not
// add up. The SDK would hand it over as a valid, empty result, which the guard must never
// read as "nothing found", so it is an error, retried like throttling (RetryableError)
// before it reaches the gatherer.
type IncompleteReplyError struct {
	Operation string // as IAM names it: "cloudtrail:LookupEvents"
	Problem   string
}

func (e *IncompleteReplyError) Error() string {
	return fmt.Sprintf("%s returned an incomplete reply: %s", e.Operation, e.Problem)
}

// RetryableError tells the SDK's retryer that another attempt may get the whole reply.
func (e *IncompleteReplyError) RetryableError() bool { return true }

// RequireComplete returns an API option that checks every reply of one operation with
// check, inside the SDK's retry loop: an incomplete reply is retried as throttling is,
// and only when every attempt failed does the caller see the IncompleteReplyError.
//
// It sits in the Deserialize step before the operation's own deserializer, so it sees
// the typed result that deserializer made. Gatherers pass it on each call (functional
// options are copied per call), and check the result again themselves, so an API that
// is not the SDK client cannot slip an empty result past them either.
func RequireComplete[T any](operation string, check func(*T) string) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("imdsguardRequireCompleteReply",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				if err != nil {
					return out, md, err
				}
				result, ok := out.Result.(*T)
				if !ok || result == nil {
					return out, md, &IncompleteReplyError{Operation: operation, Problem: fmt.Sprintf("no result (got %T)", out.Result)}
				}
				if problem := check(result); problem != "" {
					return out, md, &IncompleteReplyError{Operation: operation, Problem: problem}
				}
				return out, md, nil
			}), middleware.Before)
	}
}

// PageChain follows NextTokens. A token that comes back a second time would make the
// chain loop for ever (the SDK's paginators only stop on a repeat when asked to, and then
// silently, as if the chain had ended): it is an incomplete reply, not the end.
type PageChain struct {
	operation string
	seen      map[string]bool
}

// NewPageChain starts following the page chain of operation (named as IAM names it).
func NewPageChain(operation string) *PageChain {
	return &PageChain{operation: operation, seen: map[string]bool{}}
}

// Next returns the token to ask for the next page with, or nil at the end of the chain.
func (c *PageChain) Next(token *string) (*string, error) {
	if token == nil || *token == "" {
		return nil, nil
	}
	if c.seen[*token] {
		return nil, &IncompleteReplyError{Operation: c.operation,
			Problem: fmt.Sprintf("page %d repeats an earlier NextToken, so the page chain would never end", len(c.seen)+1)}
	}
	c.seen[*token] = true
	return token, nil
}

// ErrOutOfTime marks evidence that was not read because the time given to read it ran
// out (the context's deadline, or a LookupEvents that could not start before it), not
// because AWS failed to answer. The guard defers such an instance as it defers any
// missing evidence; a unit of work hands it to its continuation instead.
var ErrOutOfTime = errors.New("out of time for this evidence")

// TimeUp marks err with ErrOutOfTime when ctx is done: the call failed because its time
// was up. Any other error is returned as it is.
func TimeUp(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && !errors.Is(err, ErrOutOfTime) {
		return fmt.Errorf("%w: %w", ErrOutOfTime, err)
	}
	return err
}

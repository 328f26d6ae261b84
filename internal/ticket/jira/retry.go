package jira

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Retry bounds the retries of throttled (429) and failed (5xx, network) requests.
// Zero fields take the defaults.
type Retry struct {
	// MaxAttempts is the number of tries of one request, the first included (default 4).
	MaxAttempts int
	// BaseDelay is the wait before the first retry, doubled for each further one
	// (default 500ms); each wait is drawn between half of it and all of it.
	BaseDelay time.Duration
	// MaxDelay caps each wait (default 20s). A Retry-After longer than MaxDelay is not
	// waited out: the request fails at once, saying so, so that the caller (the SQS
	// redelivery) retries later.
	MaxDelay time.Duration
}

const (
	defaultAttempts  = 4
	defaultBaseDelay = 500 * time.Millisecond
	defaultMaxDelay  = 20 * time.Second
)

// Retrying runs attempt, one try of an operation, until it succeeds or fails for good:
// after a 429, a 5xx or no response it waits (the backoff, or longer when Jira's
// Retry-After asks) and runs it again, up to Retry.MaxAttempts tries in all. Any other
// error ends it at once. Every request of the client's own methods but CreateIssue is
// retried this way.
func (c *Client) Retrying(ctx context.Context, attempt func() error) error {
	r := c.retry()
	for n := 1; ; n++ {
		err := attempt()
		if err == nil {
			return nil
		}
		wait, stop := c.next(ctx, err, n, r)
		if stop != nil {
			return stop
		}
		if serr := sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (stopped waiting to retry: %w)", err, serr)
		}
	}
}

// call does one request, retrying as c.Retry allows.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	return c.Retrying(ctx, func() error { return c.once(ctx, method, path, in, out) })
}

// next decides what follows a failed attempt: a wait before the next one, or (stop) the
// error to return.
func (c *Client) next(ctx context.Context, err error, attempt int, r Retry) (wait time.Duration, stop error) {
	var je *Error
	var te *transportError
	switch {
	case ctx.Err() != nil:
		return 0, err
	case errors.As(err, &je) && je.Retryable():
	case errors.As(err, &te):
	default:
		return 0, err
	}
	if attempt >= r.MaxAttempts {
		if attempt > 1 {
			return 0, fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		return 0, err
	}
	wait = r.backoff(attempt)
	if je != nil && je.RetryAfter > 0 {
		if je.RetryAfter > r.MaxDelay {
			return 0, fmt.Errorf("%w (not retried: Jira asks to wait %s, longer than the %s this client waits)", err, je.RetryAfter, r.MaxDelay)
		}
		wait = max(wait, je.RetryAfter)
	}
	status := 0
	if je != nil {
		status = je.Status
	}
	c.logger().Warn("jira: request failed, retrying", "error", err.Error(), "status", status,
		"attempt", attempt, "max_attempts", r.MaxAttempts, "wait", wait.String())
	return wait, nil
}

// retry is c.Retry with the defaults filled in.
func (c *Client) retry() Retry {
	r := c.Retry
	if r.MaxAttempts == 0 {
		r.MaxAttempts = defaultAttempts
	}
	if r.BaseDelay == 0 {
		r.BaseDelay = defaultBaseDelay
	}
	if r.MaxDelay == 0 {
		r.MaxDelay = defaultMaxDelay
	}
	return r
}

// backoff is the wait after the given failed attempt (1-based): BaseDelay doubled per
// attempt, capped at MaxDelay, drawn from its upper half.
func (r Retry) backoff(attempt int) time.Duration {
	d := r.BaseDelay
	for i := 1; i < attempt && d < r.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, r.MaxDelay)
	if half := d / 2; half > 0 {
		d = half + rand.N(half+1)
	}
	return d
}

// retryAfter parses a Retry-After header: seconds or an HTTP date. 0 when absent or
// unreadable.
func retryAfter(h string) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil {
		return max(0, time.Duration(s)*time.Second)
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

package jira

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"
)

func TestRetryAfterHonoured(t *testing.T) {
	c := &Client{Logger: slog.New(slog.DiscardHandler)}
	r := Retry{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Second}
	ctx := context.Background()
	for _, tc := range []struct {
		err     error
		attempt int
		min     time.Duration
		max     time.Duration
		retried bool
	}{
		{&Error{Status: 429, RetryAfter: 3 * time.Second}, 1, 3 * time.Second, 3 * time.Second, true},
		{&Error{Status: 503}, 1, 500 * time.Microsecond, time.Millisecond, true},
		{&Error{Status: 503}, 3, 2 * time.Millisecond, 4 * time.Millisecond, true},
		{&Error{Status: 503}, 4, 0, 0, false},
		{&Error{Status: 429, RetryAfter: time.Minute}, 1, 0, 0, false},
		{&Error{Status: 400}, 1, 0, 0, false},
		{&Error{Status: 401}, 1, 0, 0, false},
		{&transportError{msg: "connection reset", err: io.ErrUnexpectedEOF}, 1, 500 * time.Microsecond, time.Millisecond, true},
		{errors.New("not a request error"), 1, 0, 0, false},
	} {
		wait, stop := c.next(ctx, tc.err, tc.attempt, r)
		if (stop == nil) != tc.retried || wait < tc.min || wait > tc.max {
			t.Errorf("%v at attempt %d: wait %s, stop %v; want retried %v within [%s, %s]", tc.err, tc.attempt, wait, stop, tc.retried, tc.min, tc.max)
		}
	}
	for h, want := range map[string]time.Duration{"": 0, "7": 7 * time.Second, "-3": 0, "soon": 0,
		time.Now().Add(time.Hour).UTC().Format(http.TimeFormat): time.Hour} {
		if got := retryAfter(h); got > want || got < want-2*time.Second {
			t.Errorf("Retry-After %q = %s, want %s", h, got, want)
		}
	}
}

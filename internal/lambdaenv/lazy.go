package lambdaenv

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// Lazy is what a function builds on its first invocation instead of before lambda.Start,
// so that its cold start is only the parsing of its settings (DESIGN.md section 6):
// loading the AWS configuration and building the clients and the handler. A build that
// fails fails only the invocation that asked for it, with the error, and is not kept:
// the next invocation builds again. It is safe for concurrent use; one build runs at a
// time, and once one has succeeded every Get returns its value.
type Lazy[T any] struct {
	build func(context.Context) (T, error)
	log   *slog.Logger

	mu    sync.Mutex
	built bool
	value T
}

// NewLazy returns a Lazy that builds with build, logging each failure to log.
func NewLazy[T any](log *slog.Logger, build func(context.Context) (T, error)) *Lazy[T] {
	return &Lazy[T]{build: build, log: log}
}

// Get returns the value, building it first if no build has succeeded yet. ctx is the
// invocation's: a build cut short by its deadline fails that invocation only.
func (l *Lazy[T]) Get(ctx context.Context) (T, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.built {
		return l.value, nil
	}
	v, err := l.build(ctx)
	if err != nil {
		err = fmt.Errorf("setting up the function failed, the next invocation tries again: %w", err)
		l.log.ErrorContext(ctx, "setting up the function failed", "error", err.Error())
		var zero T
		return zero, err
	}
	l.value, l.built = v, true
	return v, nil
}

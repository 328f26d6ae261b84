package ticket

import (
	"context"
	"fmt"
	"sync"
)

// Lazy builds its backend on first use and keeps it, so that a backend that needs a
// secret (Jira) reads it only when a ticket is due: a Secrets Manager hiccup then fails
// that ticket's message, to be retried, instead of every start of the function.
type Lazy struct {
	BackendName string
	Build       func(ctx context.Context) (Backend, error)

	mu      sync.Mutex
	backend Backend
}

// Name implements Backend.
func (l *Lazy) Name() string { return l.BackendName }

func (l *Lazy) get(ctx context.Context) (Backend, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.backend == nil {
		b, err := l.Build(ctx)
		if err != nil {
			return nil, fmt.Errorf("setting up the %s ticket backend: %w", l.BackendName, err)
		}
		l.backend = b
	}
	return l.backend, nil
}

// Open implements Backend.
func (l *Lazy) Open(ctx context.Context, t Ticket) (string, error) {
	b, err := l.get(ctx)
	if err != nil {
		return "", err
	}
	return b.Open(ctx, t)
}

// Update implements Backend.
func (l *Lazy) Update(ctx context.Context, ref string, t Ticket) error {
	b, err := l.get(ctx)
	if err != nil {
		return err
	}
	return b.Update(ctx, ref, t)
}

// Resolve implements Backend.
func (l *Lazy) Resolve(ctx context.Context, ref string, c Closing) error {
	b, err := l.get(ctx)
	if err != nil {
		return err
	}
	return b.Resolve(ctx, ref, c)
}

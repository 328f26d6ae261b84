package ticket

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/imdsguard/imdsguard/internal/message"
)

// Backend is where tickets live: SNS, OpsCenter or Jira. The lifecycle (one open
// ticket per instance, updates only on new evidence, close-out) is kept in the ledger
// by the caller; a backend only creates, updates and resolves.
type Backend interface {
	// Name is the backend's name as the TicketBackend parameter spells it.
	Name() string
	// Open returns the backend's open ticket for the instance, creating one when there is
	// none, so a retry after a lost reply does not open a second ticket.
	Open(ctx context.Context, t Ticket) (ref string, err error)
	// Update adds new evidence to the open ticket ref.
	Update(ctx context.Context, ref string, t Ticket) error
	// Resolve closes the ticket ref with a closing note.
	Resolve(ctx context.Context, ref string, c Closing) error
}

// Ticket is one verdict's ticket, composed once for every backend.
type Ticket struct {
	Verdict message.Verdict
	Content Content
}

// NewTicket composes the ticket for a verdict.
func NewTicket(v message.Verdict, opts ComposeOptions) Ticket {
	return Ticket{Verdict: v, Content: Compose(v, opts)}
}

// DedupKey identifies an instance's ticket across sweeps, in every backend.
func (t Ticket) DedupKey() string {
	return DedupKey(t.Verdict.AccountID, t.Verdict.Region, t.Verdict.InstanceID)
}

// DedupKey identifies an instance's ticket across sweeps, in every backend.
func DedupKey(account, region, instanceID string) string {
	return "imdsguard:" + account + ":" + region + ":" + instanceID
}

// Closing says why an instance's ticket is resolved.
type Closing struct {
	AccountID, Region, InstanceID string
	// Why is a sentence for the closing comment, e.g. "HttpTokens is now required".
	Why        string
	DecisionID string
	At         time.Time
	DryRun     bool
}

// Title is the closing comment's first line.
func (c Closing) Title() string {
	prefix := ""
	if c.DryRun {
		prefix = "[dry-run] "
	}
	return prefix + "Resolved: IMDSv1 no longer a risk on " + clean(c.InstanceID, maxTextRunes) +
		" in " + clean(c.AccountID, maxTextRunes) + "/" + clean(c.Region, maxTextRunes)
}

// Text is the closing comment: each field cleaned, so that none adds a line.
func (c Closing) Text() string {
	return c.Title() + "\n\n" + clean(c.Why, maxTextRunes) + "\n\nimdsguard decision " + clean(c.DecisionID, maxTextRunes) +
		" at " + c.At.UTC().Format(time.RFC3339) + "."
}

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

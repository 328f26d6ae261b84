package fakeapi

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/imdsguard/imdsguard/internal/ticket"
)

// Filed is a ticket as the fake backend holds it.
type Filed struct {
	Ref      string
	DedupKey string
	Open     bool
	// Versions are the tickets sent: the one it was opened with, then each update.
	Versions []ticket.Ticket
	Closing  *ticket.Closing
}

// TicketCall is one call of the ticket.Backend interface.
type TicketCall struct {
	Op      string // "Open", "Update", "Resolve"
	Ref     string // the ticket's reference (for Open, the one returned)
	Ticket  *ticket.Ticket
	Closing *ticket.Closing
	Err     error
}

// Tickets is an in-process ticket backend implementing ticket.Backend. Open returns the
// instance's open ticket when it has one (by dedup key), as the Backend contract asks,
// else files a new one "FAKE-<n>"; Update needs an open ticket; Resolve closes one.
type Tickets struct {
	// BackendName is what Name returns; "fake" when empty.
	BackendName string

	Journal *Journal

	mu    sync.Mutex
	filed map[string]*Filed
	order []string
	calls []TicketCall
	fail  failures
}

// NewTickets returns a backend with no tickets.
func NewTickets(journal *Journal) *Tickets {
	return &Tickets{Journal: journal, filed: map[string]*Filed{}, fail: failures{known: []string{"Open", "Update", "Resolve"}}}
}

// Name implements ticket.Backend.
func (b *Tickets) Name() string {
	if b.BackendName == "" {
		return "fake"
	}
	return b.BackendName
}

// FailNext makes the next calls of op ("Open", "Update", "Resolve") fail, one per
// error; a nil error lets that call through.
func (b *Tickets) FailNext(op string, errs ...error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fail.failNext(op, errs...)
}

// Filed returns every ticket filed, in the order they were opened.
func (b *Tickets) Filed() []Filed {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Filed, 0, len(b.order))
	for _, ref := range b.order {
		f := *b.filed[ref]
		f.Versions = slices.Clone(f.Versions)
		out = append(out, f)
	}
	return out
}

// Calls returns the calls made so far, oldest first.
func (b *Tickets) Calls() []TicketCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

// Open implements ticket.Backend.
func (b *Tickets) Open(ctx context.Context, t ticket.Ticket) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.Journal.add("ticket:Open")
	call := TicketCall{Op: "Open", Ticket: &t}
	ref, err := b.open(ctx, t)
	call.Ref, call.Err = ref, err
	b.calls = append(b.calls, call)
	return ref, err
}

func (b *Tickets) open(ctx context.Context, t ticket.Ticket) (string, error) {
	if err := b.fail.take("Open"); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	key := t.DedupKey()
	for _, ref := range b.order {
		if f := b.filed[ref]; f.Open && f.DedupKey == key {
			return ref, nil
		}
	}
	ref := fmt.Sprintf("FAKE-%d", len(b.order)+1)
	b.filed[ref] = &Filed{Ref: ref, DedupKey: key, Open: true, Versions: []ticket.Ticket{t}}
	b.order = append(b.order, ref)
	return ref, nil
}

// Update implements ticket.Backend.
func (b *Tickets) Update(ctx context.Context, ref string, t ticket.Ticket) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.Journal.add("ticket:Update")
	err := b.update(ctx, ref, t)
	b.calls = append(b.calls, TicketCall{Op: "Update", Ref: ref, Ticket: &t, Err: err})
	return err
}

func (b *Tickets) update(ctx context.Context, ref string, t ticket.Ticket) error {
	if err := b.fail.take("Update"); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, ok := b.filed[ref]
	if !ok || !f.Open {
		return fmt.Errorf("fakeapi: no open ticket %s to update", ref)
	}
	f.Versions = append(f.Versions, t)
	return nil
}

// Resolve implements ticket.Backend.
func (b *Tickets) Resolve(ctx context.Context, ref string, c ticket.Closing) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.Journal.add("ticket:Resolve")
	err := b.resolve(ctx, ref, c)
	b.calls = append(b.calls, TicketCall{Op: "Resolve", Ref: ref, Closing: &c, Err: err})
	return err
}

func (b *Tickets) resolve(ctx context.Context, ref string, c ticket.Closing) error {
	if err := b.fail.take("Resolve"); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, ok := b.filed[ref]
	if !ok {
		return fmt.Errorf("fakeapi: no ticket %s to resolve", ref)
	}
	f.Open, f.Closing = false, &c
	return nil
}

// File files an open ticket as an earlier invocation would have, and returns its
// reference; no call is recorded.
func (b *Tickets) File(t ticket.Ticket) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	ref := fmt.Sprintf("FAKE-%d", len(b.order)+1)
	b.filed[ref] = &Filed{Ref: ref, DedupKey: t.DedupKey(), Open: true, Versions: []ticket.Ticket{t}}
	b.order = append(b.order, ref)
	return ref
}

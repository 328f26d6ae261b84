package ledger_test

import (
	"slices"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/openticket"
)

func TestTicketLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	refs := []ledger.Ref{
		{AccountID: "123456789012", Region: testRegion, InstanceID: "i-0000000000000000a"},
		{AccountID: "123456789012", Region: testRegion, InstanceID: "i-0000000000000000b"},
		{AccountID: "123456789012", Region: "eu-west-1", InstanceID: "i-0000000000000000c"},
	}
	if got, err := f.ledger.GetTicket(ctx, refs[0]); err != nil || got != nil {
		t.Fatalf("ticket of a fresh instance: %+v, %v", got, err)
	}
	for i, ref := range refs {
		tk := ledger.Ticket{Ref: ref, Backend: "jira", TicketRef: "SEC-" + string(rune('1'+i)), Status: ledger.TicketOpen,
			Digest: "d1", Title: "IMDSv1 still used", OpenedAt: at, UpdatedAt: at}
		if err := f.ledger.PutTicket(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	index := &openticket.Index{API: f.client, Table: testTable}
	open, err := index.OpenTickets(ctx, "123456789012", testRegion)
	if err != nil || !slices.Equal(open, []string{refs[0].InstanceID, refs[1].InstanceID}) {
		t.Fatalf("open tickets %+v, %v; want the two in %s", open, err, testRegion)
	}
	got, err := f.ledger.GetTicket(ctx, refs[1])
	if err != nil || got == nil || got.TicketRef != "SEC-2" || got.Status != ledger.TicketOpen || !got.OpenedAt.Equal(at) || !got.ResolvedAt.IsZero() {
		t.Fatalf("ticket %+v, %v", got, err)
	}
	got.Status, got.ResolvedAt, got.UpdatedAt = ledger.TicketResolved, at.Add(time.Hour), at.Add(time.Hour)
	if err := f.ledger.PutTicket(ctx, *got); err != nil {
		t.Fatal(err)
	}
	open, err = index.OpenTickets(ctx, "123456789012", testRegion)
	if err != nil || !slices.Equal(open, []string{refs[0].InstanceID}) {
		t.Fatalf("after resolving: open tickets %+v, %v", open, err)
	}
	again, err := f.ledger.GetTicket(ctx, refs[1])
	if err != nil || again.Status != ledger.TicketResolved || !again.ResolvedAt.Equal(at.Add(time.Hour)) {
		t.Fatalf("resolved ticket %+v, %v", again, err)
	}
	if err := f.ledger.PutTicket(ctx, ledger.Ticket{Ref: refs[0], Status: "maybe"}); err == nil {
		t.Error("an invalid ticket was written")
	}
}

package ticket

import "context"

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

// fallbackTitle stands in for a title with nothing left to show (SNS subject, Jira
// summary, OpsItem title).
const fallbackTitle = "imdsguard ticket"

// titleLine is a title for a ticket system's one-line title field (Jira summary, OpsItem
// title): safeLine's characters, white space collapsed, at most maxRunes runes, and
// never empty, which both systems refuse.
func titleLine(title string, maxRunes int) string {
	if t := truncateRunes(oneLine(safeLine(title)), maxRunes); t != "" {
		return t
	}
	return fallbackTitle
}

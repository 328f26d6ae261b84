// Package ticket tells an instance's owners that IMDSv1 is still in use, with the
// evidence, so they can fix their software before enforcement.
//
// The package has three parts, one concern per file:
//
//   - The model: a Ticket is a verdict and its Content (ticket.go); Compose builds the
//     Content from the verdict (compose.go), with the advice for each user agent
//     (useragent.go) and the digest of the evidence that makes a ticket new
//     (evidence.go). Content is Sections of Blocks of Spans (content.go) and holds no
//     markup.
//   - The renderers, one file each, turn a Content into one format: Markdown
//     (markdown.go), plain text (plain.go), Atlassian Document Format (adf.go), and Jira
//     wiki's {noformat} block around plain text (wiki.go). Every text they write goes
//     through safeLine (text.go), the one line-safety rule, so that nothing from the
//     outside adds a line or markup.
//   - The backends, one file each, behind Backend (backend.go): SNS (sns.go), OpsCenter
//     (opscenter.go) and Jira (jira.go), which speaks to Jira through the REST client in
//     internal/ticket/jira; Lazy (lazy.go) builds a backend on first use.
//
// A new renderer is a file with a method on Content that walks Sections, Blocks, Items
// and Spans, escapes what its format needs and passes every text through safeLine (see
// plain.go, the shortest). A new backend is a file with a type that implements Backend
// with the renderer its system takes (see sns.go), its API client behind a small
// interface with the SDK's signatures, and titleLine for a one-line title field.
package ticket

import (
	"time"

	"github.com/imdsguard/imdsguard/internal/message"
)

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

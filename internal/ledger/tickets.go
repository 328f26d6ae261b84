package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imdsguard/imdsguard/internal/ledger/openticket"
)

// Ticket results of an outcome.
const (
	ResultTicketUpdated   = "ticket-updated"   // new evidence was added to the open ticket
	ResultTicketUnchanged = "ticket-unchanged" // the open ticket already has this evidence
	ResultTicketResolved  = "ticket-resolved"  // the instance is compliant: its ticket was closed
)

// Ticket statuses.
const (
	TicketOpen     = "open"
	TicketResolved = "resolved"
)

// Ticket is an instance's ticket as the ledger knows it: there is at most one open
// ticket per instance, whatever the backend.
type Ticket struct {
	Ref
	Backend string
	// TicketRef is the backend's reference: an OpsItem id, a Jira issue key, or the dedup
	// key for SNS.
	TicketRef string
	Status    string
	// Digest is the evidence digest of the latest content sent to the ticket; a verdict
	// with the same digest adds nothing.
	Digest     string
	Title      string
	OpenedAt   time.Time
	UpdatedAt  time.Time
	ResolvedAt time.Time
}

const (
	ticketSK       = "TICKET"
	typeTicket     = "ticket"
	typeOpenTicket = "open-ticket"
)

// ticketItem lives under the instance's partition; an open-ticket item per open ticket
// lives in the account-region's partition of package openticket, so that detect can list
// the open tickets of a region with one Query instead of reading every instance.
type ticketItem struct {
	instanceItem
	Backend    string `dynamodbav:"backend"`
	TicketRef  string `dynamodbav:"ticket_ref"`
	Status     string `dynamodbav:"status"`
	Digest     string `dynamodbav:"digest"`
	Title      string `dynamodbav:"title,omitempty"`
	OpenedAt   string `dynamodbav:"opened_at"`
	UpdatedAt  string `dynamodbav:"updated_at"`
	ResolvedAt string `dynamodbav:"resolved_at,omitempty"`
}

func ticketKey(r Ref) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(instancePK(r)), attrSK: str(ticketSK)}
}

// GetTicket returns the instance's ticket, open or resolved; nil when it never had one.
func (l *Ledger) GetTicket(ctx context.Context, ref Ref) (*Ticket, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	item, err := l.get(ctx, ticketKey(ref))
	if err != nil {
		return nil, fmt.Errorf("ledger: ticket of %s in table %s: %w", ref.Name(), l.Table, err)
	}
	if item == nil {
		return nil, nil
	}
	var it ticketItem
	if err := attributevalue.UnmarshalMap(item, &it); err != nil {
		return nil, fmt.Errorf("ledger: ticket of %s in table %s: decoding: %w", ref.Name(), l.Table, err)
	}
	t, err := it.ticket()
	if err != nil {
		return nil, fmt.Errorf("ledger: ticket of %s in table %s: %w", ref.Name(), l.Table, err)
	}
	return &t, nil
}

// PutTicket writes the instance's ticket. An open ticket is also listed in its
// account-region's open tickets; a resolved one is taken off that list. Both writes are
// one transaction.
func (l *Ledger) PutTicket(ctx context.Context, t Ticket) error {
	if err := l.check(); err != nil {
		return err
	}
	if err := t.valid(); err != nil {
		return fmt.Errorf("ledger: ticket: %w", err)
	}
	item, err := attributevalue.MarshalMap(ticketItem{
		instanceItem: newInstanceItem(t.Ref, ticketSK, typeTicket),
		Backend:      t.Backend, TicketRef: t.TicketRef, Status: t.Status, Digest: t.Digest, Title: t.Title,
		OpenedAt: formatTime(t.OpenedAt), UpdatedAt: formatTime(t.UpdatedAt), ResolvedAt: optionalTime(t.ResolvedAt),
	})
	if err != nil {
		return fmt.Errorf("ledger: ticket of %s: encoding: %w", t.Name(), err)
	}
	listKey := map[string]types.AttributeValue{attrPK: str(openticket.PartitionKey(t.AccountID, t.Region)), attrSK: str(t.InstanceID)}
	list := types.TransactWriteItem{Delete: &types.Delete{TableName: aws.String(l.Table), Key: listKey}}
	if t.Status == TicketOpen {
		entry := map[string]types.AttributeValue{
			attrPK: listKey[attrPK], attrSK: listKey[attrSK], "type": str(typeOpenTicket),
			"account_id": str(t.AccountID), "region": str(t.Region), "instance_id": str(t.InstanceID),
			"backend": str(t.Backend), "ticket_ref": str(t.TicketRef),
		}
		list = types.TransactWriteItem{Put: &types.Put{TableName: aws.String(l.Table), Item: entry}}
	}
	_, err = l.API.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(l.Table), Item: item}},
		list,
	}})
	if err != nil {
		return fmt.Errorf("ledger: ticket of %s in table %s: %w", t.Name(), l.Table, err)
	}
	return nil
}

func (t Ticket) valid() error {
	if err := validRef(t.Ref); err != nil {
		return err
	}
	switch {
	case t.Backend == "" || t.TicketRef == "":
		return fmt.Errorf("ticket of %s needs a backend and a reference", t.Name())
	case t.Status != TicketOpen && t.Status != TicketResolved:
		return fmt.Errorf("ticket of %s: status %q is not open or resolved", t.Name(), t.Status)
	case t.OpenedAt.IsZero() || t.UpdatedAt.IsZero():
		return fmt.Errorf("ticket of %s needs its opened and updated times", t.Name())
	}
	return nil
}

func optionalTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return formatTime(t)
}

func (it ticketItem) ticket() (Ticket, error) {
	t := Ticket{
		Ref:     it.ref(),
		Backend: it.Backend, TicketRef: it.TicketRef, Status: it.Status, Digest: it.Digest, Title: it.Title,
	}
	var errs []error
	var err error
	if t.OpenedAt, err = parseTime(it.OpenedAt); err != nil {
		errs = append(errs, err)
	}
	if t.UpdatedAt, err = parseTime(it.UpdatedAt); err != nil {
		errs = append(errs, err)
	}
	if it.ResolvedAt != "" {
		if t.ResolvedAt, err = parseTime(it.ResolvedAt); err != nil {
			errs = append(errs, err)
		}
	}
	return t, errors.Join(errs...)
}

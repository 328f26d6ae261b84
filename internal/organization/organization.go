// Package organization lists the accounts of an AWS Organization, or of some of its
// organizational units, for the hub's sweeps and the CLI's --org (DESIGN.md section 11).
package organization

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"

	"github.com/imdsguard/imdsguard/internal/evidence"
)

// API is the part of the Organizations client the lister uses.
type API interface {
	ListAccounts(ctx context.Context, in *organizations.ListAccountsInput, optFns ...func(*organizations.Options)) (*organizations.ListAccountsOutput, error)
	ListAccountsForParent(ctx context.Context, in *organizations.ListAccountsForParentInput, optFns ...func(*organizations.Options)) (*organizations.ListAccountsForParentOutput, error)
	ListOrganizationalUnitsForParent(ctx context.Context, in *organizations.ListOrganizationalUnitsForParentInput, optFns ...func(*organizations.Options)) (*organizations.ListOrganizationalUnitsForParentOutput, error)
}

// Lister lists the active accounts of Units and every unit below them, or of the whole
// organization when Units is empty, sorted. It works from the management account or a
// delegated administrator.
type Lister struct {
	API   API
	Units []string
}

// Accounts lists the active accounts. An organization, or units, without one is an
// error: a sweep of nothing would look like a clean one. So is a reply without its list
// (an empty 200): the accounts it would have named must not drop out of a sweep unseen.
func (l Lister) Accounts(ctx context.Context) ([]string, error) {
	var out []string
	add := func(accounts []orgtypes.Account) {
		for _, a := range accounts {
			if a.State == orgtypes.AccountStateActive || (a.State == "" && a.Status == orgtypes.AccountStatusActive) {
				out = append(out, aws.ToString(a.Id))
			}
		}
	}
	if len(l.Units) == 0 {
		pages := organizations.NewListAccountsPaginator(l.API, &organizations.ListAccountsInput{})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err == nil && page.Accounts == nil {
				err = &evidence.IncompleteReplyError{Operation: "organizations:ListAccounts", Problem: "no Accounts"}
			}
			if err != nil {
				return nil, fmt.Errorf("listing the organization's accounts (organizations:ListAccounts, from the management account or a delegated administrator): %w", err)
			}
			add(page.Accounts)
		}
	} else {
		// Breadth first through the units below the given ones; seen guards against a
		// unit given twice, or given with one of its parents.
		queue, seen := slices.Clone(l.Units), map[string]bool{}
		for len(queue) > 0 {
			parent := queue[0]
			queue = queue[1:]
			if seen[parent] {
				continue
			}
			seen[parent] = true
			accounts := organizations.NewListAccountsForParentPaginator(l.API, &organizations.ListAccountsForParentInput{ParentId: aws.String(parent)})
			for accounts.HasMorePages() {
				page, err := accounts.NextPage(ctx)
				if err == nil && page.Accounts == nil {
					err = &evidence.IncompleteReplyError{Operation: "organizations:ListAccountsForParent", Problem: "no Accounts"}
				}
				if err != nil {
					return nil, fmt.Errorf("listing the accounts of %s (organizations:ListAccountsForParent): %w", parent, err)
				}
				add(page.Accounts)
			}
			units := organizations.NewListOrganizationalUnitsForParentPaginator(l.API, &organizations.ListOrganizationalUnitsForParentInput{ParentId: aws.String(parent)})
			for units.HasMorePages() {
				page, err := units.NextPage(ctx)
				if err == nil && page.OrganizationalUnits == nil {
					err = &evidence.IncompleteReplyError{Operation: "organizations:ListOrganizationalUnitsForParent", Problem: "no OrganizationalUnits"}
				}
				if err != nil {
					return nil, fmt.Errorf("listing the units below %s (organizations:ListOrganizationalUnitsForParent): %w", parent, err)
				}
				for _, u := range page.OrganizationalUnits {
					queue = append(queue, aws.ToString(u.Id))
				}
			}
		}
	}
	if len(out) == 0 {
		if len(l.Units) > 0 {
			return nil, fmt.Errorf("the organizational units %v hold no active account", l.Units)
		}
		return nil, fmt.Errorf("organizations:ListAccounts listed no active account")
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

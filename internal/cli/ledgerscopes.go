package cli

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/spf13/cobra"

	"github.com/imdsguard/imdsguard/internal/organization"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// The ledger commands across an organization (DESIGN.md section 11): the hub's ledger
// holds every member's records, so status and audit read them with the hub's
// credentials, in the hub's region, and need no member role. The account-regions are
// --accounts or --org times --region.

// ledgerScopeFlags are the ledger commands' flags for other accounts.
type ledgerScopeFlags struct {
	accounts []string
	org      bool
}

func addLedgerScopeFlags(cmd *cobra.Command, f *ledgerScopeFlags) {
	cmd.Flags().StringSliceVar(&f.accounts, "accounts", nil, "read these accounts' records in the hub's ledger (comma-separated), in each --region")
	cmd.Flags().BoolVar(&f.org, "org", false, "read every active account of the organization (organizations:ListAccounts), in each --region")
}

// multi reports whether other accounts than --account are read.
func (f ledgerScopeFlags) multi() bool { return f.org || len(f.accounts) > 0 }

// check refuses flags that do not go together, before any AWS call.
func (f ledgerScopeFlags) check(account string, regions []string) error {
	for _, a := range f.accounts {
		if !policy.ValidAccountID(a) {
			return usagef("--accounts: %q is not a 12-digit account id", a)
		}
	}
	for _, r := range regions {
		if !policy.ValidRegion(r) {
			return usagef("--region %q is not a region", r)
		}
	}
	switch {
	case f.org && len(f.accounts) > 0:
		return usagef("--org reads every account of the organization; --accounts names some: give one of them")
	case f.multi() && account != "":
		return usagef("--account names one account; --accounts and --org read several: give one of them")
	case !f.multi() && len(regions) > 1:
		return usagef("several --region values read a hub's ledger across accounts: give --accounts or --org")
	}
	return nil
}

// ledgerScope is one account-region a ledger command reads.
type ledgerScope struct{ account, region string }

// scopes lists the account-regions: the accounts (--accounts, or the organization's)
// times the regions (default: the configuration's).
func (f ledgerScopeFlags) scopes(ctx context.Context, cfg aws.Config, regions []string) ([]ledgerScope, error) {
	accounts := slices.Clone(f.accounts)
	if f.org {
		var err error
		if accounts, err = (organization.Lister{API: organizations.NewFromConfig(cfg)}).Accounts(ctx); err != nil {
			return nil, err
		}
	}
	slices.Sort(accounts)
	accounts = slices.Compact(accounts)
	if len(regions) == 0 {
		regions = []string{cfg.Region}
	}
	var out []ledgerScope
	for _, a := range accounts {
		for _, r := range regions {
			out = append(out, ledgerScope{account: a, region: r})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no account-region to read")
	}
	return out, nil
}

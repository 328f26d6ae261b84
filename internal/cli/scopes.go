package cli

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/spf13/cobra"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/organization"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/wiring"
)

// Planning across accounts (DESIGN.md section 11): each account is reached through a
// role session (sts:AssumeRole of --role-name in it), each account-region has its own
// clients and so its own LookupEvents limiter, and the scopes are planned a few at a time.

// DefaultRoleName is the role plan assumes in each account with --accounts or --org.
const DefaultRoleName = "imdsguard-read"

// roleSessionName names plan's sessions in the members' CloudTrail.
const roleSessionName = "imdsguard-plan"

// scopeTarget is one account-region to plan. account is empty when the configured
// credentials' own account is planned (it is told afterwards); err is set when the
// scope could not even be set up (its regions could not be listed).
type scopeTarget struct {
	account, region string
	clients         *wiring.Clients
	err             error
}

// accountOptions are plan's flags for other accounts.
type accountOptions struct {
	accounts   []string
	org        bool
	roleName   string
	allRegions bool
}

// addAccountFlags declares the flags of plan and guardrails for other accounts.
func addAccountFlags(cmd *cobra.Command, o *accountOptions, concurrency *int) {
	f := cmd.Flags()
	f.StringSliceVar(&o.accounts, "accounts", nil, "judge these accounts (comma-separated), each through a session of --role-name in it")
	f.BoolVar(&o.org, "org", false, "judge every active account of the organization (organizations:ListAccounts), each through --role-name")
	f.StringVar(&o.roleName, "role-name", DefaultRoleName, "the role assumed in each account of --accounts or --org")
	f.BoolVar(&o.allRegions, "all-regions", false, "judge every region enabled in each account (ec2:DescribeRegions) instead of --region")
	f.IntVar(concurrency, "concurrency", 4, "account-regions judged at once, from 1 to 32 (each keeps its own CloudTrail rate)")
}

// multi reports whether other accounts are judged: every scope then names its account
// from the start, and the ledger is read with the configured credentials (the hub's).
func (o accountOptions) multi() bool { return o.org || len(o.accounts) > 0 }

// check refuses flags that do not go together, before any AWS call.
func (o accountOptions) check(cmd interface{ Changed(string) bool }, regions []string, concurrency int) error {
	if concurrency < 1 || concurrency > 32 {
		return usagef("--concurrency must be from 1 to 32, got %d", concurrency)
	}
	for _, a := range o.accounts {
		if !policy.ValidAccountID(a) {
			return usagef("--accounts: %q is not a 12-digit account id", a)
		}
	}
	switch {
	case o.org && len(o.accounts) > 0:
		return usagef("--org plans every account of the organization; --accounts names some: give one of them")
	case cmd.Changed("role-name") && !o.org && len(o.accounts) == 0:
		return usagef("--role-name is the role to assume in other accounts: give --accounts or --org")
	case o.allRegions && len(regions) > 0:
		return usagef("--all-regions plans every region enabled in each account; --region names some: give one of them")
	case !policy.ValidRoleName(o.roleName):
		return usagef("--role-name %q is not an IAM role name (1 to 64 of letters, digits and +=,.@_-)", o.roleName)
	}
	return nil
}

// loadTargets loads the configuration (in the first of regions, when given; counter,
// when set, counts its calls) and lists the account-regions to judge with it.
func loadTargets(ctx context.Context, env Env, callTimeout time.Duration, counter *awsapi.CallCounter, o accountOptions, regions []string,
	lookupsPerSec float64) (aws.Config, []scopeTarget, error) {
	load := env.AWS
	load.CallTimeout = callTimeout
	if counter != nil {
		load.Counter = counter
	}
	if len(regions) > 0 {
		load.Region = regions[0]
	}
	base, err := awsapi.Load(ctx, load)
	if err != nil {
		return aws.Config{}, nil, err
	}
	targets, err := planTargets(ctx, base, o, regions, wiring.Options{LookupsPerSecond: lookupsPerSec})
	return base, targets, err
}

// planTargets lists the account-regions to plan and builds their clients. Without
// --accounts and --org they are the regions with the configured credentials, as before.
// With them, each account's clients use a session of the role in it; with --all-regions,
// each account's regions are those EC2 says are enabled there, and an account whose
// regions cannot be listed is one failed scope.
func planTargets(ctx context.Context, base aws.Config, o accountOptions, regions []string, wopts wiring.Options) ([]scopeTarget, error) {
	if len(regions) == 0 && !o.allRegions {
		regions = []string{base.Region}
	}
	if !o.org && len(o.accounts) == 0 {
		var out []scopeTarget
		for _, region := range regions {
			cfg := base.Copy()
			cfg.Region = region
			out = append(out, scopeTarget{region: region, clients: wiring.New(cfg, wopts)})
		}
		return out, nil
	}
	accounts := o.accounts
	if o.org {
		var err error
		if accounts, err = organizationAccounts(ctx, base); err != nil {
			return nil, err
		}
	}
	sessions := wiring.NewSessions(base, wiring.SessionsOptions{RoleName: o.roleName, SessionName: roleSessionName, Clients: wopts})
	var out []scopeTarget
	for _, account := range accounts {
		these := regions
		if o.allRegions {
			enabled, err := enabledRegions(ctx, sessions.Config(account, base.Region))
			if err != nil {
				out = append(out, scopeTarget{account: account, region: base.Region, err: fmt.Errorf("listing the regions of %s: %w", account, err)})
				continue
			}
			these = enabled
		}
		for _, region := range these {
			out = append(out, scopeTarget{account: account, region: region, clients: sessions.Clients(account, region)})
		}
	}
	return out, nil
}

// organizationAccounts lists the organization's active accounts (organizations:
// ListAccounts, from the management account or a delegated administrator).
func organizationAccounts(ctx context.Context, cfg aws.Config) ([]string, error) {
	return organization.Lister{API: organizations.NewFromConfig(cfg)}.Accounts(ctx)
}

// enabledRegions lists the regions enabled in the session's account.
func enabledRegions(ctx context.Context, cfg aws.Config) ([]string, error) {
	out, err := ec2.NewFromConfig(cfg).DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	if err != nil {
		return nil, err
	}
	var regions []string
	for _, r := range out.Regions {
		if name := aws.ToString(r.RegionName); policy.ValidRegion(name) {
			regions = append(regions, name)
		}
	}
	if len(regions) == 0 {
		return nil, fmt.Errorf("ec2:DescribeRegions listed no region")
	}
	slices.Sort(regions)
	return regions, nil
}

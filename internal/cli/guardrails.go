package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/cobra"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/guardrails"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/report"
	"github.com/imdsguard/imdsguard/internal/sources"
	"github.com/imdsguard/imdsguard/internal/wiring"
)

// defaultExemptRoles are the roles of the stack that call ModifyInstanceMetadataOptions:
// remediate (enforces) and verify (rolls back). template.yaml lets SAM create them
// without a RoleName, so CloudFormation names them <stack>-<logical id>-<suffix>; the
// stack is "imdsguard" (samconfig.toml). Detect's role does not make the call and is
// left out.
var defaultExemptRoles = []string{
	"arn:aws:iam::*:role/imdsguard-RemediateFunctionRole-*",
	"arn:aws:iam::*:role/imdsguard-VerifyFunctionRole-*",
}

// defaultMaxHopLimit is the guardrails' hop limit: 2 lets containers reach IMDS.
const defaultMaxHopLimit = 2

type guardrailsOptions struct {
	regions         []string
	format          string
	exemptRoles     []string
	breakGlassRoles []string
	maxHopLimit     int32
	lookupsPerSec   float64
	// table is the ledger table, read for imdsguard's verified enforcements; empty: none.
	table       string
	accounts    accountOptions
	concurrency int
	settings    map[string]*string
}

func newGuardrailsCommand(env Env) *cobra.Command {
	opts := guardrailsOptions{settings: map[string]*string{}}
	cmd := &cobra.Command{
		Use:   "guardrails",
		Short: "Print the organization policies that lock IMDSv2 in, and which accounts are ready for them (read-only)",
		Long: "guardrails judges every instance and every launch template and launch configuration of the\n" +
			"regions as plan does, and prints whether each account is ready for the lock-in, region by\n" +
			"region, with the evidence: the instances that are neither compliant nor verified yet, the\n" +
			"sources that do not launch with HttpTokens required, the instance metadata defaults. Then\n" +
			"it prints the three documents to attach with AWS Organizations, in the order to attach\n" +
			"them, and how: the EC2 declarative policy (IMDSv2 by default), the SCP that refuses\n" +
			"launches without IMDSv2 or above --max-hop-limit and ModifyInstanceMetadataOptions by any\n" +
			"role but the exempt ones, and the SCP that refuses calls signed with role credentials\n" +
			"fetched over IMDSv1. It changes nothing, and attaches nothing.\n\n" +
			"The exempt roles default to the stack's remediate and verify roles (stack \"imdsguard\");\n" +
			"--exempt-role replaces them, --break-glass-role adds to them. The role you run\n" +
			"`imdsguard apply` and `rollback` with calls ModifyInstanceMetadataOptions too: name it.\n\n" +
			"It exits 0 when every account is ready, 1 when one is not or a region could not be read\n" +
			"(after printing the report). AWS access comes from the standard sources: profile,\n" +
			"AWS_REGION, AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runGuardrails(cmd, env, opts) },
	}
	f := cmd.Flags()
	f.StringArrayVar(&opts.regions, "region", nil, "`region` to judge (repeatable; default: the configured region)")
	f.StringVar(&opts.format, "format", "table", "output format: table or json")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	f.StringArrayVar(&opts.exemptRoles, "exempt-role", slices.Clone(defaultExemptRoles),
		"`ARN pattern` of a role allowed to call ModifyInstanceMetadataOptions (repeatable; replaces the default, the stack's remediate and verify roles)")
	f.StringArrayVar(&opts.breakGlassRoles, "break-glass-role", nil,
		"`ARN pattern` of a break-glass role, added to the exempt roles (repeatable)")
	f.Int32Var(&opts.maxHopLimit, "max-hop-limit", defaultMaxHopLimit,
		"the largest hop limit the SCP lets a launch ask for, and the default the declarative policy sets")
	f.Float64Var(&opts.lookupsPerSec, "cloudtrail-rps", evidence.LookupEventsPerSecond,
		"CloudTrail LookupEvents calls per second per account-region (AWS allows 2)")
	f.StringVar(&opts.table, "table", "", "the ledger table (stack output LedgerTableName), read for the instances imdsguard enforced: "+
		"verified ones count as such, those still being verified as open; without it, both count as compliant")
	addAccountFlags(cmd, &opts.accounts, &opts.concurrency)
	addSettingFlags(cmd, opts.settings)
	return cmd
}

func runGuardrails(cmd *cobra.Command, env Env, opts guardrailsOptions) error {
	ctx := cmd.Context()
	settings, err := loadSettings(cmd, env, opts.settings)
	if err != nil {
		return err
	}
	if opts.format != "table" && opts.format != "json" {
		return usagef("invalid format %q: allowed: table, json", opts.format)
	}
	exempt := unique(cleanList(opts.exemptRoles))
	if cmd.Flags().Changed("exempt-role") && len(exempt) == 0 {
		return usagef("--exempt-role: no role given (leave the flag out for the stack's remediate and verify roles)")
	}
	for _, limit := range []struct {
		flag  string
		value int32
		what  string
	}{
		{"hop-limit", settings.HopLimit, "remediated instances"},
		{"container-hop-limit", settings.ContainerHopLimit, "container hosts and their launch templates"},
	} {
		if opts.maxHopLimit >= 1 && opts.maxHopLimit < limit.value {
			return usagef("--max-hop-limit %d is below --%s %d, the hop limit imdsguard sets on %s: the SCP would refuse their launches",
				opts.maxHopLimit, limit.flag, limit.value, limit.what)
		}
	}
	docs, err := guardrails.NewDocuments(guardrails.Options{
		ExemptRoles: append(exempt, unique(cleanList(opts.breakGlassRoles))...),
		HopLimit:    opts.maxHopLimit,
	})
	if err != nil {
		return usagef("--exempt-role, --break-glass-role, --max-hop-limit: %w", err)
	}
	if opts.lookupsPerSec <= 0 {
		return usagef("--cloudtrail-rps must be above 0, got %g", opts.lookupsPerSec)
	}
	regions := unique(cleanList(opts.regions))
	opts.accounts.accounts = unique(cleanList(opts.accounts.accounts))
	if err := opts.accounts.check(cmd.Flags(), regions, opts.concurrency); err != nil {
		return err
	}

	// As plan: the configuration is loaded before the first AWS call.
	base, targets, err := loadTargets(ctx, env, settings.CallTimeout, nil, opts.accounts, regions, opts.lookupsPerSec)
	if err != nil {
		return err
	}

	now := env.Now().UTC()
	scopes := gatherGuardrailScopes(ctx, env, base, targets, opts, settings, now)
	rep := guardrails.Report{Version: Version(), GeneratedAt: now, Accounts: guardrails.Readiness(scopes), Documents: docs}
	var buf bytes.Buffer
	render := guardrails.WriteText
	if opts.format == "json" {
		render = guardrails.WriteJSON
	}
	if err := render(&buf, rep); err != nil {
		return fmt.Errorf("rendering the guardrails: %w", err)
	}
	// A report cut short by SIGINT or SIGTERM would call regions unread that were only
	// interrupted: it is not written.
	if ctx.Err() != nil {
		return interruptedError{"no guardrails report was written"}
	}
	if _, err := io.Copy(env.Stdout, &buf); err != nil {
		return err
	}
	if opts.table == "" {
		fmt.Fprintln(env.Stderr, "imdsguard: warning: without --table (the stack output LedgerTableName), an instance imdsguard enforced "+
			"and is still verifying counts as compliant, though verify may yet roll it back to IMDSv1")
	}
	if rep.Ready() {
		return nil
	}
	return notReady(rep.Accounts, scopes)
}

// gatherGuardrailScopes reads the evidence of every account-region, as plan does, and
// returns one scope per account-region. A scope that could not be read, whose sources
// could not be, or whose account could not be told, is a failed scope.
func gatherGuardrailScopes(ctx context.Context, env Env, base aws.Config, targets []scopeTarget, opts guardrailsOptions,
	settings policy.Settings, now time.Time) []guardrails.Scope {
	results := planScopes(ctx, env, targets, nil, settings, now, opts.concurrency)
	planned := make([]report.Scope, len(results))
	// spans[i] are the indexes of scope i's assessments in the list fillAccounts fills.
	spans := make([][2]int, len(results))
	var assessments []guard.Assessment
	for i, r := range results {
		planned[i] = r.scope
		if r.scope.Status == report.ScopeOK && r.scope.SourcesError != "" {
			planned[i].Status, planned[i].Error = report.ScopeFailed, r.scope.SourcesError
		}
		spans[i] = [2]int{len(assessments), len(assessments) + len(r.assessments)}
		assessments = append(assessments, r.assessments...)
	}
	hub := wiring.New(base, wiring.Options{})
	if !opts.accounts.multi() {
		fillAccounts(ctx, hub, planned, assessments)
	}

	out := make([]guardrails.Scope, len(results))
	for i, r := range results {
		p := planned[i]
		s := guardrails.Scope{Region: p.Region}
		if p.AccountID != nil {
			s.AccountID = *p.AccountID
		}
		// The ledger is the hub's: across accounts it is read with the configured
		// credentials, not through the members' sessions.
		clients := targets[i].clients
		if opts.accounts.multi() {
			clients = hub
		}
		switch {
		case p.Status != report.ScopeOK:
			s.Failed, s.Error = true, p.Error
		case p.AccountID == nil:
			s.Failed, s.Error = true, "its account could not be told: no instance names it and sts:GetCallerIdentity failed"
		default:
			if err := judgeGuardrailScope(ctx, clients, opts.table, *r.inventory, &s, assessments[spans[i][0]:spans[i][1]], assessments, settings, now); err != nil {
				s = guardrails.Scope{AccountID: s.AccountID, Region: s.Region, Failed: true, Error: err.Error()}
			}
		}
		out[i] = s
	}
	return out
}

// judgeGuardrailScope fills s from the region's inventory and its instances' verdicts:
// the instances with what the ledger says of their enforcements, the account defaults,
// and the verdicts of the launch templates and launch configurations. The account
// defaults and the AMIs are not sources here (see guardrails.Scope).
func judgeGuardrailScope(ctx context.Context, clients *wiring.Clients, table string, inv sources.Inventory, s *guardrails.Scope,
	here, all []guard.Assessment, settings policy.Settings, now time.Time) error {
	judged, watches, err := judgeSources(ctx, clients, table, inv, s.AccountID, s.Region, all, settings, now)
	if err != nil {
		return err
	}
	for _, a := range here {
		w := watches[a.Evidence.InstanceID]
		s.Instances = append(s.Instances, policy.SourceMember{InstanceID: a.Evidence.InstanceID, Verdict: a.Verdict, Verified: w.Verified, Verifying: w.Verifying})
	}
	s.DefaultsHTTPTokens, s.DefaultsManagedBy = inv.Defaults.HTTPTokens, inv.Defaults.ManagedBy
	s.Sources = map[string]policy.SourceVerdict{}
	for _, a := range judged.Sources {
		if a.Source.Kind == policy.SourceLaunchTemplate || a.Source.Kind == policy.SourceLaunchConfiguration {
			s.Sources[a.Source.Label()] = a.Verdict
		}
	}
	return nil
}

// notReady is the run's error when the report says some account is not ready: one line,
// the report having said why.
func notReady(accounts []guardrails.AccountReadiness, scopes []guardrails.Scope) error {
	if len(accounts) == 0 {
		return errors.New("no account-region was read: no account is ready for the guardrails")
	}
	n := 0
	for _, a := range accounts {
		if !a.Ready {
			n++
		}
	}
	noun, verb := "accounts", "is"
	if len(accounts) == 1 {
		noun = "account"
	}
	if n > 1 {
		verb = "are"
	}
	msg := fmt.Sprintf("%d of %d %s %s not ready for the guardrails", n, len(accounts), noun, verb)
	failed := 0
	for _, s := range scopes {
		if s.Failed {
			failed++
		}
	}
	if failed > 0 {
		msg += fmt.Sprintf(" (%d of %d account-regions could not be read)", failed, len(scopes))
	}
	return fmt.Errorf("%s; the report says why (attach the guardrails only to the accounts it calls ready)", msg)
}

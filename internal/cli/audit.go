package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/wiring"
)

func newAuditCommand(env Env) *cobra.Command {
	var table, instanceID, account, format string
	var regions []string
	var scopeFlags ledgerScopeFlags
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show what imdsguard did to an instance: every outcome in the ledger, and the snapshot",
		Long: "audit reads the ledger table the stack created (output LedgerTableName) and lists the\n" +
			"outcomes recorded for one instance, oldest first, with the metadata options snapshotted\n" +
			"before imdsguard first changed them.\n\n" +
			"With --accounts or --org instead of --account it finds the instance in a hub's ledger (in the\n" +
			"configured region), in any of those accounts and each --region.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := scopeFlags.check(account, regions); err != nil {
				return err
			}
			var accountFlag *string
			if !scopeFlags.multi() {
				accountFlag = &account
			}
			if err := checkLedgerFlags(table, format, accountFlag); err != nil {
				return err
			}
			if err := evidence.ValidateInstanceIDs([]string{instanceID}); err != nil {
				return usagef("--instance-id: %w", err)
			}
			ctx := cmd.Context()
			region := ""
			if len(regions) == 1 && !scopeFlags.multi() {
				region = regions[0]
			}
			clients, l, err := openLedger(cmd, env, table, region)
			if err != nil {
				return err
			}
			ref := ledger.Ref{AccountID: account, Region: clients.Region(), InstanceID: instanceID}
			if scopeFlags.multi() {
				if ref, err = findInstance(ctx, l, scopeFlags, clients.Config(), regions, instanceID); err != nil {
					return err
				}
			}
			history, err := l.History(ctx, ref)
			if err != nil {
				return err
			}
			snapshot, err := l.GetSnapshot(ctx, ref)
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				return enc.Encode(newAuditRecord(ref, snapshot, history))
			}
			return writeAudit(env, ref, snapshot, history)
		},
	}
	f := cmd.Flags()
	f.StringVar(&table, "table", "", "the ledger table (stack output LedgerTableName)")
	f.StringVar(&instanceID, "instance-id", "", "the instance")
	f.StringVar(&account, "account", "", "the instance's account")
	f.StringSliceVar(&regions, "region", nil, "the instance's region (default: the configured region); with --accounts or --org, each to look in")
	f.StringVar(&format, "format", "table", "output format: table or json")
	addLedgerScopeFlags(cmd, &scopeFlags)
	return cmd
}

// findInstance finds the one account-region of the scopes whose ledger records name
// the instance. None is an error, and so are several: an instance id is one
// account's, and records of it elsewhere are for a person to look at.
func findInstance(ctx context.Context, l *ledger.Ledger, f ledgerScopeFlags, cfg aws.Config, regions []string, instanceID string) (ledger.Ref, error) {
	scopes, err := f.scopes(ctx, cfg, regions)
	if err != nil {
		return ledger.Ref{}, err
	}
	var found []ledger.Ref
	for _, sc := range scopes {
		ref := ledger.Ref{AccountID: sc.account, Region: sc.region, InstanceID: instanceID}
		history, err := l.History(ctx, ref)
		if err != nil {
			return ledger.Ref{}, err
		}
		if len(history) > 0 {
			found = append(found, ref)
		}
	}
	switch len(found) {
	case 0:
		return ledger.Ref{}, fmt.Errorf("the ledger has no record of %s in any of %d account-regions", instanceID, len(scopes))
	case 1:
		return found[0], nil
	}
	var where []string
	for _, r := range found {
		where = append(where, r.AccountID+"/"+r.Region)
	}
	return ledger.Ref{}, fmt.Errorf("the ledger has records of %s in %s: give --account and --region", instanceID, strings.Join(where, ", "))
}

func writeAudit(env Env, ref ledger.Ref, snapshot *ledger.Snapshot, history []ledger.Outcome) error {
	fmt.Fprintf(env.Stdout, "%s in %s/%s\n", ref.InstanceID, ref.AccountID, ref.Region)
	if snapshot != nil {
		o := snapshot.Options
		fmt.Fprintf(env.Stdout, "options before imdsguard (snapshot %s): HttpTokens %s, hop limit %d, endpoint %s\n",
			snapshot.At.UTC().Format(time.RFC3339), o.HTTPTokens, o.HopLimit, o.HTTPEndpoint)
	}
	if len(history) == 0 {
		fmt.Fprintln(env.Stdout, "no outcomes recorded")
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nAT\tDECISION\tMODE\tACTION\tRESULT\tREASONS\tDETAIL")
	for _, o := range history {
		codes := make([]string, len(o.Reasons))
		for i, r := range o.Reasons {
			codes[i] = string(r.Code)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.At.UTC().Format(time.RFC3339), o.DecisionID, o.Mode, o.Action,
			o.Result, strings.Join(codes, "+"), o.Detail)
	}
	return tw.Flush()
}

// auditSchema identifies what `audit --format json` prints; docs/schema/audit.schema.json
// describes it.
const auditSchema = "imdsguard.audit/v1"

// auditRecord is the JSON form of an instance's ledger record. It is its own type, with
// the plan's conventions (snake case, null for what is not known), rather than the
// ledger's structs, so that it changes only when this schema does.
type auditRecord struct {
	Schema   string         `json:"schema"`
	Instance auditInstance  `json:"instance"`
	Snapshot *auditSnapshot `json:"snapshot"`
	Outcomes []auditOutcome `json:"outcomes"`
}

type auditInstance struct {
	AccountID  string `json:"account_id"`
	Region     string `json:"region"`
	InstanceID string `json:"instance_id"`
}

type auditSnapshot struct {
	At         time.Time    `json:"at"`
	DecisionID string       `json:"decision_id"`
	Options    auditOptions `json:"options"`
}

type auditOptions struct {
	HTTPTokens   string `json:"http_tokens"`
	HopLimit     int32  `json:"hop_limit"`
	HTTPEndpoint string `json:"http_endpoint"`
	State        string `json:"state"`
}

type auditOutcome struct {
	At         time.Time       `json:"at"`
	DecisionID string          `json:"decision_id"`
	Mode       string          `json:"mode"`
	Action     policy.Action   `json:"action"`
	Result     string          `json:"result"`
	Reasons    []policy.Reason `json:"reasons"`
	Prior      *auditOptions   `json:"prior"`
	Applied    *auditOptions   `json:"applied"`
	Detail     string          `json:"detail"`
}

func newAuditRecord(ref ledger.Ref, snapshot *ledger.Snapshot, history []ledger.Outcome) auditRecord {
	r := auditRecord{
		Schema:   auditSchema,
		Instance: auditInstance{AccountID: ref.AccountID, Region: ref.Region, InstanceID: ref.InstanceID},
		Outcomes: make([]auditOutcome, len(history)),
	}
	if snapshot != nil {
		r.Snapshot = &auditSnapshot{At: snapshot.At.UTC(), DecisionID: snapshot.DecisionID, Options: *auditOptionsOf(&snapshot.Options)}
	}
	for i, o := range history {
		reasons := o.Reasons
		if reasons == nil {
			reasons = []policy.Reason{}
		}
		r.Outcomes[i] = auditOutcome{At: o.At.UTC(), DecisionID: o.DecisionID, Mode: o.Mode, Action: o.Action, Result: o.Result,
			Reasons: reasons, Prior: auditOptionsOf(o.Prior), Applied: auditOptionsOf(o.Applied), Detail: o.Detail}
	}
	return r
}

func auditOptionsOf(o *policy.MetadataOptions) *auditOptions {
	if o == nil {
		return nil
	}
	return &auditOptions{HTTPTokens: o.HTTPTokens, HopLimit: o.HopLimit, HTTPEndpoint: o.HTTPEndpoint, State: o.State}
}

// openLedger loads the AWS configuration of region (the configured one when empty), as
// the commands that read or write the ledger table do, and returns its clients and the
// ledger.
func openLedger(cmd *cobra.Command, env Env, table, region string) (*wiring.Clients, *ledger.Ledger, error) {
	load := env.AWS
	load.Region = region
	cfg, err := awsapi.Load(cmd.Context(), load)
	if err != nil {
		return nil, nil, err
	}
	clients := wiring.New(cfg, wiring.Options{})
	return clients, &ledger.Ledger{API: wiring.Client(clients, dynamodb.ServiceID, dynamodb.NewFromConfig), Table: table}, nil
}

// checkLedgerFlags checks the flags the ledger commands share: --table, --format (table
// or json) and, unless account is nil, --account.
func checkLedgerFlags(table, format string, account *string) error {
	if table == "" {
		return usagef("--table is required (the stack output LedgerTableName)")
	}
	if account != nil && !policy.ValidAccountID(*account) {
		return usagef("--account %q: want the 12-digit account", *account)
	}
	if format != "table" && format != "json" {
		return usagef("invalid format %q: allowed: table, json", format)
	}
	return nil
}

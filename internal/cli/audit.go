package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/ledger"
)

func newAuditCommand(env Env) *cobra.Command {
	var table, instanceID, account, region, format string
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show what imdsguard did to an instance: every outcome in the ledger, and the snapshot",
		Long: "audit reads the ledger table the stack created (output LedgerTableName) and lists the\n" +
			"outcomes recorded for one instance, oldest first, with the metadata options snapshotted\n" +
			"before imdsguard first changed them.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if table == "" {
				return usagef("--table is required (the stack output LedgerTableName)")
			}
			if err := evidence.ValidateInstanceIDs([]string{instanceID}); err != nil {
				return usagef("--instance-id: %w", err)
			}
			if format != "table" && format != "json" {
				return usagef("invalid format %q: allowed: table, json", format)
			}
			if len(account) != 12 || strings.Trim(account, "0123456789") != "" {
				return usagef("--account %q: want the 12-digit account the instance is in", account)
			}
			ctx := cmd.Context()
			cfg, err := awsapi.Load(ctx, awsapi.Options{Region: region})
			if err != nil {
				return err
			}
			l := &ledger.Ledger{API: dynamodb.NewFromConfig(cfg), Table: table}
			ref := ledger.Ref{AccountID: account, Region: cfg.Region, InstanceID: instanceID}
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
				return enc.Encode(map[string]any{"instance": ref, "snapshot": snapshot, "outcomes": history})
			}
			return writeAudit(env, ref, snapshot, history)
		},
	}
	f := cmd.Flags()
	f.StringVar(&table, "table", "", "the ledger table (stack output LedgerTableName)")
	f.StringVar(&instanceID, "instance-id", "", "the instance")
	f.StringVar(&account, "account", "", "the instance's account")
	f.StringVar(&region, "region", "", "the instance's region (default: the configured region)")
	f.StringVar(&format, "format", "table", "output format: table or json")
	return cmd
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

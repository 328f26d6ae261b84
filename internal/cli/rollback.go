package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/wiring"
)

func newRollbackCommand(env Env) *cobra.Command {
	var table, account, region, decisionID, why, format, source string
	var instanceIDs []string
	var since, until string
	var yes bool
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Put enforced instances back to the metadata options they had before imdsguard",
		Long: "rollback restores, from the ledger's snapshots, the HttpTokens and hop limit instances had\n" +
			"before imdsguard first changed them (never the endpoint), waits until EC2 reports them\n" +
			"applied, and records the rollback: the instances are then not enforced again for a\n" +
			"lookback. Choose the instances by id (--instance-id, repeated), by the decision that\n" +
			"enforced one (--decision-id), or by when they were enforced (--since, --until: the\n" +
			"enforcements still being verified). --source puts back a source imdsguard fixed: a launch\n" +
			"template's default version from before the fix (--source lt-...), or the account's\n" +
			"instance metadata defaults (--source account-defaults). It shows what it would do and\n" +
			"asks before doing it; --yes skips the question, for scripts.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkLedgerFlags(table, format, &account); err != nil {
				return err
			}
			chosen := 0
			for _, set := range []bool{len(instanceIDs) > 0, decisionID != "", since != "" || until != "", source != ""} {
				if set {
					chosen++
				}
			}
			if chosen != 1 {
				return usagef("choose what to roll back one way: --instance-id, --decision-id, --since/--until, or --source")
			}
			if source != "" && !launchTemplateID.MatchString(source) && source != string(policy.SourceAccountDefaults) {
				return usagef("--source %q: want a launch template id (lt-...) or account-defaults", source)
			}
			if err := evidence.ValidateInstanceIDs(instanceIDs); err != nil {
				return usagef("--instance-id: %w", err)
			}
			from, to, err := timeRange(since, until, env.Now())
			if err != nil {
				return usagef("%w", err)
			}
			ctx := cmd.Context()
			clients, l, err := openLedger(cmd, env, table, region)
			if err != nil {
				return err
			}
			if source != "" {
				return rollbackSource(cmd, env, l, clients, account, source, why, format, yes)
			}
			refs, err := rollbackRefs(cmd, l, account, clients.Region(), instanceIDs, decisionID, from, to)
			if err != nil {
				return err
			}
			plan, err := planRollbacks(cmd, l, clients, refs)
			if err != nil {
				return err
			}
			// The table is the preview; JSON is the record of what was done, at the end.
			out := env.Stdout
			if format == "json" {
				out = io.Discard
				defer func() { writeRollbackJSON(env.Stdout, account, clients.Region(), plan) }()
			}
			writeRollbackPlan(out, plan)
			var todo []*rollbackItem
			for i := range plan {
				if plan[i].skip == "" {
					todo = append(todo, &plan[i])
				}
			}
			if len(todo) == 0 {
				fmt.Fprintln(out, "nothing to roll back")
				return nil
			}
			if !yes {
				ok, err := confirm(env, fmt.Sprintf("Roll back %d instance(s)? Type yes to go on: ", len(todo)))
				if err != nil {
					return err
				}
				if !ok {
					return errors.New("not confirmed: nothing was changed")
				}
			}
			enf := &enforce.Enforcer{EC2: clients.EC2(), MaxWait: 2 * time.Minute, FirstDelay: time.Second, MaxDelay: 8 * time.Second}
			var failures []error
			for _, r := range todo {
				restored, err := enf.Restore(ctx, r.ref.InstanceID, r.live, r.target)
				if err == nil {
					err = l.RecordManualRollback(ctx, ledger.ManualRollback{Ref: r.ref, DecisionID: r.decisionID, At: env.Now().UTC(),
						Restored: restored, Why: why})
				}
				if err != nil {
					failures = append(failures, err)
					r.err = err
					fmt.Fprintf(out, "%s: FAILED: %v\n", r.ref.InstanceID, err)
					continue
				}
				r.restored = &restored
				fmt.Fprintf(out, "%s: rolled back to HttpTokens %s, hop limit %d\n", r.ref.InstanceID, restored.HTTPTokens, restored.HopLimit)
			}
			if len(failures) > 0 {
				return fmt.Errorf("%d of %d rollbacks failed: %w", len(failures), len(todo), errors.Join(failures...))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&table, "table", "", "the ledger table (stack output LedgerTableName)")
	f.StringVar(&account, "account", "", "the instances' account")
	f.StringVar(&region, "region", "", "the instances' region (default: the configured region)")
	f.StringSliceVar(&instanceIDs, "instance-id", nil, "an instance to roll back (repeat, or separate with commas)")
	f.StringVar(&decisionID, "decision-id", "", "the decision whose enforcement to roll back")
	f.StringVar(&since, "since", "", "roll back the enforcements still being verified that were made at or after this time (RFC 3339, or a duration ago as 6h)")
	f.StringVar(&until, "until", "", "... and before this time (RFC 3339, or a duration ago; default now)")
	f.StringVar(&source, "source", "", "a source imdsguard fixed: a launch template id, or account-defaults")
	f.StringVar(&why, "why", "rolled back by an operator", "why, for the ledger and the instance's ticket")
	f.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	f.StringVar(&format, "format", "table", "output format: table, or json (what was done, at the end)")
	return cmd
}

// timeRange reads --since and --until: RFC 3339 times, or durations before now.
func timeRange(since, until string, now time.Time) (from, to time.Time, err error) {
	parse := func(flag, v string, def time.Time) (time.Time, error) {
		if v == "" {
			return def, nil
		}
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return t, nil
		}
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			return now.Add(-d), nil
		}
		return time.Time{}, fmt.Errorf("--%s %q: want an RFC 3339 time (2026-12-01T10:00:00Z) or a duration ago (6h)", flag, v)
	}
	if from, err = parse("since", since, time.Time{}); err != nil {
		return
	}
	if to, err = parse("until", until, now); err != nil {
		return
	}
	if !from.IsZero() && !from.Before(to) {
		err = fmt.Errorf("--since %s is not before --until %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return
}

// rollbackRefs are the instances the flags choose.
func rollbackRefs(cmd *cobra.Command, l *ledger.Ledger, account, region string, ids []string, decisionID string, from, to time.Time) ([]ledger.Ref, error) {
	ctx := cmd.Context()
	switch {
	case len(ids) > 0:
		var refs []ledger.Ref
		for _, id := range ids {
			refs = append(refs, ledger.Ref{AccountID: account, Region: region, InstanceID: id})
		}
		return refs, nil
	case decisionID != "":
		ref, err := l.DecisionRef(ctx, decisionID)
		if err != nil {
			return nil, err
		}
		if ref.AccountID != account || ref.Region != region {
			return nil, fmt.Errorf("decision %s is about %s, not in %s/%s", decisionID, ref.Name(), account, region)
		}
		return []ledger.Ref{ref}, nil
	}
	watches, err := l.Watching(ctx, account, region)
	if err != nil {
		return nil, err
	}
	var refs []ledger.Ref
	for _, w := range watches {
		if !w.EnforcedAt.Before(from) && w.EnforcedAt.Before(to) {
			refs = append(refs, w.Ref)
		}
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("no enforcement being verified in %s/%s was made from %s to %s", account, region,
			from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	return refs, nil
}

// rollbackItem is one instance of the preview.
type rollbackItem struct {
	ref          ledger.Ref
	decisionID   string
	enforcedAt   time.Time
	live, target policy.MetadataOptions
	skip         string // why nothing is done, or ""
	// restored are the options after the rollback, err why it failed; both nil until it
	// was tried.
	restored *policy.MetadataOptions
	err      error
}

// rollbackSchema identifies what `rollback --format json` prints;
// docs/schema/rollback.schema.json describes it.
const rollbackSchema = "imdsguard.rollback/v1"

type rollbackJSON struct {
	Schema    string             `json:"schema"`
	AccountID string             `json:"account_id"`
	Region    string             `json:"region"`
	Instances []rollbackInstance `json:"instances"`
}

type rollbackInstance struct {
	InstanceID string        `json:"instance_id"`
	DecisionID string        `json:"decision_id"`
	EnforcedAt *time.Time    `json:"enforced_at"`
	Before     *auditOptions `json:"before"`
	Restored   *auditOptions `json:"restored"`
	// Result is rolled-back, failed, skipped, or not-confirmed.
	Result string `json:"result"`
	Detail string `json:"detail"`
}

// writeRollbackJSON writes what became of each instance of the preview.
func writeRollbackJSON(w io.Writer, account, region string, plan []rollbackItem) {
	doc := rollbackJSON{Schema: rollbackSchema, AccountID: account, Region: region, Instances: []rollbackInstance{}}
	for _, r := range plan {
		in := rollbackInstance{InstanceID: r.ref.InstanceID, DecisionID: r.decisionID}
		switch {
		case r.skip != "":
			in.Result, in.Detail = "skipped", r.skip
		case r.err != nil:
			in.Result, in.Detail = "failed", r.err.Error()
		case r.restored != nil:
			in.Result, in.Restored = "rolled-back", auditOptionsOf(r.restored)
		default:
			in.Result = "not-confirmed"
		}
		if r.skip == "" {
			at := r.enforcedAt.UTC()
			in.EnforcedAt, in.Before = &at, auditOptionsOf(&r.live)
		}
		doc.Instances = append(doc.Instances, in)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(doc)
}

// planRollbacks reads each instance's snapshot and its options now.
func planRollbacks(cmd *cobra.Command, l *ledger.Ledger, clients *wiring.Clients, refs []ledger.Ref) ([]rollbackItem, error) {
	ctx := cmd.Context()
	ids := make([]string, len(refs))
	for i, r := range refs {
		ids[i] = r.InstanceID
	}
	instances, _, err := evidence.Inventory(ctx, clients.EC2(), clients.Region(), ids)
	if err != nil {
		return nil, err
	}
	live := map[string]policy.Instance{}
	for _, inst := range instances {
		live[inst.InstanceID] = inst
	}
	var plan []rollbackItem
	for _, ref := range refs {
		snap, err := l.GetSnapshot(ctx, ref)
		if err != nil {
			return nil, err
		}
		item := rollbackItem{ref: ref}
		inst, found := live[ref.InstanceID]
		switch {
		case snap == nil:
			item.skip = "imdsguard never changed it (no snapshot)"
		case !found:
			item.skip = "the instance no longer exists"
		default:
			item.decisionID, item.enforcedAt, item.live = snap.DecisionID, snap.At, inst.Options
			item.target = policy.RollbackTarget(snap.Options, inst.Options)
			if inst.Options.HTTPTokens == item.target.HTTPTokens && inst.Options.HopLimit == item.target.HopLimit {
				item.skip = "already as before imdsguard"
			}
		}
		plan = append(plan, item)
	}
	return plan, nil
}

func writeRollbackPlan(w io.Writer, plan []rollbackItem) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tNOW\tBACK TO\tENFORCED\tDECISION")
	for _, r := range plan {
		if r.skip != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\tnothing to do: %s\n", r.ref.InstanceID, r.skip)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s, hop %d\t%s, hop %d\t%s\t%s\n", r.ref.InstanceID, r.live.HTTPTokens, r.live.HopLimit,
			r.target.HTTPTokens, r.target.HopLimit, r.enforcedAt.UTC().Format(time.RFC3339), r.decisionID)
	}
	_ = tw.Flush()
}

// confirm asks on standard error and reads the answer from standard input: only "yes"
// goes on; the end of the input is a no.
func confirm(env Env, question string) (bool, error) {
	if env.Stdin == nil {
		return false, errors.New("no standard input to confirm on: pass --yes")
	}
	fmt.Fprint(env.Stderr, question)
	line, err := bufio.NewReader(env.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("reading the answer: %w", err)
	}
	return strings.EqualFold(strings.TrimSpace(line), "yes"), nil
}

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// statusSchema identifies what `status --format json` prints; docs/schema/status.schema.json
// describes it.
const statusSchema = "imdsguard.status/v1"

func newStatusCommand(env Env) *cobra.Command {
	var table, account, format, waves string
	var regions []string
	var scopeFlags ledgerScopeFlags
	var perHour int
	var soak time.Duration
	var resetBreaker bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the rollout of an account-region: verifying, verified, rolled back, waves, budget, breaker",
		Long: "status reads the ledger table the stack created (output LedgerTableName) and shows, for one\n" +
			"account-region, the enforced instances still being verified, how many were verified or rolled\n" +
			"back in each wave, when the next wave may start, the hour's enforcement budget and the circuit\n" +
			"breaker. --reset-breaker closes an open breaker, so that enforcement there starts again: only\n" +
			"after the rollbacks that opened it have been looked at. Pass the stack's Waves, WaveSoak and\n" +
			"MaxEnforcePerHour if it does not use the defaults.\n\n" +
			"With --accounts or --org it reads a hub's ledger (in the configured region) for every account\n" +
			"and --region, and prints one line per account-region (JSON: imdsguard.status-list/v1).",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := scopeFlags.check(account, regions); err != nil {
				return err
			}
			if !scopeFlags.multi() {
				if err := checkLedgerFlags(table, format, &account); err != nil {
					return err
				}
			} else if err := checkLedgerFlags(table, format, nil); err != nil {
				return err
			}
			if resetBreaker && scopeFlags.multi() {
				return usagef("--reset-breaker closes one account-region's breaker: give --account and --region")
			}
			parsedWaves, err := policy.ParseWaves(waves)
			if err != nil {
				return usagef("--waves: %w", err)
			}
			if perHour < 1 {
				return usagef("--max-enforce-per-hour %d: want at least 1", perHour)
			}
			ctx := cmd.Context()
			rollout := policy.RolloutSettings{MaxPerHour: perHour, Waves: parsedWaves, WaveSoak: soak}
			now := env.Now().UTC()
			if scopeFlags.multi() {
				// The hub's ledger, in the configured region, holds every member's records.
				clients, l, err := openLedger(cmd, env, table, "")
				if err != nil {
					return err
				}
				scopes, err := scopeFlags.scopes(ctx, clients.Config(), regions)
				if err != nil {
					return err
				}
				list := statusList{Schema: statusListSchema, GeneratedAt: now.Truncate(time.Second), AccountRegions: []status{}}
				for _, sc := range scopes {
					st, err := readStatus(ctx, l, sc.account, sc.region, now, rollout)
					if err != nil {
						return err
					}
					list.AccountRegions = append(list.AccountRegions, st)
				}
				if format == "json" {
					return encodeJSON(env.Stdout, list)
				}
				return writeStatusList(env.Stdout, list)
			}
			region := ""
			if len(regions) == 1 {
				region = regions[0]
			}
			clients, l, err := openLedger(cmd, env, table, region)
			if err != nil {
				return err
			}
			region = clients.Region()
			if resetBreaker {
				if err := l.ResetBreaker(ctx, account, region, now); err != nil {
					return err
				}
				fmt.Fprintf(env.Stderr, "the circuit breaker of %s/%s is closed: enforcement there may start again\n", account, region)
			}
			st, err := readStatus(ctx, l, account, region, now, rollout)
			if err != nil {
				return err
			}
			if format == "json" {
				return encodeJSON(env.Stdout, st)
			}
			return writeStatus(env.Stdout, st)
		},
	}
	f := cmd.Flags()
	f.StringVar(&table, "table", "", "the ledger table (stack output LedgerTableName)")
	f.StringVar(&account, "account", "", "the account")
	f.StringSliceVar(&regions, "region", nil, "the region (default: the configured region); with --accounts or --org, each of them")
	f.StringVar(&format, "format", "table", "output format: table or json")
	f.StringVar(&waves, "waves", policy.DefaultWaves, "the stack's Waves parameter, to name the waves")
	f.DurationVar(&soak, "wave-soak", 24*time.Hour, "the stack's WaveSoak parameter")
	f.IntVar(&perHour, "max-enforce-per-hour", 25, "the stack's MaxEnforcePerHour parameter")
	f.BoolVar(&resetBreaker, "reset-breaker", false, "close the account-region's circuit breaker first")
	addLedgerScopeFlags(cmd, &scopeFlags)
	return cmd
}

// readStatus reads one account-region's rollout from the ledger.
func readStatus(ctx context.Context, l *ledger.Ledger, account, region string, now time.Time, rollout policy.RolloutSettings) (status, error) {
	r, err := l.ReadRollout(ctx, account, region)
	if err != nil {
		return status{}, err
	}
	watches, err := l.Watching(ctx, account, region)
	if err != nil {
		return status{}, err
	}
	used, _, err := l.BudgetUsed(ctx, ledger.Budget{AccountID: account, Region: region, Hour: policy.BudgetHourOf(now), MaxPerHour: rollout.MaxPerHour})
	if err != nil {
		return status{}, err
	}
	return newStatus(account, region, now, r, watches, used, rollout), nil
}

func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// statusListSchema identifies what `status --accounts|--org --format json` prints;
// docs/schema/status-list.schema.json describes it.
const statusListSchema = "imdsguard.status-list/v1"

// statusList is the rollout of several account-regions.
type statusList struct {
	Schema         string    `json:"schema"`
	GeneratedAt    time.Time `json:"generated_at"`
	AccountRegions []status  `json:"account_regions"`
}

// writeStatusList prints one line per account-region: the breakers first, then the
// account-regions with enforcements being verified.
func writeStatusList(w io.Writer, list statusList) error {
	fmt.Fprintf(w, "imdsguard rollout of %d account-regions at %s\n\n", len(list.AccountRegions), list.GeneratedAt.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tREGION\tBREAKER\tVERIFYING\tVERIFIED\tROLLED BACK\tBUDGET LEFT\tNEXT WAVE")
	rows := slices.Clone(list.AccountRegions)
	slices.SortStableFunc(rows, func(a, b status) int {
		switch {
		case a.Breaker.Open != b.Breaker.Open:
			if a.Breaker.Open {
				return -1
			}
			return 1
		case len(a.Verifying) != len(b.Verifying):
			return len(b.Verifying) - len(a.Verifying)
		}
		return 0
	})
	for _, st := range rows {
		breaker := "closed"
		if st.Breaker.Open {
			breaker = "OPEN: " + st.Breaker.Why
		}
		var verified, rolledBack int
		next := "-"
		for _, wv := range st.Waves {
			verified += wv.Verified
			rolledBack += wv.RolledBack
			if next == "-" && !wv.MayEnforce {
				next = wv.Waiting
			}
		}
		if next == "-" {
			next = "every wave may enforce"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", st.AccountID, st.Region, breaker, len(st.Verifying), verified, rolledBack, st.Budget.Left, next)
	}
	return tw.Flush()
}

// status is the JSON form of an account-region's rollout, with the plan's conventions.
type status struct {
	Schema      string           `json:"schema"`
	AccountID   string           `json:"account_id"`
	Region      string           `json:"region"`
	GeneratedAt time.Time        `json:"generated_at"`
	Breaker     statusBreaker    `json:"breaker"`
	Budget      statusBudget     `json:"budget"`
	Waves       []statusWave     `json:"waves"`
	Verifying   []statusWatch    `json:"verifying"`
	RolledBack  []statusRollback `json:"rolled_back"`
}

type statusBreaker struct {
	Open     bool       `json:"open"`
	OpenedAt *time.Time `json:"opened_at"`
	Why      string     `json:"why"`
	ResetAt  *time.Time `json:"reset_at"`
}

type statusBudget struct {
	Hour       time.Time `json:"hour"`
	MaxPerHour int       `json:"max_per_hour"`
	Used       int       `json:"used"`
	Left       int       `json:"left"`
}

type statusWave struct {
	Index       int        `json:"index"`
	Name        string     `json:"name"`
	Verifying   int        `json:"verifying"`
	Verified    int        `json:"verified"`
	RolledBack  int        `json:"rolled_back"`
	LastSettled *time.Time `json:"last_settled"`
	// MayEnforce says whether the wave may enforce now; Waiting says why not.
	MayEnforce bool   `json:"may_enforce"`
	Waiting    string `json:"waiting"`
}

type statusWatch struct {
	InstanceID string    `json:"instance_id"`
	DecisionID string    `json:"decision_id"`
	EnforcedAt time.Time `json:"enforced_at"`
	Wave       int       `json:"wave"`
}

type statusRollback struct {
	InstanceID string    `json:"instance_id"`
	At         time.Time `json:"at"`
	Why        string    `json:"why"`
}

func newStatus(account, region string, now time.Time, r ledger.Rollout, watches []ledger.Watch, used int, s policy.RolloutSettings) status {
	timeOrNil := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		t = t.UTC()
		return &t
	}
	st := status{
		Schema: statusSchema, AccountID: account, Region: region, GeneratedAt: now.Truncate(time.Second),
		Breaker: statusBreaker{Open: !r.BreakerOpenedAt.IsZero(), OpenedAt: timeOrNil(r.BreakerOpenedAt), Why: r.BreakerWhy, ResetAt: timeOrNil(r.BreakerResetAt)},
		Budget:  statusBudget{Hour: policy.BudgetHourOf(now), MaxPerHour: s.MaxPerHour, Used: used, Left: max(0, s.MaxPerHour-used)},
		Waves:   []statusWave{}, Verifying: []statusWatch{}, RolledBack: []statusRollback{},
	}
	state := r.State(len(s.Waves) + 1)
	for i := range len(s.Waves) + 1 {
		w := statusWave{Index: i + 1, Name: policy.WaveName(s.Waves, i), Verifying: r.Verifying[i], Verified: r.Verified[i],
			RolledBack: r.RolledBack[i], LastSettled: timeOrNil(r.LastSettled[i])}
		// The waves' own limit; the breaker is shown apart.
		g := policy.WaveReady(i, state, s, now)
		w.MayEnforce, w.Waiting = g.Allowed, g.Reason.Detail
		st.Waves = append(st.Waves, w)
	}
	for _, w := range watches {
		st.Verifying = append(st.Verifying, statusWatch{InstanceID: w.InstanceID, DecisionID: w.DecisionID, EnforcedAt: w.EnforcedAt.UTC(), Wave: w.Wave + 1})
	}
	slices.SortFunc(st.Verifying, func(a, b statusWatch) int { return a.EnforcedAt.Compare(b.EnforcedAt) })
	for id, rb := range r.Rollbacks {
		st.RolledBack = append(st.RolledBack, statusRollback{InstanceID: id, At: rb.At.UTC(), Why: rb.Why})
	}
	slices.SortFunc(st.RolledBack, func(a, b statusRollback) int { return b.At.Compare(a.At) })
	return st
}

func writeStatus(w io.Writer, st status) error {
	fmt.Fprintf(w, "imdsguard rollout of %s/%s at %s\n", st.AccountID, st.Region, st.GeneratedAt.Format(time.RFC3339))
	if st.Breaker.Open {
		fmt.Fprintf(w, "circuit breaker: OPEN since %s (%s): nothing is enforced here until it is reset (--reset-breaker)\n",
			st.Breaker.OpenedAt.Format(time.RFC3339), st.Breaker.Why)
	} else {
		fmt.Fprintln(w, "circuit breaker: closed")
	}
	fmt.Fprintf(w, "budget: %d of %d enforcements used in the hour from %s, %d left\n\n",
		st.Budget.Used, st.Budget.MaxPerHour, st.Budget.Hour.Format(time.RFC3339), st.Budget.Left)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WAVE\tSELECTS\tVERIFYING\tVERIFIED\tROLLED BACK\tLAST SETTLED\tMAY ENFORCE")
	for _, wv := range st.Waves {
		last := "-"
		if wv.LastSettled != nil {
			last = wv.LastSettled.Format(time.RFC3339)
		}
		may := "yes"
		if !wv.MayEnforce {
			// The row names the wave already.
			may = "no: " + strings.TrimPrefix(wv.Waiting, fmt.Sprintf("wave %d (%s) ", wv.Index, wv.Name))
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%s\t%s\n", wv.Index, wv.Name, wv.Verifying, wv.Verified, wv.RolledBack, last, may)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Verifying) > 0 {
		fmt.Fprintln(w, "\nverifying:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "INSTANCE\tENFORCED AT\tWAVE\tDECISION")
		for _, v := range st.Verifying {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", v.InstanceID, v.EnforcedAt.Format(time.RFC3339), v.Wave, v.DecisionID)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(st.RolledBack) > 0 {
		fmt.Fprintln(w, "\nrolled back (not enforced again for a lookback):")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "INSTANCE\tAT\tWHY")
		for _, rb := range st.RolledBack {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", rb.InstanceID, rb.At.Format(time.RFC3339), rb.Why)
		}
		return tw.Flush()
	}
	return nil
}

package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/spf13/cobra"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/pause"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/remediate"
	"github.com/imdsguard/imdsguard/internal/report"
	"github.com/imdsguard/imdsguard/internal/verdictqueue"
	"github.com/imdsguard/imdsguard/internal/wiring"
)

type applyOptions struct {
	table, region, planFile, waves, pauseParameter, format string
	perHour                                                int
	soak                                                   time.Duration
	lookupsPerSec                                          float64
	yes                                                    bool
	settings                                               map[string]*string
}

func newApplyCommand(env Env) *cobra.Command {
	opts := applyOptions{settings: map[string]*string{}}
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Enforce IMDSv2 where a fresh judgement still says remediate, within the rollout's limits",
		Long: "apply judges the instances of the region afresh, as plan does, and enforces IMDSv2 on those\n" +
			"it would remediate, the way the deployed remediate function does: recorded in the ledger\n" +
			"first, re-checked against the live instance, under the same rollout limits (the pause\n" +
			"switch, the circuit breaker, the waves and the hourly budget), snapshotted, and watched by\n" +
			"the stack's verify function afterwards. --plan limits it to the instances a reviewed plan\n" +
			"file would remediate. It shows what it would do and asks first; --yes skips the question.\n" +
			"Tickets are left to the stack: apply opens none.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runApply(cmd, env, opts) },
	}
	f := cmd.Flags()
	f.StringVar(&opts.table, "table", "", "the ledger table (stack output LedgerTableName)")
	f.StringVar(&opts.region, "region", "", "the region (default: the configured region)")
	f.StringVar(&opts.planFile, "plan", "", "a reviewed plan file (plan --format json): only its instances to remediate")
	f.StringVar(&opts.waves, "waves", policy.DefaultWaves, "the stack's Waves parameter")
	f.DurationVar(&opts.soak, "wave-soak", 24*time.Hour, "the stack's WaveSoak parameter")
	f.IntVar(&opts.perHour, "max-enforce-per-hour", 25, "the stack's MaxEnforcePerHour parameter")
	f.StringVar(&opts.pauseParameter, "pause-parameter", "/imdsguard/paused", "the stack's PauseParameter")
	f.Float64Var(&opts.lookupsPerSec, "cloudtrail-rps", evidence.LookupEventsPerSecond,
		"CloudTrail LookupEvents calls per second per account-region (AWS allows 2)")
	f.BoolVar(&opts.yes, "yes", false, "do not ask for confirmation")
	f.StringVar(&opts.format, "format", "table", "output format: table, or json (what was done, at the end)")
	addSettingFlags(cmd, opts.settings)
	return cmd
}

func runApply(cmd *cobra.Command, env Env, opts applyOptions) error {
	ctx := cmd.Context()
	if err := checkLedgerFlags(opts.table, opts.format, nil); err != nil {
		return err
	}
	if cmd.Flags().Changed("mode") {
		return usagef("--mode: apply always enforces; plan shows what it would do")
	}
	settings, err := loadSettings(cmd, env, opts.settings)
	if err != nil {
		return err
	}
	settings.Mode = policy.ModeEnforce
	waves, err := policy.ParseWaves(opts.waves)
	if err != nil {
		return usagef("--waves: %w", err)
	}
	if opts.perHour < 1 || opts.lookupsPerSec <= 0 {
		return usagef("--max-enforce-per-hour must be at least 1 and --cloudtrail-rps above 0")
	}
	load := env.AWS
	load.Region, load.CallTimeout = opts.region, settings.CallTimeout
	cfg, err := awsapi.Load(ctx, load)
	if err != nil {
		return err
	}
	ids, err := reviewedInstances(opts.planFile, cfg.Region)
	if err != nil {
		return err
	}
	clients := wiring.New(cfg, wiring.Options{LookupsPerSecond: opts.lookupsPerSec})
	now := env.Now().UTC()
	assessments, err := guard.Assess(ctx, clients.Guard(), clients.Region(), ids, settings, now, nil)
	if err != nil {
		return err
	}
	var todo []guard.Assessment
	for _, a := range assessments {
		if a.Verdict.Action == policy.ActionRemediate && a.AccountID != "" {
			todo = append(todo, a)
		}
	}
	// The table is the preview; JSON is the record of what was done, at the end.
	out := env.Stdout
	results := make([]applyInstance, len(todo))
	for i, a := range todo {
		results[i] = newApplyInstance(a)
	}
	if opts.format == "json" {
		out = io.Discard
		defer func() { writeApplyJSON(env.Stdout, clients.Region(), results) }()
	}
	writeApplyPreview(out, todo, len(assessments))
	if len(todo) == 0 {
		return nil
	}
	if !opts.yes {
		ok, err := confirm(env, fmt.Sprintf("Enforce IMDSv2 on %d instance(s)? Type yes to go on: ", len(todo)))
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("not confirmed: nothing was changed")
		}
	}
	db := wiring.Client(clients, dynamodb.ServiceID, dynamodb.NewFromConfig)
	book := &ledger.Ledger{API: db, Table: opts.table}
	decisions := &decisionlog.Log{API: db, Table: opts.table}
	h := &remediate.Handler{
		Settings: settings, Limits: policy.RecheckLimits{MaxAge: time.Hour, MaxClockSkew: time.Minute},
		ClaimTTL: 15 * time.Minute, Region: clients.Region(), Clients: clients.Guard(),
		Enforcer: &enforce.Enforcer{EC2: clients.EC2(), MaxWait: 2 * time.Minute, FirstDelay: time.Second, MaxDelay: 8 * time.Second},
		Ledger:   book,
		Rollout:  policy.RolloutSettings{MaxPerHour: opts.perHour, Waves: waves, WaveSoak: opts.soak},
		Pause:    &pause.Switch{API: wiring.Client(clients, ssm.ServiceID, ssm.NewFromConfig), Name: opts.pauseParameter},
		Now:      time.Now,
		Log:      slog.New(slog.NewJSONHandler(io.Discard, nil)), // the outcomes are printed

		Metrics: &emf.Emitter{W: io.Discard, Now: time.Now},
	}
	var failures []error
	for i, a := range todo {
		last, err := applyOne(cmd, h, decisions, book, a, now)
		if err != nil {
			failures = append(failures, err)
			results[i].Result, results[i].Detail = "failed", err.Error()
			fmt.Fprintf(out, "%s: FAILED: %v\n", a.Evidence.InstanceID, err)
			continue
		}
		results[i].Result, results[i].Detail = last.Result, last.Detail
		fmt.Fprintf(out, "%s: %s: %s\n", a.Evidence.InstanceID, last.Result, last.Detail)
	}
	if len(failures) > 0 {
		return fmt.Errorf("%d of %d enforcements failed: %w", len(failures), len(todo), errors.Join(failures...))
	}
	return nil
}

// applyOne records the verdict as detect would and hands it to remediate's handler, as
// the queue would; it returns the outcome remediate recorded.
func applyOne(cmd *cobra.Command, h *remediate.Handler, decisions *decisionlog.Log, book *ledger.Ledger, a guard.Assessment, now time.Time) (ledger.Outcome, error) {
	ctx := cmd.Context()
	m, err := verdictqueue.NewOutgoing(a.Evidence, a.Verdict, a.AccountID, a.Region, "", now)
	if err != nil {
		return ledger.Outcome{}, err
	}
	if err := decisions.RecordDecisions(ctx, []decisionlog.Decision{m.Decision()}); err != nil {
		return ledger.Outcome{}, err
	}
	batch := events.SQSEvent{Records: []events.SQSMessage{{MessageId: m.Decision().DecisionID, Body: m.Body(), EventSource: "aws:sqs"}}}
	resp, err := h.Handle(ctx, a.AccountID, batch)
	if err != nil {
		return ledger.Outcome{}, err
	}
	if len(resp.BatchItemFailures) > 0 {
		return ledger.Outcome{}, errors.New("remediate failed it; see the ledger (imdsguard audit) and try again")
	}
	hist, err := book.History(ctx, ledger.Ref{AccountID: a.AccountID, Region: a.Region, InstanceID: a.Evidence.InstanceID})
	if err != nil || len(hist) == 0 {
		return ledger.Outcome{}, fmt.Errorf("reading the outcome back: %w", err)
	}
	return hist[len(hist)-1], nil
}

// applySchema identifies what `apply --format json` prints; docs/schema/apply.schema.json
// describes it.
const applySchema = "imdsguard.apply/v1"

type applyJSON struct {
	Schema    string          `json:"schema"`
	Region    string          `json:"region"`
	Instances []applyInstance `json:"instances"`
}

type applyInstance struct {
	AccountID  string        `json:"account_id"`
	InstanceID string        `json:"instance_id"`
	Name       string        `json:"name"`
	Before     *auditOptions `json:"before"`
	Target     *auditOptions `json:"target"`
	// Reasons are the fresh verdict's reason codes.
	Reasons []string `json:"reasons"`
	// Result is the ledger's result for the enforcement (enforced, deferred, ...), failed,
	// or not-confirmed; Detail says more.
	Result string `json:"result"`
	Detail string `json:"detail"`
}

func newApplyInstance(a guard.Assessment) applyInstance {
	in := applyInstance{AccountID: a.AccountID, InstanceID: a.Evidence.InstanceID, Name: a.Evidence.Instance.Name,
		Before: auditOptionsOf(&a.Evidence.Instance.Options), Target: auditOptionsOf(a.Verdict.Target), Reasons: []string{}, Result: "not-confirmed"}
	for _, r := range a.Verdict.Reasons {
		in.Reasons = append(in.Reasons, string(r.Code))
	}
	return in
}

func writeApplyJSON(w io.Writer, region string, results []applyInstance) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(applyJSON{Schema: applySchema, Region: region, Instances: results})
}

// reviewedInstances are the instances of region a plan file would remediate; nil (every
// instance) without a file.
func reviewedInstances(file, region string) ([]string, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var p report.Plan
	if err := json.Unmarshal(b, &p); err != nil || p.Schema != report.Schema {
		return nil, fmt.Errorf("--plan %s: not an %s document (plan --format json): %v", file, report.Schema, err)
	}
	var ids []string
	for _, in := range p.Instances {
		if in.Action == policy.ActionRemediate && in.Region == region {
			ids = append(ids, in.InstanceID)
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("--plan %s remediates no instance in %s", file, region)
	}
	return ids, nil
}

func writeApplyPreview(w io.Writer, todo []guard.Assessment, judged int) {
	if len(todo) == 0 {
		fmt.Fprintf(w, "nothing to enforce: none of the %d instances judged would be remediated now\n", judged)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tNAME\tNOW\tTARGET\tWHY")
	for _, a := range todo {
		now, target := a.Evidence.Instance.Options, *a.Verdict.Target
		var codes []string
		for _, r := range a.Verdict.Reasons {
			codes = append(codes, string(r.Code))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s, hop %d\t%s, hop %d\t%s\n", a.Evidence.InstanceID, a.Evidence.Instance.Name,
			now.HTTPTokens, now.HopLimit, target.HTTPTokens, target.HopLimit, strings.Join(codes, "+"))
	}
	_ = tw.Flush()
}

package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/ledger/rollbacks"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/report"
	"github.com/imdsguard/imdsguard/internal/sources"
	"github.com/imdsguard/imdsguard/internal/wiring"
)

type planOptions struct {
	regions       []string
	instanceIDs   []string
	format        string
	output        string
	lookupsPerSec float64
	// table is the ledger table, read for imdsguard's verified enforcements; empty: none.
	table    string
	accounts accountOptions
	// concurrency bounds the account-regions planned at once.
	concurrency int
	settings    map[string]*string
}

func newPlanCommand(env Env) *cobra.Command {
	opts := planOptions{settings: map[string]*string{}}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Report what the guard would do to every instance, and why (read-only)",
		Long: "plan reads the EC2 inventory, the MetadataNoToken metric and CloudTrail, and reports\n" +
			"for every instance whether it would be remediated, ticketed, deferred or skipped, with\n" +
			"the evidence. It also judges where the instances come from: launch templates, Auto\n" +
			"Scaling groups, the account's instance metadata defaults and the AMIs in use (the\n" +
			"sources section). It changes nothing. AWS access comes from the standard sources:\n" +
			"profile, AWS_REGION, AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPlan(cmd, env, opts) },
	}
	f := cmd.Flags()
	f.StringArrayVar(&opts.regions, "region", nil, "`region` to plan (repeatable; default: the configured region)")
	f.StringSliceVar(&opts.instanceIDs, "instance-ids", nil, "only these instances (comma-separated); default: every instance")
	f.StringVar(&opts.format, "format", string(report.FormatTable), "output format: table, json, csv (instances), csv-sources or markdown")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(formatNames(), cobra.ShellCompDirectiveNoFileComp))
	f.StringVarP(&opts.output, "output", "o", "", "write the plan to this file instead of standard output")
	f.Float64Var(&opts.lookupsPerSec, "cloudtrail-rps", evidence.LookupEventsPerSecond,
		"CloudTrail LookupEvents calls per second per account-region (AWS allows 2)")
	f.StringVar(&opts.table, "table", "", "the ledger table (stack output LedgerTableName), read for the instances imdsguard enforced and verified, "+
		"which prove their sources; without it, such sources wait")
	addAccountFlags(cmd, &opts.accounts, &opts.concurrency)
	addSettingFlags(cmd, opts.settings)
	return cmd
}

// addSettingFlags declares one flag per guard setting, from the same definitions the
// Lambdas read their environment with. Each keeps the text given, as the environment
// does, so that policy.LoadSettings is the one validator; the help names the setting's
// kind (int, duration, ...), and a setting with a closed list of values completes them.
func addSettingFlags(cmd *cobra.Command, into map[string]*string) {
	for _, spec := range policy.SettingSpecs {
		value := &settingValue{text: spec.Default, kind: spec.Kind}
		into[spec.Flag] = &value.text
		cmd.Flags().Var(value, spec.Flag, fmt.Sprintf("%s (env %s)", spec.Usage, spec.Env))
		if values := spec.Constraint.AllowedValues; len(values) > 0 {
			_ = cmd.RegisterFlagCompletionFunc(spec.Flag, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
		}
	}
}

// loadSettings reads the settings: a flag given on the command line wins over the
// environment, which wins over the default.
func loadSettings(cmd *cobra.Command, env Env, flags map[string]*string) (policy.Settings, error) {
	given := map[string]string{}
	for name, value := range flags {
		if cmd.Flags().Changed(name) {
			given[name] = *value
		}
	}
	s, err := policy.LoadSettings(env.LookupEnv, given)
	if err != nil {
		return policy.Settings{}, usageError{err}
	}
	return s, nil
}

func runPlan(cmd *cobra.Command, env Env, opts planOptions) error {
	ctx := cmd.Context()
	settings, err := loadSettings(cmd, env, opts.settings)
	if err != nil {
		return err
	}
	format, err := report.ParseFormat(opts.format)
	if err != nil {
		return usageError{err}
	}
	ids := unique(cleanList(opts.instanceIDs))
	if cmd.Flags().Changed("instance-ids") && len(ids) == 0 {
		return usagef("--instance-ids: no instance id given (leave the flag out to plan every instance)")
	}
	if err := evidence.ValidateInstanceIDs(ids); err != nil {
		return usagef("--instance-ids: %w", err)
	}
	if opts.lookupsPerSec <= 0 {
		return usagef("--cloudtrail-rps must be above 0, got %g", opts.lookupsPerSec)
	}
	regions := unique(cleanList(opts.regions))
	opts.accounts.accounts = unique(cleanList(opts.accounts.accounts))
	if err := opts.accounts.check(cmd.Flags(), regions, opts.concurrency); err != nil {
		return err
	}
	if err := checkOutput(opts.output); err != nil {
		return err
	}

	// The configuration is loaded before the first AWS call: a profile or region that
	// cannot be loaded stops the run with nothing written.
	counter := awsapi.NewCallCounter()
	base, targets, err := loadTargets(ctx, env, settings.CallTimeout, counter, opts.accounts, regions, opts.lookupsPerSec)
	if err != nil {
		return err
	}
	scopeClients := make([]*wiring.Clients, len(targets))
	for i, t := range targets {
		scopeClients[i] = t.clients
	}

	now := env.Now().UTC()
	results := planScopes(ctx, env, targets, ids, settings, now, opts.concurrency)
	var scopes []report.Scope
	var assessments []guard.Assessment
	inventories := make([]*sources.Inventory, len(targets))
	for i, r := range results {
		scopes = append(scopes, r.scope)
		assessments = append(assessments, r.assessments...)
		inventories[i] = r.inventory
	}
	// With other accounts, every scope names its account, and the ledger is the hub's:
	// it is read with the configured credentials, not through the members' sessions.
	var hub *wiring.Clients
	if opts.accounts.multi() {
		hub = wiring.New(base, wiring.Options{})
	} else {
		fillAccounts(ctx, wiring.New(base, wiring.Options{}), scopes, assessments)
	}

	plan := report.New(Version(), now, settings)
	plan.Scopes = scopes
	origins := map[string]sources.Origin{}
	for i, inv := range inventories {
		if inv == nil || scopes[i].Status != report.ScopeOK || scopes[i].AccountID == nil {
			continue
		}
		clients := scopeClients[i]
		if hub != nil {
			clients = hub
		}
		judged, _, err := judgeSources(ctx, clients, opts.table, *inv, *scopes[i].AccountID, scopes[i].Region, assessments, settings, now)
		if err != nil {
			scopes[i].SourcesError = err.Error()
			continue
		}
		for _, a := range judged.Sources {
			plan.AddSource(sourceEntry(*scopes[i].AccountID, scopes[i].Region, a, *inv))
		}
		maps.Copy(origins, judged.Origins)
	}
	for _, a := range assessments {
		in := report.NewInstance(a.Evidence, a.Verdict, a.AccountID, a.Region)
		if o, ok := origins[a.Evidence.InstanceID]; ok {
			in.Source = &report.Origin{Kind: o.Kind, ID: o.ID, Group: o.Group}
		}
		plan.Add(in)
	}
	plan.APICalls = counter.Counts()
	// A plan cut short by SIGINT or SIGTERM holds deferrals and failures that only say
	// "context canceled": it is not written, and --output keeps the last good plan.
	writeErr := writePlan(ctx, env, opts.output, plan, format)
	if errors.Is(writeErr, errInterrupted) {
		return interruptedError{"no plan was written"}
	}

	failed := plan.Failed()
	for _, s := range failed {
		fmt.Fprintf(env.Stderr, "imdsguard: scope %s failed: %s\n", s.Label(), s.Error)
	}
	for _, s := range plan.Scopes {
		if s.SourcesError != "" {
			fmt.Fprintf(env.Stderr, "imdsguard: warning: the sources of %s are not in the plan: %s\n", s.Label(), s.SourcesError)
		}
	}
	if w := evidenceErrorWarning(assessments); w != "" {
		fmt.Fprintf(env.Stderr, "imdsguard: warning: %s\n", w)
	}
	if writeErr != nil {
		return writeErr
	}
	if len(failed) > 0 {
		return scopesFailed(len(failed), len(scopes))
	}
	return nil
}

// scopesFailed is the run's error when some account-regions could not be planned.
func scopesFailed(failed, planned int) error {
	noun := "scopes"
	if planned == 1 {
		noun = "scope"
	}
	if failed == planned {
		return fmt.Errorf("%d of %d %s could not be planned; the plan written lists the failures and no instance", failed, planned, noun)
	}
	return fmt.Errorf("%d of %d %s could not be planned; the plan written lists them and covers the others", failed, planned, noun)
}

// planRegion judges the instances of one account-region. An error means the region
// could not be planned: its inventory could not be read. The instances asked for by id
// are still returned then, deferred on the error.
func planRegion(ctx context.Context, env Env, clients *wiring.Clients, ids []string, s policy.Settings, now time.Time) ([]guard.Assessment, error) {
	var progress guard.Progress
	if env.StderrIsTerminal {
		bar := progressbar.NewOptions(-1,
			progressbar.OptionSetWriter(env.Stderr),
			progressbar.OptionSetDescription("planning "+clients.Region()),
			progressbar.OptionShowCount(),
			progressbar.OptionClearOnFinish(),
		)
		defer bar.Finish()
		progress = func(done, total int) {
			bar.ChangeMax(total)
			_ = bar.Set(done) // a progress bar that cannot draw must not fail the plan
		}
	}
	// The errors name the operation and the region.
	assessments, err := guard.Assess(ctx, clients.Guard(), clients.Region(), ids, s, now, progress)
	if err != nil {
		return nil, err
	}
	// With ids, guard.Assess defers each instance on a failed inventory instead of
	// failing: the instances stay in the plan, and the region counts as failed.
	for _, a := range assessments {
		if a.Evidence.InventoryErr != nil {
			return assessments, a.Evidence.InventoryErr
		}
	}
	return assessments, nil
}

// scopeResult is what planning one account-region found.
type scopeResult struct {
	scope       report.Scope
	assessments []guard.Assessment
	// inventory is its sources; nil when they were not read (a plan of some instances,
	// or reading them failed: scope.SourcesError says why).
	inventory *sources.Inventory
}

// planScopes plans the account-regions, at most concurrency at once, and returns their
// results in the targets' order. With several at once, the progress bar gives way to a
// line on standard error as each scope ends.
func planScopes(ctx context.Context, env Env, targets []scopeTarget, ids []string, s policy.Settings, now time.Time, concurrency int) []scopeResult {
	results := make([]scopeResult, len(targets))
	scopeEnv := env
	several := len(targets) > 1 && concurrency > 1
	if several {
		scopeEnv.StderrIsTerminal = false
	}
	var mu sync.Mutex
	done := 0
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = planScope(ctx, scopeEnv, t, ids, s, now)
			if several && env.StderrIsTerminal {
				mu.Lock()
				done++
				fmt.Fprintf(env.Stderr, "imdsguard: %d of %d scopes: %s %s, %d instances\n", done, len(targets), results[i].scope.Label(),
					results[i].scope.Status, len(results[i].assessments))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return results
}

// planScope plans one account-region: its instances and, for a plan of the whole
// region, its sources.
func planScope(ctx context.Context, env Env, t scopeTarget, ids []string, s policy.Settings, now time.Time) scopeResult {
	r := scopeResult{scope: report.Scope{Region: t.region, Status: report.ScopeOK}}
	if t.account != "" {
		account := t.account
		r.scope.AccountID = &account
	}
	if t.err != nil {
		r.scope.Status, r.scope.Error = report.ScopeFailed, t.err.Error()
		return r
	}
	if ctx.Err() != nil {
		// Interrupted: writePlan will refuse to write.
		r.scope.Status, r.scope.Error = report.ScopeFailed, ctx.Err().Error()
		return r
	}
	as, err := planRegion(ctx, env, t.clients, ids, s, now)
	r.assessments = as
	if err != nil {
		r.scope.Status, r.scope.Error = report.ScopeFailed, err.Error()
		return r
	}
	if len(ids) == 0 {
		// Sources are judged by every instance they launched: only a plan of the whole
		// region reads them.
		if inv, err := readSources(ctx, t.clients, as); err != nil {
			r.scope.SourcesError = err.Error()
		} else {
			r.inventory = &inv
		}
	}
	return r
}

// readSources reads the sources of one account-region, with the ImdsSupport of the AMIs
// its instances run.
func readSources(ctx context.Context, clients *wiring.Clients, assessments []guard.Assessment) (sources.Inventory, error) {
	var images []string
	for _, a := range assessments {
		if inst := a.Evidence.Instance; inst != nil {
			images = append(images, inst.ImageID)
		}
	}
	return sources.Read(ctx, clients.EC2(), wiring.Client(clients, autoscaling.ServiceID, autoscaling.NewFromConfig), images)
}

// judgeSources judges the sources of one account-region from the verdicts of its
// instances and, with a ledger table, the enforcements imdsguard verified, which it
// returns too (by instance id, and by source subject).
func judgeSources(ctx context.Context, clients *wiring.Clients, table string, inv sources.Inventory, account, region string,
	assessments []guard.Assessment, s policy.Settings, now time.Time) (sources.Judgement, map[string]sources.Watch, error) {
	var enforcements sources.Enforcements
	if table != "" {
		enforcements = &rollbacks.Index{API: wiring.Client(clients, dynamodb.ServiceID, dynamodb.NewFromConfig), Table: table}
	}
	watches, err := sources.ReadWatches(ctx, enforcements, account, region)
	if err != nil {
		return sources.Judgement{}, nil, err
	}
	var here []guard.Assessment
	for _, a := range assessments {
		if a.Region == region && (a.AccountID == account || a.AccountID == "") {
			here = append(here, a)
		}
	}
	return sources.Judge(inv, account, region, here, watches, s, now), watches, nil
}

// sourceEntry is the plan's entry of one judged source.
func sourceEntry(account, region string, a sources.Assessment, inv sources.Inventory) report.Source {
	var defaultVersion, latestVersion int64
	for _, lt := range inv.Templates {
		if lt.ID == a.Source.ID {
			defaultVersion, latestVersion = lt.DefaultVersion, lt.LatestVersion
		}
	}
	return report.NewSource(account, region, a.Source, a.Instances, a.Verdict, defaultVersion, latestVersion)
}

// identityTimeout bounds the one STS call a plan may make.
const identityTimeout = 15 * time.Second

// fillAccounts names the account of every scope, and of the instances that EC2 did not
// describe (ids not found, inventory failed), where it is not known yet.
//
// Every scope is planned with the same credentials (until plan learns --accounts, DESIGN
// section 11), so they all are in one account: the account of any instance EC2 described. Only when no instance names it (every region
// failed or holds no instance) is STS GetCallerIdentity asked, once. That call needs no
// IAM permission (it cannot be denied), so plan's permissions stay the three read
// actions; it is counted in api_calls like every call. When it fails too, for example
// because the network allows no route to STS, the account stays unknown (null in the
// plan) rather than guessed: the plan is not failed for want of a label.
func fillAccounts(ctx context.Context, clients *wiring.Clients, scopes []report.Scope, assessments []guard.Assessment) {
	var account string
	for _, a := range assessments {
		if a.AccountID != "" {
			account = a.AccountID
			break
		}
	}
	if account == "" && ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(ctx, identityTimeout)
		defer cancel()
		if out, err := wiring.Client(clients, sts.ServiceID, sts.NewFromConfig).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err == nil {
			account = aws.ToString(out.Account)
		}
	}
	if account == "" {
		return
	}
	for i := range scopes {
		scopes[i].AccountID = &account
	}
	for i := range assessments {
		if assessments[i].AccountID == "" {
			assessments[i].AccountID = account
		}
	}
}

// checkOutput makes sure, before any AWS call, that the plan can be written to path: its
// folder exists and takes a new file (one is created and removed), and path is not a
// folder. A bad --output is misuse.
func checkOutput(path string) error {
	if path == "" {
		return nil
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return usagef("--output %s: is a folder; give a file name", path)
	}
	dir := filepath.Dir(path)
	probe, err := os.CreateTemp(dir, "."+filepath.Base(path)+".check-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return usagef("--output %s: cannot write in the folder %s: %v", path, dir, err)
	}
	probe.Close()
	if err := os.Remove(probe.Name()); err != nil {
		return fmt.Errorf("--output %s: removing the probe file: %w", path, err)
	}
	return nil
}

// errInterrupted: ctx was cancelled (SIGINT, SIGTERM) before the plan was in place.
var errInterrupted = errors.New("interrupted before the plan was written")

// writePlan renders the whole plan before writing, so a failure never leaves half a
// report, and replaces --output atomically. When ctx is cancelled before the plan is in
// place, nothing is written, an existing --output is left as it is, and the error is
// errInterrupted.
func writePlan(ctx context.Context, env Env, output string, plan *report.Plan, format report.Format) error {
	var buf bytes.Buffer
	if err := report.Write(&buf, plan, format); err != nil {
		return fmt.Errorf("rendering the plan: %w", err)
	}
	if output == "" {
		if ctx.Err() != nil {
			return errInterrupted
		}
		_, err := io.Copy(env.Stdout, &buf)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".*")
	if err != nil {
		return fmt.Errorf("writing --output %s: %w", output, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("writing --output %s: %w", output, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing --output %s: %w", output, err)
	}
	if ctx.Err() != nil {
		return errInterrupted
	}
	if err := os.Rename(tmp.Name(), output); err != nil {
		return fmt.Errorf("writing --output %s: %w", output, err)
	}
	return nil
}

// unique keeps the first of each value, in order.
func unique(values []string) []string {
	seen := make(map[string]bool, len(values))
	var out []string
	for _, v := range values {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func cleanList(values []string) []string {
	var out []string
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

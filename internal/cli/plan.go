package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/report"
)

type planOptions struct {
	regions       []string
	instanceIDs   []string
	format        string
	output        string
	lookupsPerSec float64
	settings      map[string]*string
}

func newPlanCommand(env Env) *cobra.Command {
	opts := planOptions{settings: map[string]*string{}}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Report what the guard would do to every instance, and why (read-only)",
		Long: "plan reads the EC2 inventory, the MetadataNoToken metric and CloudTrail, and reports\n" +
			"for every instance whether it would be remediated, ticketed, deferred or skipped, with\n" +
			"the evidence. It changes nothing. AWS access comes from the standard sources: profile,\n" +
			"AWS_REGION, AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPlan(cmd, env, opts) },
	}
	f := cmd.Flags()
	f.StringArrayVar(&opts.regions, "region", nil, "region to plan (repeatable; default: the configured region)")
	f.StringSliceVar(&opts.instanceIDs, "instance-ids", nil, "only these instances (comma-separated); default: every instance")
	f.StringVar(&opts.format, "format", string(report.FormatTable), "output format: table, json, csv or markdown")
	f.StringVarP(&opts.output, "output", "o", "", "write the plan to this file instead of standard output")
	f.Float64Var(&opts.lookupsPerSec, "cloudtrail-rps", evidence.LookupEventsPerSecond,
		"CloudTrail LookupEvents calls per second per account-region (AWS allows 2)")
	addSettingFlags(cmd, opts.settings)
	return cmd
}

// addSettingFlags declares one flag per guard setting, from the same definitions the
// Lambdas read their environment with.
func addSettingFlags(cmd *cobra.Command, into map[string]*string) {
	for _, spec := range policy.SettingSpecs {
		into[spec.Flag] = cmd.Flags().String(spec.Flag, spec.Default, fmt.Sprintf("%s (env %s)", spec.Usage, spec.Env))
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
	ids := cleanList(opts.instanceIDs)
	if err := evidence.ValidateInstanceIDs(ids); err != nil {
		return usagef("--instance-ids: %w", err)
	}
	if opts.lookupsPerSec <= 0 {
		return usagef("--cloudtrail-rps must be above 0, got %g", opts.lookupsPerSec)
	}
	regions := cleanList(opts.regions)
	if len(regions) == 0 {
		regions = []string{""} // the configured default region
	}

	now := env.Now().UTC()
	counter := awsapi.NewCallCounter()
	plan := report.New(now, settings)
	var failures []error
	for _, region := range regions {
		assessments, err := planRegion(ctx, env, counter, region, ids, settings, opts.lookupsPerSec, now)
		if err != nil {
			failures = append(failures, err)
			continue
		}
		for _, a := range assessments {
			plan.Add(report.NewInstance(a.Evidence, a.Verdict, a.AccountID, a.Region))
		}
	}
	plan.APICalls = counter.Counts()
	if err := writePlan(env, opts.output, plan, format); err != nil {
		return err
	}
	return errors.Join(failures...)
}

func planRegion(ctx context.Context, env Env, counter *awsapi.CallCounter, region string, ids []string, s policy.Settings, lookupsPerSec float64, now time.Time) ([]guard.Assessment, error) {
	cfg, err := awsapi.Load(ctx, awsapi.Options{Region: region, Counter: counter})
	if err != nil {
		return nil, err
	}
	clients := guard.Clients{
		EC2:           ec2.NewFromConfig(cfg),
		CloudWatch:    cloudwatch.NewFromConfig(cfg),
		CloudTrail:    cloudtrail.NewFromConfig(cfg),
		LookupLimiter: evidence.NewLookupLimiter(lookupsPerSec),
	}
	var progress guard.Progress
	if env.StderrIsTerminal {
		bar := progressbar.NewOptions(-1,
			progressbar.OptionSetWriter(env.Stderr),
			progressbar.OptionSetDescription("planning "+cfg.Region),
			progressbar.OptionShowCount(),
			progressbar.OptionClearOnFinish(),
		)
		defer bar.Finish()
		progress = func(done, total int) {
			bar.ChangeMax(total)
			_ = bar.Set(done) // a progress bar that cannot draw must not fail the plan
		}
	}
	assessments, err := guard.Assess(ctx, clients, cfg.Region, ids, s, now, progress)
	if err != nil {
		return nil, fmt.Errorf("planning region %s: %w", cfg.Region, err)
	}
	return assessments, nil
}

// writePlan renders the whole plan before writing, so a failure never leaves half a
// report, and replaces --output atomically.
func writePlan(env Env, output string, plan *report.Plan, format report.Format) error {
	var buf bytes.Buffer
	if err := report.Write(&buf, plan, format); err != nil {
		return fmt.Errorf("rendering the plan: %w", err)
	}
	if output == "" {
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
	if err := os.Rename(tmp.Name(), output); err != nil {
		return fmt.Errorf("writing --output %s: %w", output, err)
	}
	return nil
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
